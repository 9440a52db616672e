"""Cohort quality against the generator's ground truth: does each injected anomaly become exactly one event?

Each hydrated report (``minority_reports``: its current event) is labelled with the injected anomaly it
overlaps most (same series, overlapping window). An injected anomaly that at least one report found is
**right** when all its reports sit in one event and that event holds no report of another injected anomaly:
no split, no merge (reports that match no injected anomaly do not count against it).

The headline figure is over the anomalies spanning more than one store (they need shared-cause cohorts);
the figure over every found anomaly is printed too.

    python -m jobs.quality.evaluate_cohorts [--run-id RUN] [--json]
    python -m jobs.quality.evaluate_attribution --seeds 202 303 --check   # prints these figures for fresh seeds too
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
from pyspark.sql import SparkSession

from jobs.lib.config import Config, load_config
from jobs.lib.labels import label_reports, read_truth
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import Lakehouse

TARGET = 0.90  # issue 4: multi-store anomalies that become exactly one event


def evaluate(reports: pd.DataFrame, truth: pd.DataFrame, tick_seconds: int) -> dict:
    """Figures from the hydrated reports (report_id, series_key, window_start/end, written_at,
    report_group_id) and the ground truth."""
    reports = reports.sort_values("report_id").reset_index(drop=True)
    reports["anomaly_id"] = label_reports(reports, truth, tick_seconds, "anomaly_id")
    found = reports[reports["anomaly_id"].notna()]
    stores = truth.groupby("anomaly_id")["store_id"].nunique()
    kinds = truth.groupby("anomaly_id")["anomaly_type"].first()
    anomalies_of_event = found.groupby("report_group_id")["anomaly_id"].agg(lambda s: sorted(set(s)))
    rows = []
    for aid, g in found.groupby("anomaly_id"):
        events = sorted(g["report_group_id"].dropna().unique())
        others = sorted({o for e in events for o in anomalies_of_event.get(e, []) if o != aid})
        verdict = "split" if len(events) > 1 else "merged" if others else "right"
        rows.append(
            {
                "anomaly_id": aid,
                "anomaly_type": kinds[aid],
                "stores": int(stores[aid]),
                "reports": len(g),
                "events": len(events),
                "verdict": verdict,
                "merged_with": others,
            }
        )
    per = pd.DataFrame(rows, columns=["anomaly_id", "anomaly_type", "stores", "reports", "events", "verdict"])
    multi = per[per["stores"] > 1]

    def share(df: pd.DataFrame) -> float | None:
        return round(float((df["verdict"] == "right").mean()), 4) if len(df) else None

    return {
        "reports": len(reports),
        "events": int(reports["report_group_id"].nunique()),
        "multi_store_anomalies": len(multi),
        "multi_store_right": int((multi["verdict"] == "right").sum()),
        "event_accuracy": share(multi),
        "all_anomalies": len(per),
        "all_right": int((per["verdict"] == "right").sum()),
        "event_accuracy_all": share(per),
        "wrong": [r for r in rows if r["verdict"] != "right"],
    }


def run_evaluation(spark: SparkSession, cfg: Config, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    truth = read_truth(cfg.paths.landing / "ground_truth" / "ground_truth.csv")
    cols = ["report_id", "series_key", "window_start", "window_end", "written_at", "report_group_id"]
    pdf = lake.read("minority_reports", run_id).select(*cols).toPandas()
    for c in ("window_start", "window_end", "written_at"):
        pdf[c] = pd.to_datetime(pdf[c])
    result = evaluate(pdf, truth, cfg.tick_seconds)
    result["run_id"] = run_id
    return result


def report(r: dict) -> str:
    if not r.get("all_anomalies"):
        return f"Cohorts (run_id {r.get('run_id')}): no report matched an injected anomaly"
    lines = [
        f"Cohort quality (run_id {r['run_id']}): {r['reports']} reports in {r['events']} events",
        f"  multi-store anomalies as exactly one event: {r['multi_store_right']} of {r['multi_store_anomalies']}"
        + (f" ({r['event_accuracy']:.1%})" if r["event_accuracy"] is not None else ""),
        f"  every found anomaly as exactly one event:   {r['all_right']} of {r['all_anomalies']}"
        f" ({r['event_accuracy_all']:.1%})",
    ]
    for w in r["wrong"]:
        extra = f" with {', '.join(w['merged_with'])}" if w["merged_with"] else f" into {w['events']} events"
        lines.append(f"    {w['anomaly_id']} ({w['stores']} stores, {w['reports']} reports): {w['verdict']}{extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--run-id", help="run to evaluate (default: the active one)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "evaluate_cohorts")
    quiet_logs(spark)
    result = run_evaluation(spark, cfg, a.run_id)
    spark.stop()
    print(json.dumps(result, indent=2, default=str) if a.json else report(result))


if __name__ == "__main__":
    main()
