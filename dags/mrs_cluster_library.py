"""
# mrs_cluster_library

Maintains the **cluster library** the clustering stage matches reports against, and the **t-SNE map** of the
reports. Trigger it by hand (it has no schedule); the form's fields choose what it does.

- `build_cluster_library` (`jobs/library/build_cluster_library.py`): `cluster_library`.
  - `install`: load the library shipped with the code (`clustering.library_file`) into the Delta table.
  - `generate`: learn a library from a generated, labelled history (the `seed` field): how the shipped one is made.
  - `from_run`: learn from the reports of a run in the lakehouse (`run_id`), labelled by a CSV (`labels`) of
    `series_key,start,end,anomaly_type` rows.
  KMeans with K chosen by silhouette; clusters are named after their members' most common label. A new library
  gets a new `version`; point `clustering.library_version` at it to use it.
- `embed_reports` (`jobs/library/embed_reports.py`): `minority_report_embedding`, plus a PNG scatter plot in
  `paths.artifacts`. t-SNE (fixed seed) of the active run's reports and the library's centroids.

Each table has exactly one writer task; the pipeline only reads the library.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Param, dag

from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")
NAME = r"^[A-Za-z0-9_.-]{0,64}$"


@dag(
    dag_id="mrs_cluster_library",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "mrs", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "mode": Param("install", enum=["install", "generate", "from_run"], description="What to build."),
        "seed": Param(101, type="integer", minimum=0, description="generate: the generated history's seed."),
        "run_id": Param("", type="string", pattern=NAME, description="from_run: the run to learn from."),
        "labels": Param("", type="string", description="from_run: path of the labels CSV."),
        "version": Param(
            "", type="string", pattern=NAME, description="Library version to write (empty: the configured one)."
        ),
    },
    tags=["mrs", "clustering", "spark"],
    doc_md=__doc__,
)
def mrs_cluster_library():
    build = SparkJobOperator(
        task_id="build_cluster_library",
        application=str(REPO / "jobs" / "library" / "build_cluster_library.py"),
        application_args=[
            "--config",
            CONFIG,
            "--mode",
            "{{ params.mode | replace('_', '-') }}",
            "--seed",
            "{{ params.seed }}",
            "--run-id={{ params.run_id }}",
            "--labels={{ params.labels }}",
            "--version={{ params.version }}",
        ],
        conn_id=SPARK_CONN,
        name="mrs-build_cluster_library",
    )
    embed = SparkJobOperator(
        task_id="embed_reports",
        application=str(REPO / "jobs" / "library" / "embed_reports.py"),
        application_args=["--config", CONFIG],
        conn_id=SPARK_CONN,
        name="mrs-embed_reports",
    )
    build >> embed


mrs_cluster_library()
