"""The stages together on small generated data: replay, rerun, quality, catalog."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from jobs.lib.tables import MRFL_ORDER, TABLES, Lakehouse, catalog_ddl, latest, views
from jobs.library import embed_reports
from jobs.quality import evaluate_attribution, evaluate_cohorts, evaluate_detection
from jobs.quality.generate_data import generate
from jobs.review import edit, refresh_reports
from jobs.review.edit import EditError, EditRequest
from jobs.runtime import register_catalog
from jobs.runtime.pipeline import STAGES
from jobs.runtime.pipeline import run_range as run_stages
from jobs.stages import check_pipeline_health, cluster_minority_report, hydrate_minority_reports, render_event_charts
from tests.conftest import make_config

pytestmark = pytest.mark.slow  # whole pipeline runs over the small data

START = datetime(2025, 8, 4, tzinfo=UTC)
TICK = timedelta(minutes=15)
HYDRATED = ("minority_reports", "minority_events_log")
# The logs the pipeline DAG appends to (the library and the t-SNE map have their own DAG; hydrated tables
# are derived and compared with a rebuild instead).
STAGE_TABLES = [
    n
    for n in TABLES
    if n not in ("demo_run_config", "cluster_library", "minority_report_embedding", *HYDRATED)
    and not n.endswith("_as_of")
    # One health row per pipeline run (its interval), so a range and its split differ by design.
    and n != "pipeline_health_log"
]


def run_range(spark, cfg, start, end, charts=False, health=True):
    # Charts are files, not tables: drawn once, for the whole run, to keep the suite short. Health rows are per
    # run, so a split's differ by design: the split below leaves them out.
    skip = {*(() if charts else (render_event_charts,)), *(() if health else (check_pipeline_health,))}
    run_stages(spark, cfg, start, end, "demo-001", [s for s in STAGES if s not in skip])


def assert_hydrated_equals_rebuild(spark, cfg, end, built=None, as_of=None):
    """The hydrated tables (or one as_of set of them) hold exactly what a full rebuild from the logs gives."""
    lake = Lakehouse(spark, cfg)
    built = built or hydrate_minority_reports.build(lake, "demo-001", end)
    for name, df in zip(HYDRATED, built, strict=True):
        table = f"{name.replace('_log', '')}_as_of" if as_of else name
        got = lake.read(table, "demo-001")
        if as_of:
            got = got.where(F.col("as_of") == F.lit(as_of)).drop("as_of")
        expected = df.select(*got.columns)
        assert got.count() > 0, name
        got, expected = comparable(got), comparable(expected)
        # The rebuild's columns carry the comments of the logs they come from, the table its own: data is compared.
        assert_df_equality(
            got, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True, ignore_metadata=True
        )


def comparable(df):
    """Maps as sorted entry arrays: Spark cannot sort rows by a map column (chispa sorts to ignore row order)."""
    maps = [f.name for f in df.schema.fields if isinstance(f.dataType, MapType)]
    return df.withColumns({c: F.array_sort(F.map_entries(c)) for c in maps})


@pytest.fixture(scope="session")
def whole_run(spark, small_cfg, smtp_server):
    """The small data set, generated and run through every pipeline stage as one range (alerts go to the
    loopback SMTP server)."""
    generate(small_cfg, small_cfg.paths.landing)
    end = START + timedelta(days=small_cfg.generator.days)
    run_range(spark, small_cfg, START, end, charts=True)
    return small_cfg, end


def snapshot(spark, cfg) -> dict[str, list]:
    """Every stage table's rows; file paths (alerts link to charts) relative to the config's artifacts folder."""
    lake, root = Lakehouse(spark, cfg), str(cfg.paths.artifacts)

    def row(r):
        return tuple(v.replace(root, "<artifacts>") if isinstance(v, str) else v for v in r)

    def rows(name):
        df = lake.read(name)
        # Health alerts are per pipeline run, like the health log: a range and its split differ by design.
        return df.where("event_id IS NOT NULL") if name == "ui_notifications_log" else df

    return {n: sorted(map(row, rows(n).collect()), key=repr) for n in STAGE_TABLES}


def test_one_range_equals_a_range_a_tick_and_the_whole_backfill_again(spark, whole_run, smtp_server, tmp_path):
    cfg_a, end = whole_run
    # Cut the range inside the last report that lasts (an hour in): open reports must be carried from run to run,
    # and the earlier anomalies' alerts are sent before the retry.
    mrdl_a = Lakehouse(spark, cfg_a).read("minority_reports_detected_log")
    lasting = mrdl_a.groupBy("report_id").agg(F.min("first_detected_from").alias("f"), F.count("*").alias("n"))
    cut = lasting.where("n >= 8").agg(F.max("f")).first()[0].replace(tzinfo=UTC) + 4 * TICK
    cfg_b = make_config(tmp_path, **{"paths.landing": str(cfg_a.paths.landing)})
    lake_b = Lakehouse(spark, cfg_b)
    mail = len(smtp_server.messages())
    run_range(spark, cfg_b, START, cut, health=False)
    mrdl = lake_b.read("minority_reports_detected_log")
    assert mrdl.where((F.col("written_at") == F.lit(cut - TICK)) & (F.col("report_status") == "active")).count()
    # The hydrated state as it stood then, to compare with an --as-of rebuild at the end.
    then = tuple(spark.createDataFrame(lake_b.read(n).collect(), TABLES[n].schema) for n in HYDRATED)
    run_range(spark, cfg_b, cut, cut + TICK, health=False)  # one scheduled tick after a range
    sent = len(smtp_server.messages()) - mail
    assert sent > 0, "the ticks retried below must have sent alerts"
    # Then the whole backfill again: every tick run so far retried (adding nothing), the rest new.
    run_range(spark, cfg_b, START, end, health=False)
    a, b = snapshot(spark, cfg_a), snapshot(spark, cfg_b)
    assert a["minority_reports_detected_log"], "the data must produce reports"
    assert a["minority_event_log"], "the data must produce events"
    assert a["ui_notifications_log"], "the data must produce alerts"
    for name in STAGE_TABLES:
        diff = next(((x, y) for x, y in zip(a[name], b[name], strict=False) if x != y), None)
        assert a[name] == b[name], f"{name} differs between one range and the split with a retried backfill: {diff}"
    # One email per alert: the retried ticks sent none again.
    assert len(smtp_server.messages()) - mail == len(b["ui_notifications_log"])
    # Hydrated incrementally (range, tick, retried range) = a full rebuild from the logs, row for row ...
    assert_hydrated_equals_rebuild(spark, cfg_b, end)
    # ... and --as-of rebuilds the state as it stood after the first run.
    as_of = cut - TICK
    hydrate_minority_reports.run_as_of(spark, cfg_b, as_of, "demo-001")
    assert_hydrated_equals_rebuild(spark, cfg_b, end, built=then, as_of=as_of)


def test_detection_finds_the_injected_anomalies(spark, whole_run):
    cfg, _ = whole_run
    r = evaluate_detection.run(spark, cfg)
    assert r["injected_anomalies"] == 6
    assert round(r["anomaly_recall"] * r["injected_anomalies"]) >= 5  # 5 of the 6 at least
    assert r["false_reports_per_100_series_days"] <= 2.0
    assert r["median_delay_ticks"] is not None


def test_every_log_carries_governance_fields_and_valid_scores(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    for name in (
        "baseline_sales_model_prediction_log",
        "anomaly_classifier_model_prediction_log",
        "minority_reports_detected_log",
        "minority_reports_clustered_log",
        "minority_reports_proposed_attribution_log",
    ):
        df = lake.read(name)
        assert {"run_id", "written_at", "report_status", "is_degraded", "report_id"} <= set(df.columns)
    mrdl = lake.read("minority_reports_detected_log")
    assert mrdl.where(~F.col("severity").between(0, 1)).count() == 0
    assert mrdl.where("report_status = 'active' AND window_end IS NOT NULL").count() == 0
    assert mrdl.where("report_status = 'ended' AND window_end IS NULL").count() == 0
    # window_start is the onset: at or before the opening tick, at most the longest window before it.
    longest = f"INTERVAL {(max(cfg.detection.windows) - 1) * cfg.tick_seconds} SECONDS"
    early = f"window_start < first_detected_from - {longest}"
    assert mrdl.where(f"window_start > first_detected_from OR {early}").count() == 0
    assert mrdl.where("window_start < first_detected_from").count() > 0  # some onsets came before the detection
    scores = lake.read("anomaly_classifier_model_prediction_log").where(F.col("anomaly_score").isNotNull())
    assert scores.where(~F.col("anomaly_score").between(0, 1)).count() == 0


def test_missing_input_hour_yields_degraded_rows(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    hole = lake.read("anomaly_classifier_model_prediction_log").where(
        (F.col("ts") >= F.lit(datetime(2025, 8, 13, 3, tzinfo=UTC)))
        & (F.col("ts") < F.lit(datetime(2025, 8, 13, 4, tzinfo=UTC)))
    )
    assert hole.count() == 12 * 4
    assert hole.where("is_degraded AND actual_units IS NULL").count() == 12 * 4
    audit = lake.read("ingest_audit_log").where(F.col("date") == F.lit("2025-08-13").cast("date"))
    assert audit.where("is_degraded").count() == 4


def test_tables_are_registered_in_the_mrs_schema(spark, whole_run):
    cfg, _ = whole_run
    for stmt in filter(None, (s.strip() for s in catalog_ddl(cfg).split(";"))):
        spark.sql(stmt)
    n = spark.sql("SELECT count(*) FROM mrs.minority_reports_detected_log").first()[0]
    assert n == Lakehouse(spark, cfg).read("minority_reports_detected_log").count() > 0
    assert {t.name for t in spark.catalog.listTables("mrs")} == set(TABLES) | set(views(cfg))
    active = spark.sql("SELECT count(*) FROM mrs.active_minority_reports").first()[0]
    assert active == Lakehouse(spark, cfg).read("minority_reports", "demo-001").count() > 0
    # The analyst queries in docs/ all answer on this data (the first needs a state rebuilt as of a tick
    # inside an event that spans stores).
    spanning = Lakehouse(spark, cfg).read("minority_reports_cohorted_log")
    spanning = spanning.where("event_status = 'active' AND cohort_store_count > 1")
    as_of = spanning.agg(F.min("written_at")).first()[0].replace(tzinfo=UTC)
    hydrate_minority_reports.run_as_of(spark, cfg, as_of, "demo-001")
    for doc, query in register_catalog.queries(Path(__file__).parents[1] / "docs" / "analyst_queries.sql"):
        assert spark.sql(query).count() > 0, doc


def test_every_report_snapshot_is_clustered_and_attributed(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    keys = ["report_id", "written_at"]
    mrdl = lake.read("minority_reports_detected_log").select(*keys)
    mrcl = lake.read("minority_reports_clustered_log")
    mrpal = lake.read("minority_reports_proposed_attribution_log")
    n = mrdl.count()
    assert n > 0 and mrcl.count() == n and mrpal.count() == n
    assert mrdl.join(mrcl, keys, "left_anti").count() == 0
    assert mrcl.join(mrpal, keys, "left_anti").count() == 0
    # A vector and a cluster for every snapshot with data; scores in [0, 1]; the _2/_3 causes differ.
    assert mrcl.where("feature_vector IS NULL OR cluster_name IS NULL").where("NOT is_degraded").count() == 0
    assert mrcl.where("size(feature_vector) != 20").count() == 0
    for c in ("similarity_score", "cluster_match_confidence"):
        assert mrcl.where(F.col(c).isNotNull() & ~F.col(c).between(0, 1)).count() == 0
    for c in ("confidence_score", "confidence_score_2", "confidence_score_3"):
        assert mrpal.where(F.col(c).isNull() | ~F.col(c).between(0, 1)).count() == 0
    assert mrpal.where("confidence_score < confidence_score_2 OR confidence_score_2 < confidence_score_3").count() == 0
    ranked = F.array("proposed_cause_category", "proposed_cause_category_2", "proposed_cause_category_3")
    assert mrpal.where(F.size(F.array_distinct(ranked)) == 3).count() == n
    assert mrpal.where("proposed_cause IS NULL OR impact_vector IS NULL OR confidence_tier IS NULL").count() == 0
    assert mrpal.where("size(supporting_evidence) = 0 AND confidence_tier != 'Low'").count() == 0


def test_attribution_and_clustering_name_the_injected_causes(spark, whole_run):
    cfg, _ = whole_run
    r = evaluate_attribution.run_evaluation(spark, cfg, "demo-001")
    assert r["anomalies_found"] >= 5
    assert r["top1"] >= 0.8, r
    assert r["top3"] >= 0.95, r
    assert r["cluster_purity"] >= 0.6, r


def test_tsne_map_covers_every_report_and_the_library_and_reruns_add_nothing(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    first = embed_reports.run(spark, cfg, "demo-001")
    reports = lake.read("minority_reports_clustered_log").select("report_id").distinct().count()
    library = cluster_minority_report.load_library(lake, cfg)
    assert first["minority_report_embedding"] == len(library.names) + reports
    assert embed_reports.run(spark, cfg, "demo-001")["minority_report_embedding"] == 0
    assert Path(first["png"]).stat().st_size > 10_000
    emb = lake.read("minority_report_embedding")
    assert emb.where("point_type = 'report' AND cluster_name IS NULL").count() == 0
    assert emb.select("embedding_id").distinct().count() == 1


def test_reports_become_events_with_a_registry_and_hydrated_rows(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    reports = lake.read("minority_reports")
    mrdl_ids = lake.read("minority_reports_detected_log").select("report_id").distinct()
    assert reports.count() == mrdl_ids.count() and reports.join(mrdl_ids, "report_id", "left_anti").count() == 0
    assert reports.where("report_group_id IS NULL OR cluster_name IS NULL OR proposed_cause IS NULL").count() == 0
    events = lake.read("minority_events_log")
    live = events.where("event_status != 'merged'")
    # Every report's event is in the registry and in the roll-up, which lists exactly its reports.
    registered = live.withColumnRenamed("event_id", "report_group_id")
    assert reports.join(registered, "report_group_id", "left_anti").count() == 0
    members = reports.groupBy("report_group_id").agg(F.sort_array(F.collect_list("report_id")).alias("ids"))
    rolled = live.select(F.col("event_id").alias("report_group_id"), F.col("report_ids").alias("ids"))
    assert members.exceptAll(rolled).count() == 0 and rolled.exceptAll(members).count() == 0
    assert live.where("store_count < 1 OR store_id_1 IS NULL OR retailer_1 IS NULL").count() == 0
    assert live.where("event_status = 'ended' AND (window_end IS NULL OR finalized_at IS NULL)").count() == 0
    assert lake.read("minority_event_log").join(events, "event_id", "left_anti").count() == 0
    # The small data set's anomalies spanning stores each become one event.
    r = evaluate_cohorts.run_evaluation(spark, cfg, "demo-001")
    assert r["multi_store_anomalies"] >= 2 and r["event_accuracy"] >= 0.66, r
    # A chart for every event with reports.
    charts = [Path(row.chart_path) for row in live.select("chart_path").collect()]
    assert charts and all(p.is_file() and p.stat().st_size > 10_000 for p in charts)


# Last in this module: it edits the shared run.
def test_analyst_edits_are_refused_or_finalised_hydrated_and_protected_once(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    edit_logs = ("user_edits_log", "user_minority_events_edits_log", "minority_reports_finalised_log")
    counts = lambda: {n: lake.read(n).count() for n in edit_logs}  # noqa: E731
    before = counts()
    with pytest.raises(EditError, match="unknown report"):
        edit.record(spark, cfg, EditRequest("report", "MR-" + "0" * 64, "alice", (("review_status", "rejected"),)))
    assert counts() == before  # refused: nothing written
    target = (
        lake.read("minority_reports", "demo-001")
        .where("report_status = 'ended' AND review_status = 'proposed'")
        .orderBy(F.desc("severity"), "report_id")
        .first()
    )
    at = lake.next_tick("demo-001")
    reject = EditRequest("report", target.report_id, "alice", (("review_status", "rejected"),), "no", "manual__1")
    fix = EditRequest(
        "report",
        target.report_id,
        "bob",
        (("proposed_cause_category", "Data Error"), ("review_status", "confirmed")),
        "replayed feed",
        "manual__2",
    )
    assert edit.record(spark, cfg, reject)["user_edits_log"] == 1
    refresh_reports.run(spark, cfg)
    row = lake.read("minority_reports").where(F.col("report_id") == target.report_id).first()
    assert (row.review_status, row.field_sources["review_status"], row.edited_by) == ("rejected", "analyst", "alice")
    assert row.proposed_cause_category == target.proposed_cause_category and row.written_at == at.replace(tzinfo=None)
    assert lake.read("protection_feed").where(F.col("report_id") == target.report_id).count() == 0

    assert edit.record(spark, cfg, fix)["user_edits_log"] == 2
    # An event edit in the same refresh: the roll-up shows the analyst's cause and name (checked below).
    name = (("cause_category", "Data Error"), ("cohort_name", "Feed replayed at one store"))
    rename = EditRequest("event", target.report_group_id, "carol", name, None, "manual__3")
    assert edit.record(spark, cfg, rename)["user_minority_events_edits_log"] == 2
    refresh_reports.run(spark, cfg)
    row = lake.read("minority_reports").where(F.col("report_id") == target.report_id).first()
    assert (row.proposed_cause_category, row.impact_vector, row.confidence_score) == (
        "Data Error",
        "baseline drift",
        1.0,
    )
    assert (row.review_status, row.field_sources["proposed_cause_category"]) == ("confirmed", "analyst")
    mrfl = latest(lake.read("minority_reports_finalised_log").where(F.col("report_id") == target.report_id),
                  order=MRFL_ORDER).first()  # fmt: skip
    assert mrfl.rejected_categories == [target.proposed_cause_category] and mrfl.edited_by == "bob"
    # Confirmed: its anomalous sales are now fed to the MMM and the bandit, one row per tick it was active.
    mrdl = lake.read("minority_reports_detected_log").where(F.col("report_id") == target.report_id)
    snapshots = mrdl.where("report_status = 'active'").count()  # the closing snapshot's tick is not anomalous
    protected = lake.read("protection_feed").where(F.col("report_id") == target.report_id)
    assert protected.count() == snapshots
    assert {(r.cause_category, r.review_status) for r in protected.collect()} == {("Data Error", "confirmed")}

    # Repeating the same requests (a DAG run retried or repeated) adds nothing.
    after = counts()
    assert edit.record(spark, cfg, reject)["user_edits_log"] == 0
    assert edit.record(spark, cfg, fix)["user_edits_log"] == 0
    assert edit.record(spark, cfg, rename)["user_minority_events_edits_log"] == 0
    assert counts() == after

    ev = lake.read("minority_events_log").where(F.col("event_id") == target.report_group_id).first()
    assert (ev.cause_category, ev.cohort_name, ev.edited_by) == ("Data Error", "Feed replayed at one store", "carol")
    assert ev.field_sources["cause_category"] == "analyst" and ev.field_sources["review_status"] == "model"
    # Incremental hydration after edits = a full rebuild from the logs.
    assert_hydrated_equals_rebuild(spark, cfg, at + TICK)
