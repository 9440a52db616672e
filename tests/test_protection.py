"""Protection feed: the rows of a few hand-built reports, status filtering, and rewrites across runs."""

from datetime import UTC, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.lib.tables import CATALOG_SCHEMA, MRFL_ORDER, TABLES, Lakehouse, latest, views
from jobs.stages import build_protection_feed as job
from jobs.stages.cluster_minority_report import reference_prices, report_prices
from tests.conftest import make_config

RUN = "pf-run"
T0 = datetime(2025, 8, 12, 10, tzinfo=UTC)
TICK = timedelta(minutes=15)
DAY = T0.date()
FEED = TABLES["protection_feed"].schema
SERIES = {
    "S1|K1": ("S1", "K1", "R1", "North", "CAT_A"),
    "S1|K2": ("S1", "K2", "R1", "North", "CAT_A"),
    "S2|K1": ("S2", "K1", "R2", "South", "CAT_A"),
}
# report -> (series, window_start)
REPORTS = {"MR-A": ("S1|K1", T0), "MR-B": ("S2|K1", T0 + TICK), "MR-C": ("S1|K2", T0)}


def t(n: int) -> datetime:
    return T0 + n * TICK


def frame(spark, table, rows):
    schema = TABLES[table].schema
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)


def ident(report_id):
    key, ws = REPORTS[report_id]
    store, sku, retailer, region, category = SERIES[key]
    return {
        "report_id": report_id,
        "run_id": RUN,
        "series_key": key,
        "store_id": store,
        "sku": sku,
        "retailer_id": retailer,
        "region": region,
        "category": category,
        "window_start": ws,
        "direction": "spike",
    }


def snapshot(report_id, n, ended=False):
    return {
        **ident(report_id),
        "first_detected_from": REPORTS[report_id][1],
        "window_end": t(n) if ended else None,
        "severity": 0.5,
        "peak_anomaly_score": 0.9,
        "attributed_sales_total": 0.0,
        "baseline_sales_total": 0.0,
        "ticks_active": 1,
        "model_version": "detect-v1",
        "report_status": "ended" if ended else "active",
        "written_at": t(n),
        "is_degraded": False,
        "date": t(n).date(),
    }


def final(report_id, n, status, cause="Competitor Stockout", conf=0.9, edit_seq=-1, model_n=None, degraded=False):
    return {
        **ident(report_id),
        "proposed_cause": f"{cause} near {report_id}",
        "proposed_cause_category": cause,
        "impact_vector": "attribution error",
        "confidence_score": conf,
        "confidence_tier": "High",
        "review_status": status,
        "supporting_evidence": [],
        "rejected_categories": [],
        "field_sources": {"review_status": "model"},
        "model_source": "pipeline",
        "model_written_at": t(n if model_n is None else model_n),
        "edit_seq": edit_seq,
        "finalised_id": f"F-{report_id}-{n}-{edit_seq}",
        "report_status": "active",
        "written_at": t(n),
        "is_degraded": degraded,
        "date": t(n).date(),
    }


def cohorted(report_id, n, event):
    return {
        **ident(report_id),
        "report_group_id": event,
        "event_status": "active",
        "version": n + 1,
        "severity_score": 0.5,
        "impact_estimate": 1.0,
        "attributed_sales_total": 1.0,
        "baseline_sales_total": 0.0,
        "cohort_id": "MC-1",
        "cohort_name": "cohort",
        "cohort_confidence": 0.9,
        "cohort_reason": "single report",
        "cohort_size": 1,
        "cohort_store_count": 1,
        "event_window_start": T0,
        "report_status": "active",
        "written_at": t(n),
        "is_degraded": False,
        "date": t(n).date(),
    }


def series_row(key, ts):
    store, sku, retailer, region, category = SERIES[key]
    return {"run_id": RUN, "series_key": key, "store_id": store, "sku": sku, "retailer_id": retailer,
            "region": region, "category": category, "ts": ts, "written_at": ts, "is_degraded": False,
            "date": ts.date()}  # fmt: skip


def baseline(key, n, actual, expected, degraded=False):
    return {**series_row(key, t(n)), "actual_units": actual, "baseline_units": expected, "history_days": 7,
            "model_version": "base-v1", "report_status": "none", "is_degraded": degraded}  # fmt: skip


def sale(key, ts, units, revenue):
    return {**series_row(key, ts), "units": units, "revenue": revenue, "source_rows": 1}


# A: S1|K1, active at ticks 0-2, ended at 3; revenue missing at tick 2 (estimated at the report's price, 2).
# B: S2|K1, active at ticks 1-2, price 3. C: S1|K2, a drop to nothing at ticks 0-1: its series' usual price
# the day before (10 / 2 = 5) prices the baseline it lost.
MRDL = [
    *(snapshot("MR-A", n) for n in range(3)),
    snapshot("MR-A", 3, ended=True),
    *(snapshot("MR-B", n) for n in (1, 2)),
    *(snapshot("MR-C", n) for n in (0, 1)),
]
BASELINE = [
    baseline("S1|K1", 0, 10.0, 4.0),
    baseline("S1|K1", 1, 12.0, 4.0),
    baseline("S1|K1", 2, 8.0, 4.0),
    baseline("S1|K1", 3, 4.0, 4.0),
    baseline("S2|K1", 1, 5.0, 2.0),
    baseline("S2|K1", 2, 7.0, 3.0),
    baseline("S1|K2", 0, 0.0, 4.0),
    baseline("S1|K2", 1, 0.0, 4.0),
]
SALES = [
    sale("S1|K1", t(0), 10.0, 20.0),
    sale("S1|K1", t(1), 12.0, 24.0),
    sale("S1|K1", t(2), 8.0, None),
    sale("S1|K1", t(3), 4.0, 8.0),
    sale("S2|K1", t(1), 5.0, 15.0),
    sale("S2|K1", t(2), 7.0, 21.0),
    sale("S1|K2", t(0), 0.0, 0.0),
    sale("S1|K2", t(1), 0.0, 0.0),
    sale("S1|K2", T0 - timedelta(days=1), 2.0, 10.0),
]
MRFL = [
    *(final("MR-A", n, "confirmed") for n in range(4)),
    *(final("MR-B", n, "proposed", cause="Social/Viral Event", conf=0.6) for n in (1, 2)),
    final("MR-C", 0, "auto_confirmed", cause="Operational/Store Issue", conf=0.85),
    final("MR-C", 1, "auto_confirmed", cause="Operational/Store Issue", conf=0.85, degraded=True),
]
MRCH = [cohorted("MR-A", 0, "ME-1"), cohorted("MR-A", 1, "ME-1"), cohorted("MR-A", 2, "ME-2")]


def feed_row(report_id, n, actual, expected, revenue, anomalous_revenue, event, status, cause, conf, written_n,
             degraded=False):  # fmt: skip
    key = REPORTS[report_id][0]
    store, sku, retailer, region, category = SERIES[key]
    return (RUN, key, store, sku, retailer, region, category, t(n), report_id, event, cause, status, conf, actual,
            expected, actual - expected, revenue, anomalous_revenue, "active", t(written_n), degraded,
            t(n).date())  # fmt: skip


def expected_rows(statuses=("confirmed", "auto_confirmed")):
    a = ("ME-2", "confirmed", "Competitor Stockout", 0.9, 3)
    b = (None, "proposed", "Social/Viral Event", 0.6, 2)
    c = (None, "auto_confirmed", "Operational/Store Issue", 0.85, 1)
    rows = [
        feed_row("MR-A", 0, 10.0, 4.0, 20.0, 12.0, *a),
        feed_row("MR-A", 1, 12.0, 4.0, 24.0, 16.0, *a),
        feed_row("MR-A", 2, 8.0, 4.0, 16.0, 8.0, *a, degraded=True),
        feed_row("MR-B", 1, 5.0, 2.0, 15.0, 9.0, *b),
        feed_row("MR-B", 2, 7.0, 3.0, 21.0, 12.0, *b),
        feed_row("MR-C", 0, 0.0, 4.0, 0.0, -20.0, *c, degraded=True),
        feed_row("MR-C", 1, 0.0, 4.0, 0.0, -20.0, *c, degraded=True),
    ]
    return [r for r in rows if r[11] in statuses]


def assert_feed(actual, rows):
    expected = actual.sparkSession.createDataFrame(rows, FEED)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def usual_prices(spark):
    """The reference prices the clustering stage stores for these reports (C's: 5)."""
    reports = frame(spark, "minority_reports_detected_log", MRDL).select("report_id", "series_key", "window_start")
    return reference_prices(reports.distinct(), frame(spark, "sales_timeseries_data", SALES), 7)


def test_rows_of_included_reports_at_their_active_ticks(spark):
    out = job.protection_rows(
        latest(frame(spark, "minority_reports_finalised_log", MRFL), "run_id", "report_id", order=MRFL_ORDER),
        frame(spark, "minority_reports_detected_log", MRDL),
        frame(spark, "baseline_sales_model_prediction_log", BASELINE),
        frame(spark, "sales_timeseries_data", SALES),
        latest(frame(spark, "minority_reports_cohorted_log", MRCH), "run_id", "report_id"),
        usual_prices(spark),
        ["confirmed", "auto_confirmed"],
    )
    assert_feed(out, expected_rows())


def test_missing_data_counts_as_no_sales_and_no_baseline_and_unknown_statuses_are_refused(spark):
    rows = [baseline("S1|K1", 0, None, 4.0, degraded=True), baseline("S1|K1", 1, 9.0, None, degraded=True)]
    out = job.protection_rows(
        frame(spark, "minority_reports_finalised_log", [final("MR-A", 1, "confirmed")]),
        frame(spark, "minority_reports_detected_log", [snapshot("MR-A", 0), snapshot("MR-A", 1)]),
        frame(spark, "baseline_sales_model_prediction_log", rows),
        frame(spark, "sales_timeseries_data", [sale("S1|K1", t(1), 9.0, 18.0)]),
        frame(spark, "minority_reports_cohorted_log", []),
        spark.createDataFrame([], "report_id string, ref_price double"),
        ["confirmed"],
    )
    a = (None, "confirmed", "Competitor Stockout", 0.9, 1)
    # No data at tick 0: nothing sold, nothing expected. No baseline at tick 1: all of it is anomalous.
    assert_feed(
        out, [feed_row("MR-A", 0, 0.0, 0.0, 0.0, 0.0, *a, True), feed_row("MR-A", 1, 9.0, 0.0, 18.0, 18.0, *a, True)]
    )
    with pytest.raises(ValueError, match="unknown review status"):
        job.protection_rows(*[frame(spark, "minority_reports_finalised_log", [])] * 6, ["confirmed", "maybe"])


def write(lake, table, rows):
    """A plain Delta append (the rows are new by construction): an insert-only MERGE per input costs seconds."""
    lake.ensure(table)
    frame(lake.spark, table, rows).write.format("delta").mode("append").save(lake.path(table))


LOGS = (
    ("minority_reports_detected_log", MRDL),
    ("minority_reports_finalised_log", MRFL),
    ("minority_reports_cohorted_log", MRCH),
)


def arrive(lake, lo, hi, series=True):
    """The log rows written at ticks in [lo, hi), and the series rows (which never change) if asked."""
    if series:
        write(lake, "baseline_sales_model_prediction_log", BASELINE)
        write(lake, "sales_timeseries_data", SALES)
    for table, rows in LOGS:
        now = [r for r in rows if lo <= r["written_at"] < hi]
        if now:
            write(lake, table, now)


def feed(lake):
    return lake.read("protection_feed", RUN)


def test_a_reports_reference_price_is_computed_once_then_read_from_its_table(spark, tmp_path, monkeypatch):
    lake = Lakehouse(spark, make_config(tmp_path))
    # C's series: 2 units for 10 the day before its window count, 1 for 100 eight days before do not.
    write(lake, "sales_timeseries_data", [*SALES, sale("S1|K2", T0 - timedelta(days=8), 1.0, 100.0)])
    snaps = frame(spark, "minority_reports_detected_log", MRDL)
    prices, new = report_prices(lake, lake.cfg, RUN, snaps)
    # A and B sold nothing before their windows: no price, stored as such.
    expected = [("MR-A", None), ("MR-B", None), ("MR-C", 5.0)]
    assert_df_equality(prices, spark.createDataFrame(expected, "report_id string, ref_price double"),
                       ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)  # fmt: skip
    stored = [(RUN, r, REPORTS[r][0], REPORTS[r][1], 7, p, REPORTS[r][1]) for r, p in expected]  # first snapshot
    assert_df_equality(new, spark.createDataFrame(stored, TABLES["minority_report_reference_price"].schema),
                       ignore_row_order=True, ignore_nullable=True)  # fmt: skip
    assert lake.append_new("minority_report_reference_price", new) == 3

    def no_scan(*args):
        raise AssertionError("a stored price was computed again from the sales")

    monkeypatch.setattr(lake, "read_ticks", no_scan)
    again, none = report_prices(lake, lake.cfg, RUN, snaps)
    assert none is None
    assert_df_equality(again, prices, ignore_row_order=True)


@pytest.mark.slow
def test_incremental_runs_track_reviews_and_equal_a_full_rebuild(spark, tmp_path):
    cfg = make_config(tmp_path)
    lake = Lakehouse(spark, cfg)
    write_other_run(lake)  # which no run of RUN may touch
    # Two runs, the inputs arriving as they would: the second updates A's first rows (its event changed).
    arrive(lake, t(0), t(2))
    assert job.run(spark, cfg, t(0), t(2), RUN) == {"protection_feed": {"inserted": 4, "updated": 0, "deleted": 0}}
    arrive(lake, t(2), t(4), series=False)
    assert job.run(spark, cfg, t(2), t(4), RUN) == {"protection_feed": {"inserted": 1, "updated": 2, "deleted": 0}}
    assert_feed(feed(lake), expected_rows())
    # A rerun, and a full rebuild, change nothing.
    nothing = {"inserted": 0, "updated": 0, "deleted": 0}
    assert job.run(spark, cfg, t(2), t(4), RUN) == {"protection_feed": nothing}
    assert job.run(spark, cfg, None, t(4), RUN) == {"protection_feed": nothing}
    assert_feed(feed(lake), expected_rows())

    # Between ticks an analyst rejects A (an edit row stamped at the next tick), and C joins an event.
    write(lake, "minority_reports_finalised_log", [final("MR-A", 4, "rejected", edit_seq=1, model_n=3)])
    write(lake, "minority_reports_cohorted_log", [cohorted("MR-C", 4, "ME-3")])
    assert job.run(spark, cfg, t(4), t(5), RUN) == {"protection_feed": {"inserted": 0, "updated": 2, "deleted": 3}}
    after = [(*r[:9], "ME-3", *r[10:]) for r in expected_rows() if r[8] == "MR-C"]
    assert_feed(feed(lake), after)
    assert job.run(spark, cfg, None, t(5), RUN) == {"protection_feed": nothing}
    assert lake.read("protection_feed").where(F.col("run_id") == "other").count() == 1


def write_other_run(lake):
    row = dict(zip(FEED.fieldNames(), ("other", *expected_rows()[0][1:]), strict=True))
    write(lake, "protection_feed", [row])


def test_included_statuses_are_configuration_and_the_daily_view_sums_the_active_run(spark, tmp_path):
    cfg = make_config(tmp_path, **{"protection.include_statuses": ["proposed", "confirmed", "auto_confirmed"]})
    lake = Lakehouse(spark, cfg)
    arrive(lake, t(0), t(4))
    assert job.run(spark, cfg, None, t(4), RUN)["protection_feed"]["inserted"] == 7
    assert_feed(feed(lake), expected_rows(("proposed", "confirmed", "auto_confirmed")))

    write_other_run(lake)
    lake.reset_run_id(RUN, t(4))
    s, query = CATALOG_SCHEMA, views(cfg)["protection_feed_daily"]
    # Read the lakehouse's tables by path: the session catalog's mrs schema belongs to other tests.
    for name in ("protection_feed", "demo_run_config"):
        query = query.replace(f"{s}.{name}", f"delta.`{lake.path(name)}`")
    got = {(r.store_id, r.sku): r for r in spark.sql(query).collect()}
    assert {r.run_id for r in got.values()} == {RUN}
    assert set(got) == {("S1", "K1"), ("S1", "K2"), ("S2", "K1")}
    assert (got["S1", "K1"].anomalous_units, got["S1", "K1"].anomalous_revenue) == (18.0, 36.0)
    assert got["S1", "K1"].event_ids == ["ME-2"] and got["S1", "K1"].report_ticks == 3
    assert got["S2", "K1"].cause_categories == ["Social/Viral Event"] and got["S2", "K1"].event_ids == []
    assert got["S1", "K2"].anomalous_revenue == -40.0 and got["S1", "K2"].is_degraded


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["--start", "2025-08-12T10:00:00Z"], "give --start and --end"),
        (["--full", "--start", "2025-08-12T10:00:00Z"], "give no --start"),
        (["--start", "2025-08-12T10:00:00Z", "--end", "2025-08-12T10:07:00Z"], "tick grid"),
    ],
)
def test_command_line_refuses_an_unclear_interval(argv, problem, capsys):
    with pytest.raises(SystemExit):
        job.main(argv)
    assert problem in capsys.readouterr().err
