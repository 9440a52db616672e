"""
# mrs_analyst_edit

An analyst's edit to a **Minority Report** or a **Minority Event**, from a form: trigger the DAG and fill it in.

- `record_edit` (`jobs/review/edit.py`): validates the edit and appends it to `user_edits_log` (reports) or
  `user_minority_events_edits_log` (events), with the author, the reason and this run's id. An unknown report or
  event, a field that cannot be edited, a cause outside the taxonomy or a missing author fails the task with a
  message naming the problem, and nothing is written.
- `refresh_reports` (`jobs/review/refresh_reports.py`): finalises what the edit touched
  (`minority_reports_finalised_log`, where the edit's fields win over the model's), re-hydrates
  `minority_reports` / `minority_events_log` and refreshes `protection_feed`.

Report edits: correct the cause (`cause`, optional `narrative`), confirm or reject it (`decision`), add `evidence`
or a `comment`. Event edits: `cause`, `cohort_name`, `decision`, `evidence`, `comment`.

Repeating a run adds nothing: the run id is the edit's idempotency key. Both tasks run in the one-slot pool
`mrs_lakehouse_writers` with the pipeline's writers, so an edit never writes at the same time as a pipeline task.
The same edit from a shell: `python -m jobs.review.edit report MR-... --author alice --cause "Competitor Stockout"`.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, dag

from jobs.lib.names import DETECTION_TYPES, WRITER_POOL
from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")
TEXT = {"type": ["null", "string"], "maxLength": 2000}


@dag(
    dag_id="mrs_analyst_edit",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mrs", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "kind": Param("report", enum=["report", "event"], description="Edit a report (MR-...) or an event (ME-...)."),
        "target_id": Param(
            "", type="string", pattern=r"^(MR|ME)-[0-9a-f]{64}$", description="The report_id or event_id."
        ),
        "author": Param("", type="string", minLength=1, maxLength=200, description="Who makes the edit."),
        "reason": Param(None, **TEXT, description="Why: kept with the edit."),
        "cause": Param(None, type=["null", "string"], enum=[None, *DETECTION_TYPES], description="Corrected cause."),
        "narrative": Param(None, **TEXT, description="Report: the cause in words."),
        "cohort_name": Param(None, **TEXT, description="Event: a new name."),
        "decision": Param(None, type=["null", "string"], enum=[None, "confirm", "reject"], description="Review."),
        "evidence": Param(None, **TEXT, description="A piece of evidence to add."),
        "comment": Param(None, **TEXT, description="A comment."),
    },
    tags=["mrs", "minority-reports", "analyst"],
    doc_md=__doc__,
)
def mrs_analyst_edit():
    record = SparkJobOperator(
        task_id="record_edit",
        application=str(REPO / "jobs" / "review" / "edit.py"),
        application_args=[
            "{{ params.kind }}",
            "{{ params.target_id }}",
            "--config",
            CONFIG,
            "--author={{ params.author }}",
            "--reason={{ params.reason or '' }}",
            "--cause={{ params.cause or '' }}",
            "--narrative={{ params.narrative or '' }}",
            "--name={{ params.cohort_name or '' }}",
            "--decision={{ params.decision or '' }}",
            "--evidence={{ params.evidence or '' }}",
            "--comment={{ params.comment or '' }}",
            "--request-id={{ run_id }}",
            "--no-refresh",
        ],
        conn_id=SPARK_CONN,
        name="mrs-record_edit",
        pool=WRITER_POOL,
    )
    refresh = SparkJobOperator(
        task_id="refresh_reports",
        application=str(REPO / "jobs" / "review" / "refresh_reports.py"),
        application_args=["--config", CONFIG],
        conn_id=SPARK_CONN,
        name="mrs-refresh_reports",
        pool=WRITER_POOL,
    )
    record >> refresh


mrs_analyst_edit()
