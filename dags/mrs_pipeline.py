"""
# mrs_pipeline

Turns raw sales into **minority reports**: one Spark job per stage, each appending to Delta tables.

Tasks, each a `spark-submit` of one job, and the tables each writes:

- `reset_requested`: a branch; goes through `reset_run_id` only when the `reset_run_id` param is set
- `reset_run_id` (`jobs/stages/run_config.py`): `demo_run_config`
- `ingest` (`jobs/stages/ingest.py`): `unified_sales_data`, `ingest_quarantine`, `sales_timeseries_data`,
  `ingest_audit_log`, `contextual_data`, `all_campaign_data`
- `detect_anomalies` (`jobs/stages/detect_anomalies.py`): `baseline_sales_model_prediction_log`,
  `anomaly_classifier_model_prediction_log`, `minority_reports_detected_log`
- `cluster_minority_report` (`jobs/stages/cluster_minority_report.py`): `minority_reports_clustered_log` (feature
  vector and nearest named cluster of the library version in `clustering.library_version`) and
  `minority_report_reference_price` (each new report's usual price)
- `propose_cause_for_minority` (`jobs/stages/propose_cause_for_minority.py`):
  `minority_reports_proposed_attribution_log` (ranked causes with confidence and the evidence behind them)
- `build_minority_report_cohorts` (`jobs/stages/build_minority_report_cohorts.py`): `minority_reports_cohorted_log`,
  `minority_event_log`, `minority_event_ended_log` (reports grouped into Minority Events)
- `build_minority_reports_finalised_log_from_edits`: `user_edits_log` (automation rules' decisions, e.g. weekend
  mode) and `minority_reports_finalised_log` (MRFL: the model's proposal merged with edits); updates the asset
  that starts `mrs_rereview`
- `hydrate_minority_reports` (`jobs/stages/hydrate_minority_reports.py`): `minority_reports`, `minority_events_log`
  (one wide row per report and per event, finalised values preferred, rewritten for the keys the interval touched)
- `render_event_charts` (`jobs/stages/render_event_charts.py`): a PNG per event touched, linked from
  `minority_events_log`
- `build_protection_feed`: `protection_feed` (anomalous units and revenue the MMM and the bandit must not credit)
- `check_pipeline_health`: `pipeline_health_log` (freshness, coverage, error rate, rows written per stage)
- `send_alerts`: `ui_notifications_log`, and an email per row through the Airflow SMTP connection
  (`MRS_SMTP_CONN_ID`, default `smtp_default`)

**Scheduled runs** process their data interval (one tick). **Backfills**: trigger with `start` and `end` to cover
a whole range in one run; it writes the same rows as the tick-by-tick runs. Re-running any run adds no rows.
**Demo reset**: trigger with `reset_run_id` set to a new id; later reads use it, earlier runs stay queryable.

Each table has one writer task per DAG, `max_active_runs=1` keeps two runs from writing at once, and every
writer task runs in the one-slot pool `mrs_lakehouse_writers`, shared with `mrs_analyst_edit` and `mrs_rereview`,
so no two tasks of any DAG write the lakehouse at the same time. The pipeline never waits for those DAGs' runs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, DeltaDataIntervalTimetable, Param, dag, task

from jobs.lib.names import FINALISED_ASSET, WRITER_POOL
from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
TICK = timedelta(minutes=int(os.environ.get("MRS_TICK_MINUTES", "15")))
START_DATE = datetime.fromisoformat(os.environ.get("MRS_START_DATE", "2025-08-04T00:00:00+00:00")).astimezone(UTC)
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")
SMTP_CONN = os.environ.get("MRS_SMTP_CONN_ID", "smtp_default")

# A manual run may name its own range; otherwise the run's data interval is the range.
START = "{{ params.start or (data_interval_start | ts) }}"
END = "{{ params.end or (data_interval_end | ts) }}"
ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?$"


def _stage(task_id: str, job: str, **kwargs) -> SparkJobOperator:
    return SparkJobOperator(
        task_id=task_id,
        application=str(REPO / "jobs" / "stages" / job),
        application_args=["--config", CONFIG, "--start", START, "--end", END],
        conn_id=SPARK_CONN,
        name=f"mrs-{task_id}",
        pool=WRITER_POOL,
        **kwargs,
    )


def _smtp_env(conn_id: str) -> dict[str, str]:
    """The Airflow SMTP connection, rendered at run time into the alerting job's environment (as the SMTP
    provider reads it: extra ``disable_tls`` turns STARTTLS off)."""
    c = f"{{% set c = conn.get('{conn_id}') %}}"
    return {
        "MRS_SMTP_HOST": c + "{{ c.host if c else '' }}",
        "MRS_SMTP_PORT": c + "{{ c.port if c and c.port else 25 }}",
        "MRS_SMTP_USER": c + "{{ c.login if c and c.login else '' }}",
        "MRS_SMTP_PASSWORD": c + "{{ c.password if c and c.password else '' }}",
        "MRS_SMTP_STARTTLS": c + "{{ 'false' if not c or c.extra_dejson.get('disable_tls') else 'true' }}",
    }


@dag(
    dag_id="mrs_pipeline",
    # A run's data interval is its tick (a bare timedelta would give Airflow 3's zero-length trigger interval).
    schedule=DeltaDataIntervalTimetable(TICK),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    # The pipeline goes first when it and an edit or rereview wait for the writer pool.
    default_args={"owner": "mrs", "retries": 2, "retry_delay": timedelta(minutes=1), "priority_weight": 10},
    params={
        "start": Param(None, type=["null", "string"], pattern=ISO, description="Range start (UTC, ISO-8601)."),
        "end": Param(None, type=["null", "string"], pattern=ISO, description="Range end, exclusive."),
        "reset_run_id": Param(
            "",
            type="string",
            pattern=r"^[A-Za-z0-9_.-]{0,64}$",
            description="Demo reset: a new run_id to make active before this run (empty: keep the current one).",
        ),
    },
    tags=["mrs", "minority-reports", "spark"],
    doc_md=__doc__,
)
def mrs_pipeline():
    @task.branch
    def reset_requested(params: dict | None = None) -> str:
        return "reset_run_id" if params and params.get("reset_run_id") else "ingest"

    reset = SparkJobOperator(
        task_id="reset_run_id",
        application=str(REPO / "jobs" / "stages" / "run_config.py"),
        application_args=["--config", CONFIG, "--run-id", "{{ params.reset_run_id }}", "--written-at", START],
        conn_id=SPARK_CONN,
        name="mrs-reset_run_id",
        pool=WRITER_POOL,
    )
    ingest = _stage("ingest", "ingest.py", trigger_rule="none_failed_min_one_success")
    # Detection carries open reports from the previous tick's MRDL rows: ticks must run in order.
    detect = _stage("detect_anomalies", "detect_anomalies.py", depends_on_past=True)
    cluster = _stage("cluster_minority_report", "cluster_minority_report.py")
    attribute = _stage("propose_cause_for_minority", "propose_cause_for_minority.py")
    cohorts = _stage("build_minority_report_cohorts", "build_minority_report_cohorts.py")
    finalise = _stage(
        "build_minority_reports_finalised_log_from_edits",
        "build_minority_reports_finalised_log_from_edits.py",
        outlets=[Asset(FINALISED_ASSET)],
    )
    hydrate = _stage("hydrate_minority_reports", "hydrate_minority_reports.py")
    charts = _stage("render_event_charts", "render_event_charts.py")
    protect = _stage("build_protection_feed", "build_protection_feed.py")
    health = _stage("check_pipeline_health", "check_pipeline_health.py")
    alerts = _stage("send_alerts", "send_alerts.py", env_vars=_smtp_env(SMTP_CONN))

    reset_requested() >> [reset, ingest]
    reset >> ingest >> detect >> cluster >> attribute >> cohorts >> finalise >> hydrate >> charts
    charts >> protect >> health >> alerts


mrs_pipeline()
