"""``make demo``: generate data, run ``mrs_pipeline`` through Airflow over the whole range, then
``mrs_cluster_library`` (installs the shipped cluster library into Delta, draws the t-SNE map), and print
detection, attribution, clustering and cohort quality against the generator's ground truth.

Runs on the embedded defaults (Spark local, Delta on local disk, Airflow on SQLite). Running it again
regenerates the same data and adds no rows: every stage is idempotent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd

from jobs import generate_data
from jobs.lib.config import load_config
from jobs.lib.ticks import fmt_ts


def sh(*cmd: str, quiet: bool = False) -> None:
    print("$", " ".join(cmd), flush=True)
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None, env=os.environ.copy())
    if res.returncode:
        sys.exit(f"demo: `{' '.join(cmd)}` failed with exit code {res.returncode}")


def main() -> None:
    cfg = load_config()
    g = cfg.generator
    counts = generate_data.generate(cfg, cfg.paths.landing)
    print(
        f"generated {counts['sales_rows']:,} rows for {counts['series']} series with "
        f"{counts['anomalies']} injected anomalies into {cfg.paths.landing}"
    )
    start = datetime.combine(g.start, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=g.days)
    sh("airflow", "db", "migrate", quiet=True)
    conf = json.dumps({"start": fmt_ts(start), "end": fmt_ts(end)})
    sh("airflow", "dags", "test", "mrs_pipeline", end.isoformat(), "--conf", conf)
    sh("airflow", "dags", "test", "mrs_cluster_library", end.isoformat(), "--conf", json.dumps({"mode": "install"}))
    # The state as it stood three hours into the first competitor stockout (or any anomaly): what analysts saw.
    truth = pd.read_csv(cfg.paths.landing / "ground_truth" / "ground_truth.csv", parse_dates=["start"])
    starts = truth.loc[truth["anomaly_type"] == "competitor_stockout", "start"]
    if len(truth):
        as_of = (starts if len(starts) else truth["start"]).min() + pd.Timedelta(hours=3)
        sh(sys.executable, "-m", "jobs.hydrate_minority_reports", "--as-of", fmt_ts(as_of.to_pydatetime()))
    sh(sys.executable, "-m", "jobs.evaluate_detection")
    sh(sys.executable, "-m", "jobs.evaluate_attribution")
    sh(sys.executable, "-m", "jobs.evaluate_cohorts")
    print(
        f"\nt-SNE map of the reports: {cfg.paths.artifacts}/tsne_<run_id>.png; "
        f"a chart per event: {cfg.paths.artifacts}/events/<run_id>/<event_id>.png\n"
        "Next: `make sql` and try the queries in docs/analyst_queries.md, e.g.\n"
        "  SELECT cohort_name, store_count, round(severity, 2) AS severity, cause_category, event_status\n"
        "  FROM mrs.active_minority_events ORDER BY severity DESC LIMIT 10;\n"
        "or `make airflow` to browse the runs in the Airflow UI."
    )


if __name__ == "__main__":
    main()
