"""Rereview attribution: causes proposed again with the current model, rejected causes left out
(rereview_proposed_attribution_log).

Pending = rereview_clustered_log rows without an attribution row yet. Each is attributed by the attribution
stage's own code (``jobs/stages/propose_cause_for_minority.py``) at the tick of the MRDL snapshot it was clustered from:
that snapshot's report totals, the feeds missing at its tick (``ingest_audit_log``) and the campaign and context
records known by then, so that a rereview with unchanged models and nothing rejected gives the pipeline's answer.
The causes analysts rejected (the worklist's ``rejected_categories``) are not proposed at any rank; the others
keep their confidence. The rows are MRPAL rows plus ``rereview_id``, written at the worklist's T, with the
configured ``model_version``.

    python -m jobs.review.rereview_propose_cause --config conf/mrs.yaml [--run-id R]
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.cli import run_id_main
from jobs.lib.config import Config
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import dates_between
from jobs.review.rereview_cluster_reports import PENDING_COLS, collect_ticks, pending, split_stale, stamp
from jobs.stages.propose_cause_for_minority import attribute, cluster_types

WRITES = ("rereview_proposed_attribution_log",)


def snapshots(clustered: DataFrame, ticks: DataFrame, mrdl: DataFrame, audit: DataFrame, worklist: DataFrame):
    """Rereview clustered rows (those in ``ticks``) -> the attribution stage's input snapshots, at their MRDL
    snapshot's tick: with ``attributed_sales_total``, ``baseline_sales_total``, ``feeds_missing`` and the
    worklist's ``rejected_categories``."""
    at = ticks.select("rereview_id", "snapshot_at")
    rows = clustered.join(at, "rereview_id").withColumns(
        {"written_at": F.col("snapshot_at"), "date": F.to_date("snapshot_at")}
    )
    totals = mrdl.select("report_id", "written_at", "attributed_sales_total", "baseline_sales_total")
    feeds = audit.select(F.col("tick_ts").alias("written_at"), "feeds_missing")
    rejected = worklist.select("rereview_id", "rejected_categories")
    snaps = rows.join(totals, ["report_id", "written_at"], "left").join(feeds, "written_at", "left")
    snaps = snaps.join(rejected, "rereview_id", "left")
    return snaps.fillna(0.0, ["attributed_sales_total", "baseline_sales_total"]).drop("snapshot_at")


def records(lake: Lakehouse, name: str, run_id: str, lo: datetime, end: datetime) -> pd.DataFrame:
    """A feed's records overlapping [lo, end) (reference data: small, collected to the driver)."""
    df = lake.read(name, run_id).where((F.col("start") < F.lit(end)) & (F.col("end") > F.lit(lo)))
    return df.toPandas().sort_values("record_id").reset_index(drop=True)


def propose(snaps: DataFrame, campaigns, context, types: dict, cfg: Config, run_id: str) -> DataFrame:
    """Snapshots (one per pending rereview, ``rereview_id`` included) -> MRPAL rows at the snapshots' ticks, with
    ``rereview_id``.

    ``attribute`` yields rows by report, so two pending rereviews of one report (say, before and after an
    analyst rejected another cause) are attributed in separate passes and each joined back to its own id."""
    w = Window.partitionBy("report_id").orderBy("rereview_id")
    snaps = snaps.withColumn("_pass", F.row_number().over(w))
    passes = snaps.agg(F.max("_pass")).first()[0] or 0
    out = None
    for n in range(1, passes + 1):
        batch = snaps.where(F.col("_pass") == n)
        ids = batch.select("report_id", "rereview_id")
        rows = attribute(batch.drop("_pass"), campaigns, context, types, cfg.attribution, run_id).join(ids, "report_id")
        out = rows if out is None else out.unionByName(rows)
    return out


def run(spark: SparkSession, cfg: Config, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    worklist = lake.read("rereview_worklist_log", run_id)
    clustered = lake.read("rereview_clustered_log", run_id)
    todo = pending(clustered, lake.read("rereview_proposed_attribution_log", run_id)).select(*PENDING_COLS[:4])
    versions = worklist.select("run_id", "rereview_id", *PENDING_COLS[4:])
    now, stale = split_stale(todo.join(versions, ["run_id", "rereview_id"]).select(*PENDING_COLS).collect(), cfg)
    mrdl = lake.read("minority_reports_detected_log", run_id)
    ticks = collect_ticks(spark, now, mrdl)
    if ticks is None:
        return {"rereview_proposed_attribution_log": 0, "stale": stale}
    first, last = ticks.agg(F.min("snapshot_at"), F.max("snapshot_at")).first()
    end = last + timedelta(seconds=cfg.tick_seconds)
    at = dates_between(first, end)
    snaps = snapshots(clustered, ticks, mrdl.where(at), lake.read("ingest_audit_log", run_id).where(at), worklist)
    lo = snaps.agg(F.min("window_start")).first()[0]
    campaigns = records(lake, "all_campaign_data", run_id, lo, end)
    context = records(lake, "contextual_data", run_id, lo, end)
    rows = propose(snaps, campaigns, context, cluster_types(lake, cfg), cfg, run_id)
    table = "rereview_proposed_attribution_log"
    return {table: lake.append_new(table, stamp(rows, ticks, table)), "stale": stale}


def main(argv: list[str] | None = None) -> None:
    run_id_main(__doc__, "rereview_propose_cause", run, argv)


if __name__ == "__main__":
    main()
