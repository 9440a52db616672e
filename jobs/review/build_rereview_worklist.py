"""Rereview worklist: the ended reports whose finalised state asks for another look (rereview_worklist_log).

A report is picked when its current MRFL row (the latest written before T, the tick after the latest one
ingested) has ended and has at least one reason: ``low_confidence`` (tier Low), ``analyst_rejected`` (review
status rejected) or ``older_model`` (a library or attribution model version other than the configured ones).
Active reports are left to the pipeline. Each pick names the versions it is to be rereviewed with and the
causes analysts rejected, which the rereview will not propose again.

``rereview_id`` = ``RR-`` + sha256(report_id | library_version | model_version | rejected categories, sorted and
joined by ","): a report is rereviewed once per pair of model versions and set of rejected causes. Re-running
adds nothing, and a report whose rereview still comes out Low is not picked again until a version changes or an
analyst rejects another cause. Every row is written at T (data time, never the wall clock).

    python -m jobs.review.build_rereview_worklist --config conf/mrs.yaml [--run-id R] [--from ISO --to ISO]
"""

from __future__ import annotations

import argparse
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.config import Config, load_config
from jobs.lib.tables import MRFL_ORDER, TABLES, Lakehouse, conform, latest
from jobs.lib.ticks import fmt_ts, parse_ts

WRITES = ("rereview_worklist_log",)
REASONS = ("low_confidence", "analyst_rejected", "older_model")


def rereview_id(report_id: Column, library_version: str, model_version: str, rejected: Column) -> Column:
    """``RR-`` + sha256(report_id | library_version | model_version | sorted rejected categories joined by ",")."""
    categories = F.array_join(F.array_sort(F.array_distinct(rejected)), ",")
    key = F.concat_ws("|", report_id, F.lit(library_version), F.lit(model_version), categories)
    return F.concat(F.lit("RR-"), F.sha2(key, 256))


def worklist(
    mrfl: DataFrame,
    at: datetime,
    library_version: str,
    model_version: str,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
) -> DataFrame:
    """MRFL rows -> the worklist at tick ``at`` (T): one row per ended report with a reason to rereview it,
    optionally only the reports whose window_start is in [window_from, window_to)."""
    current = latest(mrfl.where(F.col("written_at") <= F.lit(at)), "run_id", "report_id", order=MRFL_ORDER)
    current = current.where(F.col("report_status") == "ended")
    if window_from is not None:
        current = current.where(F.col("window_start") >= F.lit(window_from))
    if window_to is not None:
        current = current.where(F.col("window_start") < F.lit(window_to))
    # Null-safe: a version never recorded is not the configured one either.
    older = ~F.col("library_version").eqNullSafe(F.lit(library_version)) | ~F.col(
        "attribution_model_version"
    ).eqNullSafe(F.lit(model_version))
    checks = {
        "low_confidence": F.col("confidence_tier") == "Low",
        "analyst_rejected": F.col("review_status") == "rejected",
        "older_model": older,
    }
    reasons = F.filter(F.array(*[F.when(checks[r], F.lit(r)) for r in REASONS]), lambda r: r.isNotNull())
    rejected = F.array_sort(F.array_distinct(F.coalesce("rejected_categories", F.array().cast("array<string>"))))
    out = current.select(
        rereview_id(F.col("report_id"), library_version, model_version, rejected).alias("rereview_id"),
        "run_id",
        "report_id",
        reasons.alias("reasons"),
        rejected.alias("rejected_categories"),
        F.col("proposed_cause_category").alias("previous_cause_category"),
        F.col("confidence_score").alias("previous_confidence"),
        F.col("library_version").alias("previous_library_version"),
        F.col("attribution_model_version").alias("previous_model_version"),
        F.lit(library_version).alias("library_version"),
        F.lit(model_version).alias("attribution_model_version"),
        "report_status",
        F.lit(at).cast("timestamp").alias("written_at"),
        # A finalised row built from degraded inputs stays degraded through its rereview.
        "is_degraded",
        F.lit(at.date()).alias("date"),
    ).where(F.size("reasons") > 0)
    return conform(out, TABLES["rereview_worklist_log"].schema)


def run(
    spark: SparkSession,
    cfg: Config,
    run_id: str | None = None,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    at = lake.next_tick(run_id)
    mrfl = lake.read("minority_reports_finalised_log", run_id)
    if window_from is not None:  # a report's rows are all written at or after its window_start
        mrfl = mrfl.where(F.col("date") >= F.lit(window_from.date()))
    rows = worklist(
        mrfl,
        at,
        cfg.clustering.library_version,
        cfg.attribution.model_version,
        window_from,
        window_to,
    )
    return {"rereview_worklist_log": lake.append_new("rereview_worklist_log", rows)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--run-id", help="run_id to rereview (default: the active one in demo_run_config)")
    p.add_argument("--from", dest="window_from", help="only reports whose window_start is at or after this (ISO)")
    p.add_argument("--to", dest="window_to", help="only reports whose window_start is before this (ISO)")
    a = p.parse_args(argv)
    try:
        a.window_from = parse_ts(a.window_from, "--from") if a.window_from else None
        a.window_to = parse_ts(a.window_to, "--to") if a.window_to else None
    except ValueError as e:
        p.error(str(e))
    if a.window_from and a.window_to and a.window_to <= a.window_from:
        p.error(f"--to ({fmt_ts(a.window_to)}) must be after --from ({fmt_ts(a.window_from)})")
    return a


def main(argv: list[str] | None = None) -> None:
    from jobs.lib.spark import build_spark  # pyspark only where a session is built

    a = parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "build_rereview_worklist")
    result = run(spark, cfg, a.run_id, a.window_from, a.window_to)
    span = " ".join(f"{k} {fmt_ts(v)}" for k, v in (("from", a.window_from), ("to", a.window_to)) if v)
    print(f"build_rereview_worklist{' ' + span if span else ''}: {result}")
    spark.stop()


if __name__ == "__main__":
    main()
