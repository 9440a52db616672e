"""The stages together on small generated data: replay, rerun, quality, catalog."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs import detect_anomalies, evaluate_detection, ingest
from jobs.generate_data import generate
from jobs.lib.tables import TABLES, Lakehouse, catalog_ddl
from tests.conftest import make_config

START = datetime(2025, 8, 4, tzinfo=UTC)
TICK = timedelta(minutes=15)
STAGE_TABLES = [n for n in TABLES if n != "demo_run_config"]


def run_range(spark, cfg, start, end):
    ingest.run(spark, cfg, start, end, run_id="demo-001")
    detect_anomalies.run(spark, cfg, start, end, run_id="demo-001")


@pytest.fixture(scope="session")
def whole_run(spark, small_cfg):
    """The small data set, generated and run through ingest and detection as one range."""
    generate(small_cfg, small_cfg.paths.landing)
    end = START + timedelta(days=small_cfg.generator.days)
    run_range(spark, small_cfg, START, end)
    return small_cfg, end


def snapshot(spark, cfg) -> dict[str, list]:
    lake = Lakehouse(spark, cfg)
    return {n: sorted(map(tuple, lake.read(n).collect()), key=repr) for n in STAGE_TABLES}


def test_one_range_equals_a_split_with_tick_by_tick_runs(spark, whole_run, tmp_path):
    cfg_a, end = whole_run
    truth = pd.read_csv(cfg_a.paths.landing / "ground_truth" / "ground_truth.csv", parse_dates=["start"])
    # Cut the range inside an anomaly so that open reports must be carried from run to run.
    cut = truth.start.min().to_pydatetime() + 2 * TICK
    cfg_b = make_config(tmp_path, **{"paths.landing": str(cfg_a.paths.landing)})
    run_range(spark, cfg_b, START, cut)
    for k in range(4):
        run_range(spark, cfg_b, cut + k * TICK, cut + (k + 1) * TICK)
    run_range(spark, cfg_b, cut + 4 * TICK, end)
    a, b = snapshot(spark, cfg_a), snapshot(spark, cfg_b)
    assert a["minority_reports_detected_log"], "the data must produce reports"
    for name in STAGE_TABLES:
        assert a[name] == b[name], f"{name} differs between one range and tick-by-tick runs"


def test_rerunning_and_backfilling_again_add_no_rows(spark, whole_run):
    cfg, end = whole_run
    before = {n: Lakehouse(spark, cfg).read(n).count() for n in STAGE_TABLES}
    day = START + timedelta(days=9)
    run_range(spark, cfg, day, day + timedelta(hours=6))  # a retried scheduled stretch
    run_range(spark, cfg, START, end)  # the whole backfill again
    after = {n: Lakehouse(spark, cfg).read(n).count() for n in STAGE_TABLES}
    assert after == before


def test_detection_finds_the_injected_anomalies(spark, whole_run):
    cfg, _ = whole_run
    r = evaluate_detection.run(spark, cfg)
    assert r["injected_anomalies"] == 6
    assert r["anomaly_recall"] >= 5 / 6
    assert r["false_reports_per_100_series_days"] <= 2.0
    assert r["median_delay_ticks"] is not None


def test_every_log_carries_governance_fields_and_valid_scores(spark, whole_run):
    cfg, _ = whole_run
    lake = Lakehouse(spark, cfg)
    for name in (
        "baseline_sales_model_prediction_log",
        "anomaly_classifier_model_prediction_log",
        "minority_reports_detected_log",
    ):
        df = lake.read(name)
        assert {"run_id", "written_at", "report_status", "is_degraded", "report_id"} <= set(df.columns)
    mrdl = lake.read("minority_reports_detected_log")
    assert mrdl.where(~F.col("severity").between(0, 1)).count() == 0
    assert mrdl.where("report_status = 'active' AND window_end IS NOT NULL").count() == 0
    assert mrdl.where("report_status = 'ended' AND window_end IS NULL").count() == 0
    assert mrdl.where("window_start != first_detected_from").count() == 0
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
    assert {t.name for t in spark.catalog.listTables("mrs")} == set(TABLES)
