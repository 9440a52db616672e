"""StructType of every table of the DFU clustering product (spec note 003): the one place their columns are defined.

A DFU (demand forecasting unit) is an item at a location; ``dfu_id = item_id + "@" + location_id``. The three
source tables (``fact_sales_monthly``, ``dim_item``, ``dim_dfu``) mirror the forecasting platform's own; the
clustering writes ``dim_dfu.cluster_assignment`` and nothing else there (the note: no schema changes).

These are dimension and fact tables of another system, not MRS logs: they carry no ``run_id`` (decision 8 is
about demo runs of the anomaly pipeline). Re-running a clustering step still adds no rows: features are keyed by
``as_of_month`` and replaced per month, and the dim_dfu MERGE only changes what differs.

Every column carries a one-line description in its metadata under ``comment``, as in ``schemas.mrs``.
"""

from collections.abc import Callable

from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, StructField, StructType

# The metadata key Spark and Delta read a column's comment from (as in schemas.mrs).
COMMENT = "comment"


def _f(name, dtype, comment, nullable=True):
    # A column without a description is a mistake in this file, not a runtime condition: refuse it at import.
    if not isinstance(comment, str) or not comment.strip():
        raise ValueError(f"column {name}: a one-line description is required, got {comment!r}")
    return StructField(name, dtype, nullable, {COMMENT: comment})


# Attribute columns the features carry over, by source table (note 003, "Item Features" / "DFU Features").
ITEM_CATEGORICAL = ("category", "class", "sub_class", "brand_name", "country", "national_service_model")
ITEM_NUMERIC = ("case_weight", "item_proof", "bpc", "bottle_pack", "pack_case")
DFU_CATEGORICAL = (
    "brand",
    "region",
    "state_plan",
    "sales_div",
    "prod_cat_desc",
    "abc_vol",
    "service_lvl_grp",
    "supergroup",
)
DFU_NUMERIC = ("execution_lag", "total_lt", "alcoh_pct", "proof")

# What each attribute means, as the forecasting platform's master data holds it (jobs/dfu/generate.py draws the
# demo's values): the source tables and the feature table describe them alike.
ATTRIBUTES: dict[str, str] = {
    "category": "item category: Spirits, Wine, Beer, RTD, Non-Alcoholic",
    "class": "item class within the category, e.g. Whiskey, Red, Lager",
    "sub_class": "item sub-class within the class, e.g. Bourbon, Pinot Noir",
    "brand_name": "item brand",
    "country": "country of origin",
    "national_service_model": "how the item is supplied: Warehouse, Direct Store Delivery, Cross-Dock, Special Order",
    "case_weight": "weight of a case (the generator: pounds)",
    "item_proof": "alcohol proof (twice the percentage by volume), 0 for non-alcoholic",
    "bpc": "bottles (or cans) per case: bottle_pack x pack_case",
    "bottle_pack": "bottles (or cans) per pack",
    "pack_case": "packs per case",
    "brand": "the DFU's brand as the DFU master holds it (upper case)",
    "region": "region of the DFU's location (distribution centre)",
    "state_plan": "the location's state and plan, <state>-CONTROL (state-controlled sales) or <state>-LICENSE",
    "sales_div": "sales division, e.g. Spirits Division",
    "prod_cat_desc": "product category description: <CATEGORY> - <CLASS>",
    "abc_vol": "ABC volume class: A high, B medium, C low",
    "service_lvl_grp": "service level group, e.g. SL-98",
    "supergroup": "assortment supergroup: Core, Premium, Value, Craft & Import",
    "execution_lag": "forecast execution lag of the DFU, as the DFU master holds it (the generator: 0-2)",
    "total_lt": "total replenishment lead time (the generator: 5-21 for domestic, 35-75 for imported items)",
    "alcoh_pct": "alcohol percentage by volume (proof / 2)",
    "proof": "alcohol proof of the DFU's item",
}

# Per-DFU time-series features (note 003, "Time Series Features"), by group: training weights groups, not columns.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "volume": (
        "mean_demand",
        "median_demand",
        "std_demand",
        "cv_demand",
        "min_demand",
        "max_demand",
        "total_demand",
    ),
    "trend": ("trend_slope", "trend_pct_change", "trend_direction"),
    "seasonality": ("seasonality_strength", "peak_month", "seasonal_index_std", "year_over_year_correlation"),
    "volatility": ("zero_demand_pct", "sparsity_score", "demand_stability", "outlier_count", "adi", "cv2_nonzero"),
    "growth": ("growth_rate", "acceleration", "recent_vs_historical"),
}
TIME_SERIES_FEATURES = tuple(c for cols in FEATURE_GROUPS.values() for c in cols)
_INT_FEATURES = {"trend_direction", "peak_month", "outlier_count"}
# One line each; jobs/dfu/features.py's docstring has the full definitions. q: monthly demand on the window's grid.
FEATURES: dict[str, str] = {
    "mean_demand": "mean monthly demand over the window, zero months included (units a month)",
    "median_demand": "median monthly demand over the window (units a month)",
    "std_demand": "sample standard deviation of monthly demand (units a month)",
    "cv_demand": "coefficient of variation: std_demand / mean_demand",
    "min_demand": "smallest monthly demand in the window",
    "max_demand": "largest monthly demand in the window",
    "total_demand": "demand summed over the window (units)",
    "trend_slope": "least-squares slope of demand over time, units per month",
    "trend_pct_change": "(mean of the last 3 months - mean of the first 3) / mean of the first 3",
    "trend_direction": "1 / -1 when the yearly slope is above / below 10% of mean_demand, else 0",
    "seasonality_strength": "range (max - min) of the calendar-month indices of the detrended series",
    "peak_month": "calendar month (1-12) with the largest seasonal index",
    "seasonal_index_std": "population standard deviation of the calendar-month indices",
    "year_over_year_correlation": "Pearson correlation of q_t and q_t+12 (0 with too few pairs)",
    "zero_demand_pct": "share of the window's months with zero demand, in [0, 1]",
    "sparsity_score": "longest run of consecutive zero months / window_months, in [0, 1]",
    "demand_stability": "1 / (1 + cv_demand), in (0, 1]",
    "outlier_count": "months outside the Tukey fences [Q1 - 1.5 IQR, Q3 + 1.5 IQR]",
    "adi": "average demand interval: window_months / months with demand",
    "cv2_nonzero": "squared coefficient of variation of the non-zero months (0 with fewer than 2)",
    "growth_rate": "CAGR between the first and last k = min(12, n // 2) months, capped at +5",
    "acceleration": "change of the yearly trend (second-half slope - first-half slope) x 12 / mean_demand",
    "recent_vs_historical": "mean of the last 3 months / mean_demand",
}
AS_OF_MONTH = "last month of the window (its first day)"

FACT_SALES_MONTHLY = StructType(
    [
        _f("item_id", StringType(), "the item", False),
        _f("location_id", StringType(), "the location (distribution centre) it shipped from", False),
        _f("month", DateType(), "the month (its first day)", False),
        _f(
            "qty", DoubleType(), "units shipped in the month net of returns (may be negative), no row: no demand", False
        ),
        _f("sales_amount", DoubleType(), "revenue of the month's shipments"),
    ]
)

DIM_ITEM = StructType(
    [
        _f("item_id", StringType(), "the item", False),
        _f("item_desc", StringType(), "item description: brand, sub-class and pack size"),
        *[_f(c, StringType(), ATTRIBUTES[c]) for c in ITEM_CATEGORICAL],
        *[_f(c, DoubleType(), ATTRIBUTES[c]) for c in ITEM_NUMERIC],
    ]
)

DIM_DFU = StructType(
    [
        _f("dfu_id", StringType(), "the DFU: item_id@location_id", False),
        _f("item_id", StringType(), "the DFU's item (dim_item)", False),
        _f("location_id", StringType(), "the DFU's location", False),
        *[_f(c, StringType(), ATTRIBUTES[c]) for c in DFU_CATEGORICAL],
        *[_f(c, DoubleType(), ATTRIBUTES[c]) for c in DFU_NUMERIC],
        _f(
            "cluster_assignment",
            StringType(),
            "the business label cluster-update writes, e.g. seasonal_medium_volume, NULL: not clustered",
        ),
    ]
)

# What the generator meant each DFU to be: the answer key `cluster-evaluate` scores labels against.
DFU_PATTERN_TRUTH = StructType(
    [
        _f("dfu_id", StringType(), "the generated DFU: item_id@location_id", False),
        _f("pattern", StringType(), "steady | seasonal | growing | declining | intermittent | lumpy", False),
        _f("volume_tier", StringType(), "high | medium | low: the level its demand was drawn at", False),
        _f(
            "first_month",
            DateType(),
            "launch month: no demand before it, so later launches have short histories",
            False,
        ),
        _f("seed", IntegerType(), "the generator seed that drew it", False),
    ]
)

DFU_CLUSTERING_FEATURES = StructType(
    [
        _f("as_of_month", DateType(), AS_OF_MONTH, False),
        _f("dfu_id", StringType(), "the DFU: item_id@location_id", False),
        _f("item_id", StringType(), "the DFU's item", False),
        _f("location_id", StringType(), "the DFU's location", False),
        _f("history_months", IntegerType(), "months from the DFU's first sale to as_of_month, both included", False),
        _f("window_months", IntegerType(), "months the features were computed over: the dense grid's length", False),
        *[_f(c, IntegerType() if c in _INT_FEATURES else DoubleType(), FEATURES[c]) for c in TIME_SERIES_FEATURES],
        *[_f(c, StringType(), f"{ATTRIBUTES[c]}, from dim_item") for c in ITEM_CATEGORICAL],
        *[_f(c, DoubleType(), f"{ATTRIBUTES[c]}, from dim_item") for c in ITEM_NUMERIC],
        *[_f(c, StringType(), f"{ATTRIBUTES[c]}, from dim_dfu") for c in DFU_CATEGORICAL],
        *[_f(c, DoubleType(), f"{ATTRIBUTES[c]}, from dim_dfu") for c in DFU_NUMERIC],
    ]
)

# DFUs left out of a clustering run, with why: DFUs in dim_dfu or the facts = features + exclusions.
DFU_CLUSTERING_EXCLUSIONS = StructType(
    [
        _f("as_of_month", DateType(), AS_OF_MONTH, False),
        _f("dfu_id", StringType(), "the DFU left out", False),
        _f(
            "reason",
            StringType(),
            "the first that applies: unknown_dfu | unknown_item | no_demand_in_window | insufficient_history",
            False,
        ),
        _f("history_months", IntegerType(), "months from its first sale to as_of_month (0: never sold)", False),
        _f("detail", StringType(), "the reason in words, naming the item, months or last sale", False),
    ]
)


# The view mrs.dfu_cluster_summary (jobs/dfu/summary.py runs the same text for the API).
SUMMARY_COLUMNS = ("cluster_assignment", "dfu_count", "avg_demand", "cv_demand")
# Demand is in units per month (2 decimals are plenty); a coefficient of variation needs a little more.
DEMAND_DECIMALS = 2
CV_DECIMALS = 3


def summary_sql(ref: Callable[[str], str]) -> str:
    """The summary query; ``ref(table_name)`` names each table. No ``;`` and no comments: the catalog DDL splits
    statements on ``;``."""
    return (
        "SELECT d.cluster_assignment, count(*) AS dfu_count, "
        f"round(avg(f.mean_demand), {DEMAND_DECIMALS}) AS avg_demand, "
        f"round(avg(f.cv_demand), {CV_DECIMALS}) AS cv_demand "
        f"FROM {ref('dim_dfu')} d LEFT JOIN ("
        "SELECT dfu_id, mean_demand, cv_demand, "
        "row_number() OVER (PARTITION BY dfu_id ORDER BY as_of_month DESC) AS rn "
        f"FROM {ref('dfu_clustering_features')}) f ON f.dfu_id = d.dfu_id AND f.rn = 1 "
        "WHERE d.cluster_assignment IS NOT NULL GROUP BY d.cluster_assignment ORDER BY d.cluster_assignment"
    )
