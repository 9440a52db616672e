"""Event charts: one PNG per Minority Event, at the path its ``minority_events_log.chart_path`` names.

Actual units against the baseline for the event's stores (summed over their anomalous series), a few hours
either side of the event, its window shaded and its cause in the title. The events drawn are those whose
hydrated row was rewritten in the run's interval [start, end), so each chart shows the event as hydrated.
Files for people, not a table: drawing the same event again overwrites the same file with the same picture.

    spark-submit jobs/stages/render_event_charts.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import dates_between

WRITES: tuple[str, ...] = ()  # PNG files only
PAD = timedelta(hours=3)  # context either side of the window
MAX_LINES = 6  # stores drawn one by one; more are drawn as their total


def chart_frames(events: DataFrame, reports: DataFrame, baseline: DataFrame, end: datetime) -> DataFrame:
    """Per event, store and tick around the event: actual and baseline units over its anomalous series."""
    members = reports.select(F.col("report_group_id").alias("event_id"), "series_key").distinct()
    ev = events.select(
        "event_id",
        (F.col("window_start") - F.expr(f"INTERVAL {int(PAD.total_seconds())} SECONDS")).alias("_lo"),
        F.least(
            F.coalesce(F.col("window_end"), F.lit(end)) + F.expr(f"INTERVAL {int(PAD.total_seconds())} SECONDS"),
            F.lit(end),
        ).alias("_hi"),
    )
    rows = ev.join(members, "event_id").join(baseline, "series_key")
    rows = rows.where((F.col("ts") >= F.col("_lo")) & (F.col("ts") < F.col("_hi")))
    return rows.groupBy("event_id", "store_id", "ts").agg(
        F.sum("actual_units").alias("actual"), F.sum("baseline_units").alias("baseline")
    )


def draw(event: pd.Series, data: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a scheduler or an executor host
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    stores = sorted(data["store_id"].unique())
    if len(stores) > MAX_LINES:
        data = data.groupby("ts", as_index=False)[["actual", "baseline"]].sum(min_count=1)
        data["store_id"] = f"{len(stores)} stores"
        stores = [data["store_id"].iloc[0]]
    cmap = plt.get_cmap("tab10")
    for i, store in enumerate(stores):
        d = data[data["store_id"] == store].sort_values("ts")
        ax.plot(d["ts"], d["actual"], color=cmap(i % 10), lw=1.6, label=f"{store} actual")
        ax.plot(d["ts"], d["baseline"], color=cmap(i % 10), lw=1.0, ls="--", label=f"{store} baseline")
    end = event["window_end"] if pd.notna(event["window_end"]) else data["ts"].max()
    ax.axvspan(event["window_start"], end, color="orange", alpha=0.15, label="event window")
    cause = event["cause_category"] or "no cause yet"
    conf = f", confidence {event['confidence_score']:.2f}" if pd.notna(event["confidence_score"]) else ""
    ax.set_title(
        f"{event['cohort_name']}\n{cause}{conf} · {event['event_status']} · {event['event_id'][:15]}…", fontsize=10
    )
    ax.set_ylabel("units per tick")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(spark: SparkSession, cfg, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    events = lake.read("minority_events_log", run_id).where(
        (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end)) & F.col("chart_path").isNotNull()
    )
    lo = events.agg(F.min("window_start")).first()[0]
    if lo is None:
        return {"charts": 0}
    reports = lake.read("minority_reports", run_id).join(
        events.select(F.col("event_id").alias("report_group_id")), "report_group_id", "left_semi"
    )
    baseline = (
        lake.read("baseline_sales_model_prediction_log", run_id)
        .where(dates_between(lo - PAD, end))
        .select("series_key", "store_id", "ts", "actual_units", "baseline_units")
    )
    # Bounded: only the drawn events' series, a few hours either side of each; small enough for the driver.
    data = chart_frames(events, reports, baseline, end).toPandas()
    meta = events.select(
        "event_id",
        "cohort_name",
        "cause_category",
        "confidence_score",
        "event_status",
        "window_start",
        "window_end",
        "chart_path",
    ).toPandas()
    drawn = 0
    for ev in meta.sort_values("event_id").itertuples(index=False):
        d = data[data["event_id"] == ev.event_id]
        if not d.empty:
            draw(pd.Series(ev._asdict()), d, Path(ev.chart_path))
            drawn += 1
    return {"charts": drawn}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "render_event_charts", run, argv)


if __name__ == "__main__":
    main()
