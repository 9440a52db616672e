"""The ``dfu_cluster_summary`` definition: per cluster label, how many DFUs carry it and their typical demand.

One row per ``dim_dfu.cluster_assignment`` (DFUs without one are left out): ``dfu_count``, ``avg_demand`` (the mean
over the cluster's DFUs of each DFU's mean monthly demand) and ``cv_demand`` (the mean of their ``cv_demand``),
both from each DFU's latest row of ``dfu_clustering_features`` (the latest ``as_of_month``). A DFU with an
assignment but no features row still counts in ``dfu_count`` and is left out of the averages.

The SQL is written once (``schemas.dfu.summary_sql``) and parameterised by how tables are named, so the catalog
view and the API serve the same numbers from the same text:

    summary_sql(lambda t: f"mrs.{t}")  # the view mrs.dfu_cluster_summary
    run_summary(spark, lambda t: f"delta.`{lakehouse.path(t)}`", ["a", "b"])  # the API, over the Delta paths

A filter on labels (``run_summary``) is a Column predicate over the query's result, never spliced into SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from schemas.dfu import summary_sql


def run_summary(
    spark: SparkSession, ref: Callable[[str], str], cluster_assignments: Sequence[str] | None = None
) -> DataFrame:
    """The summary as a frame, kept to ``cluster_assignments`` when given (an empty list keeps nothing).

    The filter is a Column predicate on the query's result, its values literals in the plan: nothing from a request
    is spliced into SQL text. (Spark pushes it below the aggregation, onto dim_dfu.) Not ``spark.sql(query,
    args=...)``: with the Delta SQL extension installed, Spark 4.1+/Delta 4.x leave bound parameters unbound
    (UNBOUND_SQL_PARAMETER; delta-io/delta#7640, SPARK-59672)."""
    df = spark.sql(summary_sql(ref))
    if cluster_assignments is not None:
        df = df.where(F.col("cluster_assignment").isin([str(v) for v in cluster_assignments]))
    return df
