"""Argument parsing shared by the jobs: ``--config --start --end`` for one data interval (stages),
``--start --end`` or ``--full`` (derived tables), or just ``--config --run-id`` (edits' and rereview's jobs)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.lib.config import Config, load_config
from jobs.lib.ticks import check_interval, parse_ts


@dataclass(frozen=True)
class StageArgs:
    cfg: Config
    start: datetime
    end: datetime
    run_id: str | None


def parse_stage_args(description: str, argv: list[str] | None = None) -> StageArgs:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--start", required=True, help="data interval start, ISO-8601 UTC (inclusive)")
    p.add_argument("--end", required=True, help="data interval end, ISO-8601 UTC (exclusive)")
    p.add_argument("--run-id", help="run_id to write under (default: the active one in demo_run_config)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    try:
        start, end = parse_ts(a.start, "--start"), parse_ts(a.end, "--end")
        check_interval(start, end, cfg.tick_seconds)
    except ValueError as e:
        p.error(str(e))
    return StageArgs(cfg, start, end, a.run_id)


def stage_main(doc: str, app: str, run: Callable, argv: list[str] | None = None) -> None:
    """A stage job's ``main``: parse ``--config --start --end``, build the session, run, report, stop."""
    from jobs.lib.spark import build_spark  # pyspark only where a session is built

    a = parse_stage_args(doc.split("\n\n")[0], argv)
    spark = build_spark(a.cfg, app)
    result = run(spark, a.cfg, a.start, a.end, a.run_id)
    print(f"{app} {a.start:%Y-%m-%dT%H:%MZ} .. {a.end:%Y-%m-%dT%H:%MZ}: {result}")
    spark.stop()


def range_or_full(p: argparse.ArgumentParser, a: argparse.Namespace, cfg: Config) -> tuple[datetime | None, datetime]:
    """For derived tables: ``--start/--end`` rewrites the keys an interval touched; ``--full [--end]`` all keys
    (start None). Errors go through the parser, naming the flag."""
    try:
        if a.full:
            if getattr(a, "start", None):
                p.error("--full rebuilds every key: give no --start")
            return None, parse_ts(a.end, "--end") if a.end else datetime(9999, 1, 1, tzinfo=UTC)
        if not (a.start and a.end):
            p.error("give --start and --end (a data interval), or --full")
        start, end = parse_ts(a.start, "--start"), parse_ts(a.end, "--end")
        check_interval(start, end, cfg.tick_seconds)
        return start, end
    except ValueError as e:
        p.error(str(e))


def run_id_main(doc: str, app: str, run: Callable, argv: list[str] | None = None) -> None:
    """A job's ``main`` when it takes only ``--config`` and ``--run-id`` (it works at the next tick)."""
    from jobs.lib.spark import build_spark

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--run-id", help="run_id to work on (default: the active one in demo_run_config)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, app)
    print(f"{app}: {run(spark, cfg, a.run_id)}")
    spark.stop()
