"""StructType of every table of the DFU clustering product (spec note 003): the one place their columns are defined.

A DFU (demand forecasting unit) is an item at a location; ``dfu_id = item_id + "@" + location_id``. The three
source tables (``fact_sales_monthly``, ``dim_item``, ``dim_dfu``) mirror the forecasting platform's own; the
clustering writes ``dim_dfu.cluster_assignment`` and nothing else there (the note: no schema changes).

These are dimension and fact tables of another system, not MRS logs: they carry no ``run_id`` (decision 8 is
about demo runs of the anomaly pipeline). Re-running a clustering step still adds no rows: features are keyed by
``as_of_month`` and replaced per month, and the dim_dfu MERGE only changes what differs.
"""

from collections.abc import Callable

from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, StructField, StructType


def _f(name, dtype, nullable=True):
    return StructField(name, dtype, nullable)


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

FACT_SALES_MONTHLY = StructType(
    [
        _f("item_id", StringType(), False),
        _f("location_id", StringType(), False),
        _f("month", DateType(), False),  # first day of the month
        _f("qty", DoubleType(), False),  # units shipped; a month without a row had no demand
        _f("sales_amount", DoubleType()),
    ]
)

DIM_ITEM = StructType(
    [
        _f("item_id", StringType(), False),
        _f("item_desc", StringType()),
        *[_f(c, StringType()) for c in ITEM_CATEGORICAL],
        *[_f(c, DoubleType()) for c in ITEM_NUMERIC],
    ]
)

DIM_DFU = StructType(
    [
        _f("dfu_id", StringType(), False),
        _f("item_id", StringType(), False),
        _f("location_id", StringType(), False),
        *[_f(c, StringType()) for c in DFU_CATEGORICAL],
        *[_f(c, DoubleType()) for c in DFU_NUMERIC],
        _f("cluster_assignment", StringType()),  # the business label cluster-update writes
    ]
)

# What the generator meant each DFU to be: the answer key `cluster-evaluate` scores labels against.
DFU_PATTERN_TRUTH = StructType(
    [
        _f("dfu_id", StringType(), False),
        _f("pattern", StringType(), False),  # steady | seasonal | growing | declining | intermittent | lumpy
        _f("volume_tier", StringType(), False),  # high | medium | low
        _f("first_month", DateType(), False),  # launch month: later launches have short histories
        _f("seed", IntegerType(), False),
    ]
)

DFU_CLUSTERING_FEATURES = StructType(
    [
        _f("as_of_month", DateType(), False),  # last month of the window (first day of it)
        _f("dfu_id", StringType(), False),
        _f("item_id", StringType(), False),
        _f("location_id", StringType(), False),
        _f("history_months", IntegerType(), False),  # months from the DFU's first sale to as_of_month
        _f("window_months", IntegerType(), False),  # months the features were computed over
        *[_f(c, IntegerType() if c in _INT_FEATURES else DoubleType()) for c in TIME_SERIES_FEATURES],
        *[_f(c, StringType()) for c in ITEM_CATEGORICAL],
        *[_f(c, DoubleType()) for c in ITEM_NUMERIC],
        *[_f(c, StringType()) for c in DFU_CATEGORICAL],
        *[_f(c, DoubleType()) for c in DFU_NUMERIC],
    ]
)

# DFUs left out of a clustering run, with why: DFUs in dim_dfu or the facts = features + exclusions.
DFU_CLUSTERING_EXCLUSIONS = StructType(
    [
        _f("as_of_month", DateType(), False),
        _f("dfu_id", StringType(), False),
        _f("reason", StringType(), False),  # insufficient_history | no_demand_in_window | unknown_item | unknown_dfu
        _f("history_months", IntegerType(), False),
        _f("detail", StringType(), False),
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
