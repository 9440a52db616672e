"""Detection quality against the generator's ground truth.

An injected anomaly counts as found when a report on one of its series overlaps its window; a report that
overlaps no injected window on its series is a false report. Prints recall (per anomaly and per affected
series), false reports per 100 series-days, the median detection delay in ticks (from an anomaly's start to the
tick its first report opened, ``first_detected_from``) and how often ``window_start``, the report's estimated
onset, is within one tick of the anomaly's start.

    python -m jobs.quality.evaluate_detection --config conf/mrs.yaml [--json]
"""

from __future__ import annotations

import argparse
import json

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.config import Config, load_config
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import Lakehouse, latest

TRUTH_SCHEMA = (
    "anomaly_id string, anomaly_type string, detection_type string, series_key string, store_id string, "
    "sku string, start timestamp, end timestamp"
)


def latest_reports(mrdl: DataFrame, tick_seconds: int) -> DataFrame:
    """The latest snapshot of each report; an open report's window runs to the end of its last tick."""
    return latest(mrdl).select(
        "report_id",
        "series_key",
        "first_detected_from",
        "window_start",
        F.coalesce("window_end", F.col("written_at") + F.expr(f"INTERVAL {tick_seconds} SECONDS")).alias("window_end"),
    )


def evaluate(reports: DataFrame, truth: DataFrame, tick_seconds: int, series_days: float) -> dict:
    """Recall, false reports per 100 series-days and detection delay, from latest reports and truth rows."""
    overlap = (
        (F.col("r.series_key") == F.col("g.series_key"))
        & (F.col("r.window_start") < F.col("g.end"))
        & (F.col("r.window_end") > F.col("g.start"))
    )
    pairs = truth.alias("g").join(reports.alias("r"), overlap, "left")
    # A series' first report overlapping the anomaly: when it opened, and the onset it estimated.
    first = F.min_by(F.struct("r.first_detected_from", "r.window_start"), F.col("r.first_detected_from"))
    per_series = pairs.groupBy("g.anomaly_id", "g.anomaly_type", "g.series_key", "g.start").agg(first.alias("f"))
    per_series = per_series.select(
        "*", F.col("f.first_detected_from").alias("detected_from"), F.col("f.window_start").alias("onset")
    )
    per_series = per_series.withColumn(
        "delay_ticks",
        F.greatest(F.lit(0), (F.unix_timestamp("detected_from") - F.unix_timestamp("start")) / tick_seconds),
    ).withColumn("onset_error_ticks", F.abs(F.unix_timestamp("onset") - F.unix_timestamp("start")) / tick_seconds)
    per_anomaly = per_series.groupBy("anomaly_id", "anomaly_type").agg(
        F.max(F.col("detected_from").isNotNull().cast("int")).alias("found"),
        F.min("delay_ticks").alias("delay_ticks"),
    )
    false = reports.alias("r").join(truth.alias("g"), overlap, "left_anti")
    s = per_series.agg(
        F.count("*").alias("n"),
        F.sum(F.col("detected_from").isNotNull().cast("int")).alias("found"),
        F.percentile(F.col("delay_ticks"), 0.5).alias("median_delay"),
        F.percentile(F.col("delay_ticks"), 0.9).alias("p90_delay"),
        F.avg((F.col("onset_error_ticks") <= 1).cast("double")).alias("onset_within_1"),
    ).first()
    a = per_anomaly.agg(F.count("*").alias("n"), F.sum("found").alias("found")).first()
    by_type = {
        r["anomaly_type"]: round(r["recall"], 3)
        for r in per_series.groupBy("anomaly_type")
        .agg(F.avg(F.col("detected_from").isNotNull().cast("double")).alias("recall"))
        .collect()
    }
    n_false, n_reports = false.count(), reports.count()
    return {
        "injected_anomalies": a["n"],
        "anomaly_recall": round(a["found"] / a["n"], 4) if a["n"] else None,
        "affected_series": s["n"],
        "series_recall": round(s["found"] / s["n"], 4) if s["n"] else None,
        "recall_by_type": dict(sorted(by_type.items())),
        "reports": n_reports,
        "false_reports": n_false,
        "false_reports_per_100_series_days": round(100.0 * n_false / series_days, 3) if series_days else None,
        "median_delay_ticks": s["median_delay"],
        "p90_delay_ticks": s["p90_delay"],
        "onset_within_1_tick": round(s["onset_within_1"], 4) if s["onset_within_1"] is not None else None,
    }


def run(spark: SparkSession, cfg: Config, truth_path: str | None = None, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    truth_path = truth_path or str(cfg.paths.landing / "ground_truth" / "ground_truth.csv")
    truth = spark.read.option("header", True).schema(TRUTH_SCHEMA).csv(truth_path)
    reports = latest_reports(lake.read("minority_reports_detected_log", run_id), cfg.tick_seconds)
    # Series-days actually scored (the baseline had its minimum history), and when scoring began: only
    # anomalies inside the scored period can be found, and the generator keeps them there.
    scored, first_ts = (
        lake.read("baseline_sales_model_prediction_log", run_id)
        .where(F.col("baseline_units").isNotNull())
        .agg(F.count_distinct("series_key", "date"), F.min("ts"))
        .first()
    )
    if first_ts is not None:
        truth = truth.where(F.col("start") >= F.lit(first_ts))
    result = evaluate(reports, truth, cfg.tick_seconds, scored)
    result["run_id"] = run_id
    result["series_days_scored"] = scored
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--truth", help="ground truth CSV (default: <landing>/ground_truth/ground_truth.csv)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "evaluate_detection")
    quiet_logs(spark)
    r = run(spark, cfg, a.truth)
    spark.stop()
    if a.json:
        print(json.dumps(r, indent=2, default=str))
        return
    print(f"Detection quality (run_id {r['run_id']}, {r['series_days_scored']} series-days scored)")
    print(f"  anomalies found:            {r['anomaly_recall']:.1%} of {r['injected_anomalies']} injected")
    print(f"  affected series found:      {r['series_recall']:.1%} of {r['affected_series']}")
    print(f"  recall by type (series):    {r['recall_by_type']}")
    print(
        f"  false reports:              {r['false_reports']} of {r['reports']} "
        f"= {r['false_reports_per_100_series_days']} per 100 series-days"
    )
    print(f"  detection delay (ticks):    median {r['median_delay_ticks']}, p90 {r['p90_delay_ticks']}")
    print(f"  onset (window_start) within one tick of the start: {r['onset_within_1_tick']}")


if __name__ == "__main__":
    main()
