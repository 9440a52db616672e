"""Attribution and clustering quality against the generator's ground truth.

Each report's latest MRPAL and MRCL snapshots are labelled with the injected anomaly they overlap (same series,
overlapping window). Over the reports that found an injected anomaly it prints:

- **top-1**: the proposed cause category equals the injected type's detection type;
- **top-3**: the injected type is among the three ranked categories;
- **cluster purity**: the matched cluster's name is the injected type's ("TikTok Viral" for a viral spike, ...);

and the same per anomaly (the majority of its reports). With ``--seeds`` it first generates data with each seed
in a scratch folder and runs every pipeline stage on it (one range run per seed), events scored too;
without, it evaluates the active run of the configured lakehouse (``make demo``'s).

    python -m jobs.quality.evaluate_attribution [--seeds 202 303] [--check] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
from pyspark.sql import SparkSession

from jobs.lib.config import Config, load_config
from jobs.lib.labels import NAMES, UNEXPLAINED, label_reports, read_truth
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import Lakehouse, latest
from jobs.quality import evaluate_cohorts, evaluate_detection
from jobs.quality.generate_data import DETECTION_TYPE, generate
from jobs.runtime import pipeline
from jobs.stages import propose_cause_for_minority

TARGETS = {"top1": 0.80, "top3": 0.95, "cluster_purity": 0.80}


def evaluate(reports: pd.DataFrame, truth: pd.DataFrame, tick_seconds: int) -> dict:
    """Figures from each report's latest attribution (+ cluster_name) and the ground truth."""
    reports = reports.sort_values("report_id").reset_index(drop=True)
    reports["anomaly_type"] = label_reports(reports, truth, tick_seconds)
    found = reports[reports["anomaly_type"].notna()].copy()
    if found.empty:
        return {"reports": len(reports), "matched_reports": 0}
    found["expected"] = found["anomaly_type"].map(DETECTION_TYPE)
    found["top1"] = found["proposed_cause_category"] == found["expected"]
    found["top3"] = found["top1"] | (found["proposed_cause_category_2"] == found["expected"])
    found["top3"] |= found["proposed_cause_category_3"] == found["expected"]
    base_name = found["cluster_name"].fillna(UNEXPLAINED).str.replace(r" \d+$", "", regex=True)
    found["pure"] = base_name == found["anomaly_type"].map(NAMES)
    # An anomaly's reports vote: it counts as right when most of them are.
    found["anomaly_id"] = label_reports(found, truth, tick_seconds, "anomaly_id")
    per_anomaly = found.groupby("anomaly_id")[["top1", "top3", "pure"]].mean() > 0.5
    by_type = found.groupby("anomaly_type")[["top1", "top3", "pure"]].mean().round(3)
    return {
        "reports": len(reports),
        "matched_reports": len(found),
        "anomalies_found": int(found["anomaly_id"].nunique()),
        "top1": round(float(found["top1"].mean()), 4),
        "top3": round(float(found["top3"].mean()), 4),
        "cluster_purity": round(float(found["pure"].mean()), 4),
        "per_anomaly": {k: round(float(v), 4) for k, v in per_anomaly.mean().items()},
        "by_type": {t: row.to_dict() for t, row in by_type.iterrows()},
        "confusion": pd.crosstab(found["expected"], found["proposed_cause_category"]).to_dict(),
    }


def run_evaluation(spark: SparkSession, cfg: Config, run_id: str | None = None, truth_path=None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    truth = read_truth(truth_path or cfg.paths.landing / "ground_truth" / "ground_truth.csv")
    mrpal = latest(lake.read("minority_reports_proposed_attribution_log", run_id))
    cols = [
        "report_id",
        "series_key",
        "window_start",
        "window_end",
        "written_at",
        "cluster_name",
        "proposed_cause_category",
        "proposed_cause_category_2",
        "proposed_cause_category_3",
        "confidence_score",
    ]
    pdf = mrpal.select(*cols).toPandas()
    for c in ("window_start", "window_end", "written_at"):
        pdf[c] = pd.to_datetime(pdf[c])
    result = evaluate(pdf, truth, cfg.tick_seconds)
    result["run_id"] = run_id
    return result


def run_seed(spark: SparkSession, cfg: Config, seed: int, without_feeds: bool = False) -> dict:
    """Generate data with ``seed`` in a scratch folder and run the stages on it as one range (without the
    context and campaign feeds when asked: attribution on intrinsic evidence alone)."""
    scratch = cfg.paths.lakehouse.parent / f"eval-seed-{seed}{'-no-feeds' if without_feeds else ''}"
    shutil.rmtree(scratch, ignore_errors=True)
    scfg = load_config(
        cfg.source,
        {
            "generator.seed": seed,
            "paths.landing": str(scratch / "landing"),
            "paths.lakehouse": str(scratch / "lakehouse"),
        },
    )
    generate(scfg, scfg.paths.landing)
    if without_feeds:
        for feed in propose_cause_for_minority.FEEDS:
            shutil.rmtree(scfg.paths.landing / feed)
    start = datetime.combine(scfg.generator.start, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=scfg.generator.days)
    run_id = f"eval-seed-{seed}{'-no-feeds' if without_feeds else ''}"
    pipeline.run_range(spark, scfg, start, end, run_id, pipeline.STAGES[:-1])  # no charts needed
    result = run_evaluation(spark, scfg, run_id)
    result["seed"] = seed
    result["detection"] = evaluate_detection.run(spark, scfg, run_id=run_id)
    result["cohorts"] = evaluate_cohorts.run_evaluation(spark, scfg, run_id)
    return result


def report(r: dict) -> str:
    if not r.get("matched_reports"):
        return f"run {r.get('run_id')}: no report matched an injected anomaly"
    lines = [
        f"Attribution quality (run_id {r['run_id']}): {r['matched_reports']} of {r['reports']} reports matched "
        f"{r['anomalies_found']} injected anomalies",
        f"  top-1 cause category:   {r['top1']:.1%}   (per anomaly {r['per_anomaly']['top1']:.1%})",
        f"  top-3 cause categories: {r['top3']:.1%}   (per anomaly {r['per_anomaly']['top3']:.1%})",
        f"  cluster name purity:    {r['cluster_purity']:.1%}   (per anomaly {r['per_anomaly']['pure']:.1%})",
        "  by injected type (top1, top3, purity):",
    ]
    for t, v in r["by_type"].items():
        lines.append(f"    {t:<22} {v['top1']:.0%}  {v['top3']:.0%}  {v['pure']:.0%}")
    if "cohorts" in r:
        lines.append(evaluate_cohorts.report(r["cohorts"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--seeds", type=int, nargs="+", help="generate and run these seeds (not the demo's)")
    p.add_argument("--without-feeds", action="store_true", help="with --seeds: drop the context and campaign feeds")
    p.add_argument("--check", action="store_true", help=f"exit 1 unless every figure meets {TARGETS}")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "evaluate_attribution")
    quiet_logs(spark)
    seeds = a.seeds or []
    results = [run_seed(spark, cfg, s, a.without_feeds) for s in seeds] or [run_evaluation(spark, cfg)]
    spark.stop()
    if a.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print("\n\n".join(report(r) for r in results))
    if a.check:
        short = [
            f"{r.get('run_id')}: {k} {r.get(k, 0):.1%} < {v:.0%}"
            for r in results
            for k, v in TARGETS.items()
            if r.get(k, 0) < v
        ]
        short += [
            f"{r['run_id']}: multi-store event accuracy {r['cohorts']['event_accuracy']:.1%} < "
            f"{evaluate_cohorts.TARGET:.0%}"
            for r in results
            if (r.get("cohorts") or {}).get("event_accuracy") is not None
            and r["cohorts"]["event_accuracy"] < evaluate_cohorts.TARGET
        ]
        if short:
            raise SystemExit("below target: " + "; ".join(short))
        print(f"all figures meet the targets {TARGETS}, event accuracy {evaluate_cohorts.TARGET}")


if __name__ == "__main__":
    main()
