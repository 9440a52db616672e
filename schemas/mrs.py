"""StructType of every MRS table: the one place a table's columns are defined.

Governance fields (spec decision 9) close each log: ``run_id``, ``written_at`` (the logical tick the row
describes, never the wall clock), ``report_status`` and ``is_degraded``; ``report_id`` where it applies.
Per-tick tables carry ``date`` (UTC date of the tick) as their partition column.
"""

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _f(name, dtype, nullable=True):
    return StructField(name, dtype, nullable)


def _series_keys():
    return [
        _f("series_key", StringType(), False),
        _f("store_id", StringType(), False),
        _f("sku", StringType()),  # NULL at store grain
    ]


DEMO_RUN_CONFIG = StructType(
    [
        _f("seq", LongType(), False),  # latest seq names the active run_id
        _f("run_id", StringType(), False),
        _f("reason", StringType()),
        _f("written_at", TimestampType(), False),
    ]
)

UNIFIED_SALES_DATA = StructType(
    [
        _f("run_id", StringType(), False),
        _f("batch_id", StringType(), False),
        _f("source_file", StringType(), False),
        _f("ts", TimestampType(), False),
        _f("store_id", StringType(), False),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("sku", StringType()),
        _f("category", StringType()),
        _f("units", DoubleType(), False),
        _f("revenue", DoubleType()),
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

INGEST_QUARANTINE = StructType(
    [
        _f("run_id", StringType(), False),
        _f("source_file", StringType(), False),
        _f("record_hash", StringType(), False),
        _f("reason_code", StringType(), False),
        _f("reason_detail", StringType(), False),
        _f("raw_record", StringType(), False),  # the row as read, JSON of its string fields
        _f("written_at", TimestampType(), False),  # the tick that owned the row
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

INGEST_AUDIT_LOG = StructType(
    [
        _f("run_id", StringType(), False),
        _f("tick_ts", TimestampType(), False),
        _f("source_files", ArrayType(StringType()), False),
        _f("rows_read", LongType(), False),
        _f("rows_accepted", LongType(), False),
        _f("rows_quarantined", LongType(), False),
        _f("rows_duplicate_dropped", LongType(), False),
        _f("series_count", LongType(), False),
        _f("feeds_missing", ArrayType(StringType()), False),  # reference feeds absent when the tick was ingested
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),  # no input at all for this tick
        _f("date", DateType(), False),
    ]
)

SALES_TIMESERIES_DATA = StructType(
    [
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("category", StringType()),
        _f("ts", TimestampType(), False),
        _f("units", DoubleType(), False),
        _f("revenue", DoubleType()),
        _f("source_rows", LongType(), False),
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

BASELINE_SALES_MODEL_PREDICTION_LOG = StructType(
    [
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("ts", TimestampType(), False),
        _f("actual_units", DoubleType()),  # NULL: no data for this tick (row is degraded)
        _f("baseline_units", DoubleType()),  # NULL: not enough history yet (row is degraded)
        _f("history_days", IntegerType(), False),
        _f("model_version", StringType(), False),
        _f("report_id", StringType()),
        _f("report_status", StringType(), False),
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

ANOMALY_CLASSIFIER_MODEL_PREDICTION_LOG = StructType(
    [
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("ts", TimestampType(), False),
        _f("actual_units", DoubleType()),
        _f("baseline_units", DoubleType()),
        _f("z_score", DoubleType()),  # signed, the window with the largest |z| / threshold
        _f("z_window", IntegerType()),
        _f("anomaly_score", DoubleType()),  # [0, 1]
        _f("direction", StringType()),  # spike | drop
        _f("is_anomalous", BooleanType(), False),  # decision after hysteresis
        _f("model_version", StringType(), False),
        _f("report_id", StringType()),
        _f("report_status", StringType(), False),  # active | ended | none
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

MINORITY_REPORTS_DETECTED_LOG = StructType(
    [
        _f("report_id", StringType(), False),
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("category", StringType()),
        _f("first_detected_from", TimestampType(), False),
        _f("window_start", TimestampType(), False),
        _f("window_end", TimestampType()),  # NULL while the report is active
        _f("direction", StringType(), False),
        _f("severity", DoubleType(), False),
        _f("peak_anomaly_score", DoubleType(), False),
        _f("attributed_sales_total", DoubleType(), False),
        _f("baseline_sales_total", DoubleType(), False),
        _f("ticks_active", IntegerType(), False),
        _f("model_version", StringType(), False),
        _f("report_status", StringType(), False),  # active | ended
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

CONTEXTUAL_DATA = StructType(
    [
        _f("run_id", StringType(), False),
        _f("record_id", StringType(), False),  # sha256 of the record's content
        _f("signal_type", StringType(), False),  # social_trend | competitor_stockout | store_incident | ...
        _f("store_id", StringType()),  # the scope: any of store, region, category, sku may be set
        _f("region", StringType()),
        _f("category", StringType()),
        _f("sku", StringType()),
        _f("source", StringType()),
        _f("detail", StringType()),
        _f("start", TimestampType(), False),
        _f("end", TimestampType(), False),
        _f("intensity", DoubleType()),
        _f("source_file", StringType(), False),
        _f("written_at", TimestampType(), False),  # the tick the record starts in
        _f("is_degraded", BooleanType(), False),
    ]
)

ALL_CAMPAIGN_DATA = StructType(
    [
        _f("run_id", StringType(), False),
        _f("record_id", StringType(), False),  # the campaign_id
        _f("campaign_id", StringType(), False),
        _f("campaign_type", StringType()),  # paid_social | paid_search | display | in_store_promo | ...
        _f("channel", StringType()),
        _f("retailer_id", StringType()),
        _f("category", StringType()),
        _f("sku", StringType()),
        _f("start", TimestampType(), False),
        _f("end", TimestampType(), False),
        _f("daily_spend", DoubleType()),
        _f("source_file", StringType(), False),
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
    ]
)


def _report_keys():
    return [
        _f("report_id", StringType(), False),
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("category", StringType()),
        _f("window_start", TimestampType(), False),
        _f("window_end", TimestampType()),
        _f("direction", StringType(), False),
    ]


def _governance():
    return [
        _f("report_status", StringType(), False),  # the MRDL snapshot's: active | ended
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]


CLUSTER_LIBRARY = StructType(
    [
        _f("library_version", StringType(), False),
        _f("cluster_id", StringType(), False),
        _f("cluster_name", StringType(), False),
        _f("detection_type", StringType()),  # taxonomy type the name stands for; NULL: unexplained
        _f("centroid", ArrayType(DoubleType()), False),  # in the scaled, weighted feature space
        _f("member_count", LongType(), False),
        _f("feature_names", ArrayType(StringType()), False),
        _f("feature_mean", ArrayType(DoubleType()), False),
        _f("feature_scale", ArrayType(DoubleType()), False),
        _f("feature_weights", ArrayType(DoubleType()), False),
        _f("distance_metric", StringType(), False),  # euclidean | cosine
        _f("distance_scale", DoubleType(), False),  # median member-to-centroid distance
        _f("k", IntegerType(), False),
        _f("silhouette", DoubleType(), False),
        _f("trained_on", StringType(), False),  # provenance: where the training reports came from
        _f("run_id", StringType(), False),  # the run whose reports trained it
        _f("written_at", TimestampType(), False),  # the latest report snapshot it learned from
    ]
)

MINORITY_REPORTS_CLUSTERED_LOG = StructType(
    [
        *_report_keys(),
        _f("feature_vector", ArrayType(DoubleType())),  # order: feature_names; NULL only with no usable slice
        _f("feature_names", ArrayType(StringType()), False),
        _f("slice_ticks", IntegerType(), False),
        _f("library_version", StringType(), False),
        _f("cluster_id", StringType()),
        _f("cluster_name", StringType()),
        _f("similarity_score", DoubleType()),  # [0, 1]
        _f("cluster_match_confidence", DoubleType()),  # [0, 1]: falls as the runner-up closes in
        _f("second_cluster_name", StringType()),
        *_governance(),
    ]
)


def _cause(suffix=""):
    return [
        _f(f"proposed_cause{suffix}", StringType()),
        _f(f"proposed_cause_category{suffix}", StringType()),
        _f(f"impact_vector{suffix}", StringType()),
        _f(f"confidence_score{suffix}", DoubleType()),
    ]


MINORITY_REPORTS_PROPOSED_ATTRIBUTION_LOG = StructType(
    [
        *_report_keys(),
        _f("cluster_id", StringType()),
        _f("cluster_name", StringType()),
        *_cause(),
        _f("confidence_tier", StringType()),  # Low | Medium | High
        *_cause("_2"),
        *_cause("_3"),
        _f("supporting_evidence", ArrayType(StringType()), False),  # "<source>:<id or measure>" per item used
        _f("evidence_sources_missing", ArrayType(StringType()), False),
        _f("model_version", StringType(), False),
        *_governance(),
    ]
)

MINORITY_REPORT_EMBEDDING = StructType(
    [
        _f("run_id", StringType(), False),
        _f("embedding_id", StringType(), False),  # sha256 of the inputs, seed and settings: reruns add nothing
        _f("point_type", StringType(), False),  # report | centroid
        _f("point_id", StringType(), False),  # report_id or library cluster_id
        _f("cluster_id", StringType()),
        _f("cluster_name", StringType()),
        _f("library_version", StringType(), False),
        _f("tsne_x", DoubleType(), False),
        _f("tsne_y", DoubleType(), False),
        _f("perplexity", DoubleType(), False),
        _f("seed", IntegerType(), False),
        _f("written_at", TimestampType(), False),  # the latest report snapshot embedded
        _f("is_degraded", BooleanType(), False),
    ]
)
