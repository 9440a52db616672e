"""Rereview clustering: the worklist's reports clustered again with the current library (rereview_clustered_log).

Pending = worklist rows without a rereview_clustered_log row, so a retried or repeated run picks up exactly what
is left. Each pending report's input is its latest MRDL snapshot before the worklist's T, run through the
clustering stage's own code (``jobs/stages/cluster_minority_report.py``: the same slice, neighbourhood and price
history, causal at the snapshot's tick) and matched against the configured library version. The rows are MRCL
rows plus ``rereview_id``, written at the worklist's T.

Worklist rows that name other versions than the configured ones are left alone (counted as ``stale``): the next
worklist run picks their reports again under the current versions.

    python -m jobs.review.rereview_cluster_reports --config conf/mrs.yaml [--run-id R]
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import run_id_main
from jobs.lib.config import Config
from jobs.lib.tables import TABLES, Lakehouse, conform
from jobs.lib.ticks import dates_between
from jobs.stages.cluster_minority_report import cluster, load_library, read_inputs, report_prices

WRITES = ("rereview_clustered_log",)
PENDING_COLS = ["rereview_id", "run_id", "report_id", "written_at", "library_version", "attribution_model_version"]
TICK_COLS = ["rereview_id", "run_id", "report_id", "rereview_at", "snapshot_at"]
TICK_SCHEMA = "rereview_id string, run_id string, report_id string, rereview_at timestamp, snapshot_at timestamp"


def pending(todo: DataFrame, done: DataFrame) -> DataFrame:
    """The rows of ``todo`` whose rereview_id has no row in ``done`` yet (both for one run_id or several)."""
    return todo.join(done.select("run_id", "rereview_id"), ["run_id", "rereview_id"], "left_anti")


def split_stale(rows: list[Row], cfg: Config) -> tuple[list[Row], int]:
    """Pending rows (with the worklist's versions) -> those to rereview with the configured library and
    attribution model, and how many name other versions."""
    target = (cfg.clustering.library_version, cfg.attribution.model_version)
    now = [r for r in rows if (r.library_version, r.attribution_model_version) == target]
    return now, len(rows) - len(now)


def snapshot_ticks(todo: DataFrame, mrdl: DataFrame) -> DataFrame:
    """Rows with ``rereview_id``, ``run_id``, ``report_id`` and ``written_at`` (their T) -> each with the tick of
    its report's latest MRDL snapshot before T (``snapshot_at``; T becomes ``rereview_at``)."""
    todo = todo.select("rereview_id", "run_id", "report_id", F.col("written_at").alias("rereview_at"))
    snaps = mrdl.select("run_id", "report_id", F.col("written_at").alias("snapshot_at"))
    ticks = todo.join(snaps, ["run_id", "report_id"]).where(F.col("snapshot_at") < F.col("rereview_at"))
    latest_tick = F.max("snapshot_at").alias("snapshot_at")
    return ticks.groupBy("rereview_id", "run_id", "report_id", "rereview_at").agg(latest_tick)


def collect_ticks(spark: SparkSession, todo: list[Row], mrdl: DataFrame) -> DataFrame | None:
    """``snapshot_ticks`` of pending rows, materialised (one small row per rereview); None when there are none.

    A pending report without any snapshot is an inconsistency between MRFL and MRDL: refused by name."""
    if not todo:
        return None
    schema = "rereview_id string, run_id string, report_id string, written_at timestamp"
    todo = spark.createDataFrame([tuple(r[c] for c in PENDING_COLS[:4]) for r in todo], schema)
    ticks = snapshot_ticks(todo, mrdl.join(todo.select("run_id", "report_id").distinct(), ["run_id", "report_id"]))
    rows = ticks.select(*TICK_COLS).collect()
    missing = sorted({r.report_id for r in todo.collect()} - {r.report_id for r in rows})
    if missing:
        raise ValueError(
            f"rereview: report(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} have no "
            "minority_reports_detected_log snapshot before the rereview's tick"
        )
    return spark.createDataFrame(rows, TICK_SCHEMA)


def stamp(rows: DataFrame, ticks: DataFrame, table: str) -> DataFrame:
    """Model rows written at each snapshot's tick -> one row per pending rereview, written at its T.

    Rows that carry their ``rereview_id`` keep it; others (one per snapshot) go to every rereview of it."""
    keyed = rows.withColumnRenamed("written_at", "snapshot_at").drop("date")
    if "rereview_id" in rows.columns:
        joined = keyed.join(ticks.select("rereview_id", "rereview_at"), "rereview_id")
    else:
        ticks = ticks.select("rereview_id", "report_id", "snapshot_at", "rereview_at")
        joined = keyed.join(ticks, ["report_id", "snapshot_at"])
    out = joined.withColumns({"written_at": F.col("rereview_at"), "date": F.to_date("rereview_at")})
    return conform(out, TABLES[table].schema)


def run(spark: SparkSession, cfg: Config, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    todo = pending(lake.read("rereview_worklist_log", run_id), lake.read("rereview_clustered_log", run_id))
    now, stale = split_stale(todo.select(*PENDING_COLS).collect(), cfg)
    mrdl = lake.read("minority_reports_detected_log", run_id)
    ticks = collect_ticks(spark, now, mrdl)
    if ticks is None:
        return {"rereview_clustered_log": 0, "stale": stale}
    lo, hi = ticks.agg(F.min("snapshot_at"), F.max("snapshot_at")).first()
    end = hi + timedelta(seconds=cfg.tick_seconds)
    at = ticks.select("report_id", F.col("snapshot_at").alias("written_at")).distinct()
    snaps = mrdl.where(dates_between(lo, end)).join(at, ["report_id", "written_at"])
    # The clustering stage's interval, up to the latest snapshot's tick (start is not read when snaps are given).
    inputs = read_inputs(lake, cfg, run_id, lo, end, snaps=snaps)
    prices, _ = report_prices(lake, cfg, run_id, snaps)  # stored by the clustering stage
    mrcl = cluster(*inputs, prices, load_library(lake, cfg), cfg, run_id)
    written = lake.append_new("rereview_clustered_log", stamp(mrcl, ticks, "rereview_clustered_log"))
    return {"rereview_clustered_log": written, "stale": stale}


def main(argv: list[str] | None = None) -> None:
    run_id_main(__doc__, "rereview_cluster_reports", run, argv)


if __name__ == "__main__":
    main()
