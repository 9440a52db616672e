"""
# mrs_rereview

Reprocesses **historical** Minority Reports with the current models, downstream of the pipeline only: it never
triggers detection, and the pipeline never waits for it. Started by the asset the pipeline's finalisation task
updates (`minority_reports_finalised_log`), or by hand with a date range (`from`, `to`: report window starts).

- `build_rereview_worklist` (`jobs/review/build_rereview_worklist.py`): `rereview_worklist_log`. Ended reports whose
  finalised row has low confidence, an analyst's rejection, or was scored by an older cluster library or
  attribution model; each at most once per model versions and rejection set.
- `rereview_cluster_reports` (`jobs/review/rereview_cluster_reports.py`): `rereview_clustered_log` (the current
  library).
- `rereview_propose_cause` (`jobs/review/rereview_propose_cause.py`): `rereview_proposed_attribution_log` (causes
  analysts rejected are not proposed again).
- `refresh_reports` (`jobs/review/refresh_reports.py`): finalises (MRFL) and re-hydrates the reports it re-proposed.

Repeating a run adds nothing. Every task runs in the one-slot pool `mrs_lakehouse_writers` with the pipeline's
writers, so the rereview never writes a table at the same time as the pipeline.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, Param, dag

from jobs.lib.names import FINALISED_ASSET, WRITER_POOL
from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")
ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:?\d{2})?$"


def _job(task_id: str, *args: str) -> SparkJobOperator:
    return SparkJobOperator(
        task_id=task_id,
        application=str(REPO / "jobs" / "review" / f"{task_id}.py"),
        application_args=["--config", CONFIG, *args],
        conn_id=SPARK_CONN,
        name=f"mrs-{task_id}",
        pool=WRITER_POOL,
    )


@dag(
    dag_id="mrs_rereview",
    schedule=[Asset(FINALISED_ASSET)],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mrs", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "from": Param(None, type=["null", "string"], pattern=ISO, description="Reports starting at or after (UTC)."),
        "to": Param(None, type=["null", "string"], pattern=ISO, description="... and before this (UTC)."),
    },
    tags=["mrs", "minority-reports", "rereview"],
    doc_md=__doc__,
)
def mrs_rereview():
    worklist = _job(
        "build_rereview_worklist",
        "--from={{ params['from'] or '' }}",
        "--to={{ params['to'] or '' }}",
    )
    worklist >> _job("rereview_cluster_reports") >> _job("rereview_propose_cause") >> _job("refresh_reports")


mrs_rereview()
