"""Demo reset (spec decision 8): make a new run_id the active one by appending to ``demo_run_config``.

Nothing is deleted: earlier runs stay queryable under their own run_id. Re-running with the active
run_id appends nothing.

    spark-submit jobs/stages/run_config.py --config conf/mrs.yaml --run-id demo-002 --written-at 2025-08-25T00:00:00Z
    spark-submit jobs/stages/run_config.py --config conf/mrs.yaml --show
"""

from __future__ import annotations

import argparse

from jobs.lib.config import load_config
from jobs.lib.spark import build_spark
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import parse_ts

# The tables this job appends to: each table has exactly one writer task in the DAG.
WRITES = ("demo_run_config",)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--run-id", help="the run_id to activate (letters, digits, '_', '.', '-')")
    p.add_argument("--written-at", help="logical time of the reset (the DAG run's data interval start)")
    p.add_argument("--show", action="store_true", help="print the active run_id and exit")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    if not a.show and not (a.run_id and a.written_at):
        p.error("--run-id and --written-at are required unless --show is given")
    if a.run_id and not all(c.isalnum() or c in "_.-" for c in a.run_id):
        p.error(f"--run-id {a.run_id!r}: only letters, digits, '_', '.' and '-' are allowed")
    spark = build_spark(cfg, "run_config")
    lake = Lakehouse(spark, cfg)
    if a.show:
        print(lake.active_run_id())
    else:
        changed = lake.reset_run_id(a.run_id, parse_ts(a.written_at, "--written-at"))
        print(f"active run_id: {a.run_id}" + ("" if changed else " (already active; nothing appended)"))
    spark.stop()


if __name__ == "__main__":
    main()
