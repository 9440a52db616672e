"""Protection feed: the anomalous sales the media-mix model and the bandit must not credit to campaigns.

One row per report and tick at which the report was active (its MRDL snapshots with ``report_status`` active,
the ticks its running totals count), for the reports whose current finalised review status (MRFL, resolved with
``MRFL_ORDER``) is in ``protection.include_statuses``: the series' actual and baseline units (baseline log),
actual revenue (sales), ``anomalous_units`` = actual - baseline and ``anomalous_revenue`` = actual revenue -
baseline units x the report's unit price, with the report's event (its latest MRCH ``report_group_id``), final
cause, confidence, review status and report status (the current MRFL row, whose ``written_at`` the rows carry).

The unit price is the report's own revenue per unit over its active ticks with units sold; a report that sold
nothing falls back to its series' usual price over the ``clustering.reference_days`` before its window (the
reference price the clustering stage stores), else 0. A tick without data counts as no sales and no baseline (as the
detector's totals do), so a report's anomalous units add up to its MRDL attributed minus baseline totals; such
a tick, one without a baseline, and one whose revenue is missing (then estimated at units x price) are degraded.

Incremental: a run over [start, end) rewrites the reports with an MRFL, MRDL or MRCH row written in the
interval, each rebuilt from the rows written before ``end``, so that they end up holding exactly their current
rows: a report no longer included (an analyst rejected it) loses its rows. One atomic MERGE on (run_id,
report_id, ts) inserts, updates and deletes, touching nothing else; re-running it changes nothing, and runs over
consecutive intervals leave the table a full rebuild (``--full``: every report, the run's rows replaced) leaves.

    spark-submit jobs/stages/build_protection_feed.py --config conf/mrs.yaml --start ... --end ...
    python -m jobs.stages.build_protection_feed --full [--end ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import range_or_full
from jobs.lib.config import Config, load_config
from jobs.lib.tables import MRFL_ORDER, TABLES, Lakehouse, conform, latest, sql_string
from jobs.lib.ticks import dates_between, fmt_ts
from jobs.stages.cluster_minority_report import report_prices
from schemas.mrs import REVIEW_STATUSES

WRITES = ("protection_feed",)
FEED = "protection_feed"
# Logs whose new rows change a report's feed rows: its final state, its active ticks, its event.
TOUCHING_LOGS = ("minority_reports_finalised_log", "minority_reports_detected_log", "minority_reports_cohorted_log")
_EXACT = "decimal(28,6)"  # exact sums: a price must not depend on the order Spark adds rows in


def _flag(c: Column, default: bool) -> Column:
    return F.coalesce(c, F.lit(default))


def protection_rows(
    mrfl_current: DataFrame,
    mrdl: DataFrame,
    baseline: DataFrame,
    sales: DataFrame,
    mrch_current: DataFrame,
    prices: DataFrame,
    include_statuses: Iterable[str],
) -> DataFrame:
    """The feed rows of the reports in ``mrfl_current`` (one current MRFL row per report, of one run).

    ``mrdl``: the reports' snapshots (only ``active`` ones become rows); ``baseline`` and ``sales``: the series'
    rows at those ticks; ``mrch_current``: each report's latest MRCH row (its event), if any; ``prices``: each
    report's reference price (report_id, ref_price), the fallback.
    """
    statuses = list(include_statuses)
    unknown = sorted(set(statuses) - set(REVIEW_STATUSES))
    if unknown:
        raise ValueError(f"include_statuses: unknown review status(es) {unknown}; known: {list(REVIEW_STATUSES)}")
    final = mrfl_current.where(F.col("review_status").isin(statuses)).select(
        "run_id",
        "report_id",
        F.col("proposed_cause_category").alias("cause_category"),
        "confidence_score",
        "review_status",
        "report_status",
        "written_at",
        F.col("is_degraded").alias("_d_final"),
    )
    included = final.select("run_id", "report_id")
    snaps = mrdl.where(F.col("report_status") == "active").join(included, ["run_id", "report_id"], "left_semi")
    ticks = snaps.select(
        "run_id",
        "report_id",
        "series_key",
        "store_id",
        "sku",
        "retailer_id",
        "region",
        "category",
        "window_start",
        F.col("written_at").alias("ts"),
    )
    base = baseline.select(
        "run_id",
        "series_key",
        "ts",
        F.col("actual_units").alias("_actual"),
        F.col("baseline_units").alias("_baseline"),
        F.col("is_degraded").alias("_d_base"),
    )
    sold = sales.select(
        "run_id",
        "series_key",
        "ts",
        F.col("units").alias("_units"),
        F.col("revenue").alias("_revenue"),
        F.col("is_degraded").alias("_d_sales"),
    )
    rows = ticks.join(base, ["run_id", "series_key", "ts"], "left").join(sold, ["run_id", "series_key", "ts"], "left")

    priced = rows.where((F.col("_units") > 0) & F.col("_revenue").isNotNull())
    own = priced.groupBy("run_id", "report_id").agg(
        (F.sum(F.col("_revenue").cast(_EXACT)) / F.sum(F.col("_units").cast(_EXACT))).cast("double").alias("_own")
    )
    usual = prices.select("report_id", F.col("ref_price").alias("_usual"))
    events = mrch_current.select("run_id", "report_id", F.col("report_group_id").alias("event_id"))

    rows = (
        rows.join(own, ["run_id", "report_id"], "left")
        .join(usual, "report_id", "left")
        .join(events, ["run_id", "report_id"], "left")
        .join(final, ["run_id", "report_id"])
    )
    has_actual = F.col("_actual").isNotNull()
    price = F.coalesce(F.col("_own"), F.col("_usual"), F.lit(0.0))
    actual = F.coalesce(F.col("_actual"), F.lit(0.0))
    # As in the detector's totals: no data, no baseline either; no baseline yet, all of it is anomalous.
    expected = F.when(has_actual, F.coalesce(F.col("_baseline"), F.lit(0.0))).otherwise(F.lit(0.0))
    revenue_missing = F.col("_revenue").isNull() & (actual > 0)
    revenue = F.coalesce(F.col("_revenue"), actual * price)
    degraded = (
        _flag(F.col("_d_final"), False)
        | _flag(F.col("_d_base"), True)  # no baseline row at all, too
        | F.col("_baseline").isNull()
        | _flag(F.col("_d_sales"), False)
        | revenue_missing
    )
    out = rows.select(
        "*",
        actual.alias("actual_units"),
        expected.alias("baseline_units"),
        (actual - expected).alias("anomalous_units"),
        revenue.alias("actual_revenue"),
        (revenue - expected * price).alias("anomalous_revenue"),
        degraded.alias("is_degraded"),
        F.to_date("ts").alias("date"),
    )
    return conform(out, TABLES[FEED].schema)


# -- reading: which reports, and the rows that rebuild them --------------------------------------------------
def _rows(lake: Lakehouse, name: str, run_id: str, lo: datetime | None, end: datetime) -> DataFrame:
    df = lake.read(name, run_id).where(F.col("written_at") < F.lit(end))
    return df if lo is None else df.where(dates_between(lo, end)).where(F.col("written_at") >= F.lit(lo))


def build(
    lake: Lakehouse, run_id: str, end: datetime, start: datetime | None = None
) -> tuple[DataFrame, DataFrame] | None:
    """(report_ids to rewrite, their feed rows): the reports with a log row in [start, end) (every report with an
    MRFL row when start is None), rebuilt from the rows written before ``end``. None: nothing to rewrite."""
    if start is None:
        touched = _rows(lake, "minority_reports_finalised_log", run_id, None, end).select("report_id", "window_start")
    else:
        parts = [_rows(lake, n, run_id, start, end).select("report_id", "window_start") for n in TOUCHING_LOGS]
        touched = parts[0].unionByName(parts[1]).unionByName(parts[2])
    touched = touched.groupBy("report_id").agg(F.min("window_start").alias("window_start")).localCheckpoint()
    # Every row of a report is written at or after its window_start: read from the earliest.
    lo = touched.agg(F.min("window_start")).first()[0]
    if lo is None:
        return None
    ids = touched.select("report_id")
    logs = {n: _rows(lake, n, run_id, lo, end).join(ids, "report_id", "left_semi") for n in TOUCHING_LOGS}
    mrfl, mrdl, mrch = (logs[n] for n in TOUCHING_LOGS)
    series = mrdl.select("series_key").distinct()
    baseline = lake.read_ticks("baseline_sales_model_prediction_log", run_id, lo, end)
    baseline = baseline.join(series, "series_key", "left_semi")
    sales = lake.read_ticks("sales_timeseries_data", run_id, lo, end).join(series, "series_key", "left_semi")
    prices, _ = report_prices(lake, lake.cfg, run_id, mrdl)  # stored by the clustering stage
    rows = protection_rows(
        latest(mrfl, "run_id", "report_id", order=MRFL_ORDER),
        mrdl,
        baseline,
        sales,
        latest(mrch, "run_id", "report_id"),
        prices,
        lake.cfg.protection.include_statuses,
    )
    return ids, rows


# -- writing: exactly the current rows of the rewritten reports ----------------------------------------------
def rewrite(lake: Lakehouse, run_id: str, rows: DataFrame, report_ids: DataFrame | None) -> dict[str, int]:
    """Make the feed hold exactly ``rows`` for ``report_ids`` of ``run_id`` (all of the run's reports when None),
    in one atomic MERGE: new keys inserted, changed rows updated, rows of those reports not in ``rows`` deleted.

    Only the differences go into the MERGE's source, deletions included, so the set of reports is a join, never
    a literal list in a condition, however many there are; with no difference nothing is committed at all."""
    t = TABLES[FEED]
    keys = list(t.keys)
    new = conform(rows, t.schema).localCheckpoint()  # read twice below: computed once
    if new.where(F.col("run_id") != run_id).limit(1).count():
        raise ValueError(f"rewrite({FEED}): rows of another run_id than {run_id!r}")
    held = lake.read(FEED, run_id)
    if report_ids is not None:
        held = held.join(report_ids, "report_id", "left_semi")
    held = held.select(*new.columns)  # a USING join puts its key first, and EXCEPT matches columns by position
    changed = new.exceptAll(held)  # EXCEPT compares NULLs as equal: an unchanged row is no difference
    stale = held.join(new.select(*keys), keys, "left_anti")
    # Materialised: the source reads the target it is merged into, and a MERGE may read its source twice.
    source = (
        changed.withColumn("_delete", F.lit(False))
        .unionByName(stale.withColumn("_delete", F.lit(True)))
        .localCheckpoint()
    )
    if source.isEmpty():
        return {"inserted": 0, "updated": 0, "deleted": 0}
    # The run_id literal lets Delta skip the other runs' files (Delta's MERGE takes no parameter markers).
    on = " AND ".join([f"t.run_id = {sql_string(run_id)}", *(f"t.`{k}` = s.`{k}`" for k in keys)])
    cols = ", ".join(f"`{c}`" for c in t.schema.fieldNames())
    values = ", ".join(f"s.`{c}`" for c in t.schema.fieldNames())
    sets = ", ".join(f"t.`{c}` = s.`{c}`" for c in t.schema.fieldNames())
    clauses = (
        "WHEN MATCHED AND s._delete THEN DELETE "
        f"WHEN MATCHED AND NOT s._delete THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED AND NOT s._delete THEN INSERT ({cols}) VALUES ({values})"
    )
    return lake.merge(FEED, source, on, clauses)


def run(
    spark: SparkSession, cfg: Config, start: datetime | None, end: datetime, run_id: str | None = None
) -> dict[str, dict[str, int]]:
    """Rewrite the feed rows of the reports touched in [start, end) (``start`` None: rebuild the run's feed)."""
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    built = build(lake, run_id, end, start)
    if built is None:
        if start is None:  # nothing finalised before end: a full rebuild leaves the run's feed empty
            return {FEED: rewrite(lake, run_id, spark.createDataFrame([], TABLES[FEED].schema), None)}
        return {FEED: {"inserted": 0, "updated": 0, "deleted": 0}}
    ids, rows = built
    return {FEED: rewrite(lake, run_id, rows, None if start is None else ids)}


def main(argv: list[str] | None = None) -> None:
    from jobs.lib.spark import build_spark  # pyspark session only where one is built

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--start", help="data interval start, ISO-8601 UTC (inclusive): rewrite reports touched since")
    p.add_argument("--end", help="data interval end, ISO-8601 UTC (exclusive)")
    p.add_argument("--full", action="store_true", help="rebuild the run's whole feed (up to --end if given)")
    p.add_argument("--run-id", help="run_id to write under (default: the active one in demo_run_config)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    start, end = range_or_full(p, a, cfg)
    spark = build_spark(cfg, "build_protection_feed")
    result = run(spark, cfg, start, end, a.run_id)
    label = "full rebuild" if start is None else f"{fmt_ts(start)} .. {fmt_ts(end)}"
    print(f"build_protection_feed {label}: {result}")
    spark.stop()


if __name__ == "__main__":
    main()
