"""End to end through Airflow: `airflow dags test` runs the real spark-submit tasks on small data."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs import evaluate_detection, ingest
from jobs.generate_data import generate
from jobs.lib.config import load_config
from jobs.lib.tables import Lakehouse
from tests.conftest import make_config

REPO = Path(__file__).resolve().parents[1]
START = datetime(2025, 8, 4, tzinfo=UTC)

pytestmark = pytest.mark.e2e


def airflow(env, *args):
    res = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert res.returncode == 0, f"airflow {' '.join(args)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res.stdout + res.stderr


def test_pipeline_dag_turns_sales_into_reports_under_a_new_run_id(spark, tmp_path):
    # Two shuffle partitions, as in the test session: the data is small and each task is a fresh JVM.
    spark_conf = {**load_config().spark.conf, "spark.sql.shuffle.partitions": "2"}
    cfg = make_config(tmp_path, **{"spark.conf": spark_conf})
    generate(cfg, cfg.paths.landing)
    end = START + timedelta(days=cfg.generator.days)
    # An earlier demo's rows, under the default run_id; the DAG run below resets to a new one.
    last_day = end - timedelta(days=1)
    ingest.run(spark, cfg, last_day, end)
    lake = Lakehouse(spark, cfg)
    earlier = lake.read("sales_timeseries_data", "demo-001").count()
    assert earlier == 12 * 96

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_MRS_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "MRS_CONFIG": str(cfg.source),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    airflow(env, "db", "migrate")
    conf = {"start": START.isoformat(), "end": end.isoformat(), "reset_run_id": "demo-002"}
    out = airflow(env, "dags", "test", "mrs_pipeline", end.isoformat(), "--conf", json.dumps(conf))
    assert "render_event_charts" in out

    assert lake.active_run_id() == "demo-002"
    assert [r.run_id for r in lake.read("demo_run_config").orderBy("seq").collect()] == ["demo-002"]
    quality = evaluate_detection.run(spark, cfg)  # reads the active run_id
    assert quality["run_id"] == "demo-002"
    assert quality["injected_anomalies"] == 6
    assert quality["anomaly_recall"] >= 5 / 6, quality
    # The earlier run is untouched and still queryable.
    assert lake.read("sales_timeseries_data", "demo-001").count() == earlier
    assert lake.read("minority_reports_detected_log", "demo-001").count() == 0
    # Every report snapshot was clustered and attributed by the DAG's later tasks.
    snapshots = lake.read("minority_reports_detected_log", "demo-002").count()
    assert lake.read("minority_reports_clustered_log", "demo-002").count() == snapshots
    assert lake.read("minority_reports_proposed_attribution_log", "demo-002").count() == snapshots
    # ... grouped into events, hydrated one row per report and per event, each event charted.
    reports = lake.read("minority_reports", "demo-002")
    mrdl = lake.read("minority_reports_detected_log", "demo-002")
    assert reports.count() == mrdl.select("report_id").distinct().count()
    assert reports.where("report_group_id IS NULL").count() == 0
    events = lake.read("minority_events_log", "demo-002").where("event_status != 'merged'").collect()
    assert events and all(Path(e.chart_path).is_file() for e in events)
