"""
# dfu_clustering

Groups **DFUs** (an item at a location) by their monthly demand so that a global forecasting model trains on
homogeneous segments (spec note 003). Runs monthly, on the month that just closed; trigger it by hand with
`as_of` to cluster another month.

It reads `fact_sales_monthly`, `dim_item` and `dim_dfu`, which the forecasting platform loads (for a demo,
`make cluster-generate` writes generated DFUs with known demand patterns). Tasks and what each writes:

- `cluster_features` (`jobs/dfu/features.py`, Spark): `dfu_clustering_features`, `dfu_clustering_exclusions`
  (DFUs with too little history, and why), and the training matrix `clustering_features.csv`
- `cluster_train` (`jobs/dfu/train.py`, scikit-learn): KMeans over the K range, K chosen by elbow, silhouette,
  gap statistic and the minimum cluster size; `cluster_assignments.csv`, `cluster_centroids.csv`,
  `cluster_metadata.json`, plots; tracked in the MLflow experiment `dfu_clustering`
- `cluster_label`  (`jobs/dfu/label.py`): business labels (volume tier + pattern), `cluster_labels.csv`,
  `cluster_profiles.json`
- `cluster_update` (`jobs/dfu/update.py`, Spark): MERGE of the labels into `dim_dfu.cluster_assignment`
  (with `dry_run`, prints the change counts and writes nothing)

Files go to `<output_dir>/<as_of>/` (`conf/clustering_config.yaml`). Re-running a month adds no rows: features are
replaced per month, an identical training run is reused in MLflow, and the MERGE changes only what differs.
Delta writers run in the one-slot pool `mrs_lakehouse_writers`, shared with the anomaly pipeline.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param, dag
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from jobs.lib.names import WRITER_POOL
from jobs.runtime.operators import SparkJobOperator

REPO = Path(__file__).resolve().parents[1]
CONFIG = os.environ.get("MRS_CONFIG", str(REPO / "conf" / "mrs.yaml"))
CLUSTER_CONFIG = os.environ.get("DFU_CLUSTERING_CONFIG", str(REPO / "conf" / "clustering_config.yaml"))
OUTPUT = os.environ.get("DFU_OUTPUT_DIR", str(REPO / ".data" / "dfu" / "clustering"))
PYTHON = os.environ.get("MRS_PYTHON", sys.executable)
SPARK_CONN = os.environ.get("MRS_SPARK_CONN_ID", "mrs_spark")
ENV = {"MRS_CONFIG": CONFIG, "DFU_CLUSTERING_CONFIG": CLUSTER_CONFIG}

# The month to cluster: the form's, else the month the data interval covers, else the newest month with sales.
AS_OF = "{{ params.as_of or (data_interval_start.strftime('%Y-%m') if data_interval_start else 'latest') }}"
RUN_DIR = f"{OUTPUT}/{AS_OF}"


def _spark(task_id: str, job: str, args: list[str]) -> SparkJobOperator:
    return SparkJobOperator(
        task_id=task_id,
        application=str(REPO / "jobs" / "dfu" / job),
        application_args=["--config", CLUSTER_CONFIG, *args],
        conn_id=SPARK_CONN,
        name=f"dfu-{task_id}",
        env_vars=ENV,
        pool=WRITER_POOL,
    )


def _python(task_id: str, module: str, args: str) -> BashOperator:
    return BashOperator(
        task_id=task_id,
        bash_command=f"{PYTHON} -m jobs.dfu.{module} --config {CLUSTER_CONFIG} {args}",
        cwd=str(REPO),
        env=ENV,
        append_env=True,
    )


@dag(
    dag_id="dfu_clustering",
    # A data interval of one calendar month (not a trigger instant): the run at 1 January clusters December.
    schedule=CronDataIntervalTimetable("@monthly", timezone="UTC"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "demand-planning", "retries": 1, "retry_delay": timedelta(minutes=1)},
    params={
        "as_of": Param(
            None, type=["null", "string"], pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="Month to cluster (YYYY-MM)."
        ),
        "k_range": Param(
            None,
            type=["null", "array"],
            items={"type": "integer", "minimum": 2},
            minItems=2,
            maxItems=2,
            description="Smallest and largest K tried, e.g. [3, 12] (default: config).",
        ),
        "min_cluster_size_pct": Param(
            None, type=["null", "number"], minimum=0, maximum=50, description="Smallest cluster allowed, % of DFUs."
        ),
        "use_pca": Param(False, type="boolean", description="Reduce the features with PCA before KMeans."),
        "dry_run": Param(False, type="boolean", description="Print what cluster_update would change; write nothing."),
    },
    tags=["dfu", "clustering", "demand-forecasting", "spark"],
    doc_md=__doc__,
)
def dfu_clustering():
    features = _spark(
        "cluster_features",
        "features.py",
        [f"--as-of={AS_OF}", "--output", f"{RUN_DIR}/clustering_features.csv"],
    )
    k_range = "{{ '--k-range %d %d' % (params.k_range[0], params.k_range[1]) if params.k_range else '' }}"
    min_size = (
        "{{ '--min-cluster-size-pct %s' % params.min_cluster_size_pct "
        "if params.min_cluster_size_pct is not none else '' }}"
    )
    train = _python(
        "cluster_train",
        "train",
        f"--input {RUN_DIR}/clustering_features.csv --output-dir {RUN_DIR} {k_range} {min_size} "
        "{{ '--use-pca' if params.use_pca else '' }}",
    )
    label = _python(
        "cluster_label",
        "label",
        f"--centroids {RUN_DIR}/cluster_centroids.csv --assignments {RUN_DIR}/cluster_assignments.csv "
        f"--metadata {RUN_DIR}/cluster_metadata.json --output {RUN_DIR}",
    )
    update = _spark("cluster_update", "update.py", ["--input", RUN_DIR, "--dry-run={{ params.dry_run | lower }}"])

    features >> train >> label >> update


dfu_clustering()
