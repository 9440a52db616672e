"""The stages of ``mrs_pipeline`` in DAG order, to run a range in one process (tests, evaluation, libraries).

The DAG runs each stage as its own ``spark-submit``; this runs the same ``run`` functions in one session.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession

from jobs.lib.config import Config
from jobs.stages import (
    build_minority_report_cohorts,
    build_minority_reports_finalised_log_from_edits,
    build_protection_feed,
    check_pipeline_health,
    cluster_minority_report,
    detect_anomalies,
    hydrate_minority_reports,
    ingest,
    propose_cause_for_minority,
    render_event_charts,
    send_alerts,
)

STAGES = (
    ingest,
    detect_anomalies,
    cluster_minority_report,
    propose_cause_for_minority,
    build_minority_report_cohorts,
    build_minority_reports_finalised_log_from_edits,
    hydrate_minority_reports,
    render_event_charts,
    build_protection_feed,
    check_pipeline_health,
    send_alerts,
)


def run_range(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str, stages=STAGES) -> dict:
    """Every stage over [start, end) under ``run_id``; what each wrote."""
    return {s.__name__.split(".")[-1]: s.run(spark, cfg, start, end, run_id) for s in stages}
