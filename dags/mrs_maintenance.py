"""
# mrs_maintenance

Keeps the lakehouse's Delta tables fast to read as ticks accumulate: a month of 15-minute ticks would otherwise
leave thousands of small files per log table.

- `maintain_tables` (`jobs/runtime/maintain_tables.py`): for every table, `OPTIMIZE` (one file per partition where there
  were many; nothing is committed where there is nothing to compact), `VACUUM` with
  `maintenance.vacuum_retention_hours` (a week by default: time travel within it still works), and the latest
  checkpoint recorded. Writes `table_maintenance_log`: files before and after, per table and run, `is_degraded`
  where a table is still fragmented.

Runs daily on its data interval; trigger it by hand after a large backfill. OPTIMIZE and VACUUM rewrite every
table, so the task runs in the one-slot pool `mrs_lakehouse_writers` with every other writer: it waits for a
pipeline tick to finish rather than compacting under it. Re-running a day adds no rows.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import DeltaDataIntervalTimetable, dag

from jobs.lib.names import WRITER_POOL
from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
START_DATE = datetime.fromisoformat(os.environ.get("MRS_START_DATE", "2025-08-04T00:00:00+00:00")).astimezone(UTC)
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")


@dag(
    dag_id="mrs_maintenance",
    schedule=DeltaDataIntervalTimetable(timedelta(days=1)),  # the interval is the day before the run
    start_date=START_DATE,
    # Compacting today compacts every earlier day too: missed days need no catching up.
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mrs", "retries": 2, "retry_delay": timedelta(minutes=5), "priority_weight": 1},
    tags=["mrs", "maintenance", "delta"],
    doc_md=__doc__,
)
def mrs_maintenance():
    SparkJobOperator(
        task_id="maintain_tables",
        application=str(REPO / "jobs" / "runtime" / "maintain_tables.py"),
        application_args=[
            "--config",
            CONFIG,
            "--start",
            "{{ data_interval_start | ts }}",
            "--end",
            "{{ data_interval_end | ts }}",
        ],
        conn_id=SPARK_CONN,
        name="mrs-maintain_tables",
        pool=WRITER_POOL,
    )


mrs_maintenance()
