"""Pipeline health: one ``pipeline_health_log`` row per pipeline run, saying whether its data can be trusted.

For the run's interval [start, end) it measures (spec note 004 section 8, "observability"):

- **freshness**: ``latest_tick_seen``, the newest tick before ``end`` at which ingest accepted sales rows, and
  ``freshness_lag_minutes`` = end - (that tick + one tick). Ingest writes an audit row for every tick, also for a
  tick without input (``rows_accepted`` 0, ``is_degraded``), so the newest *audit* tick says nothing about data:
  the newest tick with accepted rows does;
- **coverage**: the share of expected series x ticks that have a ``sales_timeseries_data`` row, where the expected
  series are those with data in the ``health.expected_series_days`` days before the interval (the interval's own
  series when there are none, e.g. on the first day);
- **error rate**: quarantined / read rows over the interval's ``ingest_audit_log`` ticks;
- **rows written**: per table the pipeline's stages write, the run's rows whose ``written_at`` falls in the
  interval.

``health_status`` is ``stale`` with no data at all or a lag above ``health.max_lag_minutes``; otherwise
``degraded`` with coverage below ``health.min_coverage``, an error rate above ``health.max_error_rate`` or an
ingest tick without input; otherwise ``ok``. ``problems`` names each failed check. The row is keyed by
(run_id, interval_start, interval_end) and written with ``append_new``: re-running the run adds nothing.
``send_alerts`` mails the rows that are not ok to the subscribers with ``health: true``.

    spark-submit jobs/stages/check_pipeline_health.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config, Health
from jobs.lib.tables import TABLES, Lakehouse, union_all
from jobs.lib.ticks import dates_between, fmt_ts, parse_ts, ticks
from schemas.mrs import PIPELINE_HEALTH_LOG

WRITES = ("pipeline_health_log",)
# Not counted in rows_written: point-in-time rebuilds on demand, and the outputs of the checks themselves.
MAX_LISTED_TICKS = 5  # degraded ticks named in a problem; the count says how many there are


def counted_tables() -> list[str]:
    """The tables whose rows per interval ``rows_written`` reports: those the pipeline's stages write.

    Not the other DAGs' (edits, rereviews, libraries): they are not this run's work, and each table counted
    costs the check a Delta scan (~0.25 s)."""
    written = {name for stage in upstream() for name in stage.WRITES}
    return [
        name
        for name, t in TABLES.items()
        if name in written and "run_id" in t.schema.fieldNames() and not name.endswith("_as_of")
    ]


def upstream() -> tuple:
    """The stages that run before this one in ``mrs_pipeline``, in DAG order (a test holds it to the range
    runner's ``STAGES``). Imported when asked: a task that only checks health need not load every stage."""
    from jobs.stages import (
        build_minority_report_cohorts,
        build_minority_reports_finalised_log_from_edits,
        build_protection_feed,
        cluster_minority_report,
        detect_anomalies,
        hydrate_minority_reports,
        ingest,
        propose_cause_for_minority,
        render_event_charts,
    )

    return (
        ingest,
        detect_anomalies,
        cluster_minority_report,
        propose_cause_for_minority,
        build_minority_report_cohorts,
        build_minority_reports_finalised_log_from_edits,
        hydrate_minority_reports,
        render_event_charts,
        build_protection_feed,
    )


def _time_column(name: str) -> str:
    cols = TABLES[name].schema.fieldNames()
    return "written_at" if "written_at" in cols else "ts"


def rows_written(lake: Lakehouse, run_id: str, start: datetime, end: datetime) -> DataFrame:
    """(table, rows): each counted table's rows of the run written in [start, end), 0 for none or no table."""
    spark = lake.spark
    parts = []
    for name in counted_tables():
        df = lake.read(name, run_id)  # a table not created yet reads as empty
        if "date" in TABLES[name].partition_by:
            df = df.where(dates_between(start, end))
        col = F.col(_time_column(name))
        parts.append(df.where((col >= F.lit(start)) & (col < F.lit(end))).select(F.lit(name).alias("table")))
    found = spark.createDataFrame([], "table string, rows long")
    if parts:
        found = union_all(parts).groupBy("table").agg(F.count(F.lit(1)).alias("rows"))
    zeros = spark.createDataFrame([(n,) for n in counted_tables()], "table string")
    return zeros.join(found, "table", "left").select("table", F.coalesce("rows", F.lit(0)).cast("long").alias("rows"))


def _fmt(value: float, bound: float) -> str:
    """A measure beside the bound it failed, with as many decimals as it takes to tell them apart."""
    for digits in range(2, 7):
        s = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        if float(s) != bound:
            return s
    return repr(value)


def assess(measures: dict, health: Health) -> tuple[str, list[str]]:
    """(health_status, problems) of one interval's measures; problems name every failed check, worst first."""
    problems, stale, degraded = [], False, False
    if measures["latest_tick_seen"] is None:
        stale = True
        problems.append("no sales data for this run yet")
    elif measures["freshness_lag_minutes"] > health.max_lag_minutes:
        stale = True
        lag = measures["freshness_lag_minutes"]
        problems.append(
            f"freshness lag {lag:g} minutes above {health.max_lag_minutes:g} "
            f"(newest data at {fmt_ts(measures['latest_tick_seen'])})"
        )
    if measures["coverage"] < health.min_coverage:
        degraded = True
        problems.append(f"coverage {_fmt(measures['coverage'], health.min_coverage)} below {health.min_coverage:g}")
    if measures["error_rate"] > health.max_error_rate:
        degraded = True
        rate = _fmt(measures["error_rate"], health.max_error_rate)
        problems.append(
            f"error rate {rate} above {health.max_error_rate:g} "
            f"({measures['rows_quarantined']} of {measures['rows_read']} rows quarantined)"
        )
    empty = measures["degraded_ticks"]
    if empty:
        listed = ", ".join(fmt_ts(t) for t in empty[:MAX_LISTED_TICKS]) + (
            ", ..." if len(empty) > MAX_LISTED_TICKS else ""
        )
        degraded = True
        problems.append(f"{len(empty)} ingest tick(s) without input: {listed}")
    return ("stale" if stale else "degraded" if degraded else "ok"), problems


def health_row(
    audit: DataFrame,
    sales: DataFrame,
    written: DataFrame,
    run_id: str,
    start: datetime,
    end: datetime,
    health: Health,
    tick_seconds: int,
) -> DataFrame:
    """The interval's health row (schema PIPELINE_HEALTH_LOG).

    ``audit``: the run's ``ingest_audit_log`` rows (any ticks: those at or after ``end`` are ignored);
    ``sales``: its ``sales_timeseries_data`` rows (only ``series_key`` and ``ts`` are used) from the lookback
    before ``start`` on; ``written``: (table, rows) as ``rows_written`` gives it.
    """
    start, end = parse_ts(start), parse_ts(end)
    step = timedelta(seconds=tick_seconds)
    lookback = start - timedelta(days=health.expected_series_days)
    n_ticks = len(ticks(start, end, tick_seconds))
    in_interval = (F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end))

    audit = audit.where(F.col("tick_ts") < F.lit(end))
    latest = audit.where(F.col("rows_accepted") > 0).agg(F.max("tick_ts")).first()[0]
    ia = (
        audit.where(F.col("tick_ts") >= F.lit(start))
        .agg(
            F.sum("rows_read").alias("read"),
            F.sum("rows_quarantined").alias("quarantined"),
            F.sort_array(F.collect_list(F.when(F.col("is_degraded"), F.col("tick_ts")))).alias("degraded"),
        )
        .first()
    )
    points = sales.select("series_key", "ts")
    before = points.where((F.col("ts") >= F.lit(lookback)) & (F.col("ts") < F.lit(start)))
    # Materialised: counted, then joined; computing it scans the lookback's sales (7 days: 1.2 s at scale M).
    expected = before.select("series_key").distinct().withColumn("_expected", F.lit(1)).localCheckpoint()
    n_expected = expected.count()
    # A point is one row: the table's key is (run_id, series_key, ts). A distinct here cost a 27-million-row
    # shuffle at scale M.
    cells = points.where(in_interval).join(expected, "series_key", "left")
    got = cells.agg(
        F.count_distinct("series_key").alias("seen"),
        F.count(F.lit(1)).alias("cells"),
        F.sum("_expected").alias("covered"),
    ).first()
    n_seen = int(got["seen"])
    # Only expected series count: a new store's data must not hide a missing one's. With nothing before the
    # interval (a first run) its own series are the expected ones.
    covered = int(got["covered"] or 0)
    if n_expected == 0:
        n_expected, covered = n_seen, int(got["cells"])

    rows_read, quarantined = int(ia["read"] or 0), int(ia["quarantined"] or 0)
    latest = parse_ts(latest) if latest is not None else None
    measures = {
        "latest_tick_seen": latest,
        "freshness_lag_minutes": None if latest is None else (end - (latest + step)).total_seconds() / 60,
        "coverage": min(1.0, covered / (n_expected * n_ticks)) if n_expected and n_ticks else 0.0,
        "rows_read": rows_read,
        "rows_quarantined": quarantined,
        "error_rate": quarantined / rows_read if rows_read else 0.0,
        "degraded_ticks": [parse_ts(t) for t in ia["degraded"]],
    }
    status, problems = assess(measures, health)
    written_at = end - step
    counts = {r["table"]: int(r["rows"]) for r in written.collect()}
    row = {
        "run_id": run_id,
        "interval_start": start,
        "interval_end": end,
        "latest_tick_seen": latest,
        "freshness_lag_minutes": measures["freshness_lag_minutes"],
        "expected_series": n_expected,
        "series_with_data": n_seen,
        "coverage": measures["coverage"],
        "rows_read": rows_read,
        "rows_quarantined": quarantined,
        "error_rate": measures["error_rate"],
        "rows_written": dict(sorted(counts.items())),
        "health_status": status,
        "problems": problems,
        "report_status": status,
        "written_at": written_at,
        "is_degraded": status != "ok",
        "date": written_at.date(),
    }
    spark = audit.sparkSession
    return spark.createDataFrame([tuple(row[f] for f in PIPELINE_HEALTH_LOG.fieldNames())], PIPELINE_HEALTH_LOG)


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    lookback = start - timedelta(days=cfg.health.expected_series_days)
    # The audit log has one small row per tick: read whole, so the newest data is found however old it is.
    audit = lake.read("ingest_audit_log", run_id).where(F.col("tick_ts") < F.lit(end))
    sales = lake.read_ticks("sales_timeseries_data", run_id, lookback, end)
    row = health_row(
        audit, sales, rows_written(lake, run_id, start, end), run_id, start, end, cfg.health, cfg.tick_seconds
    )
    status = row.select("health_status").first()[0]
    return {"pipeline_health_log": lake.append_new("pipeline_health_log", row), "health_status": status}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "check_pipeline_health", run, argv)


if __name__ == "__main__":
    main()
