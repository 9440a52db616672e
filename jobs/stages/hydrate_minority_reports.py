"""Hydration: the wide, one-row-per-object datasets analysts query.

- ``minority_reports``: per report, the latest row (``row_number`` over ``written_at``) of MRDL, MRCL, MRPAL
  and MRCH, merged wide;
- ``minority_events_log``: per Minority Event, its latest MELOG row, its authoritative ``window_end`` from
  ``minority_event_ended_log``, and its reports (those whose latest MRCH row names it): sorted report_ids,
  up to 14 aligned ``store_id_N`` / ``retailer_N`` pairs and the full store count, the window, sums and
  averages of sales and baseline, severity, the latest cause and confidence, status and a chart link.

Incremental: a run over [start, end) rewrites only the reports and events that have a log row written in the
interval, each rebuilt from every log row written before ``end``; the result equals a full rebuild
(``--full``). ``--as-of T`` rebuilds both as they stood at tick T into ``minority_reports_as_of`` and
``minority_events_as_of`` (one set of rows per ``as_of``, replaced when asked again).

    spark-submit jobs/stages/hydrate_minority_reports.py --config conf/mrs.yaml --start ... --end ...
    python -m jobs.stages.hydrate_minority_reports --full
    python -m jobs.stages.hydrate_minority_reports --as-of 2025-08-16T14:00:00Z
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.cli import range_or_full
from jobs.lib.config import Config, load_config
from jobs.lib.spark import build_spark
from jobs.lib.tables import MRFL_ORDER, TABLES, Lakehouse, latest
from jobs.lib.ticks import check_interval, dates_between, fmt_ts, parse_ts
from schemas.mrs import MAX_ALIGNED_STORES, REPORT_COLUMNS

WRITES = ("minority_reports", "minority_events_log", "minority_reports_as_of", "minority_events_as_of")
REPORT_LOGS = (
    "minority_reports_detected_log",
    "minority_reports_clustered_log",
    "minority_reports_proposed_attribution_log",
    "minority_reports_cohorted_log",
    "minority_reports_finalised_log",
    "rereview_clustered_log",
    "rereview_proposed_attribution_log",
)
EVENT_LOGS = ("minority_event_log", "minority_event_ended_log", "user_minority_events_edits_log")
# Final (MRFL) values hydration prefers over the model's proposal.
FINAL = ("proposed_cause", "proposed_cause_category", "impact_vector", "confidence_score", "confidence_tier")


def _newest(pipeline: DataFrame, rereview: DataFrame, keys: list[str]) -> DataFrame:
    """The latest row per report across a pipeline log and its rereview twin (rereview wins a tie)."""
    both = pipeline.withColumn("_src", F.lit(0)).unionByName(rereview.drop("rereview_id").withColumn("_src", F.lit(1)))
    return latest(both, *keys, order=("written_at", "_src")).drop("_src")


def hydrate_reports(
    mrdl: DataFrame,
    mrcl: DataFrame,
    mrpal: DataFrame,
    mrch: DataFrame,
    mrfl: DataFrame,
    rr_cl: DataFrame,
    rr_pal: DataFrame,
) -> DataFrame:
    """Report logs (rows of the reports to hydrate) -> one wide row per report, finalised values preferred."""
    keys = ["run_id", "report_id"]
    mrcl, mrpal = _newest(mrcl, rr_cl, keys), _newest(mrpal, rr_pal, keys)
    det = latest(mrdl, *keys).select(
        *REPORT_COLUMNS,
        "severity",
        "peak_anomaly_score",
        "attributed_sales_total",
        "baseline_sales_total",
        "ticks_active",
        F.col("model_version").alias("detection_model_version"),
        F.col("written_at").alias("last_detected_at"),
        "report_status",
        F.col("is_degraded").alias("_d1"),
    )
    cl = mrcl.select(
        *keys,
        "feature_vector",
        "library_version",
        "cluster_id",
        "cluster_name",
        "similarity_score",
        "cluster_match_confidence",
        F.col("written_at").alias("_w2"),
        F.col("is_degraded").alias("_d2"),
    )
    causes = [f"{c}{s}" for s in ("", "_2", "_3") for c in ("proposed_cause", "proposed_cause_category")]
    causes += [f"{c}{s}" for s in ("", "_2", "_3") for c in ("impact_vector", "confidence_score")]
    pal = mrpal.select(
        *keys,
        *causes,
        "confidence_tier",
        "supporting_evidence",
        F.col("model_version").alias("attribution_model_version"),
        F.col("written_at").alias("_w3"),
        F.col("is_degraded").alias("_d3"),
    )
    ch = latest(mrch, *keys).select(
        *keys,
        "report_group_id",
        "event_status",
        "cohort_name",
        "cohort_reason",
        "cohort_size",
        F.col("written_at").alias("_w4"),
        F.col("is_degraded").alias("_d4"),
    )
    fl = latest(mrfl, *keys, order=MRFL_ORDER).select(
        *keys,
        *[F.col(c).alias(f"_f_{c}") for c in (*FINAL, "supporting_evidence")],
        "review_status",
        "analyst_comment",
        "edited_by",
        "field_sources",
        "model_source",
        F.col("written_at").alias("_w5"),
        F.col("is_degraded").alias("_d5"),
    )
    out = det.join(cl, keys, "left").join(pal, keys, "left").join(ch, keys, "left").join(fl, keys, "left")
    model_sources = F.create_map(*[x for f in (*FINAL, "supporting_evidence") for x in (F.lit(f), F.lit("model"))])
    has_final = F.col("_w5").isNotNull()
    final = {c: F.when(has_final, F.col(f"_f_{c}")).otherwise(F.col(c)) for c in (*FINAL, "supporting_evidence")}
    return (
        out.withColumns(
            {
                **final,
                "review_status": F.coalesce("review_status", F.lit("proposed")),
                "field_sources": F.coalesce("field_sources", model_sources),
                "model_source": F.coalesce("model_source", F.lit("pipeline")),
                "written_at": F.greatest("last_detected_at", "_w2", "_w3", "_w4", "_w5"),
                "is_degraded": _any("_d1", "_d2", "_d3", "_d4", "_d5"),
            }
        )
        .drop("_w2", "_w3", "_w4", "_w5", "_d1", "_d2", "_d3", "_d4", "_d5")
        .drop(*[c for c in out.columns if c.startswith("_f_")])
    )


def _any(*cols: str) -> Column:
    return F.greatest(*[F.coalesce(F.col(c), F.lit(False)) for c in cols])


def event_edits(edits: DataFrame) -> DataFrame:
    """Event edits -> one row per event: the latest value per field, evidence accumulated, who edited last."""
    w = Window.partitionBy("run_id", "event_id", "field").orderBy(F.col("written_at").desc(), F.col("edit_seq").desc())
    last = edits.withColumn("_rn", F.row_number().over(w))

    def value(field: str):
        return F.max(F.when((F.col("field") == field) & (F.col("_rn") == 1), F.col("value")))

    evidence = F.when(
        F.col("field") == "supporting_evidence", F.concat_ws("", F.lit("analyst:"), "author", F.lit(": "), "value")
    )
    return last.groupBy("run_id", "event_id").agg(
        value("cause_category").alias("_e_cause"),
        value("cohort_name").alias("_e_name"),
        value("review_status").alias("_e_review"),
        value("comment").alias("analyst_comment"),
        F.sort_array(F.collect_set(evidence)).alias("_e_evidence"),
        F.max_by("author", F.struct("written_at", "edit_seq")).alias("edited_by"),
        F.max("written_at").alias("_w_edit"),
    )


def hydrate_events(current: DataFrame, melog: DataFrame, ended: DataFrame, edits: DataFrame, charts: Path) -> DataFrame:
    """Event logs, analysts' event edits and each member report's latest MRCH row (``current``) -> one row per
    event (merged ones included)."""
    members = current.withColumnRenamed("report_group_id", "event_id")
    pair = F.struct(F.col("store_id"), F.col("retailer_id"))
    w = Window.partitionBy("run_id", "event_id").orderBy(
        F.col("confidence_score").desc_nulls_last(), F.col("report_id")
    )
    # The narrative of the most confident member whose own cause is the event's.
    best = (
        members.where(F.col("proposed_cause_category") == F.col("cohort_cause_category"))
        .withColumn("_rn", F.row_number().over(w))
        .where("_rn = 1")
        .select("run_id", "event_id", "proposed_cause")
    )
    roll = members.groupBy("run_id", "event_id").agg(
        F.sort_array(F.collect_list("report_id")).alias("report_ids"),
        F.count("*").cast("int").alias("report_count"),
        F.array_sort(F.array_distinct(F.collect_list(pair))).alias("_stores"),
        F.min("window_start").alias("_ws"),
        F.sum("attributed_sales_total").alias("attributed_sales_total"),
        F.sum("baseline_sales_total").alias("baseline_sales_total"),
        F.avg("attributed_sales_total").alias("avg_attributed_sales"),
        F.avg("baseline_sales_total").alias("avg_baseline_sales"),
        F.max("severity_score").alias("severity"),
        F.avg("severity_score").alias("avg_severity"),
        F.max_by("cohort_cause_category", "written_at").alias("cause_category"),
        F.max_by("cohort_confidence", "written_at").alias("confidence_score"),
        F.max_by("cohort_name", "written_at").alias("cohort_name"),
        F.max_by("cohort_reason", "written_at").alias("cohort_reason"),
        F.max("written_at").alias("_w_members"),
        F.max(F.col("is_degraded").cast("int")).cast("boolean").alias("_d_members"),
    )
    reg = latest(melog, "run_id", "event_id").select(
        "run_id",
        "event_id",
        "event_status",
        F.col("change").alias("last_change"),
        "merged_into",
        "window_start",
        "created_at",
        "finalized_at",
        "store_count",
        F.col("written_at").alias("_w_reg"),
        F.col("is_degraded").alias("_d_reg"),
    )
    end = latest(ended, "run_id", "event_id").select(
        "run_id", "event_id", F.col("window_end").alias("_ended_at"), F.col("written_at").alias("_w_end")
    )
    out = reg.join(roll, ["run_id", "event_id"], "left").join(end, ["run_id", "event_id"], "left")
    out = out.join(best, ["run_id", "event_id"], "left").join(event_edits(edits), ["run_id", "event_id"], "left")
    aligned = []
    for n in range(1, MAX_ALIGNED_STORES + 1):
        item = F.try_element_at(F.col("_stores"), F.lit(n))  # NULL past the array's end
        aligned += [item["store_id"].alias(f"store_id_{n}"), item["retailer_id"].alias(f"retailer_{n}")]
    chart = F.concat(F.lit(f"{charts}/"), F.col("run_id"), F.lit("/"), F.col("event_id"), F.lit(".png"))
    has_members = F.col("report_count") > 0
    return out.select("*", *aligned).withColumns(
        {
            "report_ids": F.coalesce(F.col("report_ids"), F.array().cast("array<string>")),
            "report_count": F.coalesce(F.col("report_count"), F.lit(0)),
            "store_count": F.when(has_members, F.size("_stores")).otherwise(F.col("store_count")),
            # An ended event's window_end is the ended log's; a merged one keeps its last; an active one has none.
            "window_end": F.when(F.col("event_status") != "active", F.col("_ended_at")),
            "chart_path": F.when(has_members, chart),
            "cause_category": F.coalesce("_e_cause", "cause_category"),
            "proposed_cause": F.when(
                F.col("_e_cause").isNotNull(), F.concat(F.col("_e_cause"), F.lit(": set by "), F.col("edited_by"))
            ).otherwise(F.col("proposed_cause")),
            "cohort_name": F.coalesce("_e_name", "cohort_name"),
            "review_status": F.coalesce("_e_review", F.lit("proposed")),
            "supporting_evidence": F.coalesce("_e_evidence", F.array().cast("array<string>")),
            "field_sources": F.create_map(
                *[
                    x
                    for f, c in (
                        ("cause_category", "_e_cause"),
                        ("cohort_name", "_e_name"),
                        ("review_status", "_e_review"),
                    )
                    for x in (F.lit(f), F.when(F.col(c).isNotNull(), "analyst").otherwise("model"))
                ]
            ),
            "written_at": F.greatest("_w_reg", "_w_members", "_w_end", "_w_edit"),
            "is_degraded": _any("_d_reg", "_d_members"),
        }
    )


# -- reading: which keys, and the rows that rebuild them -------------------------------------------------
def _rows(lake: Lakehouse, name: str, run_id: str, lo: datetime | None, end: datetime) -> DataFrame:
    df = lake.read(name, run_id).where(F.col("written_at") < F.lit(end))
    if lo is None:
        return df
    if "date" in TABLES[name].partition_by:
        df = df.where(dates_between(lo, end))
    return df.where(F.col("written_at") >= F.lit(lo))


def build(
    lake: Lakehouse, run_id: str, end: datetime, start: datetime | None = None
) -> tuple[DataFrame, DataFrame] | None:
    """Hydrated reports and events for the keys with a log row in [start, end) (all keys when start is None),
    each rebuilt from the log rows written before ``end``."""
    touched = [_rows(lake, n, run_id, start, end).select("report_id", "window_start") for n in REPORT_LOGS]
    reports = touched[0]
    for df in touched[1:]:
        reports = reports.unionByName(df)
    events = _rows(lake, "minority_reports_cohorted_log", run_id, start, end).select(
        F.col("report_group_id").alias("event_id"), F.col("event_window_start").alias("window_start")
    )
    for name in ("minority_event_log", "user_minority_events_edits_log"):
        events = events.unionByName(_rows(lake, name, run_id, start, end).select("event_id", "window_start"))
    # The keys, materialised once: each of the ten logs' touched rows is read here only, not again by each
    # query below that needs them (a Delta scan costs ~0.2 s of planning however few rows it finds).
    report_ids = reports.groupBy("report_id").agg(F.min("window_start").alias("window_start")).localCheckpoint()
    event_ids = events.groupBy("event_id").agg(F.min("window_start").alias("window_start")).localCheckpoint()
    # Every row of a report or event is written at or after its window_start: read from the earliest.
    lo = report_ids.unionByName(event_ids.withColumnRenamed("event_id", "report_id"))
    lo = lo.agg(F.min("window_start")).first()[0]
    if lo is None:
        return None
    report_ids, event_ids = report_ids.select("report_id"), event_ids.select("event_id")
    logs = {n: _rows(lake, n, run_id, lo, end) for n in (*REPORT_LOGS, *EVENT_LOGS)}
    mrch = logs["minority_reports_cohorted_log"]
    hydrated_reports = hydrate_reports(*[logs[n].join(report_ids, "report_id", "left_semi") for n in REPORT_LOGS])
    # An event's members: the reports whose latest MRCH row names it, among those with rows since lo.
    current = latest(mrch, "run_id", "report_id")
    members = current.join(event_ids.withColumnRenamed("event_id", "report_group_id"), "report_group_id", "left_semi")
    hydrated_events = hydrate_events(
        members,
        logs["minority_event_log"].join(event_ids, "event_id", "left_semi"),
        logs["minority_event_ended_log"].join(event_ids, "event_id", "left_semi"),
        logs["user_minority_events_edits_log"].join(event_ids, "event_id", "left_semi"),
        lake.cfg.paths.artifacts / "events",
    )
    return hydrated_reports, hydrated_events


def run(
    spark: SparkSession, cfg: Config, start: datetime | None, end: datetime, run_id: str | None = None
) -> dict[str, dict]:
    """Rewrite the hydrated rows of the keys touched in [start, end) (``start`` None: every key)."""
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    built = build(lake, run_id, end, start)
    if built is None:
        return {"minority_reports": {}, "minority_events_log": {}}
    # Materialised once: a MERGE may read its source more than once, and this one joins six logs.
    reports, events = (df.localCheckpoint() for df in built)
    return {
        "minority_reports": lake.upsert("minority_reports", reports),
        "minority_events_log": lake.upsert("minority_events_log", events),
    }


def run_as_of(spark: SparkSession, cfg: Config, as_of: datetime, run_id: str | None = None) -> dict[str, int]:
    """The hydrated state as it stood at tick ``as_of`` (log rows written at or before it)."""
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    built = build(lake, run_id, as_of + timedelta(seconds=cfg.tick_seconds))
    if built is None:
        return {"minority_reports_as_of": 0, "minority_events_as_of": 0}
    stamp = F.lit(as_of).cast("timestamp").alias("as_of")
    where = f"as_of = TIMESTAMP'{as_of:%Y-%m-%d %H:%M:%S}' AND run_id = '{run_id}'"
    return {
        name: lake.replace_where(name, df.select(stamp, "*"), where)
        for name, df in zip(("minority_reports_as_of", "minority_events_as_of"), built, strict=True)
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--start", help="data interval start, ISO-8601 UTC (inclusive): rewrite keys touched since")
    p.add_argument("--end", help="data interval end, ISO-8601 UTC (exclusive)")
    p.add_argument("--full", action="store_true", help="rebuild every key from the logs (up to --end if given)")
    p.add_argument("--as-of", help="rebuild the state as it stood at this tick into the *_as_of tables")
    p.add_argument("--run-id", help="run_id to hydrate (default: the active one in demo_run_config)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    if a.as_of:
        try:
            as_of = parse_ts(a.as_of, "--as-of")
            check_interval(as_of, as_of + timedelta(seconds=cfg.tick_seconds), cfg.tick_seconds)
        except ValueError as e:
            p.error(str(e))
    else:
        start, end = range_or_full(p, a, cfg)
    spark = build_spark(cfg, "hydrate_minority_reports")
    if a.as_of:
        result = run_as_of(spark, cfg, as_of, a.run_id)
        label = f"as of {fmt_ts(as_of)}"
    else:
        result = run(spark, cfg, start, end, a.run_id)
        label = "full rebuild" if start is None else f"{fmt_ts(start)} .. {fmt_ts(end)}"
    print(f"hydrate_minority_reports {label}: {result}")
    spark.stop()


if __name__ == "__main__":
    main()
