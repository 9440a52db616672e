"""``make evaluate``: how often the pipeline is right, on data it has never seen, as one table.

For each seed (not the demo's 7, nor the cluster library's 101) it generates a fresh data set, runs every
stage over it as one range, and scores the run against the generator's ground truth:

- **detection** (``jobs/quality/evaluate_detection.py``): recall over injected anomalies, precision (the share of
  reports that overlap an injected anomaly), false reports per 100 series-days, median and 90th-percentile
  detection delay in ticks;
- **attribution and clustering** (``jobs/quality/evaluate_attribution.py``): top-1 and top-3 cause category, cluster
  name purity;
- **cohorts** (``jobs/quality/evaluate_cohorts.py``): multi-store anomalies that became exactly one event.

Then the robustness of detection over generated families of series and the real series
(``jobs/quality/evaluate_families.py``, the per-series model alone, no Spark), and, where ``../shared/data/nab/``
exists, the NAB standard-profile score of detection over its real series
(``jobs/quality/evaluate_nab.py``). The figures go to ``docs/benchmarks/evaluate.json`` and the evaluation section of
``BENCHMARKS.md``.

    python -m jobs.quality.evaluate [--seeds 202 303 404] [--no-nab]
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime

from jobs.lib.config import REPO_ROOT, load_config

DEFAULT_SEEDS = (202, 303, 404)
RESULT = REPO_ROOT / "docs" / "benchmarks" / "evaluate.json"
# column -> (label, format); the order of the table
COLUMNS = {
    "recall": ("detection recall", "{:.1%}"),
    "series_recall": ("series recall", "{:.1%}"),
    "precision": ("precision", "{:.1%}"),
    "false_per_100": ("false / 100 series-days", "{:.2f}"),
    "delay_p50": ("delay p50 (ticks)", "{:.1f}"),
    "delay_p90": ("delay p90 (ticks)", "{:.1f}"),
    "onset_within_1": ("onset within 1 tick", "{:.1%}"),
    "top1": ("top-1 cause", "{:.1%}"),
    "top3": ("top-3 cause", "{:.1%}"),
    "purity": ("cluster purity", "{:.1%}"),
    "cohort_accuracy": ("cohort accuracy", "{:.1%}"),
}


def figures(r: dict) -> dict:
    """One seed's row of the table, from evaluate_attribution.run_seed's result."""
    d, c = r["detection"], r.get("cohorts") or {}
    reports = d["reports"]
    return {
        "seed": r["seed"],
        "series_days": d["series_days_scored"],
        "anomalies": d["injected_anomalies"],
        "reports": reports,
        "recall": d["anomaly_recall"],
        "series_recall": d.get("series_recall"),
        "precision": (reports - d["false_reports"]) / reports if reports else None,
        "false_per_100": d["false_reports_per_100_series_days"],
        "delay_p50": d["median_delay_ticks"],
        "delay_p90": d["p90_delay_ticks"],
        "onset_within_1": d.get("onset_within_1_tick"),
        "top1": r.get("top1"),
        "top3": r.get("top3"),
        "purity": r.get("cluster_purity"),
        "cohort_accuracy": c.get("event_accuracy"),
    }


def mean_row(rows: list[dict]) -> dict:
    out = {"seed": "mean"}
    for k in COLUMNS:
        values = [r[k] for r in rows if r.get(k) is not None]
        out[k] = statistics.fmean(values) if values else None
    return out


def table(rows: list[dict]) -> str:
    """A Markdown table: one row per seed and their mean."""
    head = "| seed | " + " | ".join(label for label, _ in COLUMNS.values()) + " |"
    lines = [head, "| --- |" + " ---: |" * len(COLUMNS)]
    for r in [*rows, mean_row(rows)] if rows else []:
        cells = ["n/a" if r.get(k) is None else fmt.format(r[k]) for k, (_, fmt) in COLUMNS.items()]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(result: dict) -> str:
    """The evaluation section of BENCHMARKS.md."""
    from jobs.quality.evaluate_nab import PUBLISHED

    lines = [
        "## Evaluation: how often it is right",
        "",
        f"Measured {result['measured_on']} by `{result['command']}` (`python -m jobs.quality.evaluate`): per seed, "
        "a fresh "
        "data set from the generator (the default size: 96 series, 21 days of 15-minute ticks, 12 injected "
        "anomalies), every stage run over it, scored against the generator's ground truth. Precision is the share "
        "of reports that overlap an injected anomaly; delay is from an anomaly's start to its first report.",
        "",
        table(result["seeds"]),
        "",
    ]
    families = result.get("families")
    if families:
        from jobs.quality.evaluate_families import report as families_report

        lines += [
            "Detection over families of series (`python -m jobs.quality.evaluate_families`, seeds "
            f"{', '.join(map(str, families['seeds']))}; false reports per 100 series-days, delay and onset error in "
            "ticks, the NAB-style score with the one shipped threshold):",
            "",
            "```",
            families_report(families),
            "```",
            "",
        ]
    nab = result.get("nab")
    if not nab:
        return "\n".join([*lines, "NAB: not run (`../shared/data/nab/` absent or `--no-nab`).", ""])
    files = [r for r in nab if r["file"] != "(all)"]
    (summary,) = [r for r in nab if r["file"] == "(all)"]
    settings = ", ".join(f"{k} {v}" for k, v in files[0]["detection"].items())
    lines += [
        "NAB standard profile (true positive +1, false positive -0.11, missed window -1; never firing = 0, "
        f"perfect = 100) over the real series of `../shared/data/nab/`, each as one store's sales ({settings}):",
        "",
        "| file | tick | rows | reports | TP | FP | FN | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in files:
        score = "n/a" if r["normalised"] is None else f"{r['normalised']:.1f}"
        lines.append(
            f"| {r['file']} | {r['tick_minutes']} min | {r['rows']:,} | {r['reports']} | {r['tp']} | {r['fp']} | "
            f"{r['fn']} | {score} |"
        )
    mean, pooled = summary["normalised_mean"], summary["normalised_pooled"]
    lines += [
        "",
        f"Mean {mean:.1f}, pooled as NAB pools its corpus {pooled:.1f}. For context only (whole corpus, thresholds "
        "tuned on the labels): " + ", ".join(f"{n} {v:g}" for n, v in PUBLISHED) + ".",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from jobs.lib.spark import build_spark, quiet_logs
    from jobs.quality import evaluate_attribution, evaluate_families, evaluate_nab

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--no-nab", action="store_true", help="skip the NAB series")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "evaluate")
    quiet_logs(spark)
    seeds = []
    for seed in a.seeds:
        print(f"seed {seed}: generating and running every stage ...", flush=True)
        seeds.append(evaluate_attribution.run_seed(spark, cfg, seed))
    rows = [figures(r) for r in seeds]
    print("families: detecting over the generated families and the real series ...", flush=True)
    families = evaluate_families.run(cfg, nab_dir=None if a.no_nab else evaluate_nab.DEFAULT_NAB_DIR)
    families = {k: families[k] for k in ("seeds", "table", "real")}  # per series: too long for the report
    nab = None
    if a.no_nab:
        print("NAB: skipped (--no-nab)")
    elif not evaluate_nab.DEFAULT_NAB_DIR.is_dir():
        print(f"NAB: skipped, {evaluate_nab.DEFAULT_NAB_DIR} not found")
    else:
        nab = evaluate_nab.run(spark, cfg, evaluate_nab.DEFAULT_NAB_DIR)
    spark.stop()
    result = {
        "seeds": rows,
        "mean": mean_row(rows),
        "details": seeds,
        "families": families,
        "nab": nab,
        "measured_on": datetime.now(UTC).strftime("%Y-%m-%d"),  # when it was measured: a report, not data
        "command": "make evaluate",
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(rows))
    print(evaluate_families.report(families))
    if nab:
        print(evaluate_nab.report(nab))


if __name__ == "__main__":
    main()
