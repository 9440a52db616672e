from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import parse_ts
from jobs.stages import ingest

RAW_COLS = [*ingest.INPUT_COLUMNS, "source_file", "_raw", "_problem"]


def raw_frame(spark, rows):
    """Rows of (timestamp, batch, store, sku, units) as read from a file, strings throughout."""
    full = [
        (ts, batch, store, "R1", "North", sku, "CAT_A", units, None, "sales_2025-08-04.csv", f"{i}", None)
        for i, (ts, batch, store, sku, units) in enumerate(rows)
    ]
    return spark.createDataFrame(full, ", ".join(f"{c} string" for c in RAW_COLS))


def test_classify_gives_each_bad_row_its_reason(spark):
    raw = raw_frame(
        spark,
        [
            ("2025-08-04T10:00:00Z", "B1", "S1", "K1", "3"),  # fine
            ("2025-08-04T10:07:00Z", "B1", "S1", "K1", "2"),  # fine, same tick
            ("2025-08-04T10:00:00Z", "B1", "S1", "K1", "3"),  # exact copy of the first: dropped
            ("2025-08-04T10:00:00Z", "B1", None, "K1", "1"),
            ("2025-08-04T10:15:00Z", "B1", "S1", "K2", "lots"),
            ("2025-08-04T10:15:00Z", "B1", "S1", "K3", "-4"),
            ("04/08/2025 10am", "B1", "S1", "K1", "1"),
            ("2025-08-04T10:30:00Z", "B1", "S1", None, "1"),
            ("2025-08-04T10:45:00Z", "B2", "S1", "K1", "5"),  # key conflict ...
            ("2025-08-04T10:45:00Z", "B2", "S1", "K1", "6"),  # ... with this one
        ],
    )
    got = ingest.classify(raw, 900, "store_sku").select(
        "_raw", "reason_code", "is_duplicate", F.date_format("tick_ts", "HH:mm").alias("tick")
    )
    expected = spark.createDataFrame(
        [
            ("0", None, False, "10:00"),
            ("1", None, False, "10:00"),
            ("2", None, True, "10:00"),
            ("3", "NULL_KEY", False, "10:00"),
            ("4", "NON_NUMERIC_UNITS", False, "10:15"),
            ("5", "NEGATIVE_UNITS", False, "10:15"),
            ("6", "BAD_TIMESTAMP", False, "10:00"),  # owned by the file's first tick
            ("7", "NULL_KEY", False, "10:30"),
            ("8", "DUPLICATE_KEY_CONFLICT", False, "10:45"),
            ("9", "DUPLICATE_KEY_CONFLICT", False, "10:45"),
        ],
        "_raw string, reason_code string, is_duplicate boolean, tick string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_to_timeseries_sums_a_series_within_its_tick(spark):
    raw = raw_frame(
        spark,
        [
            ("2025-08-04T10:00:00Z", "B1", "S1", "K1", "3"),
            ("2025-08-04T10:07:00Z", "B1", "S1", "K1", "2"),
            ("2025-08-04T10:15:00Z", "B1", "S1", "K1", "1"),
            ("2025-08-04T10:00:00Z", "B1", "S2", "K1", "4"),
        ],
    )
    accepted = ingest.accepted_rows(ingest.classify(raw, 900, "store_sku"), "r1")
    got = ingest.to_timeseries(accepted, 900, "store_sku").select(
        "series_key", F.date_format("ts", "HH:mm").alias("tick"), "units", "source_rows"
    )
    expected = spark.createDataFrame(
        [("S1|K1", "10:00", 5.0, 2), ("S1|K1", "10:15", 1.0, 1), ("S2|K1", "10:00", 4.0, 1)],
        "series_key string, tick string, units double, source_rows long",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_store_grain_keys_series_by_store(spark):
    raw = raw_frame(
        spark,
        [("2025-08-04T10:00:00Z", "B1", "S1", "K1", "3"), ("2025-08-04T10:00:00Z", "B1", "S1", "K2", "2")],
    )
    accepted = ingest.accepted_rows(ingest.classify(raw, 900, "store"), "r1")
    got = ingest.to_timeseries(accepted, 900, "store").select("series_key", "sku", "units")
    expected = spark.createDataFrame([("S1", None, 5.0)], "series_key string, sku string, units double")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_missing_input_folder_fails_naming_it(spark, tmp_path):
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    with pytest.raises(ingest.InputMissingError, match=r"input folder not found: .*unified_sales_data"):
        ingest.run(spark, cfg, parse_ts("2025-08-04T00:00:00Z"), parse_ts("2025-08-04T01:00:00Z"))


def test_schema_drift_and_missing_day_are_quarantined_or_degraded(spark, tmp_path):
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    folder = cfg.paths.landing / "unified_sales_data"
    folder.mkdir(parents=True)
    (folder / "sales_2025-08-04.csv").write_text(
        "timestamp,store_id,sku,qty\n2025-08-04T00:00:00Z,S1,K1,3\n2025-08-04T00:15:00Z,S1,K1,4\n"
    )
    start, end = parse_ts("2025-08-04T00:00:00Z"), parse_ts("2025-08-05T00:30:00Z")
    written = ingest.run(spark, cfg, start, end, run_id="t")
    assert written["missing_days"] == ["2025-08-05"]
    lake = Lakehouse(spark, cfg)
    q = lake.read("ingest_quarantine", "t")
    assert [r.reason_code for r in q.collect()] == ["SCHEMA_DRIFT", "SCHEMA_DRIFT"]
    assert "units" in q.first().reason_detail
    audit = lake.read("ingest_audit_log", "t")
    assert audit.count() == 98  # every tick of the interval has a row
    assert audit.where("is_degraded").count() == 98  # nothing accepted anywhere
    totals = audit.agg(F.sum("rows_read"), F.sum("rows_quarantined")).first()
    assert tuple(totals) == (2, 2)


def test_ingest_of_generated_day_reconciles_and_reruns_add_nothing(spark, tmp_path):
    from jobs.quality.generate_data import generate
    from tests.conftest import make_config

    cfg = make_config(tmp_path, **{"generator.days": 2, "generator.first_anomaly_day": 1})
    generate(cfg, cfg.paths.landing)
    start, end = (
        datetime.fromisoformat("2025-08-04T00:00:00+00:00"),
        datetime.fromisoformat("2025-08-05T00:00:00+00:00"),
    )
    first = ingest.run(spark, cfg, start, end, run_id="t")
    again = ingest.run(spark, cfg, start, end, run_id="t")
    assert first["sales_timeseries_data"] == 12 * 96
    assert first["all_campaign_data"] >= 2  # at least the always-on campaigns, which overlap every day
    counts = {k: v for k, v in again.items() if isinstance(v, int) and k != "files"}
    assert set(counts) >= set(ingest.WRITES)  # every table the job writes reported, and nothing new
    assert set(counts.values()) == {0}
    audit = Lakehouse(spark, cfg).read("ingest_audit_log", "t")
    bad = audit.where("rows_read != rows_accepted + rows_quarantined + rows_duplicate_dropped")
    assert bad.count() == 0
    read, dup, quarantined = audit.agg(
        F.sum("rows_read"), F.sum("rows_duplicate_dropped"), F.sum("rows_quarantined")
    ).first()
    assert read == 12 * 96 + 6 and dup == 1 and quarantined == 5
    # Every tick's series count is its sales_timeseries_data rows: all 12 series, each tick of the day.
    assert sorted({r.series_count for r in audit.select("series_count").collect()}) == [12]


def test_context_and_campaign_feeds_load_once_and_quarantine_bad_records(spark, tmp_path):
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    (cfg.paths.landing / "unified_sales_data").mkdir(parents=True)
    ctx = cfg.paths.landing / "contextual_data"
    ctx.mkdir()
    (ctx / "context.csv").write_text(
        "signal_type,start,end,store_id,region,category,sku,source,detail,intensity\n"
        "social_trend,2025-08-04T10:00:00Z,2025-08-04T14:00:00Z,,North,,K1,TikTok,trending,3.5\n"
        "store_incident,2025-08-05T10:00:00Z,2025-08-05T12:00:00Z,S1,,,,ops,flood,\n"
        "social_trend,2025-08-04T11:00:00Z,2025-08-04T09:00:00Z,,North,,K2,TikTok,ends before it starts,1\n"
        ",2025-08-04T11:00:00Z,2025-08-04T12:00:00Z,,North,,K2,TikTok,no type,1\n"
        "social_trend,2025-08-04T10:00:00Z,2025-08-04T14:00:00Z,,North,,K1,TikTok,trending,3.5\n"
    )
    start, end = parse_ts("2025-08-04T00:00:00Z"), parse_ts("2025-08-05T00:00:00Z")
    written = ingest.run(spark, cfg, start, end, run_id="t")
    assert written["all_campaign_data"] == "missing"  # reported; attribution will run degraded
    assert written["contextual_data"] == 1  # the copy is dropped; the incident starts tomorrow
    assert written["contextual_data_quarantined"] == 2
    lake = Lakehouse(spark, cfg)
    got = lake.read("contextual_data", "t").select("signal_type", "sku", "start", "end", "intensity", "written_at")
    t = datetime.fromisoformat
    expected = spark.createDataFrame(
        [("social_trend", "K1", t("2025-08-04 10:00"), t("2025-08-04 14:00"), 3.5, t("2025-08-04 10:00"))],
        "signal_type string, sku string, start timestamp, end timestamp, intensity double, written_at timestamp",
    )
    assert_df_equality(got, expected, ignore_nullable=True, ignore_metadata=True)
    reasons = sorted(r.reason_code for r in lake.read("ingest_quarantine", "t").collect())
    assert reasons == ["BAD_TIMESTAMP", "NULL_KEY"]
    # Every tick's audit row says which feed was absent: attribution reads it to mark its rows degraded.
    missing = {tuple(r.feeds_missing) for r in lake.read("ingest_audit_log", "t").collect()}
    assert missing == {("all_campaign_data",)}
    # The next day's run picks up the incident; running both again adds nothing.
    assert ingest.run(spark, cfg, end, end + (end - start), run_id="t")["contextual_data"] == 1
    again = ingest.run(spark, cfg, start, end + (end - start), run_id="t")
    assert again["contextual_data"] == 0 and again["contextual_data_quarantined"] == 0


def test_union_all_keeps_the_files_order_in_a_shallow_plan(spark):
    from jobs.lib.tables import union_all

    frames = [spark.createDataFrame([(i,)], "n int") for i in range(5)]
    assert [r.n for r in union_all(frames).collect()] == [0, 1, 2, 3, 4]
    assert [r.n for r in union_all(frames[:1]).collect()] == [0]


@pytest.mark.parametrize(
    "header",
    ['store_id,sku_id,"units, sold"', "a,,b,", "a,b,a,A,c", "ts,ts,units"],
    ids=["quoted", "blank", "repeated", "repeated-first"],
)
def test_a_header_is_read_without_spark_as_spark_names_it(spark, tmp_path, header):
    path = tmp_path / "f.csv"
    path.write_text(header + "\n1,2,3,4,5\n")
    assert ingest.csv_header(path) == spark.read.option("header", True).csv(str(path)).columns


def test_a_header_with_a_byte_order_mark_names_its_first_column_cleanly_and_bad_bytes_do_not_stop_it(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbfstore_id,sku_id\n1,caf\xe9\n")  # and a byte that is not UTF-8
    assert ingest.csv_header(path) == ["store_id", "sku_id"]
