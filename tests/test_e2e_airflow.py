"""End to end through Airflow: `airflow dags test` runs the real tasks on small data, through the whole loop: the
pipeline (with a demo reset) and the rereview, as Spark Connect clients of the test session forked from its job
runner, and an analyst's edit, its jobs Connect clients started as new processes (no job runner); and the DFU
clustering DAG, its Spark tasks forked from the job runner too, then its update task as a dry run through
spark-submit, the other way the same operator runs a job."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs.lib.config import load_config
from jobs.lib.names import WRITER_POOL
from jobs.lib.tables import MRFL_ORDER, Lakehouse, latest
from jobs.quality import evaluate_detection
from jobs.quality.generate_data import generate
from jobs.runtime.spark_server import airflow_connection
from jobs.stages import ingest
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


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory) -> Path:
    """An Airflow metadata DB migrated once, with the writer pool: each test starts from a copy (``airflow db
    migrate`` and ``pools set`` are two CLI starts, ~20 s, per test otherwise)."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", WRITER_POOL, "1", "one lakehouse writer at a time")
    return home / "airflow.db"


def airflow_env(tmp_path: Path, airflow_db: Path, cfg, connect_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment `airflow dags test` runs in: its own home (a copy of the migrated DB), the repo's DAGs,
    the test config, and Spark: the Connect server at ``connect_url``, or spark-submit to local Spark."""
    local = json.dumps({"conn_type": "spark", "host": "local[2]"})
    spark_conn = airflow_connection(connect_url) if connect_url else local
    (tmp_path / "airflow").mkdir()
    shutil.copy(airflow_db, tmp_path / "airflow" / "airflow.db")
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_MRS_SPARK": spark_conn,
        "MRS_CONFIG": str(cfg.source),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        # Every task is a short-lived JVM on small data: the quick JIT and a simple GC start it ~4 s sooner.
        "JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        **extra,
    }


def test_the_loop_through_airflow_pipeline_reset_edit_and_rereview(
    spark, connect_url, airflow_db, tmp_path, smtp_server
):
    # Two shuffle partitions, as in the test session: the data is small.
    spark_conf = {**load_config().spark.conf, "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
    # Proposed reports are protected too here, so the feed has rows before anyone reviews.
    statuses = ["proposed", "confirmed", "auto_confirmed"]
    cfg = make_config(tmp_path, **{"spark.conf": spark_conf, "protection.include_statuses": statuses})
    generate(cfg, cfg.paths.landing)
    end = START + timedelta(days=cfg.generator.days)
    # An earlier demo's rows, under the default run_id; the DAG run below resets to a new one.
    last_day = end - timedelta(days=1)
    ingest.run(spark, cfg, last_day, end)
    lake = Lakehouse(spark, cfg)
    earlier = lake.read("sales_timeseries_data", "demo-001").count()
    assert earlier == 12 * 96

    smtp = {"conn_type": "smtp", "host": smtp_server.host, "port": smtp_server.port, "extra": {"disable_tls": True}}
    env = airflow_env(tmp_path, airflow_db, cfg, connect_url, AIRFLOW_CONN_SMTP_DEFAULT=json.dumps(smtp))
    smtp_server.clear()
    conf = {"start": START.isoformat(), "end": end.isoformat(), "reset_run_id": "demo-002"}
    out = airflow(env, "dags", "test", "mrs_pipeline", end.isoformat(), "--conf", json.dumps(conf))
    assert "render_event_charts" in out
    # Every task's job (the reset and the 11 stages) was forked from the session's job runner.
    assert len(set(re.findall(r"Running (jobs\.[\w.]+) .*?through the job runner at", out))) == 12, out[-4000:]
    assert "no job runner at" not in out

    assert lake.active_run_id() == "demo-002"
    assert [r.run_id for r in lake.read("demo_run_config").orderBy("seq").collect()] == ["demo-002"]
    quality = evaluate_detection.run(spark, cfg)  # reads the active run_id
    assert quality["run_id"] == "demo-002"
    assert quality["injected_anomalies"] == 6
    assert round(quality["anomaly_recall"] * quality["injected_anomalies"]) >= 5, quality  # 5 of the 6 at least
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

    # Finalised, protected (nothing confirmed yet), checked and alerted, through the Airflow SMTP connection.
    run = "demo-002"
    assert lake.read("minority_reports_finalised_log", run).count() == snapshots
    assert reports.where("review_status != 'proposed'").count() == 0  # no weekend in the small data's anomalies
    health = lake.read("pipeline_health_log", run).collect()
    assert [(h.interval_start, h.interval_end) for h in health] == [
        (START.replace(tzinfo=None), end.replace(tzinfo=None))
    ]
    alerts = lake.read("ui_notifications_log", run).collect()
    mail = smtp_server.messages()
    assert alerts and len(mail) == len(alerts)
    assert sorted(r for rcpts, _ in mail for r in rcpts) == sorted(a.delivered_to for a in alerts)
    # The protection feed: a row per report and tick it was active, anomalous = actual - baseline.
    feed = lake.read("protection_feed", run)
    active_ticks = mrdl.where("report_status = 'active'")
    assert feed.count() == active_ticks.count() > 0
    assert feed.where("abs(anomalous_units - (actual_units - baseline_units)) > 1e-9").count() == 0
    assert (
        feed.join(
            active_ticks.select("report_id", F.col("written_at").alias("ts")), ["report_id", "ts"], "left_anti"
        ).count()
        == 0
    )

    # An analyst rejects the top report of the review queue, from the edit DAG's form. (A repeated run carries the
    # same request id, the Airflow run id; test_pipeline.py shows a repeated request adds nothing.)
    target = (
        lake.read("minority_reports", run)
        .where("report_status = 'ended' AND review_status = 'proposed'")
        .orderBy(F.desc("severity"), "report_id")
        .first()
    )
    # Its two jobs start as new processes (a connection without the job runner, as on a remote Connect server).
    form = {"kind": "report", "target_id": target.report_id, "author": "alice", "decision": "reject", "reason": "no"}
    no_runner = {**env, "AIRFLOW_CONN_MRS_SPARK": airflow_connection(connect_url, job_runner=False)}
    at = (end + timedelta(hours=1)).isoformat()
    out = airflow(no_runner, "dags", "test", "mrs_analyst_edit", at, "--conf", json.dumps(form))
    assert "through the job runner" not in out and "refresh_reports" in out
    edits = lake.read("user_edits_log", run).where(F.col("author") == "alice").collect()
    assert [(e.report_id, e.field, e.value) for e in edits] == [(target.report_id, "review_status", "rejected")]
    assert edits[0].request_id.startswith("manual__")
    row = lake.read("minority_reports", run).where(F.col("report_id") == target.report_id).first()
    assert (row.review_status, row.field_sources["review_status"], row.edited_by) == ("rejected", "analyst", "alice")
    assert lake.read("protection_feed", run).where(F.col("report_id") == target.report_id).count() == 0

    # The rereview DAG re-proposes it without the rejected cause, and the report is open for review again.
    airflow(env, "dags", "test", "mrs_rereview", (end + timedelta(hours=2)).isoformat(), "--conf", "{}")
    work = lake.read("rereview_worklist_log", run).where(F.col("report_id") == target.report_id).collect()
    assert len(work) == 1 and "analyst_rejected" in work[0].reasons
    assert work[0].rejected_categories == [target.proposed_cause_category]
    again = lake.read("rereview_proposed_attribution_log", run).where(F.col("report_id") == target.report_id).first()
    ranked = {again.proposed_cause_category, again.proposed_cause_category_2, again.proposed_cause_category_3}
    assert target.proposed_cause_category not in ranked
    row = lake.read("minority_reports", run).where(F.col("report_id") == target.report_id).first()
    assert (row.model_source, row.review_status) == ("rereview", "proposed")
    assert row.proposed_cause_category == again.proposed_cause_category
    final = latest(lake.read("minority_reports_finalised_log", run).where(F.col("report_id") == target.report_id),
                   order=MRFL_ORDER).first()  # fmt: skip
    assert final.model_source == "rereview" and final.rejected_categories == [target.proposed_cause_category]
    # Nothing above sent a second email.
    assert len(smtp_server.messages()) == len(alerts)


def test_dfu_clustering_through_airflow(spark, connect_url, airflow_db, tmp_path):
    """The monthly DFU DAG on generated DFUs: features, train, label and a real MERGE, its Spark tasks Connect
    clients of the test session; then its update task alone as a dry run by spark-submit (the way a cluster runs
    a job: its own driver JVM)."""
    from jobs.dfu import generate as dfu_generate
    from jobs.dfu.evaluate import read_labelled, score
    from tests.conftest import make_clustering_config

    spark_conf = {**load_config().spark.conf, "spark.sql.shuffle.partitions": "2", "spark.ui.enabled": "false"}
    cfg = make_config(tmp_path / "mrs", **{"spark.conf": spark_conf})
    ccfg = make_clustering_config(tmp_path / "dfu")
    frames = dfu_generate.generate(ccfg.generator, ccfg.clustering.min_months_history)
    dfu_generate.write(spark, cfg, frames)
    dfu = {"DFU_CLUSTERING_CONFIG": str(ccfg.source), "DFU_OUTPUT_DIR": str(ccfg.output_dir)}
    env = airflow_env(tmp_path, airflow_db, cfg, connect_url, **dfu)
    # The run due at 1 January 2026: its data interval is December, the month it clusters.
    logical = "2026-01-01T00:00:00+00:00"
    out = airflow(env, "dags", "test", "dfu_clustering", logical, "--conf", json.dumps({"as_of": "2025-12"}))
    assert len(re.findall(r"Running jobs\.dfu\.\w+ .*?through the job runner at", out)) == 2, out[-4000:]
    run_dir = ccfg.output_dir / "2025-12"
    for name in ("clustering_features.csv", "cluster_assignments.csv", "cluster_labels.csv", "cluster_profiles.json"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == [
        "clusters_2d.png",
        "elbow.png",
        "gap.png",
        "silhouette.png",
    ]
    lake = Lakehouse(spark, cfg)
    dim = lake.read("dim_dfu").toPandas()
    featured = lake.read("dfu_clustering_features").where("as_of_month = DATE'2025-12-01'").count()
    excluded = lake.read("dfu_clustering_exclusions").where("as_of_month = DATE'2025-12-01'").count()
    assert featured + excluded == len(dim)
    assert dim.cluster_assignment.notna().sum() == featured
    # dim_dfu holds the label of each DFU's cluster, and the labels name the generated patterns.
    labelled = read_labelled(run_dir)
    written = dict(zip(dim.dfu_id, dim.cluster_assignment, strict=True))
    assert all(written[d] == label for d, label in zip(labelled.dfu_id, labelled.label, strict=True))
    figures = score(labelled, frames["dfu_pattern_truth"])
    assert figures["ari_pattern"] >= 0.7, figures
    # The training is an MLflow run (reused by a repeat with the same input: test_dfu_train_label.py).
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ccfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name("dfu_clustering")
    assert len(client.search_runs([exp.experiment_id])) == 1

    # The update task again, as a dry run (the form's `dry_run`), by spark-submit. The labels are cleared first, so
    # that an update that ignored the flag would have rows to write (with nothing to change, a real update commits
    # nothing either).
    dim = lake.table_sql("dim_dfu")
    spark.sql(f"UPDATE {dim} SET cluster_assignment = NULL")
    version = lambda: spark.sql(f"DESCRIBE HISTORY {dim} LIMIT 1").first()["version"]  # noqa: E731
    before = version()
    submit = {**env, "AIRFLOW_CONN_MRS_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"})}
    dry = json.dumps({"dry_run": True, "as_of": "2025-12"})
    out = airflow(submit, "tasks", "test", "dfu_clustering", "cluster_update", logical, "-t", dry)
    assert "--dry-run=true" in out and "dry run, nothing written" in out, out[-4000:]
    assert re.search(rf"to_update\s+{featured}\b", out), out[-4000:]
    assert version() == before
    assert lake.read("dim_dfu").where("cluster_assignment IS NOT NULL").count() == 0
