"""Compute the DFU clustering features in Spark: per DFU, volume, trend, seasonality, volatility and growth of its
monthly demand over a window, plus its item and DFU attributes; write them, the exclusions and the training CSV.

Per DFU (``dfu_id = item_id@location_id``) the series is a DENSE monthly grid over the ``time_window`` months ending
at ``as_of`` (inclusive): a month without a row in ``fact_sales_monthly`` is zero demand, and the grid starts at the
later of the DFU's first sale and the window start. Negative net quantities (returns above shipments) count as zero.
With ``n`` = window_months, ``t`` = 0..n-1 the month index and ``q_t`` the demand:

==========================  ========================================================================================
feature                     definition
==========================  ========================================================================================
history_months              months from the first sale (ever, up to as_of) to as_of, both included
window_months               n: months on the grid
mean/median/min/max_demand  mean, exact median, min, max of q over the grid (zeros included)
std_demand                  sample standard deviation (ddof 1) of q
cv_demand                   std_demand / mean_demand
total_demand                sum of q
trend_slope                 regr_slope(q, t): least-squares slope, units per month
trend_pct_change            (mean of the last 3 months - mean of the first 3) / mean of the first 3 (the mean of the
                            whole grid when the first 3 are all zero)
trend_direction             1 / -1 when trend_slope * 12 / mean_demand is above / below +-0.1 (10% a year), else 0
seasonality_strength        on the detrended series r_t = q_t / fit_t, fit_t = mean(q) + b (t - mean(t)) the line
                            through the mean with slope b = mean(q_t - q_{t-12}) / 12 (immune to the seasonal
                            cycle; the least-squares slope when n < 13); months where fit <= 0 are left out. The index
                            of a calendar month is the mean r of its months, indices divided by their mean;
                            strength = max index - min index
seasonal_index_std          population standard deviation of those calendar-month indices
peak_month                  calendar month (1-12) of the largest index (ties: the earliest month)
year_over_year_correlation  Pearson correlation of q_t and q_{t+12} (0 with fewer than 2 pairs or a constant side)
zero_demand_pct             zero months / n
sparsity_score              longest run of consecutive zero months / n (how long the DFU goes without demand)
demand_stability            1 / (1 + cv_demand)
outlier_count               months with q outside the Tukey fences [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (exact, linearly
                            interpolated quartiles, as numpy's default)
adi                         average demand interval: n / non-zero months
cv2_nonzero                 (sample std / mean)^2 of the non-zero months (0 with fewer than 2)
growth_rate                 CAGR between the first k and the last k months, k = min(12, n // 2):
                            (mean last k / mean first k) ^ (12 / (n - k)) - 1, capped at +5 (+500% a year; also when
                            the first k months are all zero)
acceleration                (slope of the last n//2 months - slope of the first n//2) * 12 / mean_demand: the change
                            of the yearly trend, relative to the level
recent_vs_historical        mean of the last 3 months / mean_demand
==========================  ========================================================================================

Excluded (``dfu_clustering_exclusions``, one reason each, in this order): ``unknown_dfu`` (in the facts, not in
dim_dfu), ``unknown_item`` (its item not in dim_item), ``no_demand_in_window``, ``insufficient_history``
(history_months < min_months). DFUs seen (facts up to as_of, or dim_dfu) = featured + excluded. Both tables are
replaced for ``as_of_month`` (re-running adds no rows). The training CSV is ``encode_for_training`` of the
stored features, sorted by dfu_id.

    python -m jobs.dfu.features [--config C] [--min-months 12] [--time-window 24] [--as-of YYYY-MM] [--output CSV]
"""

from __future__ import annotations

import argparse
import re
from datetime import date
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.dfu.config import ClusteringConfig, load_clustering_config
from jobs.lib.config import Config
from jobs.lib.tables import Lakehouse, conform
from schemas import dfu as S

WRITES = ("dfu_clustering_features", "dfu_clustering_exclusions")
TREND_DIRECTION_THRESHOLD = 0.1  # |yearly slope / mean| below this is "stable"
GROWTH_CAP = 5.0  # CAGR from (near) nothing is unbounded; +500% a year is growth enough for any label
EDGE_MONTHS = 3  # months averaged at each end for trend_pct_change and recent_vs_historical
REASONS = ("unknown_dfu", "unknown_item", "no_demand_in_window", "insufficient_history")


def parse_month(value: str, flag: str = "--as-of") -> date:
    """``YYYY-MM`` (or ``YYYY-MM-01``) -> the first day of that month; a clear error otherwise."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-01)?", value.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"{flag}: {value!r} is not a month (YYYY-MM)")
    return date(int(m.group(1)), int(m.group(2)), 1)


def _dfu_id() -> Column:
    return F.concat_ws("@", "item_id", "location_id")


def _months(a: Column, b: Column) -> Column:
    """Whole months from b to a (both first days of months)."""
    return F.months_between(a, b).cast("int")


def dfu_monthly(facts: DataFrame, as_of: date) -> DataFrame:
    """fact_sales_monthly rows up to ``as_of`` -> one row per DFU and month with demand ``qty`` >= 0."""
    return (
        facts.withColumn("month", F.trunc("month", "month"))
        .where(F.col("month") <= F.lit(as_of))
        .groupBy(_dfu_id().alias("dfu_id"), "item_id", "location_id", "month")
        .agg(F.greatest(F.sum("qty"), F.lit(0.0)).alias("qty"))
    )


def dfu_spans(facts: DataFrame, as_of: date, window: int) -> DataFrame:
    """Per DFU in the facts up to ``as_of``: first_sale (NULL if it never sold), history_months, grid_start,
    window_months and window_demand (units in the window)."""
    start = F.add_months(F.lit(as_of), -(window - 1))
    spans = (
        dfu_monthly(facts, as_of)
        .groupBy("dfu_id", "item_id", "location_id")
        .agg(
            F.min(F.when(F.col("qty") > 0, F.col("month"))).alias("first_sale"),
            F.max(F.when(F.col("qty") > 0, F.col("month"))).alias("last_sale"),
            F.sum(F.when(F.col("month") >= start, F.col("qty")).otherwise(0.0)).alias("window_demand"),
        )
        .withColumn("grid_start", F.greatest("first_sale", start))
    )
    return spans.select(
        "*",
        F.coalesce(_months(F.lit(as_of), F.col("first_sale")) + 1, F.lit(0)).alias("history_months"),
        F.coalesce(_months(F.lit(as_of), F.col("grid_start")) + 1, F.lit(0)).alias("window_months"),
    )


def monthly_grid(facts: DataFrame, as_of: date, window: int) -> DataFrame:
    """The dense monthly series of every DFU with demand in the window: dfu_id, item_id, location_id,
    history_months, window_months, month, t (0 = grid start) and qty (0 where the facts have no row)."""
    spans = dfu_spans(facts, as_of, window).where(F.col("window_demand") > 0)
    grid = spans.select(
        "dfu_id",
        "item_id",
        "location_id",
        "history_months",
        "window_months",
        "grid_start",
        F.explode(F.sequence("grid_start", F.lit(as_of), F.expr("INTERVAL 1 MONTH"))).alias("month"),
    )
    sales = dfu_monthly(facts, as_of).select("dfu_id", "month", "qty")
    return grid.join(sales, ["dfu_id", "month"], "left").select(
        "dfu_id",
        "item_id",
        "location_id",
        "history_months",
        "window_months",
        "month",
        _months(F.col("month"), F.col("grid_start")).alias("t"),
        F.coalesce("qty", F.lit(0.0)).alias("qty"),
    )


def _safe_corr(x: Column, y: Column) -> Column:
    """Pearson correlation over the rows where both are set; NULL (not an ANSI division error, as ``corr`` raises)
    when either side is constant."""
    both = x.isNotNull() & y.isNotNull()
    x, y = F.when(both, x), F.when(both, y)
    return F.try_divide(F.covar_pop(x, y), F.stddev_pop(x) * F.stddev_pop(y))


def _slope_where(cond: Column) -> Column:
    return F.regr_slope(F.when(cond, F.col("qty")), F.when(cond, F.col("t").cast("double")))


def time_series_features(grid: DataFrame) -> DataFrame:
    """A dense grid (``monthly_grid``) -> one row per DFU: dfu_id, item_id, location_id, history_months,
    window_months and every feature of ``schemas.dfu.TIME_SERIES_FEATURES`` (see the module docstring)."""
    keys = ["dfu_id", "item_id", "location_id", "history_months", "window_months"]
    q, t, n = F.col("qty"), F.col("t").cast("double"), F.col("window_months")
    per_dfu = Window.partitionBy("dfu_id")
    in_order = per_dfu.orderBy("t")
    g = (
        grid.withColumn("_q1", F.percentile(q, F.lit(0.25)).over(per_dfu))
        .withColumn("_q3", F.percentile(q, F.lit(0.75)).over(per_dfu))
        .withColumn("_lag12", F.lag(q, 12).over(in_order))
        # The seasonal cycle leaks into a least-squares slope (a December peak at the end of the window tilts
        # it); 12-month differences cancel the cycle, so they give the slope the series is detrended with.
        .withColumn(
            "_slope",
            F.coalesce(F.avg(q - F.col("_lag12")).over(per_dfu) / 12, F.regr_slope(q, t).over(per_dfu)),
        )
        .withColumn("_mean_q", F.avg(q).over(per_dfu))
        .withColumn("_mean_t", F.avg(t).over(per_dfu))
        # Zero months sharing the count of demand months before them form one run of consecutive zeros.
        .withColumn("_nz_so_far", F.sum((q > 0).cast("int")).over(in_order))
    )
    iqr = F.col("_q3") - F.col("_q1")
    is_outlier = (q < F.col("_q1") - 1.5 * iqr) | (q > F.col("_q3") + 1.5 * iqr)
    k = F.least(F.lit(12), F.floor(n / 2))
    h = F.floor(n / 2)
    base = g.groupBy(*keys).agg(
        F.avg(q).alias("mean_demand"),
        F.median(q).alias("median_demand"),
        F.coalesce(F.stddev_samp(q), F.lit(0.0)).alias("std_demand"),
        F.min(q).alias("min_demand"),
        F.max(q).alias("max_demand"),
        F.sum(q).alias("total_demand"),
        F.regr_slope(q, t).alias("trend_slope"),
        F.avg(F.when(t < EDGE_MONTHS, q)).alias("_first3"),
        F.avg(F.when(t >= n - EDGE_MONTHS, q)).alias("_last3"),
        F.avg(F.when(t < k, q)).alias("_first_k"),
        F.avg(F.when(t >= n - k, q)).alias("_last_k"),
        F.first(k).alias("_k"),
        _slope_where(t < h).alias("_slope_early"),
        _slope_where(t >= n - h).alias("_slope_late"),
        _safe_corr(q, F.col("_lag12")).alias("_yoy"),
        F.sum((q == 0).cast("int")).alias("_zeros"),
        F.sum((q > 0).cast("int")).alias("_nonzero"),
        F.avg(F.when(q > 0, q)).alias("_nz_mean"),
        F.stddev_samp(F.when(q > 0, q)).alias("_nz_std"),
        F.sum(is_outlier.cast("int")).alias("outlier_count"),
    )
    zero_runs = (
        g.where(q == 0)
        .groupBy("dfu_id", "_nz_so_far")
        .count()
        .groupBy("dfu_id")
        .agg(F.max("count").alias("_longest_zero_run"))
    )
    fit = F.col("_mean_q") + F.col("_slope") * (t - F.col("_mean_t"))
    months = g.groupBy("dfu_id", F.month("month").alias("_cal")).agg(
        F.avg(F.when(fit > 0, q / F.when(fit > 0, fit))).alias("_raw")
    )
    months = months.where(F.col("_raw").isNotNull()).withColumn(
        "_idx", F.col("_raw") / F.avg("_raw").over(Window.partitionBy("dfu_id"))
    )
    seasonal = months.groupBy("dfu_id").agg(
        (F.max("_idx") - F.min("_idx")).alias("seasonality_strength"),
        F.stddev_pop("_idx").alias("seasonal_index_std"),
        F.max_by("_cal", F.struct(F.col("_idx"), -F.col("_cal"))).alias("peak_month"),
    )

    mean = F.col("mean_demand")
    cv = F.try_divide(F.col("std_demand"), mean)
    first3, last3 = F.col("_first3"), F.col("_last3")
    first_k, last_k = F.col("_first_k"), F.col("_last_k")
    cagr = F.pow(F.try_divide(last_k, first_k), F.lit(12.0) / (n - F.col("_k"))) - 1
    growth = (
        F.when(first_k > 0, F.least(cagr, F.lit(GROWTH_CAP))).when(last_k > 0, F.lit(GROWTH_CAP)).otherwise(F.lit(0.0))
    )
    yearly_slope = F.try_divide(F.col("trend_slope") * 12, mean)
    features = {
        "cv_demand": cv,
        "trend_slope": F.coalesce(F.col("trend_slope"), F.lit(0.0)),
        "trend_pct_change": F.coalesce(
            F.try_divide(last3 - first3, F.when(first3 > 0, first3).otherwise(mean)), F.lit(0.0)
        ),
        "trend_direction": F.when(yearly_slope > TREND_DIRECTION_THRESHOLD, 1)
        .when(yearly_slope < -TREND_DIRECTION_THRESHOLD, -1)
        .otherwise(0),
        "seasonality_strength": F.coalesce("seasonality_strength", F.lit(0.0)),
        "seasonal_index_std": F.coalesce("seasonal_index_std", F.lit(0.0)),
        "peak_month": F.coalesce("peak_month", F.lit(1)),
        "year_over_year_correlation": F.coalesce(F.col("_yoy"), F.lit(0.0)),
        "zero_demand_pct": F.col("_zeros") / n,
        "sparsity_score": F.coalesce(F.col("_longest_zero_run"), F.lit(0)) / n,
        "demand_stability": 1.0 / (1.0 + cv),
        "adi": F.try_divide(n.cast("double"), F.col("_nonzero")),
        "cv2_nonzero": F.coalesce(F.pow(F.try_divide(F.col("_nz_std"), F.col("_nz_mean")), 2), F.lit(0.0)),
        "growth_rate": growth,
        "acceleration": F.coalesce(F.try_divide((F.col("_slope_late") - F.col("_slope_early")) * 12, mean), F.lit(0.0)),
        "recent_vs_historical": F.try_divide(last3, mean),
    }
    out = base.join(zero_runs, "dfu_id", "left").join(seasonal, "dfu_id", "left")
    cols = {c: features.get(c, F.col(c)) for c in S.TIME_SERIES_FEATURES}
    types = {f.name: f.dataType for f in S.DFU_CLUSTERING_FEATURES.fields}
    return out.select(*keys, *[cols[c].cast(types[c]).alias(c) for c in S.TIME_SERIES_FEATURES])


def with_attributes(features: DataFrame, dim_item: DataFrame, dim_dfu: DataFrame, as_of: date) -> DataFrame:
    """Per-DFU features -> rows of ``dfu_clustering_features``: as_of_month and the item and DFU attributes
    (NULL where the dimension has none)."""
    items = dim_item.select("item_id", *S.ITEM_CATEGORICAL, *S.ITEM_NUMERIC)
    dfus = dim_dfu.select("dfu_id", *S.DFU_CATEGORICAL, *S.DFU_NUMERIC)
    rows = features.join(items, "item_id", "left").join(dfus, "dfu_id", "left").withColumn("as_of_month", F.lit(as_of))
    return conform(rows, S.DFU_CLUSTERING_FEATURES)


def exclusions(
    spans: DataFrame, dim_item: DataFrame, dim_dfu: DataFrame, as_of: date, window: int, min_months: int
) -> DataFrame:
    """DFUs seen (``dfu_spans`` of the facts, or in dim_dfu) that are not clustered, one reason each (first of
    unknown_dfu, unknown_item, no_demand_in_window, insufficient_history) -> rows of
    ``dfu_clustering_exclusions``."""
    facts = spans.select(
        "dfu_id", F.col("item_id").alias("_f_item"), "first_sale", "last_sale", "window_demand", "history_months",
        "window_months", F.lit(True).alias("_in_facts"),
    )  # fmt: skip
    dims = dim_dfu.select("dfu_id", F.col("item_id").alias("_d_item"), F.lit(True).alias("_in_dim"))
    items = dim_item.select(F.col("item_id").alias("_item"), F.lit(True).alias("_known_item")).distinct()
    seen = facts.join(dims, "dfu_id", "full").withColumn("_item", F.coalesce("_d_item", "_f_item"))
    seen = seen.join(items, "_item", "left")
    ym = "yyyy-MM"
    hist = F.coalesce(F.col("history_months"), F.lit(0))
    no_demand = F.coalesce(F.col("window_demand"), F.lit(0.0)) <= 0
    reason = (
        F.when(F.col("_in_dim").isNull(), "unknown_dfu")
        .when(F.col("_known_item").isNull(), "unknown_item")
        .when(no_demand, "no_demand_in_window")
        .when(hist < min_months, "insufficient_history")
    )
    detail = (
        F.when(F.col("_in_dim").isNull(), F.lit("in fact_sales_monthly but not in dim_dfu"))
        .when(F.col("_known_item").isNull(), F.concat(F.lit("item "), F.col("_item"), F.lit(" not in dim_item")))
        .when(F.col("_in_facts").isNull(), F.lit(f"no rows in fact_sales_monthly up to {as_of:%Y-%m}"))
        .when(F.col("first_sale").isNull(), F.lit(f"only zero quantities up to {as_of:%Y-%m}"))
        .when(
            no_demand,
            F.concat(
                F.lit(f"no sales in the {window}-month window ending {as_of:%Y-%m} (last sale "),
                F.date_format("last_sale", ym),
                F.lit(")"),
            ),
        )
        .otherwise(
            F.concat(
                hist.cast("string"),
                F.lit(" months of history (first sale "),
                F.date_format("first_sale", ym),
                F.lit(f") < min {min_months}"),
            )
        )
    )
    out = seen.select("dfu_id", reason.alias("reason"), hist.alias("history_months"), detail.alias("detail"))
    out = out.where(F.col("reason").isNotNull()).withColumn("as_of_month", F.lit(as_of))
    return conform(out, S.DFU_CLUSTERING_EXCLUSIONS)


def build(
    facts: DataFrame, dim_item: DataFrame, dim_dfu: DataFrame, as_of: date, window: int, min_months: int
) -> tuple[DataFrame, DataFrame]:
    """Source tables -> (dfu_clustering_features rows, dfu_clustering_exclusions rows) for ``as_of``."""
    excluded = exclusions(dfu_spans(facts, as_of, window), dim_item, dim_dfu, as_of, window, min_months)
    ts = time_series_features(monthly_grid(facts, as_of, window))
    kept = ts.join(excluded.select("dfu_id"), "dfu_id", "left_anti")
    return with_attributes(kept, dim_item, dim_dfu, as_of), excluded


def encode_for_training(df: DataFrame, max_levels: int) -> DataFrame:
    """dfu_clustering_features rows (one as_of_month) -> the training matrix of the contract: dfu_id, as_of_month
    (YYYY-MM-DD), the time-series features as they are, numeric attributes as ``item__<col>`` / ``dfu__<col>``
    (NULL -> the column's median, 0 if the column is all NULL), then each categorical one-hot as
    ``item__<col>=<level>`` / ``dfu__<col>=<level>`` (0/1 ints) for its ``max_levels`` most frequent levels (ties
    by level name), ``=other`` for the rest and ``=unknown`` for NULL; those two only where some row has them.
    Levels come from ``df`` itself, so the columns follow the data."""
    numeric = [("item__", c) for c in S.ITEM_NUMERIC] + [("dfu__", c) for c in S.DFU_NUMERIC]
    categorical = [("item__", c) for c in S.ITEM_CATEGORICAL] + [("dfu__", c) for c in S.DFU_CATEGORICAL]
    # One aggregated row (medians) and one row per categorical level: small, whatever the number of DFUs.
    medians = df.agg(*[F.median(c).alias(c) for _, c in numeric]).first().asDict()
    stacked = df.select(
        F.explode(
            F.array(*[F.struct(F.lit(c).alias("col"), F.col(c).cast("string").alias("level")) for _, c in categorical])
        ).alias("s")
    ).select("s.col", "s.level")
    rank = Window.partitionBy("col").orderBy(F.col("level").isNull(), F.col("count").desc(), F.col("level"))
    levels = (
        stacked.groupBy("col", "level")
        .count()
        .withColumn("rank", F.row_number().over(rank))
        .where((F.col("rank") <= max_levels + 1) | F.col("level").isNull())
        .collect()
    )
    by_col: dict[str, list] = {}
    for r in sorted(levels, key=lambda r: (r["col"], r["rank"])):
        by_col.setdefault(r["col"], []).append(r)

    cols = [
        "dfu_id",
        F.date_format("as_of_month", "yyyy-MM-dd").alias("as_of_month"),
        *S.TIME_SERIES_FEATURES,
    ]
    for prefix, c in numeric:
        fill = medians[c] if medians[c] is not None else 0.0
        cols.append(F.coalesce(F.col(c).cast("double"), F.lit(float(fill))).alias(f"{prefix}{c}"))
    for prefix, c in categorical:
        rows = by_col.get(c, [])
        top = [r["level"] for r in rows if r["level"] is not None and r["rank"] <= max_levels]
        value = F.col(c).cast("string")
        for level in top:
            cols.append(F.coalesce((value == level).cast("int"), F.lit(0)).alias(f"{prefix}{c}={level}"))
        if any(r["level"] is not None and r["rank"] > max_levels for r in rows):
            other = value.isNotNull() & ~value.isin(top) if top else value.isNotNull()
            cols.append(other.cast("int").alias(f"{prefix}{c}=other"))
        if any(r["level"] is None for r in rows):
            cols.append(value.isNull().cast("int").alias(f"{prefix}{c}=unknown"))
    return df.select(*cols)


def write_csv(encoded: DataFrame, path: Path) -> int:
    """Write the encoded matrix sorted by dfu_id, floats to 10 significant digits: the same rows give the same
    bytes. Returns the number of rows."""
    pdf = encoded.toPandas().sort_values("dfu_id", kind="mergesort").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
    return len(pdf)


def latest_month(facts: DataFrame) -> date:
    last = facts.agg(F.max("month")).first()[0]
    if last is None:
        raise ValueError("fact_sales_monthly is empty: generate it first (python -m jobs.dfu.generate)")
    return date(last.year, last.month, 1)


def run(
    spark: SparkSession,
    cfg: Config,
    ccfg: ClusteringConfig,
    as_of: date | None = None,
    min_months: int | None = None,
    window: int | None = None,
    output: Path | None = None,
) -> dict:
    """Compute and write the features and exclusions of ``as_of`` (default: the latest month with facts), then the
    training CSV; returns the counts (seen = featured + excluded)."""
    min_months = min_months or ccfg.clustering.min_months_history
    window = window or ccfg.clustering.time_window_months
    if min_months > window:
        raise ValueError(f"--min-months {min_months} cannot exceed --time-window {window}")
    output = Path(output or ccfg.output_dir / "clustering_features.csv")
    lake = Lakehouse(spark, cfg)
    facts, dim_item, dim_dfu = (lake.read(n) for n in ("fact_sales_monthly", "dim_item", "dim_dfu"))
    as_of = as_of or latest_month(facts)
    features, excluded = build(facts, dim_item, dim_dfu, as_of, window, min_months)
    where = f"as_of_month = DATE'{as_of.isoformat()}'"
    featured = lake.replace_where("dfu_clustering_features", features, where)
    n_excluded = lake.replace_where("dfu_clustering_exclusions", excluded, where)
    seen = dfu_monthly(facts, as_of).select("dfu_id").union(dim_dfu.select("dfu_id")).distinct().count()
    if featured + n_excluded != seen:
        raise RuntimeError(f"counts do not reconcile: {seen} DFUs seen != {featured} featured + {n_excluded} excluded")
    reasons = {
        r["reason"]: r["count"]
        for r in lake.read("dfu_clustering_exclusions").where(where).groupBy("reason").count().collect()
    }
    stored = lake.read("dfu_clustering_features").where(where)
    rows = write_csv(encode_for_training(stored, ccfg.clustering.max_category_levels), output)
    return {
        "as_of_month": as_of.isoformat(),
        "time_window": window,
        "min_months": min_months,
        "dfus_seen": seen,
        "featured": featured,
        "excluded": n_excluded,
        "exclusions_by_reason": {r: reasons[r] for r in REASONS if r in reasons},
        "csv": str(output),
        "csv_rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="clustering config YAML (default: $DFU_CLUSTERING_CONFIG or the repo's)")
    p.add_argument("--min-months", type=int, help="minimum months of history (default: clustering.min_months_history)")
    p.add_argument("--time-window", type=int, help="months the features cover (default: clustering.time_window_months)")
    p.add_argument("--as-of", help="last month of the window: YYYY-MM, or 'latest' (the default) with facts")
    p.add_argument("--output", type=Path, help="training CSV (default: <output_dir>/clustering_features.csv)")
    a = p.parse_args(argv)
    ccfg = load_clustering_config(a.config)
    try:
        as_of = parse_month(a.as_of) if a.as_of and a.as_of != "latest" else None
        for flag, v in (("--min-months", a.min_months), ("--time-window", a.time_window)):
            if v is not None and v < 3:
                raise ValueError(f"{flag}: must be at least 3, got {v}")
        min_months = a.min_months or ccfg.clustering.min_months_history
        window = a.time_window or ccfg.clustering.time_window_months
        if min_months > window:
            raise ValueError(f"--min-months {min_months} cannot exceed --time-window {window}")
    except ValueError as e:
        p.error(str(e))
    cfg = load_config()
    spark = build_spark(cfg, "dfu-features")
    try:
        result = run(spark, cfg, ccfg, as_of, min_months, window, a.output)
    except ValueError as e:  # bad input (no facts yet): say so without a traceback
        raise SystemExit(f"dfu-features: {e}") from None
    finally:
        spark.stop()
    print(
        f"dfu-features as_of={result['as_of_month']} window={result['time_window']} "
        f"min_months={result['min_months']}: {result['dfus_seen']} DFUs seen = {result['featured']} featured + "
        f"{result['excluded']} excluded {result['exclusions_by_reason']}"
    )
    print(f"wrote {result['csv']} ({result['csv_rows']} rows)")


if __name__ == "__main__":
    main()
