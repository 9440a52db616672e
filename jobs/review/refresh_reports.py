"""Bring the derived state up to date after actions taken between ticks (analyst edits, a rereview):
finalise (MRFL), re-hydrate and refresh the protection feed for what those actions touched. The automation
rules are left out: they act on the pipeline's ticks.

Edits and rereview rows carry the data time of the next tick (``Lakehouse.next_tick``); this runs the
finalisation, hydration and protection stages over that one tick, which touches exactly them. The pipeline's
own run of that tick later finds the same rows and adds nothing for them.

    spark-submit jobs/review/refresh_reports.py --config conf/mrs.yaml [--run-id demo-001]
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import SparkSession

from jobs.lib.cli import run_id_main
from jobs.lib.config import Config
from jobs.lib.tables import Lakehouse
from jobs.stages import build_minority_reports_finalised_log_from_edits as finalisation
from jobs.stages import build_protection_feed, hydrate_minority_reports

WRITES = (
    "minority_reports_finalised_log",
    "minority_reports",
    "minority_events_log",
    *build_protection_feed.WRITES,
)


def run(spark: SparkSession, cfg: Config, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    start = lake.next_tick(run_id)
    end = start + timedelta(seconds=cfg.tick_seconds)
    return {
        "at": start.isoformat(),
        "minority_reports_finalised_log": finalisation.finalise_range(spark, cfg, start, end, run_id),
        **hydrate_minority_reports.run(spark, cfg, start, end, run_id),
        **build_protection_feed.run(spark, cfg, start, end, run_id),
    }


def main(argv: list[str] | None = None) -> None:
    run_id_main(__doc__, "refresh_reports", run, argv)


if __name__ == "__main__":
    main()
