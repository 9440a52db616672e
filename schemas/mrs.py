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
    MapType,
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

BASELINE_PROFILE_LOG = StructType(
    [
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("category", StringType()),
        _f("baseline", ArrayType(DoubleType())),  # expected units per time-of-day slot; NULL: too little history
        _f("history_days", IntegerType(), False),  # complete days in the lookback the baseline was fitted on
        _f("overdispersion", DoubleType()),  # variance = mean + overdispersion * mean^2
        _f("model_version", StringType(), False),
        _f("report_status", StringType(), False),  # ok | insufficient_history
        _f("written_at", TimestampType(), False),  # the day's midnight: it uses only the days before
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


# A report's identifying columns, as every report log carries them (report_id, run_id first).
REPORT_COLUMNS = [f.name for f in _report_keys()]


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


# A report's usual price, computed once (its first clustered tick) from the sales before its window: the
# clustering features and the protection feed's fallback price read it instead of scanning those days again.
MINORITY_REPORT_REFERENCE_PRICE = StructType(
    [
        _f("run_id", StringType(), False),
        _f("report_id", StringType(), False),
        _f("series_key", StringType(), False),
        _f("window_start", TimestampType(), False),
        _f("reference_days", IntegerType(), False),  # the days before window_start it is averaged over
        _f("ref_price", DoubleType()),  # revenue per unit; NULL: no priced sales in those days
        _f("written_at", TimestampType(), False),  # the report's first snapshot
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


# -- cohorting: reports -> Minority Events (spec note 001, decisions 3 and 4) ------------------------------
def _event_window():
    return [
        _f("event_window_start", TimestampType(), False),  # the earliest window_start among the event's reports
        _f("event_window_end", TimestampType()),  # NULL while the event is active
    ]


MINORITY_REPORTS_COHORTED_LOG = StructType(
    [
        *_report_keys(),
        _f("report_group_id", StringType(), False),  # the event: ME- + sha256(anchor report_id | its window_start)
        _f("event_status", StringType(), False),  # active | ended
        _f("version", IntegerType(), False),  # monotonic per report: ticks since its window_start, plus one
        _f("severity_score", DoubleType(), False),
        _f("impact_estimate", DoubleType(), False),  # attributed minus baseline units (signed)
        _f("attributed_sales_total", DoubleType(), False),
        _f("baseline_sales_total", DoubleType(), False),
        _f("feature_vector", ArrayType(DoubleType())),
        _f("cluster_id", StringType()),
        _f("cluster_name", StringType()),
        _f("similarity_score", DoubleType()),
        _f("cluster_match_confidence", DoubleType()),
        _f("tsne_x", DoubleType()),  # from the latest t-SNE map written at or before the tick; NULL until one is
        _f("tsne_y", DoubleType()),
        _f("proposed_cause", StringType()),  # the report's own, carried from MRPAL
        _f("proposed_cause_category", StringType()),
        _f("confidence_score", DoubleType()),
        _f("supporting_evidence", StringType()),  # MRPAL's evidence list joined with "; "
        _f("cohort_id", StringType(), False),  # MC- + sha256 of the member report_ids: changes when membership does
        _f("cohort_name", StringType(), False),  # e.g. "Competitor Stockout: CAT_02 in North, 4 stores"
        _f("cohort_cause_category", StringType()),  # the members' confidence-weighted majority cause
        _f("cohort_confidence", DoubleType(), False),  # [0, 1]: mean member confidence in that cause
        _f("cohort_reason", StringType(), False),  # single report | temporal adjacency | shared cause | both
        _f("cohort_size", IntegerType(), False),
        _f("cohort_store_count", IntegerType(), False),
        *_event_window(),
        *_governance(),
    ]
)


def _event_keys():
    return [
        _f("event_id", StringType(), False),  # = report_group_id
        _f("run_id", StringType(), False),
        _f("store_id", StringType(), False),  # the anchor report's store
        _f("store_count", IntegerType(), False),
        _f("report_count", IntegerType(), False),
        _f("window_start", TimestampType(), False),
        _f("window_end", TimestampType()),  # NULL while active
    ]


def _event_governance():
    return [
        _f("report_id", StringType(), False),  # the anchor: the event's earliest report
        _f("report_status", StringType(), False),  # the anchor report's status
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),  # a member report was produced with an input missing
        _f("date", DateType(), False),
    ]


MINORITY_EVENT_LOG = StructType(
    [
        *_event_keys(),
        _f("event_status", StringType(), False),  # active | ended | merged
        _f("change", StringType(), False),  # created | reopened | ended | merged | membership
        _f("merged_into", StringType()),  # the event that absorbed this one (change = merged)
        _f("created_at", TimestampType(), False),  # when its earliest report was first detected
        _f("finalized_at", TimestampType()),  # the tick it ended; NULL while active
        *_event_governance(),
    ]
)

MINORITY_EVENT_ENDED_LOG = StructType(
    [
        *_event_keys(),
        *_event_governance(),
    ]
)


# -- hydration: derived, one row per object, rewritten by key (spec note 002) ----------------------------
MAX_ALIGNED_STORES = 14  # store_id_N / retailer_N pairs in the event roll-up; store_count has the full count

MINORITY_REPORTS = StructType(
    [
        *_report_keys(),
        # detection (MRDL)
        _f("severity", DoubleType(), False),
        _f("peak_anomaly_score", DoubleType(), False),
        _f("attributed_sales_total", DoubleType(), False),
        _f("baseline_sales_total", DoubleType(), False),
        _f("ticks_active", IntegerType(), False),
        _f("detection_model_version", StringType(), False),
        _f("last_detected_at", TimestampType(), False),  # the report's latest MRDL snapshot
        # clustering (MRCL); t-SNE points are in the view minority_reports_map (maps are made on demand)
        _f("feature_vector", ArrayType(DoubleType())),
        _f("library_version", StringType()),
        _f("cluster_id", StringType()),
        _f("cluster_name", StringType()),
        _f("similarity_score", DoubleType()),
        _f("cluster_match_confidence", DoubleType()),
        # attribution (MRPAL)
        *_cause(),
        _f("confidence_tier", StringType()),
        *_cause("_2"),
        *_cause("_3"),
        _f("supporting_evidence", ArrayType(StringType())),
        _f("attribution_model_version", StringType()),
        # finalisation (MRFL): the cause fields above are the finalised ones, analysts' edits included
        _f("review_status", StringType(), False),  # proposed | confirmed | auto_confirmed | rejected
        _f("analyst_comment", StringType()),
        _f("edited_by", StringType()),  # the latest edit's author
        _f("field_sources", MapType(StringType(), StringType()), False),  # field -> model | analyst | automation
        _f("model_source", StringType(), False),  # pipeline | rereview: which proposal the model values are
        # cohorting (MRCH)
        _f("report_group_id", StringType()),
        _f("event_status", StringType()),
        _f("cohort_name", StringType()),
        _f("cohort_reason", StringType()),
        _f("cohort_size", IntegerType()),
        _f("report_status", StringType(), False),
        _f("written_at", TimestampType(), False),  # the newest log row merged in
        _f("is_degraded", BooleanType(), False),  # any of the merged rows is
    ]
)

MINORITY_EVENTS_LOG = StructType(
    [
        _f("event_id", StringType(), False),
        _f("run_id", StringType(), False),
        _f("event_status", StringType(), False),  # active | ended | merged
        _f("last_change", StringType(), False),  # the latest MELOG change
        _f("merged_into", StringType()),
        _f("cohort_name", StringType()),
        _f("cohort_reason", StringType()),
        _f("report_ids", ArrayType(StringType()), False),  # sorted
        _f("report_count", IntegerType(), False),
        _f("store_count", IntegerType(), False),  # all stores, even beyond the aligned 14
        *[
            f
            for n in range(1, MAX_ALIGNED_STORES + 1)
            for f in (_f(f"store_id_{n}", StringType()), _f(f"retailer_{n}", StringType()))
        ],
        _f("window_start", TimestampType(), False),
        _f("window_end", TimestampType()),  # from minority_event_ended_log; NULL while active
        _f("created_at", TimestampType(), False),
        _f("finalized_at", TimestampType()),
        _f("attributed_sales_total", DoubleType()),  # sums over the member reports
        _f("baseline_sales_total", DoubleType()),
        _f("avg_attributed_sales", DoubleType()),  # per member report
        _f("avg_baseline_sales", DoubleType()),
        _f("severity", DoubleType()),  # the largest member severity
        _f("avg_severity", DoubleType()),
        _f("cause_category", StringType()),  # the members' confidence-weighted majority cause
        _f("proposed_cause", StringType()),  # the most confident member narrative for that cause
        _f("confidence_score", DoubleType()),  # cohort_confidence
        # analysts' event-level edits (user_minority_events_edits_log), the latest per field winning
        _f("review_status", StringType(), False),  # proposed | confirmed | rejected
        _f("supporting_evidence", ArrayType(StringType()), False),  # evidence analysts added
        _f("analyst_comment", StringType()),
        _f("edited_by", StringType()),
        _f("field_sources", MapType(StringType(), StringType()), False),  # cause_category, cohort_name, ...
        _f("chart_path", StringType()),  # PNG: actual vs baseline per store, the window shaded
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
    ]
)


def _as_of(schema: StructType) -> StructType:
    return StructType([_f("as_of", TimestampType(), False), *schema.fields])


MINORITY_REPORTS_AS_OF = _as_of(MINORITY_REPORTS)
MINORITY_EVENTS_AS_OF = _as_of(MINORITY_EVENTS_LOG)


# -- the analyst loop: edits, finalisation, rereview (spec note 004 sections 4 and 9, note 002) --------------
# What an edit may change. Anything else is refused by the edit command with nothing written.
EDITABLE_REPORT_FIELDS = (
    "proposed_cause_category",
    "proposed_cause",
    "review_status",
    "supporting_evidence",
    "comment",
)
EDITABLE_EVENT_FIELDS = ("cause_category", "cohort_name", "review_status", "supporting_evidence", "comment")
# proposed: awaiting review | confirmed / rejected: by an analyst | auto_confirmed: by an automation rule
REVIEW_STATUSES = ("proposed", "confirmed", "auto_confirmed", "rejected")


def _edit_fields():
    return [
        _f("field", StringType(), False),  # one of EDITABLE_*_FIELDS
        _f("value", StringType(), False),
        _f("author", StringType(), False),  # a person, or automation:<rule>
        _f("reason", StringType()),
        _f("request_id", StringType(), False),  # the Airflow run or command that made it: repeats add nothing
        _f("edit_seq", LongType(), False),  # order of edits at one written_at (automation 0, analysts from 1)
    ]


USER_EDITS_LOG = StructType(
    [
        _f("edit_id", StringType(), False),  # UE- + sha256(request_id | report_id | field)
        _f("run_id", StringType(), False),
        _f("report_id", StringType(), False),
        *_edit_fields(),
        _f("window_start", TimestampType(), False),  # the report's: bounds what finalisation reads
        _f("report_status", StringType(), False),  # the report's status when edited
        _f("written_at", TimestampType(), False),  # the tick after the latest one processed (data time)
        _f("is_degraded", BooleanType(), False),
    ]
)

USER_MINORITY_EVENTS_EDITS_LOG = StructType(
    [
        _f("edit_id", StringType(), False),  # EE- + sha256(request_id | event_id | field)
        _f("run_id", StringType(), False),
        _f("event_id", StringType(), False),
        *_edit_fields(),
        _f("window_start", TimestampType(), False),  # the event's
        _f("report_id", StringType(), False),  # the event's anchor report
        _f("report_status", StringType(), False),  # the event's status when edited
        _f("written_at", TimestampType(), False),
        _f("is_degraded", BooleanType(), False),
    ]
)

MINORITY_REPORTS_FINALISED_LOG = StructType(
    [
        *_report_keys(),
        *_cause(),  # final values: analysts' corrections over the model's proposal
        _f("confidence_tier", StringType()),
        _f("review_status", StringType(), False),  # REVIEW_STATUSES
        _f("supporting_evidence", ArrayType(StringType()), False),  # the model's, then analysts' additions
        _f("analyst_comment", StringType()),
        _f("rejected_categories", ArrayType(StringType()), False),  # causes analysts rejected (rereview drops them)
        _f("field_sources", MapType(StringType(), StringType()), False),  # field -> model | analyst | automation
        _f("edited_by", StringType()),  # the latest edit's author
        _f("cluster_id", StringType()),
        _f("library_version", StringType()),
        _f("attribution_model_version", StringType()),
        _f("model_source", StringType(), False),  # pipeline | rereview: the log the model values come from
        _f("model_written_at", TimestampType(), False),  # that log row's written_at
        _f("edit_seq", LongType(), False),  # the latest edit applied (-1: none)
        _f("finalised_id", StringType(), False),  # sha256(report_id | model row | edits applied)
        *_governance(),
    ]
)

REREVIEW_WORKLIST_LOG = StructType(
    [
        _f("rereview_id", StringType(), False),  # RR- + sha256(report_id | versions | rejected categories)
        _f("run_id", StringType(), False),
        _f("report_id", StringType(), False),
        _f("reasons", ArrayType(StringType()), False),  # low_confidence | analyst_rejected | older_model
        _f("rejected_categories", ArrayType(StringType()), False),
        _f("previous_cause_category", StringType()),
        _f("previous_confidence", DoubleType()),
        _f("previous_library_version", StringType()),
        _f("previous_model_version", StringType()),
        _f("library_version", StringType(), False),  # the versions it is rereviewed with
        _f("attribution_model_version", StringType(), False),
        *_governance(),
    ]
)

REREVIEW_CLUSTERED_LOG = StructType([_f("rereview_id", StringType(), False), *MINORITY_REPORTS_CLUSTERED_LOG.fields])
REREVIEW_PROPOSED_ATTRIBUTION_LOG = StructType(
    [_f("rereview_id", StringType(), False), *MINORITY_REPORTS_PROPOSED_ATTRIBUTION_LOG.fields]
)


# -- protection, alerts, health (note 002 protection, note 004 section 8) -----------------------------------
PROTECTION_FEED = StructType(
    [
        _f("run_id", StringType(), False),
        *_series_keys(),
        _f("retailer_id", StringType()),
        _f("region", StringType()),
        _f("category", StringType()),
        _f("ts", TimestampType(), False),  # the tick
        _f("report_id", StringType(), False),
        _f("event_id", StringType()),
        _f("cause_category", StringType()),
        _f("review_status", StringType(), False),  # only the statuses in protection.include_statuses
        _f("confidence_score", DoubleType()),
        _f("actual_units", DoubleType(), False),
        _f("baseline_units", DoubleType(), False),
        _f("anomalous_units", DoubleType(), False),  # actual - baseline: what campaigns must not be credited with
        _f("actual_revenue", DoubleType(), False),
        _f("anomalous_revenue", DoubleType(), False),
        _f("report_status", StringType(), False),
        _f("written_at", TimestampType(), False),  # the finalised row it was built from
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

UI_NOTIFICATIONS_LOG = StructType(
    [
        _f("notification_id", StringType(), False),  # NT- + sha256(run_id | event or check | trigger | recipient)
        _f("run_id", StringType(), False),
        _f("event_id", StringType()),  # NULL for a pipeline health alert
        _f("trigger_condition", StringType(), False),  # e.g. severity>=0.9, category:Competitor Stockout, health:stale
        _f("delivered_to", StringType(), False),  # the subscriber's address
        _f("channel", StringType(), False),  # email+ui
        _f("subject", StringType(), False),
        _f("body", StringType(), False),
        _f("link", StringType()),  # opens the event (its chart) or the health row
        _f("severity", DoubleType()),
        _f("cause_category", StringType()),
        _f("report_id", StringType()),  # the event's anchor report
        _f("report_status", StringType(), False),  # the event's status when the trigger held
        _f("written_at", TimestampType(), False),  # the first tick the trigger held
        _f("is_degraded", BooleanType(), False),
    ]
)

PIPELINE_HEALTH_LOG = StructType(
    [
        _f("run_id", StringType(), False),
        _f("interval_start", TimestampType(), False),
        _f("interval_end", TimestampType(), False),
        _f("latest_tick_seen", TimestampType()),  # the newest tick with any sales row
        _f("freshness_lag_minutes", DoubleType()),  # interval_end - (latest_tick_seen + tick); NULL: no data at all
        _f("expected_series", IntegerType(), False),  # series seen in the lookback before the interval
        _f("series_with_data", IntegerType(), False),
        _f("coverage", DoubleType(), False),  # share of expected series x ticks with data
        _f("rows_read", LongType(), False),
        _f("rows_quarantined", LongType(), False),
        _f("error_rate", DoubleType(), False),  # quarantined / read
        _f("rows_written", MapType(StringType(), LongType()), False),  # table -> rows written in the interval
        _f("health_status", StringType(), False),  # ok | degraded | stale
        _f("problems", ArrayType(StringType()), False),
        _f("report_status", StringType(), False),  # = health_status (governance field)
        _f("written_at", TimestampType(), False),  # the interval's last tick
        _f("is_degraded", BooleanType(), False),
        _f("date", DateType(), False),
    ]
)

TABLE_MAINTENANCE_LOG = StructType(
    [
        _f("table_name", StringType(), False),
        _f("written_at", TimestampType(), False),  # the maintenance run's data interval end
        _f("files_before", LongType(), False),  # data files in the table's current version
        _f("files_after", LongType(), False),
        _f("partitions", LongType(), False),  # partition values (1 for an unpartitioned table)
        _f("bytes_after", LongType(), False),
        _f("files_compacted", LongType(), False),  # small files OPTIMIZE rewrote (removed) ...
        _f("files_written", LongType(), False),  # ... into this many
        _f("files_vacuumed", LongType(), False),  # unreferenced files older than the retention, deleted
        _f("log_version", LongType(), False),  # the table's latest commit after maintenance
        _f("checkpoint_version", LongType()),  # its latest checkpoint; NULL: none yet
        _f("report_status", StringType(), False),  # compacted | unchanged
        _f("is_degraded", BooleanType(), False),  # files_after > maintenance.max_files_per_partition x partitions
        _f("date", DateType(), False),
    ]
)
