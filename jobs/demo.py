"""``make demo``: generate data, run ``mrs_pipeline`` through Airflow over the whole range, then
``mrs_cluster_library`` (installs the shipped cluster library into Delta, draws the t-SNE map), and print
detection, attribution and clustering quality against the generator's ground truth.

Runs on the embedded defaults (Spark local, Delta on local disk, Airflow on SQLite). Running it again
regenerates the same data and adds no rows: every stage is idempotent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

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
    sh(sys.executable, "-m", "jobs.evaluate_detection")
    sh(sys.executable, "-m", "jobs.evaluate_attribution")
    print(
        f"\nt-SNE map of the reports: {cfg.paths.artifacts}/tsne_<run_id>.png\n"
        "Next: `make sql` and try\n"
        "  SELECT report_id, store_id, sku, cluster_name, proposed_cause, confidence_tier\n"
        "  FROM mrs.minority_reports_proposed_attribution_log WHERE report_status = 'ended' LIMIT 10;\n"
        "or `make airflow` to browse the runs in the Airflow UI."
    )


if __name__ == "__main__":
    main()
