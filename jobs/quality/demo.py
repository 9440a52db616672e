"""``make demo``: the whole loop on the embedded defaults (Spark local, Delta on local disk, Airflow on SQLite).

1. generate data; run ``mrs_pipeline`` through Airflow over the whole range (anomalies found, causes proposed,
   events formed, weekend mode confirming what it may, alerts emailed to a local mailbox, the protection feed,
   health checks); install the cluster library and draw the t-SNE map (``mrs_cluster_library``);
2. an analyst's turn through ``mrs_analyst_edit``: reject the top report of the review queue, correct and confirm
   the next, rename its event; then ``mrs_rereview`` re-proposes the rejected report's cause;
3. print detection, attribution and cohort quality against the generator's ground truth, and a summary;
4. a demo reset: ``mrs_pipeline``'s reset task makes ``demo-002`` active while ``demo-001`` stays queryable;
   the demo prints both, then resets back to ``demo-001`` so that ``make sql`` shows the loop above.

Running it again regenerates the same data and adds no rows to any table but ``demo_run_config`` (two resets
each time: resets are the one thing that append).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pandas as pd

from jobs.lib.config import load_config
from jobs.lib.names import WRITER_POOL
from jobs.lib.ticks import fmt_ts
from jobs.quality import generate_data
from jobs.runtime import mailbox, spark_server

RESET_RUN_ID = "demo-002"


def sh(*cmd: str, quiet: bool = False) -> None:
    print("$", " ".join(cmd), flush=True)
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL if quiet else None, env=os.environ.copy())
    if res.returncode:
        sys.exit(f"demo: `{' '.join(cmd)}` failed with exit code {res.returncode}")


def dag(dag_id: str, logical_date: datetime, **conf) -> None:
    sh("airflow", "dags", "test", dag_id, logical_date.isoformat(), "--conf", json.dumps(conf))


def pick_edits(spark, cfg, run_id: str) -> tuple:
    """The review queue's top report (to reject) and the next one with an event (to correct and confirm)."""
    from jobs.lib.tables import Lakehouse

    reports = Lakehouse(spark, cfg).read("minority_reports", run_id)
    queue = reports.where("review_status = 'proposed' AND report_status = 'ended' AND report_group_id IS NOT NULL")
    top = queue.orderBy(queue.severity.desc(), "report_id").limit(2).collect()
    return tuple(top)


def summary(spark, cfg, run_id: str, box) -> str:
    from pyspark.sql import functions as F

    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    events = lake.read("minority_events_log", run_id).where("event_status != 'merged'")
    causes = events.groupBy("cause_category").count().orderBy(F.desc("count"), "cause_category").collect()
    reports = lake.read("minority_reports", run_id)
    statuses = {r.review_status: r["count"] for r in reports.groupBy("review_status").count().collect()}
    alerts = lake.read("ui_notifications_log", run_id)
    protected = lake.read("protection_feed", run_id).agg(
        F.count("*").alias("rows"), F.sum("anomalous_units").alias("units"), F.sum("anomalous_revenue").alias("rev")
    )
    p = protected.first()
    health = {
        r.health_status: r["count"]
        for r in lake.read("pipeline_health_log", run_id).groupBy("health_status").count().collect()
    }
    rereviewed = lake.read("rereview_proposed_attribution_log", run_id).count()
    analyst_edits = lake.read("user_edits_log", run_id).where(~F.col("author").startswith("automation:")).count()
    event_edits = lake.read("user_minority_events_edits_log", run_id).count()
    lines = [
        f"Summary of run {run_id}",
        f"  events found:       {events.count()} from {reports.count()} reports",
        "  causes:             " + ", ".join(f"{r.cause_category} {r['count']}" for r in causes),
        "  review:             " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        f"  analyst edits:      {analyst_edits} report edits, {event_edits} event edits",
        f"  rereviewed:         {rereviewed} reports",
        f"  alerts sent:        {alerts.count()} notifications ({alerts.select('event_id').distinct().count()} events),"
        f" {len(mailbox.messages(box))} emails in {box}",
        f"  rows protected:     {p['rows']} store x SKU x tick rows, {p['units'] or 0:,.0f} units,"
        f" {p['rev'] or 0:,.0f} revenue kept from campaign credit",
        "  pipeline health:    " + ", ".join(f"{k} {v}" for k, v in sorted(health.items())),
    ]
    return "\n".join(lines)


def main() -> None:
    cfg = load_config()
    g = cfg.generator
    run_id = cfg.pipeline.default_run_id
    counts = generate_data.generate(cfg, cfg.paths.landing)
    print(
        f"generated {counts['sales_rows']:,} rows for {counts['series']} series with "
        f"{counts['anomalies']} injected anomalies into {cfg.paths.landing}"
    )
    start = datetime.combine(g.start, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=g.days)
    box = cfg.paths.lakehouse.parent / "mailbox"
    with ExitStack() as stack:
        server = mailbox.start(box)
        stack.callback(server.stop)
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = mailbox.smtp_connection(server.port)
        # One warm Spark session for the whole demo: every task and job is its Spark Connect client.
        url = stack.enter_context(spark_server.local_server())
        os.environ["SPARK_REMOTE"] = url
        os.environ["AIRFLOW_CONN_MRS_SPARK"] = spark_server.airflow_connection(url)
        sh("airflow", "db", "migrate", quiet=True)
        sh("airflow", "pools", "set", WRITER_POOL, "1", "one writer of the Delta lakehouse at a time", quiet=True)
        # 1. The pipeline over the whole range (back on the demo's run_id if an earlier demo reset it).
        dag("mrs_pipeline", end, start=fmt_ts(start), end=fmt_ts(end), reset_run_id=run_id)
        dag("mrs_cluster_library", end, mode="install")
        # The state as it stood three hours into the first competitor stockout (or any anomaly).
        truth = pd.read_csv(cfg.paths.landing / "ground_truth" / "ground_truth.csv", parse_dates=["start"])
        starts = truth.loc[truth["anomaly_type"] == "competitor_stockout", "start"]
        if len(truth):
            as_of = (starts if len(starts) else truth["start"]).min() + pd.Timedelta(hours=3)
            sh(sys.executable, "-m", "jobs.stages.hydrate_minority_reports", "--as-of", fmt_ts(as_of.to_pydatetime()))

        # 2. The analyst's turn, then the rereview.
        from jobs.lib.spark import build_spark

        spark = build_spark(cfg, "demo")
        picks = pick_edits(spark, cfg, run_id)
        if len(picks) == 2:
            rejected, fixed = picks
            print(f"\nanalyst: rejects {rejected.report_id} ({rejected.proposed_cause_category}); corrects "
                  f"{fixed.report_id} to {fixed.proposed_cause_category_2} and renames its event")  # fmt: skip
            dag("mrs_analyst_edit", end + timedelta(hours=1), kind="report", target_id=rejected.report_id,
                author="analyst.alice", decision="reject", reason="the store reported no such trend")  # fmt: skip
            dag("mrs_analyst_edit", end + timedelta(hours=2), kind="report", target_id=fixed.report_id,
                author="analyst.bob", cause=fixed.proposed_cause_category_2, decision="confirm",
                reason="the runner-up fits the store's story", evidence="store manager called")  # fmt: skip
            dag("mrs_analyst_edit", end + timedelta(hours=3), kind="event", target_id=fixed.report_group_id,
                author="analyst.bob", cohort_name=f"Reviewed: {fixed.cohort_name}", decision="confirm")  # fmt: skip
        dag("mrs_rereview", end + timedelta(hours=4))

        # 3. Quality against the ground truth, and what the loop did.
        sh(sys.executable, "-m", "jobs.quality.evaluate_detection")
        sh(sys.executable, "-m", "jobs.quality.evaluate_attribution")
        sh(sys.executable, "-m", "jobs.quality.evaluate_cohorts")
        print("\n" + summary(spark, cfg, run_id, box))

        # 4. A demo reset (the pipeline's reset task alone: the next pipeline runs would fill demo-002), the
        # before/after comparison, and back to the demo's run so that `make sql` shows the loop above.
        # Runs of their own (a logical date no other run has), so that the task takes these params.
        reset(end + timedelta(days=1), RESET_RUN_ID)
        print("\n" + compare_runs(spark, cfg))
        reset(end + timedelta(days=1, minutes=cfg.pipeline.tick_minutes), run_id)
        spark.stop()
    print(
        f"\nt-SNE map: {cfg.paths.artifacts}/tsne_<run_id>.png; event charts: {cfg.paths.artifacts}/events/<run_id>/\n"
        "Next: `make sql` and the queries in docs/analyst_queries.md, or `make airflow` for the UI."
    )


def reset(at: datetime, run_id: str) -> None:
    sh("airflow", "tasks", "test", "mrs_pipeline", "reset_run_id", at.isoformat(),
       "--task-params", json.dumps({"reset_run_id": run_id}), quiet=True)  # fmt: skip


def compare_runs(spark, cfg) -> str:
    """What a reset changes: the active run_id, and every run's rows still there."""
    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    counts = lake.read("minority_reports").groupBy("run_id").count().orderBy("run_id").collect()
    active = lake.active_run_id()
    lines = [f"Demo reset: {active} is now the active run_id (every read path and view uses it)."]
    lines += [f"  {r.run_id}: {r['count']} reports" for r in counts] or ["  (no reports yet)"]
    if active not in {r.run_id for r in counts}:
        lines.append(f"  {active}: 0 reports (its pipeline runs have not started)")
    lines.append("  SELECT run_id, count(*) AS reports FROM mrs.minority_reports GROUP BY run_id;  -- the same in SQL")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
