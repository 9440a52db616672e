"""Clustering stage: what each minority report looks like (MRCL).

For every MRDL snapshot written in the run's interval [start, end), the report's slice from ``window_start`` to
the snapshot's tick is described by a fixed-length, scale-independent feature vector (``jobs/lib/features.py``:
uplift, rise and decay, volatility, temporal skew and kurtosis, duration, peak position, time of day and week,
breadth across the store, SKU, category and retailer, zero share, price-per-unit shift, duplicate share) and
matched to the nearest named centroid of the configured cluster library version.

Causal and replayable: a snapshot at tick t reads only rows at or before t (the slice, the neighbourhood's
reports at each of its ticks, the week of prices before the report), so one run over a range writes exactly
what tick-by-tick runs write. The library is read, never written, here: ``build_cluster_library`` owns it.

A report's reference price (its usual revenue per unit over ``clustering.reference_days`` before its window) is
computed once, at the first tick that clusters it, and kept in ``minority_report_reference_price``: later ticks,
and the protection feed, read it there instead of scanning that week of sales again.

    spark-submit jobs/stages/cluster_minority_report.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config
from jobs.lib.features import BREADTH, FEATURES, Library, slice_features
from jobs.lib.tables import TABLES, Lakehouse, conform
from jobs.lib.ticks import dates_between, dates_of, naive_utc

WRITES = ("minority_reports_clustered_log", "minority_report_reference_price")
PRICES = "minority_report_reference_price"

REPORT_COLS = ["report_id", "series_key", "store_id", "sku", "retailer_id", "region", "category", "window_start"]
SNAPSHOT_COLS = [*REPORT_COLS, "window_end", "direction", "report_status", "written_at", "is_degraded", "date"]
SLICE_SCHEMA = (
    "report_id string, ts timestamp, actual_units double, baseline_units double, revenue double, "
    "source_rows double, " + ", ".join(f"{b} double" for b in BREADTH)
)
# Neighbourhoods for the breadth features: the other series sharing these columns at the same tick.
GROUPS = {
    "breadth_store": ["store_id"],
    "breadth_sku_region": ["sku", "region"],
    "breadth_category_region": ["category", "region"],
    "breadth_sku_retailer": ["sku", "retailer_id"],
}


def breadth(sales: DataFrame, active: DataFrame, at: DataFrame | None = None) -> DataFrame:
    """Per series and tick: for each neighbourhood, the share of its other series with an active report.

    For every sales row, or for the rows of ``at`` (with its columns kept; NULL where the series sold nothing).
    """
    # Materialised: five queries below read the active ticks (the grid's and four neighbourhoods'), and a Delta
    # scan costs ~0.2 s however few rows it finds.
    active = active.select("series_key", "ts", F.lit(1.0).alias("_a")).localCheckpoint()
    grid = sales.join(active, ["series_key", "ts"], "left")
    grid = grid.withColumn("_a", F.coalesce("_a", F.lit(0.0)))
    # Counts per neighbourhood and tick, joined to the rows asked for: a range run needs its reports' ticks
    # only, not a window sorted over every sales row (27 million at 10,000 series x 28 days).
    out = grid if at is None else at.join(grid, ["series_key", "ts"], "left")
    for name, cols in GROUPS.items():
        counts = grid.groupBy("ts", *cols).agg(F.count(F.lit(1)).alias("_n"), F.sum("_a").alias("_s"))
        others = F.col("_n") - 1
        share = (F.col("_s") - F.col("_a")) / others
        keyed = F.lit(True)
        for c in cols:
            keyed = keyed & F.col(c).isNotNull()  # no SKU at store grain: no SKU neighbourhood
        value = F.when(F.col("_a").isNull(), F.lit(None)).when(keyed & (others > 0), share).otherwise(F.lit(0.0))
        out = out.join(counts, ["ts", *cols], "left").withColumn(name, value).drop("_n", "_s")
    keep = ["series_key", "ts"] if at is None else at.columns
    return out.select(*keep, "revenue", "source_rows", *BREADTH)


def report_ticks(reports: DataFrame, baseline: DataFrame) -> DataFrame:
    """Each report's ticks from window_start to its latest snapshot in the run, with actual and baseline units."""
    spine = reports.alias("r").join(
        baseline.alias("b"),
        (F.col("r.series_key") == F.col("b.series_key"))
        & (F.col("b.ts") >= F.col("r.window_start"))
        & (F.col("b.ts") <= F.col("r.last_tick")),
    )
    # Fresh aliases: the reports and the snapshots they are later cogrouped with come from the same table.
    cols = [("r", "report_id"), ("r", "series_key"), ("b", "ts"), ("b", "actual_units"), ("b", "baseline_units")]
    return spine.select(*[F.col(f"{t}.{c}").alias(c) for t, c in cols])


def reference_prices(reports: DataFrame, sales: DataFrame, days: int) -> DataFrame:
    """Each report's usual revenue per unit: its series over the ``days`` before window_start."""
    hist = reports.alias("r").join(
        sales.alias("s"),
        (F.col("r.series_key") == F.col("s.series_key"))
        & (F.col("s.ts") < F.col("r.window_start"))
        & (F.col("s.ts") >= F.col("r.window_start") - F.expr(f"INTERVAL {days} DAYS"))
        & (F.col("s.units") > 0)
        & F.col("s.revenue").isNotNull(),
    )
    # Decimal sums are exact, so the price does not depend on the order Spark happens to add rows in.
    exact = "decimal(28,6)"
    revenue, units = F.sum(F.col("s.revenue").cast(exact)), F.sum(F.col("s.units").cast(exact))
    return hist.groupBy("r.report_id").agg((revenue / units).cast("double").alias("ref_price"))


def report_prices(lake: Lakehouse, cfg: Config, run_id: str, snaps: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """(report_id, ref_price) for the reports of ``snaps``, and the price rows computed here (None when every
    report's price was stored already). Only the clustering stage stores them; other readers compute and drop."""
    reports = snaps.groupBy("report_id", "series_key", "window_start").agg(F.min("written_at").alias("written_at"))
    stored = lake.read(PRICES, run_id).select("report_id", "ref_price")
    missing = reports.join(stored, "report_id", "left_anti")
    lo, hi = missing.agg(F.min("window_start"), F.max("window_start")).first()
    known = stored.join(reports, "report_id", "left_semi")
    if lo is None:
        return known, None
    days = cfg.clustering.reference_days
    sales = lake.read_ticks("sales_timeseries_data", run_id, lo - timedelta(days=days), hi)
    sales = sales.join(missing.select("series_key").distinct(), "series_key", "left_semi")
    new = missing.join(reference_prices(missing, sales, days), "report_id", "left").select(
        F.lit(run_id).alias("run_id"),
        "report_id",
        "series_key",
        "window_start",
        F.lit(days).alias("reference_days"),
        "ref_price",
        "written_at",
    )
    new = conform(new, TABLES[PRICES].schema).localCheckpoint()
    return known.unionByName(new.select("report_id", "ref_price")), new


def featurize_and_match(
    snaps: DataFrame, slice_rows: DataFrame, library: Library | None, run_id: str, tick_seconds: int
) -> DataFrame:
    """MRDL snapshots (with ``ref_price``) + their slices -> MRCL rows: a feature vector and a match each.

    Without a library (while one is being learned) the cluster columns stay empty and ``library_version`` is ''.
    """
    schema = TABLES["minority_reports_clustered_log"].schema
    names = [f.name for f in schema.fields]
    tick_h = tick_seconds / 3600.0

    def fn(_key, sl: pd.DataFrame, sn: pd.DataFrame) -> pd.DataFrame:
        if sn.empty:
            return pd.DataFrame(columns=names)
        sl = sl.sort_values("ts")
        ts = pd.to_datetime(sl["ts"]).to_numpy()
        rows = []
        for snap in sn.sort_values("written_at").itertuples(index=False):
            ws = naive_utc(snap.window_start)
            upto = ts <= np.datetime64(naive_utc(snap.written_at))
            part = sl[upto]
            vec, n, degraded = slice_features(
                hours=(ts[upto] - np.datetime64(ws)) / np.timedelta64(1, "h"),
                actual=part["actual_units"].to_numpy(dtype=float),
                baseline=part["baseline_units"].to_numpy(dtype=float),
                revenue=part["revenue"].to_numpy(dtype=float),
                source_rows=part["source_rows"].to_numpy(dtype=float),
                breadth=part[list(BREADTH)].to_numpy(dtype=float),
                ref_price=None if pd.isna(snap.ref_price) else float(snap.ref_price),
                window_start=ws,
                tick_hours=tick_h,
            )
            row = {c: getattr(snap, c) for c in SNAPSHOT_COLS}
            row.update(
                run_id=run_id,
                feature_names=list(FEATURES),
                slice_ticks=n,
                library_version=library.version if library else "",
                is_degraded=bool(snap.is_degraded) or degraded,
                feature_vector=None,
                cluster_id=None,
                cluster_name=None,
                similarity_score=None,
                cluster_match_confidence=None,
                second_cluster_name=None,
            )
            if vec is not None:
                row["feature_vector"] = [float(v) for v in vec]
            if vec is not None and library is not None:
                best, sim, conf, second = library.match(vec)
                row.update(
                    cluster_id=library.cluster_ids[best],
                    cluster_name=library.names[best],
                    similarity_score=sim,
                    cluster_match_confidence=conf,
                    second_cluster_name=None if second is None else library.names[second],
                )
            rows.append(row)
        return pd.DataFrame(rows, columns=names)

    return (
        slice_rows.groupBy("report_id")
        .cogroup(snaps.groupBy("report_id"))
        .applyInPandas(fn, ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields))
    )


def read_inputs(lake: Lakehouse, cfg: Config, run_id: str, start: datetime, end: datetime, snaps=None):
    """The bounded inputs: the interval's snapshots (or those given), and the rows from their earliest
    window_start to the end of the interval."""
    mrdl = lake.read("minority_reports_detected_log", run_id)
    if snaps is None:
        snaps = mrdl.where(dates_between(start, end)).where(
            (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))
        )
    lo = snaps.agg(F.min("window_start")).first()[0]
    if lo is None:
        return None
    in_range = (F.col("ts") >= F.lit(lo)) & (F.col("ts") < F.lit(end))
    sales = lake.read("sales_timeseries_data", run_id).where(dates_between(lo, end)).where(in_range)
    sales = sales.select(
        "series_key", "store_id", "sku", "retailer_id", "region", "category", "ts", "units", "revenue", "source_rows"
    )
    baseline = (
        lake.read("baseline_sales_model_prediction_log", run_id)
        .where(dates_between(lo, end))
        .where(in_range)
        .select("series_key", "ts", "actual_units", "baseline_units")
    )
    active = (
        mrdl.where(dates_between(lo, end))
        .where((F.col("written_at") >= F.lit(lo)) & (F.col("written_at") < F.lit(end)))
        .where(F.col("report_status") == "active")
        .select("series_key", F.col("written_at").alias("ts"))
    )
    return snaps, sales, baseline, active, lo


def cluster(
    snaps: DataFrame,
    sales: DataFrame,
    baseline: DataFrame,
    active: DataFrame,
    since: datetime,
    prices: DataFrame,
    library: Library | None,
    cfg: Config,
    run_id: str,
) -> DataFrame:
    """The stage as one transform: MRDL snapshots and their inputs (from ``since``, the earliest window_start),
    with each report's reference price (``report_prices``) -> MRCL rows."""
    reports = snaps.groupBy(*REPORT_COLS).agg(F.max("written_at").alias("last_tick"))
    spine = report_ticks(reports, baseline)
    slice_rows = breadth(sales.where(F.col("ts") >= F.lit(since)), active, at=spine)
    slice_rows = slice_rows.select(*[c.split()[0] for c in SLICE_SCHEMA.split(", ")])
    snaps = snaps.select(*SNAPSHOT_COLS).join(prices, "report_id", "left")
    return featurize_and_match(snaps, slice_rows, library, run_id, cfg.tick_seconds)


# -- the library: read here, written only by build_cluster_library --------------------------------------
def library_frame(path) -> pd.DataFrame:
    """A library file (JSON, as exported by build_cluster_library) as rows of ``cluster_library``."""
    doc = json.loads(Path(path).read_text())
    rows = pd.DataFrame(doc["clusters"])
    rows["written_at"] = pd.to_datetime(rows["written_at"], utc=True)
    return rows


def load_library(lake: Lakehouse, cfg: Config) -> Library:
    """The configured library version: from the Delta table, or from the file a fresh install ships with."""
    version = cfg.clustering.library_version
    rows = lake.read("cluster_library").where(F.col("library_version") == version).toPandas()
    if rows.empty:
        path = cfg.clustering.library_file
        if not path.is_file():
            raise ValueError(
                f"clustering.library_version: {version} is neither in the cluster_library table nor shipped "
                f"in {path}; build it with `make cluster-library`"
            )
        rows = library_frame(path)
        rows = rows[rows["library_version"] == version]
        if rows.empty:
            raise ValueError(f"clustering.library_version: {path} holds no library version {version}")
    return Library.from_rows(rows)


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    inputs = read_inputs(lake, cfg, run_id, start, end)
    if inputs is None:
        return {"minority_reports_clustered_log": 0}
    library = load_library(lake, cfg)
    prices, new_prices = report_prices(lake, cfg, run_id, inputs[0])
    mrcl = cluster(*inputs, prices, library, cfg, run_id)
    written = lake.append_new("minority_reports_clustered_log", mrcl, dates_of(start, end))
    priced = 0 if new_prices is None else lake.append_new(PRICES, new_prices)
    return {"minority_reports_clustered_log": written, PRICES: priced}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "cluster_minority_report", run, argv)


if __name__ == "__main__":
    main()
