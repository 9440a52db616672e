"""Automation rules (HITL, note 002): decisions the platform takes for analysts, recorded as edits.

The rules live in ``automation.rules``. ``auto_confirm``, e.g. weekend mode: on the listed (UTC) weekdays a
report whose proposed cause's confidence exceeds ``min_confidence`` is confirmed, written to ``user_edits_log``
by author ``automation:<rule>`` at the first tick it qualifies. A report that already has a review decision at
that tick (an analyst's, or an earlier rule's) is left alone; the rest wait in the view ``mrs.review_queue``.

Runs inside the finalisation task (``build_minority_reports_finalised_log_from_edits``), before finalising.
A range run writes the same edits as tick-by-tick runs: each depends only on the attribution rows and the
decisions already logged up to its tick.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.config import WEEKDAYS, Automation, Config
from jobs.lib.tables import TABLES, Lakehouse, conform
from jobs.lib.ticks import dates_between

WRITES = ("user_edits_log",)


def _spark_weekday(name: str) -> int:
    return (WEEKDAYS.index(name) + 1) % 7 + 1  # Spark's dayofweek: 1 = Sunday ... 7 = Saturday


def automation_edits(mrpal: DataFrame, decisions: DataFrame, rules: Automation) -> DataFrame:
    """Attribution rows (the interval's) and earlier review decisions (report_id, written_at) -> edit rows.

    Each report gets at most one automated decision: the earliest qualifying tick, the first rule on ties."""
    candidates = None
    for i, rule in enumerate(rules.rules):
        days = [_spark_weekday(d) for d in rule.weekdays]
        c = mrpal.where(F.dayofweek("written_at").isin(days) & (F.col("confidence_score") > rule.min_confidence))
        c = c.select(
            "run_id",
            "report_id",
            "window_start",
            "written_at",
            "confidence_score",
            "report_status",
            "is_degraded",
            F.lit(i).alias("_rule"),
            F.lit(rule.name).alias("_name"),
            F.lit(rule.min_confidence).alias("_min"),
        )
        candidates = c if candidates is None else candidates.unionByName(c)
    if candidates is None:
        return mrpal.sparkSession.createDataFrame([], TABLES["user_edits_log"].schema)
    d = decisions.select("report_id", F.col("written_at").alias("_decided_at"))
    undecided = candidates.join(
        d, (candidates.report_id == d.report_id) & (d._decided_at <= candidates.written_at), "left_anti"
    )
    first = Window.partitionBy("report_id").orderBy("written_at", "_rule")
    chosen = undecided.withColumn("_rn", F.row_number().over(first)).where("_rn = 1")
    author = F.concat(F.lit("automation:"), F.col("_name"))
    return conform(
        chosen.select(
            "*",
            F.concat(
                F.lit("UE-"), F.sha2(F.concat_ws("|", author, F.col("report_id"), F.lit("review_status")), 256)
            ).alias("edit_id"),
            F.lit("review_status").alias("field"),
            F.lit("auto_confirmed").alias("value"),
            author.alias("author"),
            F.format_string(
                "%s: confidence %.2f above %.2f on a %s",
                F.col("_name"),
                F.col("confidence_score"),
                F.col("_min"),
                F.date_format("written_at", "EEEE"),
            ).alias("reason"),
            author.alias("request_id"),
            F.lit(0).cast("long").alias("edit_seq"),  # before any analyst's edit at the same tick
        ),
        TABLES["user_edits_log"].schema,
    )


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    if not cfg.automation.rules:
        return {"user_edits_log": 0}
    mrpal = (
        lake.read("minority_reports_proposed_attribution_log", run_id)
        .where(dates_between(start, end))
        .where((F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end)))
    )
    decisions = (
        lake.read("user_edits_log", run_id)
        .where((F.col("field") == "review_status") & (F.col("written_at") < F.lit(end)))
        .select("report_id", "written_at")
    )
    edits = automation_edits(mrpal, decisions, cfg.automation)
    return {"user_edits_log": lake.append_new("user_edits_log", edits)}


def edit_id(rule: str, report_id: str) -> str:
    """The id automation gives its decision on a report (as ``automation_edits`` computes it)."""
    return "UE-" + hashlib.sha256(f"automation:{rule}|{report_id}|review_status".encode()).hexdigest()
