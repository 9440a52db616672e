"""StructType of every MRS table: the one place a table's columns are defined, and described.

Every column carries a one-line description in its metadata under ``comment``, the key Spark and Delta use for
column comments: created tables and ``DESCRIBE mrs.<table>`` show it, and ``docs/tables.md`` is generated from it
(``make tables-doc``). A description says what the value means (units, range, what NULL means), not its name.

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

# The metadata key Spark and Delta read a column's comment from.
COMMENT = "comment"


def _f(name, dtype, comment, nullable=True):
    # A column without a description is a mistake in this file, not a runtime condition: refuse it at import.
    if not isinstance(comment, str) or not comment.strip():
        raise ValueError(f"column {name}: a one-line description is required, got {comment!r}")
    return StructField(name, dtype, nullable, {COMMENT: comment})


def _recomment(fields, **comments):
    """``fields`` with the descriptions of the columns named in ``comments`` replaced (a table that reuses another's
    columns, where some mean something else)."""
    unknown = set(comments) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"no such columns to describe: {sorted(unknown)}")
    return [_f(f.name, f.dataType, comments.get(f.name, f.metadata[COMMENT]), f.nullable) for f in fields]


# -- shared wording: governance fields and the columns most tables repeat ------------------------------------
RUN_ID = "demo run the row belongs to (spec decision 8): reads filter by the active one, the latest in demo_run_config"
WRITTEN_AT = "logical tick the row describes (UTC, the end of the data it saw), never the wall clock"
IS_DEGRADED = "true when the row was produced with an input missing or incomplete"
DATE = "UTC date of the row's tick (written_at)"
NOT_DEGRADED = "always false: rows that fail validation go to ingest_quarantine instead"
SERIES_KEY = "the series: store_id|sku, or store_id at store grain (pipeline.grain)"
STORE_ID = "store the sales were made in"
SKU = "product (SKU), NULL at store grain"
RETAILER_ID = "retailer the store belongs to"
REGION = "region the store is in"
CATEGORY = "product category of the SKU, NULL at store grain"
TICK = "the tick (UTC start of the pipeline.tick_minutes interval) the row is for"
REPORT_ID = "the minority report: MR- + sha256(series_key | first_detected_from), spec decision 2"
MODEL_VERSION = "detection.model_version of the baseline and classifier that wrote the row"


def _run_id():
    return _f("run_id", StringType(), RUN_ID, False)


def _written_at(comment=WRITTEN_AT):
    return _f("written_at", TimestampType(), comment, False)


def _is_degraded(comment=IS_DEGRADED):
    return _f("is_degraded", BooleanType(), comment, False)


def _date(comment=DATE):
    return _f("date", DateType(), comment, False)


def _series_keys():
    return [
        _f("series_key", StringType(), SERIES_KEY, False),
        _f("store_id", StringType(), STORE_ID, False),
        _f("sku", StringType(), SKU),
    ]


def _series_attributes():
    return [
        _f("retailer_id", StringType(), RETAILER_ID),
        _f("region", StringType(), REGION),
        _f("category", StringType(), CATEGORY),
    ]


DEMO_RUN_CONFIG = StructType(
    [
        _f("seq", LongType(), "activation order: the row with the latest seq names the active run_id", False),
        _f("run_id", StringType(), "the run_id this row makes active", False),
        _f("reason", StringType(), "why it was activated (default: demo reset)"),
        _written_at("logical time of the reset: the resetting DAG run's data interval start"),
    ]
)

UNIFIED_SALES_DATA = StructType(
    [
        _run_id(),
        _f("batch_id", StringType(), "delivery batch as given in the input, else the source file's name", False),
        _f("source_file", StringType(), "landing file the row was read from", False),
        _f("ts", TimestampType(), "the row's own sale timestamp (UTC), parsed from the input", False),
        _f("store_id", StringType(), "store the sale was made in, trimmed", False),
        _f("retailer_id", StringType(), RETAILER_ID + ", as delivered"),
        _f("region", StringType(), REGION + ", as delivered"),
        _f("sku", StringType(), "product (SKU), trimmed, may be NULL only at store grain"),
        _f("category", StringType(), "product category, as delivered"),
        _f("units", DoubleType(), "units sold, a number >= 0", False),
        _f("revenue", DoubleType(), "revenue of those units as delivered, NULL when the input left it empty"),
        _written_at("the tick that owns the row: ts floored to the tick"),
        _is_degraded(NOT_DEGRADED),
        _date(),
    ]
)

INGEST_QUARANTINE = StructType(
    [
        _run_id(),
        _f("source_file", StringType(), "landing file (sales, context or campaign feed) the row came from", False),
        _f("record_hash", StringType(), "sha256 of raw_record: with the reason, keys a rejected row", False),
        _f(
            "reason_code",
            StringType(),
            "why it was rejected: SCHEMA_DRIFT, MALFORMED_ROW, BAD_TIMESTAMP, NULL_KEY, NON_NUMERIC_UNITS, "
            "NEGATIVE_UNITS, NON_NUMERIC_REVENUE, NON_NUMERIC_VALUE or DUPLICATE_KEY_CONFLICT",
            False,
        ),
        _f("reason_detail", StringType(), "the failed check in words, naming the offending value", False),
        _f("raw_record", StringType(), "the row as read: JSON of its string fields, or the unparsable line", False),
        _written_at("the tick that owned the row: its own, or its file's first valid tick for a bad timestamp"),
        _is_degraded("always false: a rejected row is recorded whole"),
        _date(),
    ]
)

INGEST_AUDIT_LOG = StructType(
    [
        _run_id(),
        _f("tick_ts", TimestampType(), "the tick reconciled (UTC start of the interval)", False),
        _f("source_files", ArrayType(StringType()), "landing files that delivered rows for the tick, sorted", False),
        _f("rows_read", LongType(), "input rows owned by the tick: accepted + quarantined + duplicates dropped", False),
        _f("rows_accepted", LongType(), "rows written to unified_sales_data", False),
        _f("rows_quarantined", LongType(), "rows written to ingest_quarantine", False),
        _f("rows_duplicate_dropped", LongType(), "exact copies of an earlier row, dropped", False),
        _f("series_count", LongType(), "series with accepted rows: the tick's sales_timeseries_data rows", False),
        _f(
            "feeds_missing",
            ArrayType(StringType()),
            "reference feeds (contextual_data, all_campaign_data) absent when the tick was ingested",
            False,
        ),
        _written_at("= tick_ts"),
        _is_degraded("true when the tick had no input at all (rows_accepted 0)"),
        _date(),
    ]
)

SALES_TIMESERIES_DATA = StructType(
    [
        _run_id(),
        *_series_keys(),
        _f("retailer_id", StringType(), RETAILER_ID + " (the largest value among the tick's rows)"),
        _f("region", StringType(), REGION + " (the largest value among the tick's rows)"),
        _f("category", StringType(), CATEGORY + " (the largest value among the tick's rows)"),
        _f("ts", TimestampType(), TICK, False),
        _f("units", DoubleType(), "units sold in the tick, summed over the series' accepted rows", False),
        _f("revenue", DoubleType(), "revenue summed over those rows, NULL when none had one"),
        _f(
            "source_rows",
            LongType(),
            "accepted input rows summed into this one (> 1: several rows, or a re-send)",
            False,
        ),
        _written_at("= ts"),
        _is_degraded("always false: a series without rows in a tick has no row"),
        _date(),
    ]
)

BASELINE_SALES_MODEL_PREDICTION_LOG = StructType(
    [
        _run_id(),
        *_series_keys(),
        _f("ts", TimestampType(), TICK, False),
        _f("actual_units", DoubleType(), "units sold in the tick, NULL: no sales row for it (the row is degraded)"),
        _f(
            "baseline_units",
            DoubleType(),
            "expected units for the tick from the day's baseline_profile_log row, NULL: no earlier day with data",
        ),
        _f(
            "history_days",
            IntegerType(),
            "days of history the day's baseline was fitted on (under detection.min_history_days: a fallback)",
            False,
        ),
        _f("model_version", StringType(), MODEL_VERSION, False),
        _f("report_id", StringType(), "the report open on the series at this tick, NULL when none"),
        _f(
            "report_status",
            StringType(),
            "the series' report at this tick: active | ended (its closing tick) | none",
            False,
        ),
        _written_at("= ts"),
        _is_degraded("true when actual_units or baseline_units is NULL, or history_days < detection.min_history_days"),
        _date(),
    ]
)

BASELINE_PROFILE_LOG = StructType(
    [
        _run_id(),
        *_series_keys(),
        _f("retailer_id", StringType(), RETAILER_ID + ", from the series' latest sales row"),
        _f("region", StringType(), REGION + ", from the series' latest sales row"),
        _f("category", StringType(), CATEGORY + ", from the series' latest sales row"),
        _f(
            "baseline",
            ArrayType(DoubleType()),
            "expected units per time-of-day slot of the day (slot 0 at midnight), NULL: no earlier day with data",
        ),
        _f(
            "history_days",
            IntegerType(),
            "days with detection.min_day_coverage of their ticks in the detection.lookback_days before this one",
            False,
        ),
        _f(
            "overdispersion",
            DoubleType(),
            "k of the series' noise: variance = dispersion * mean + k * mean^2, fitted on the same days",
        ),
        _f("dispersion", DoubleType(), "the noise's variance per unit of mean (above 1: sales come in lumps)"),
        _f(
            "calibration_sample",
            ArrayType(DoubleType()),
            "the day before's scan statistics against its own baseline, per detection.windows entry: its busy "
            "windows, then the top 15% of its spike z and of its drop z (NULL: not scored by the seasonal model)",
        ),
        _f("scored_ticks", IntegerType(), "ticks of the day before that calibration_sample stands for (0: none)"),
        _f(
            "calibration",
            ArrayType(DoubleType()),
            "per detection.windows entry, spike then drop: the factors a z is divided by at the 90% and 98% "
            "quantiles, from the calibration samples of the lookback",
        ),
        _f("model_version", StringType(), MODEL_VERSION, False),
        _f(
            "report_status",
            StringType(),
            "ok | short_history (a fallback: fewer than detection.min_history_days) | insufficient_history (none)",
            False,
        ),
        _written_at("the day's midnight: the baseline uses only the days before it"),
        _is_degraded("true when report_status is not ok"),
        _date("the day the baseline is for"),
    ]
)

ANOMALY_CLASSIFIER_MODEL_PREDICTION_LOG = StructType(
    [
        _run_id(),
        *_series_keys(),
        _f("ts", TimestampType(), TICK, False),
        _f("actual_units", DoubleType(), "units sold in the tick, NULL: no sales row for it"),
        _f("baseline_units", DoubleType(), "expected units for the tick, NULL: too little history yet"),
        _f(
            "z_score",
            DoubleType(),
            "signed z (negative-binomial tail) of the deciding window, the one with the smallest calibrated tail "
            "probability, NULL without actual or baseline units",
        ),
        _f("z_window", IntegerType(), "length in ticks of that window (one of detection.windows)"),
        _f(
            "anomaly_score",
            DoubleType(),
            "min(1, -log10(p) / 10), p the calibrated tail probability of the tick under the series own recent "
            "noise, in [0, 1], NULL: not scored (see unscored_reason)",
        ),
        _f("direction", StringType(), "spike (z >= 0) | drop, NULL without a z"),
        _f(
            "is_anomalous",
            BooleanType(),
            "decision after hysteresis: on from the score detection.false_alarm_budget sets until "
            "detection.off_ticks ticks in a row below detection.score_off",
            False,
        ),
        _f("model_version", StringType(), MODEL_VERSION, False),
        _f("report_id", StringType(), "the report open on the series at this tick, NULL when none"),
        _f(
            "report_status",
            StringType(),
            "the series' report at this tick: active | ended (its closing tick) | none",
            False,
        ),
        _f(
            "unscored_reason",
            StringType(),
            "why anomaly_score is NULL: no_reading (no sales row) | no_history (no earlier day with data) | "
            "no_baseline_in_window (a window reaches a tick without one), NULL when scored",
        ),
        _written_at("= ts"),
        _is_degraded("true when actual_units or baseline_units is NULL, or history_days < detection.min_history_days"),
        _date(),
    ]
)

MINORITY_REPORTS_DETECTED_LOG = StructType(
    [
        _f("report_id", StringType(), REPORT_ID, False),
        _run_id(),
        *_series_keys(),
        *_series_attributes(),
        _f(
            "first_detected_from",
            TimestampType(),
            "tick the report opened (its score reached the false-alarm budget's): fixes report_id on every replay",
            False,
        ),
        _f(
            "window_start",
            TimestampType(),
            "start of the anomaly window: its estimated onset, the first deviating tick of the window that "
            "opened the report (at most detection.windows' longest before first_detected_from)",
            False,
        ),
        _f("window_end", TimestampType(), "tick the report closed on, NULL while the report is active"),
        _f(
            "direction",
            StringType(),
            "spike | drop: the report's, from its totals so far (attributed >= baseline)",
            False,
        ),
        _f(
            "severity",
            DoubleType(),
            "1 - exp(-|ln((attributed + 1) / (baseline + 1))| / detection.severity_scale), in [0, 1]",
            False,
        ),
        _f("peak_anomaly_score", DoubleType(), "largest anomaly_score over the report's active ticks so far", False),
        _f("attributed_sales_total", DoubleType(), "actual units summed over the report's active ticks so far", False),
        _f(
            "baseline_sales_total",
            DoubleType(),
            "baseline units summed over the same ticks (a tick without sales adds none)",
            False,
        ),
        _f("ticks_active", IntegerType(), "active ticks so far", False),
        _f("model_version", StringType(), MODEL_VERSION, False),
        _f("report_status", StringType(), "active, or ended on the report's closing snapshot", False),
        _written_at("the tick this snapshot describes"),
        _is_degraded("true when the tick's actual or baseline units were missing"),
        _date(),
    ]
)

CONTEXTUAL_DATA = StructType(
    [
        _run_id(),
        _f("record_id", StringType(), "sha256 of the record's content: a re-delivered copy is the same record", False),
        _f(
            "signal_type",
            StringType(),
            "social_trend | competitor_stockout | store_incident | feed_incident | ... "
            "(attribution.signal_categories maps it to a detection type)",
            False,
        ),
        _f(
            "store_id", StringType(), "scope: the store it concerns, NULL for any (any of store, region, category, sku)"
        ),
        _f("region", StringType(), "scope: the region it concerns, NULL for any"),
        _f("category", StringType(), "scope: the product category it concerns, NULL for any"),
        _f("sku", StringType(), "scope: the SKU it concerns, NULL for any"),
        _f("source", StringType(), "where the signal came from, as delivered"),
        _f("detail", StringType(), "free text describing the signal, as delivered"),
        _f("start", TimestampType(), "UTC start of the time range the signal covers", False),
        _f("end", TimestampType(), "UTC end of that range, after start", False),
        _f("intensity", DoubleType(), "strength as delivered: a social mention below 1 counts as weak evidence"),
        _f("source_file", StringType(), "landing file the record was read from", False),
        _written_at("the tick the record starts in"),
        _is_degraded(NOT_DEGRADED),
    ]
)

ALL_CAMPAIGN_DATA = StructType(
    [
        _run_id(),
        _f("record_id", StringType(), "= campaign_id", False),
        _f("campaign_id", StringType(), "the campaign's own id, as delivered", False),
        _f("campaign_type", StringType(), "paid_social | paid_search | display | in_store_promo | ..."),
        _f("channel", StringType(), "where it runs (Facebook, Google, in_store, ...), as delivered"),
        _f("retailer_id", StringType(), "scope: the retailer it runs at, NULL for any"),
        _f("category", StringType(), "scope: the product category it promotes, NULL for any"),
        _f("sku", StringType(), "scope: the SKU it promotes, NULL for any"),
        _f("start", TimestampType(), "UTC start of the campaign", False),
        _f("end", TimestampType(), "UTC end of the campaign, after start", False),
        _f("daily_spend", DoubleType(), "spend per day as delivered, NULL when not given"),
        _f("source_file", StringType(), "landing file the record was read from", False),
        _written_at("the tick the campaign starts in"),
        _is_degraded(NOT_DEGRADED),
    ]
)


def _report_keys():
    return [
        _f("report_id", StringType(), REPORT_ID, False),
        _run_id(),
        *_series_keys(),
        *_series_attributes(),
        _f("window_start", TimestampType(), "start of the report's anomaly window: the tick it opened", False),
        _f("window_end", TimestampType(), "tick the report closed on, NULL while it is active"),
        _f("direction", StringType(), "spike | drop: the report's, from its totals so far", False),
    ]


# A report's identifying columns, as every report log carries them (report_id, run_id first).
REPORT_COLUMNS = [f.name for f in _report_keys()]


def _governance(written_at="the tick of the report snapshot the row is for", is_degraded=IS_DEGRADED):
    return [
        _f(
            "report_status",
            StringType(),
            "the report's status in the MRDL snapshot the row is based on: active | ended",
            False,
        ),
        _written_at(written_at),
        _is_degraded(is_degraded),
        _date(),
    ]


CLUSTER_LIBRARY = StructType(
    [
        _f(
            "library_version",
            StringType(),
            "library version name (clustering.library_version), e.g. generated-v1",
            False,
        ),
        _f("cluster_id", StringType(), "C01, C02, ...: clusters ordered by name, then size", False),
        _f(
            "cluster_name",
            StringType(),
            "the most common label among its training reports (TikTok Viral, ...), numbered when repeated",
            False,
        ),
        _f("detection_type", StringType(), "the taxonomy type the name stands for, NULL: unexplained"),
        _f(
            "centroid",
            ArrayType(DoubleType()),
            "mean of its members' vectors in the scaled, weighted feature space (order: feature_names)",
            False,
        ),
        _f("member_count", LongType(), "training reports in the cluster", False),
        _f("feature_names", ArrayType(StringType()), "the feature order of centroid and the scaling arrays", False),
        _f(
            "feature_mean",
            ArrayType(DoubleType()),
            "per-feature mean of the training vectors: the z-score centre",
            False,
        ),
        _f(
            "feature_scale",
            ArrayType(DoubleType()),
            "per-feature standard deviation of the training vectors (1 where it is about 0)",
            False,
        ),
        _f(
            "feature_weights",
            ArrayType(DoubleType()),
            "clustering.feature_weights, multiplied in after scaling",
            False,
        ),
        _f("distance_metric", StringType(), "euclidean | cosine (clustering.distance)", False),
        _f(
            "distance_scale",
            DoubleType(),
            "median member-to-centroid distance: the s of similarity_score = 2^-(d / 2s)^2",
            False,
        ),
        _f("k", IntegerType(), "clusters in the version: the K in k_min..k_max with the best silhouette", False),
        _f("silhouette", DoubleType(), "silhouette score of that K over the training vectors, in [-1, 1]", False),
        _f(
            "trained_on", StringType(), "provenance: where the training reports came from and their label counts", False
        ),
        _f("run_id", StringType(), "the run whose reports trained it (library-seed-N for a generated history)", False),
        _written_at("the newest report snapshot it learned from"),
    ]
)

MINORITY_REPORTS_CLUSTERED_LOG = StructType(
    [
        *_report_keys(),
        _f(
            "feature_vector",
            ArrayType(DoubleType()),
            "the shape of the report's slice, window_start to the tick (order: feature_names), "
            "NULL only with no usable tick",
        ),
        _f(
            "feature_names", ArrayType(StringType()), "names of feature_vector's elements (jobs/lib/features.py)", False
        ),
        _f("slice_ticks", IntegerType(), "ticks of the slice with both actual and baseline units", False),
        _f(
            "library_version",
            StringType(),
            "cluster library version matched against, empty while no library exists yet",
            False,
        ),
        _f("cluster_id", StringType(), "nearest library centroid, NULL without a vector or a library"),
        _f("cluster_name", StringType(), "that centroid's name, e.g. TikTok Viral"),
        _f(
            "similarity_score",
            DoubleType(),
            "2^-(d / 2s)^2 for the distance d to the centroid and the library's distance_scale s, in [0, 1]",
        ),
        _f(
            "cluster_match_confidence",
            DoubleType(),
            "1 - d_best / d_second, in [0, 1]: falls as the runner-up centroid closes in",
        ),
        _f("second_cluster_name", StringType(), "the runner-up centroid's name, NULL with a one-cluster library"),
        *_governance(
            is_degraded="true when the MRDL snapshot is, or a tick of the slice lacked actual or baseline units"
        ),
    ]
)


# A report's usual price, computed once (its first clustered tick) from the sales before its window: the
# clustering features and the protection feed's fallback price read it instead of scanning those days again.
MINORITY_REPORT_REFERENCE_PRICE = StructType(
    [
        _run_id(),
        _f("report_id", StringType(), REPORT_ID, False),
        _f("series_key", StringType(), SERIES_KEY, False),
        _f("window_start", TimestampType(), "the report's window_start", False),
        _f(
            "reference_days",
            IntegerType(),
            "days before window_start the price is averaged over (clustering.reference_days)",
            False,
        ),
        _f("ref_price", DoubleType(), "revenue per unit over those days, NULL: no priced sales in them"),
        _written_at("the report's first snapshot: when clustering first saw it"),
    ]
)

_RANKS = {"": "top-ranked", "_2": "second-ranked", "_3": "third-ranked"}


def _cause(suffix="", final=False):
    """The four columns of one proposed cause; ``final`` for the values finalisation settles (MRFL, hydrated)."""
    rank = _RANKS[suffix]
    if final:
        return [
            _f(
                "proposed_cause",
                StringType(),
                "final cause narrative: an analyst's correction (who and why), else the model's naming its evidence",
            ),
            _f(
                "proposed_cause_category",
                StringType(),
                "final detection type (spec decision 11): an analyst's correction over the model's proposal",
            ),
            _f("impact_vector", StringType(), "impact vector of that type (attribution.impact_vectors)"),
            _f(
                "confidence_score",
                DoubleType(),
                "confidence in that cause, in [0, 1]: 1 when an analyst set it, else the model's",
            ),
        ]
    return [
        _f(
            f"proposed_cause{suffix}",
            StringType(),
            f"{rank} cause as a narrative naming its evidence and the sales move",
        ),
        _f(
            f"proposed_cause_category{suffix}",
            StringType(),
            f"{rank} cause's detection type (spec decision 11), NULL when no type is left to propose",
        ),
        _f(f"impact_vector{suffix}", StringType(), f"{rank} cause's impact vector (attribution.impact_vectors)"),
        _f(
            f"confidence_score{suffix}",
            DoubleType(),
            f"{rank} cause's softmax share over the five types, in [0, 1], "
            "times attribution.degraded_factor when a feed was missing",
        ),
    ]


CONFIDENCE_TIER = (
    "Low below attribution.tier_medium (0.5), Medium below tier_high (0.8), High from it, "
    "NULL when every type was rejected"
)

MINORITY_REPORTS_PROPOSED_ATTRIBUTION_LOG = StructType(
    [
        *_report_keys(),
        _f("cluster_id", StringType(), "the report's cluster at this snapshot (MRCL)"),
        _f("cluster_name", StringType(), "that cluster's name"),
        *_cause(),
        _f("confidence_tier", StringType(), CONFIDENCE_TIER),
        *_cause("_2"),
        *_cause("_3"),
        _f(
            "supporting_evidence",
            ArrayType(StringType()),
            "every piece of evidence used, strongest first, as <source>:<id or measure> -> <type> +<contribution>",
            False,
        ),
        _f(
            "evidence_sources_missing",
            ArrayType(StringType()),
            "feeds missing at the tick (ingest_audit_log.feeds_missing, or ingest_audit_log without an audit row)",
            False,
        ),
        _f("model_version", StringType(), "attribution.model_version that proposed the causes", False),
        *_governance(is_degraded="true when the MRCL snapshot is, or a feed was missing at the tick"),
    ]
)

MINORITY_REPORT_EMBEDDING = StructType(
    [
        _run_id(),
        _f(
            "embedding_id",
            StringType(),
            "EMB- + sha256 of the inputs (each report's latest snapshot), library version, perplexity and seed: "
            "reruns add nothing",
            False,
        ),
        _f("point_type", StringType(), "report | centroid", False),
        _f("point_id", StringType(), "report_id, or the library cluster_id of a centroid", False),
        _f("cluster_id", StringType(), "the report's matched cluster, or the centroid's own"),
        _f("cluster_name", StringType(), "that cluster's name"),
        _f("library_version", StringType(), "library whose centroids are embedded (the configured one)", False),
        _f("tsne_x", DoubleType(), "t-SNE x coordinate: comparable only within one embedding_id", False),
        _f("tsne_y", DoubleType(), "t-SNE y coordinate: comparable only within one embedding_id", False),
        _f(
            "perplexity",
            DoubleType(),
            "t-SNE perplexity used: clustering.tsne_perplexity, lower when there are few points",
            False,
        ),
        _f("seed", IntegerType(), "t-SNE random seed (clustering.seed)", False),
        _written_at("the latest report snapshot embedded"),
        _is_degraded("true when any embedded report snapshot is"),
    ]
)


# -- cohorting: reports -> Minority Events (spec note 001, decisions 3 and 4) ------------------------------
def _event_window():
    return [
        _f(
            "event_window_start",
            TimestampType(),
            "the event's start: the earliest window_start among its reports",
            False,
        ),
        _f(
            "event_window_end",
            TimestampType(),
            "the latest window_end of its reports once all ended, NULL while active",
        ),
    ]


MINORITY_REPORTS_COHORTED_LOG = StructType(
    [
        *_report_keys(),
        _f(
            "report_group_id",
            StringType(),
            "the report's event: ME- + sha256(anchor report_id | its window_start), spec decision 3",
            False,
        ),
        _f("event_status", StringType(), "active while any of the event's reports is, else ended", False),
        _f("version", IntegerType(), "monotonic per report: ticks since its window_start, plus one", False),
        _f("severity_score", DoubleType(), "the report's MRDL severity at this tick, in [0, 1]", False),
        _f("impact_estimate", DoubleType(), "attributed minus baseline units (signed)", False),
        _f("attributed_sales_total", DoubleType(), "actual units over the report's active ticks (MRDL)", False),
        _f("baseline_sales_total", DoubleType(), "baseline units over the same ticks (MRDL)", False),
        _f("feature_vector", ArrayType(DoubleType()), "the report's MRCL feature vector at this tick"),
        _f("cluster_id", StringType(), "the report's MRCL cluster at this tick"),
        _f("cluster_name", StringType(), "that cluster's name"),
        _f("similarity_score", DoubleType(), "the report's MRCL similarity to that cluster, in [0, 1]"),
        _f("cluster_match_confidence", DoubleType(), "the report's MRCL match confidence, in [0, 1]"),
        _f(
            "tsne_x",
            DoubleType(),
            "from the latest t-SNE map written at or before the tick, NULL until one is",
        ),
        _f("tsne_y", DoubleType(), "from the same t-SNE map as tsne_x"),
        _f("proposed_cause", StringType(), "the report's own top cause narrative, carried from MRPAL"),
        _f("proposed_cause_category", StringType(), "the report's own top cause type, from MRPAL"),
        _f("confidence_score", DoubleType(), "the report's own confidence in that cause, from MRPAL, in [0, 1]"),
        _f(
            "supporting_evidence",
            StringType(),
            "MRPAL's evidence list as one text, items separated by a semicolon and a space",
        ),
        _f(
            "cohort_id",
            StringType(),
            "MC- + sha256 of the member report_ids: changes when membership does",
            False,
        ),
        _f("cohort_name", StringType(), "e.g. Competitor Stockout: CAT_02 at 4 stores in North", False),
        _f("cohort_cause_category", StringType(), "the members' confidence-weighted majority cause"),
        _f(
            "cohort_confidence",
            DoubleType(),
            "[0, 1]: mean member confidence in that cause (0 for members proposing another)",
            False,
        ),
        _f(
            "cohort_reason",
            StringType(),
            "single report | temporal adjacency | shared cause | temporal adjacency + shared cause",
            False,
        ),
        _f("cohort_size", IntegerType(), "reports in the event at the tick", False),
        _f("cohort_store_count", IntegerType(), "distinct stores among them", False),
        *_event_window(),
        *_governance(
            written_at="the tick the row is for: each tick the event is active, or its event or status changes",
            is_degraded="true when the report's detection or attribution row is, or it has no cluster or cause yet",
        ),
    ]
)


def _event_keys():
    return [
        _f("event_id", StringType(), "= report_group_id: ME- + sha256(anchor report_id | its window_start)", False),
        _run_id(),
        _f("store_id", StringType(), "the anchor report's store", False),
        _f("store_count", IntegerType(), "distinct stores among the event's reports", False),
        _f("report_count", IntegerType(), "reports in the event at the tick", False),
        _f("window_start", TimestampType(), "the event's start: its anchor's window_start", False),
        _f("window_end", TimestampType(), "the latest window_end of its reports once all ended, NULL while active"),
    ]


def _event_governance():
    return [
        _f("report_id", StringType(), "the anchor: the event's earliest report", False),
        _f("report_status", StringType(), "the anchor report's status at the tick: active | ended", False),
        _written_at("the tick of the change"),
        _is_degraded("true when a member report was produced with an input missing"),
        _date(),
    ]


MINORITY_EVENT_LOG = StructType(
    [
        *_event_keys(),
        _f("event_status", StringType(), "active | ended | merged", False),
        _f("change", StringType(), "what the row records: created | reopened | ended | merged | membership", False),
        _f("merged_into", StringType(), "the event that absorbed this one (change = merged), else NULL"),
        _f("created_at", TimestampType(), "when its earliest report was first detected (= window_start)", False),
        _f("finalized_at", TimestampType(), "the event's window_end once it ended, NULL while active"),
        *_event_governance(),
    ]
)

MINORITY_EVENT_ENDED_LOG = StructType(
    [
        *_recomment(_event_keys(), window_end="the authoritative end of the event: its reports' latest window_end"),
        *_event_governance(),
    ]
)


# -- hydration: derived, one row per object, rewritten by key (spec note 002) ----------------------------
MAX_ALIGNED_STORES = 14  # store_id_N / retailer_N pairs in the event roll-up; store_count has the full count

MINORITY_REPORTS = StructType(
    [
        *_report_keys(),
        # detection (MRDL)
        _f("severity", DoubleType(), "from the latest MRDL snapshot, in [0, 1]", False),
        _f("peak_anomaly_score", DoubleType(), "largest anomaly_score over the report's active ticks (MRDL)", False),
        _f("attributed_sales_total", DoubleType(), "actual units over the report's active ticks (MRDL)", False),
        _f("baseline_sales_total", DoubleType(), "baseline units over the same ticks (MRDL)", False),
        _f("ticks_active", IntegerType(), "active ticks of the report (MRDL)", False),
        _f("detection_model_version", StringType(), "model_version of the latest MRDL snapshot", False),
        _f("last_detected_at", TimestampType(), "the report's latest MRDL snapshot", False),
        # clustering (MRCL); t-SNE points are in the view minority_reports_map (maps are made on demand)
        _f("feature_vector", ArrayType(DoubleType()), "from the latest MRCL row (a rereview's when newer)"),
        _f("library_version", StringType(), "cluster library version of that row"),
        _f("cluster_id", StringType(), "nearest library centroid (latest MRCL row)"),
        _f("cluster_name", StringType(), "that centroid's name"),
        _f("similarity_score", DoubleType(), "similarity to that centroid, in [0, 1]"),
        _f("cluster_match_confidence", DoubleType(), "match confidence against the runner-up, in [0, 1]"),
        # attribution (MRPAL); the top cause and tier are the finalised ones (MRFL) once a report has one
        *_cause(final=True),
        _f("confidence_tier", StringType(), "tier of confidence_score (Low, Medium, High), finalised"),
        *_cause("_2"),
        *_cause("_3"),
        _f(
            "supporting_evidence",
            ArrayType(StringType()),
            "the model's evidence list, plus pieces analysts added once finalised",
        ),
        _f(
            "attribution_model_version", StringType(), "model_version of the latest MRPAL row (a rereview's when newer)"
        ),
        # finalisation (MRFL): the cause fields above are the finalised ones, analysts' edits included
        _f("review_status", StringType(), "proposed | confirmed | auto_confirmed | rejected", False),
        _f("analyst_comment", StringType(), "the latest comment analysts left, NULL when none"),
        _f("edited_by", StringType(), "the latest edit's author (a person, or automation:<rule>)"),
        _f(
            "field_sources",
            MapType(StringType(), StringType()),
            "field -> model | analyst | automation: where each final value came from",
            False,
        ),
        _f("model_source", StringType(), "pipeline | rereview: which proposal the model values are", False),
        # cohorting (MRCH)
        _f("report_group_id", StringType(), "the report's event (latest MRCH row), NULL before cohorting saw it"),
        _f("event_status", StringType(), "that event's status: active | ended"),
        _f("cohort_name", StringType(), "that event's name"),
        _f("cohort_reason", StringType(), "why its reports were grouped"),
        _f("cohort_size", IntegerType(), "reports in that event"),
        _f("report_status", StringType(), "from the latest MRDL snapshot: active | ended", False),
        _written_at("the newest log row merged in"),
        _is_degraded("true when any of the merged rows is"),
    ]
)

MINORITY_EVENTS_LOG = StructType(
    [
        _f("event_id", StringType(), "ME- + sha256(anchor report_id | its window_start), spec decision 3", False),
        _run_id(),
        _f("event_status", StringType(), "active | ended | merged (latest MELOG row)", False),
        _f(
            "last_change",
            StringType(),
            "the latest MELOG change: created | reopened | ended | merged | membership",
            False,
        ),
        _f("merged_into", StringType(), "the event that absorbed this one, NULL unless merged"),
        _f("cohort_name", StringType(), "analysts' name for the event when set, else the latest MRCH cohort_name"),
        _f("cohort_reason", StringType(), "why its reports were grouped (latest MRCH row)"),
        _f(
            "report_ids",
            ArrayType(StringType()),
            "member reports (their latest MRCH row names the event), sorted",
            False,
        ),
        _f("report_count", IntegerType(), "member reports, 0 for a merged event", False),
        _f("store_count", IntegerType(), "all member stores, even beyond the aligned 14", False),
        *[
            f
            for n in range(1, MAX_ALIGNED_STORES + 1)
            for f in (
                _f(f"store_id_{n}", StringType(), f"member store {n} of the stores sorted by id, NULL past the last"),
                _f(f"retailer_{n}", StringType(), f"retailer of store_id_{n}"),
            )
        ],
        _f("window_start", TimestampType(), "the event's start: its anchor's window_start", False),
        _f("window_end", TimestampType(), "from minority_event_ended_log, NULL while active"),
        _f("created_at", TimestampType(), "when its earliest report was first detected", False),
        _f("finalized_at", TimestampType(), "when it ended, NULL while active"),
        _f("attributed_sales_total", DoubleType(), "actual units summed over the member reports"),
        _f("baseline_sales_total", DoubleType(), "baseline units summed over the member reports"),
        _f("avg_attributed_sales", DoubleType(), "actual units per member report"),
        _f("avg_baseline_sales", DoubleType(), "baseline units per member report"),
        _f("severity", DoubleType(), "the largest member severity, in [0, 1]"),
        _f("avg_severity", DoubleType(), "mean member severity, in [0, 1]"),
        _f(
            "cause_category",
            StringType(),
            "analysts' cause when set, else the members' confidence-weighted majority cause",
        ),
        _f(
            "proposed_cause",
            StringType(),
            "analysts' cause and who set it, else the most confident member narrative for the cause",
        ),
        _f("confidence_score", DoubleType(), "cohort_confidence of the latest MRCH row, in [0, 1]"),
        # analysts' event-level edits (user_minority_events_edits_log), the latest per field winning
        _f("review_status", StringType(), "proposed | confirmed | rejected (analysts' event edits)", False),
        _f(
            "supporting_evidence",
            ArrayType(StringType()),
            "evidence analysts added to the event, as analyst:<author>: <text>",
            False,
        ),
        _f("analyst_comment", StringType(), "the latest comment on the event, NULL when none"),
        _f("edited_by", StringType(), "the latest event edit's author"),
        _f(
            "field_sources",
            MapType(StringType(), StringType()),
            "cause_category, cohort_name, review_status -> model | analyst",
            False,
        ),
        _f(
            "chart_path",
            StringType(),
            "PNG of actual vs baseline per store, the window shaded, NULL without member reports",
        ),
        _written_at("the newest log row or edit merged in"),
        _is_degraded("true when its MELOG row or a member report is"),
    ]
)


def _as_of(schema: StructType) -> StructType:
    return StructType(
        [_f("as_of", TimestampType(), "the tick the state was rebuilt as of (hydrate --as-of)", False), *schema.fields]
    )


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


def _edit_fields(kind):
    return [
        _f("field", StringType(), f"the {kind} field changed: one of EDITABLE_{kind.upper()}_FIELDS", False),
        _f("value", StringType(), "its new value: a detection type, a review status, evidence or comment text", False),
        _f("author", StringType(), "a person, or automation:<rule>", False),
        _f("reason", StringType(), "why, as the author gave it (a rule: its threshold and the weekday)"),
        _f(
            "request_id",
            StringType(),
            "the Airflow run or command that made it (a rule: its author): repeats add nothing",
            False,
        ),
        _f(
            "edit_seq",
            LongType(),
            "order of edits at one written_at: 0 for automation, analysts numbered on from the run's highest",
            False,
        ),
    ]


USER_EDITS_LOG = StructType(
    [
        _f("edit_id", StringType(), "UE- + sha256(request_id | report_id | field)", False),
        _run_id(),
        _f("report_id", StringType(), "the report edited", False),
        *_edit_fields("report"),
        _f("window_start", TimestampType(), "the report's: bounds what finalisation reads", False),
        _f("report_status", StringType(), "the report's status (latest MRDL snapshot) when edited", False),
        _written_at("the tick after the latest one ingested (data time): replays of earlier ticks never see it"),
        _is_degraded("always false: an edit is complete"),
    ]
)

USER_MINORITY_EVENTS_EDITS_LOG = StructType(
    [
        _f("edit_id", StringType(), "EE- + sha256(request_id | event_id | field)", False),
        _run_id(),
        _f("event_id", StringType(), "the Minority Event edited", False),
        *_edit_fields("event"),
        _f("window_start", TimestampType(), "the event's start", False),
        _f("report_id", StringType(), "the event's anchor report", False),
        _f("report_status", StringType(), "the event's status (latest MELOG row) when edited", False),
        _written_at("the tick after the latest one ingested (data time): replays of earlier ticks never see it"),
        _is_degraded("always false: an edit is complete"),
    ]
)

MINORITY_REPORTS_FINALISED_LOG = StructType(
    [
        *_report_keys(),
        *_cause(final=True),  # final values: analysts' corrections over the model's proposal
        _f("confidence_tier", StringType(), "tier of the final confidence_score (Low, Medium, High)"),
        _f("review_status", StringType(), "proposed | confirmed | auto_confirmed | rejected", False),
        _f(
            "supporting_evidence",
            ArrayType(StringType()),
            "the model's evidence list, then each piece analysts added",
            False,
        ),
        _f("analyst_comment", StringType(), "the latest comment analysts left, NULL when none"),
        _f(
            "rejected_categories",
            ArrayType(StringType()),
            "causes analysts rejected (a rereview never proposes them again)",
            False,
        ),
        _f(
            "field_sources",
            MapType(StringType(), StringType()),
            "field -> model | analyst | automation: where each final value came from",
            False,
        ),
        _f("edited_by", StringType(), "the latest edit's author, NULL without edits"),
        _f("cluster_id", StringType(), "the report's cluster in the model row finalised"),
        _f("library_version", StringType(), "cluster library version of that model row"),
        _f("attribution_model_version", StringType(), "attribution model_version of that model row"),
        _f("model_source", StringType(), "pipeline | rereview: the log the model values come from", False),
        _f("model_written_at", TimestampType(), "that log row's written_at", False),
        _f("edit_seq", LongType(), "the latest edit applied (-1: none)", False),
        _f(
            "finalised_id",
            StringType(),
            "sha256(report_id | model_source | model_written_at | latest edit_id): keys a row with written_at",
            False,
        ),
        *_governance(
            written_at="the tick of the model row or edit it finalises",
            is_degraded="true when the model row it finalises is",
        ),
    ]
)

REREVIEW_WORKLIST_LOG = StructType(
    [
        _f(
            "rereview_id",
            StringType(),
            "RR- + sha256(report_id | library_version | model_version | rejected categories): once per versions",
            False,
        ),
        _run_id(),
        _f("report_id", StringType(), "the ended report picked", False),
        _f(
            "reasons",
            ArrayType(StringType()),
            "why it was picked: low_confidence | analyst_rejected | older_model",
            False,
        ),
        _f(
            "rejected_categories",
            ArrayType(StringType()),
            "causes analysts rejected, sorted: not proposed again",
            False,
        ),
        _f("previous_cause_category", StringType(), "its finalised cause when picked"),
        _f("previous_confidence", DoubleType(), "its finalised confidence when picked"),
        _f("previous_library_version", StringType(), "cluster library version of its finalised row"),
        _f("previous_model_version", StringType(), "attribution model version of its finalised row"),
        _f("library_version", StringType(), "the library version it is rereviewed with (the configured one)", False),
        _f(
            "attribution_model_version",
            StringType(),
            "the attribution model version it is rereviewed with (the configured one)",
            False,
        ),
        *_governance(
            written_at="T: the tick after the latest one ingested when the worklist was built",
            is_degraded="true when the finalised row it was picked from is",
        ),
    ]
)

_REREVIEWED = {
    "written_at": "T of the worklist entry (the model row is computed at the report's latest snapshot before it)",
    "date": "UTC date of T",
}
REREVIEW_CLUSTERED_LOG = StructType(
    [
        _f("rereview_id", StringType(), "the worklist entry this row answers", False),
        *_recomment(MINORITY_REPORTS_CLUSTERED_LOG.fields, **_REREVIEWED),
    ]
)
REREVIEW_PROPOSED_ATTRIBUTION_LOG = StructType(
    [
        _f("rereview_id", StringType(), "the worklist entry this row answers", False),
        *_recomment(MINORITY_REPORTS_PROPOSED_ATTRIBUTION_LOG.fields, **_REREVIEWED),
    ]
)


# -- protection, alerts, health (note 002 protection, note 004 section 8) -----------------------------------
PROTECTION_FEED = StructType(
    [
        _run_id(),
        *_series_keys(),
        *_series_attributes(),
        _f("ts", TimestampType(), "a tick the report was active at", False),
        _f("report_id", StringType(), "the report", False),
        _f("event_id", StringType(), "its event (latest MRCH report_group_id), NULL before cohorting saw it"),
        _f("cause_category", StringType(), "the report's final cause (MRFL)"),
        _f(
            "review_status",
            StringType(),
            "the report's final review status: only those in protection.include_statuses",
            False,
        ),
        _f("confidence_score", DoubleType(), "the final confidence in that cause, in [0, 1]"),
        _f("actual_units", DoubleType(), "units sold at the tick (0 without data)", False),
        _f("baseline_units", DoubleType(), "expected units (0 without data or baseline)", False),
        _f(
            "anomalous_units",
            DoubleType(),
            "actual - baseline: what campaigns must not be credited with",
            False,
        ),
        _f("actual_revenue", DoubleType(), "revenue at the tick, units x the report's price when missing", False),
        _f(
            "anomalous_revenue",
            DoubleType(),
            "actual_revenue - baseline_units x the report's unit price (its own, else its reference price, else 0)",
            False,
        ),
        _f("report_status", StringType(), "the report's status in its current MRFL row: active | ended", False),
        _written_at("the current MRFL row's, the finalised state the row was built from"),
        _is_degraded("true with no data, no baseline or estimated revenue at the tick, or a degraded MRFL row"),
        _date("UTC date of ts"),
    ]
)

UI_NOTIFICATIONS_LOG = StructType(
    [
        _f(
            "notification_id",
            StringType(),
            "NT- + sha256(run_id | event or health check | trigger | recipient): one per such",
            False,
        ),
        _run_id(),
        _f("event_id", StringType(), "the Minority Event, NULL for a pipeline health alert"),
        _f(
            "trigger_condition",
            StringType(),
            "what held: severity>=<threshold>, category:<detection type> or health:<status>",
            False,
        ),
        _f("delivered_to", StringType(), "the subscriber's address", False),
        _f("channel", StringType(), "how it was delivered: email+ui", False),
        _f("subject", StringType(), "the email's subject", False),
        _f("body", StringType(), "the email's text, with the Spark SQL that opens the event or health row", False),
        _f("link", StringType(), "opens the event (its chart PNG) or, for health, the pipeline DAG's runs"),
        _f("severity", DoubleType(), "the event's largest member severity at the trigger's tick, NULL for health"),
        _f("cause_category", StringType(), "the event's cause at that tick, NULL for health"),
        _f("report_id", StringType(), "the event's anchor report, NULL for health"),
        _f(
            "report_status",
            StringType(),
            "the event's status when the trigger held, or the health status",
            False,
        ),
        _written_at("the first tick the trigger held (health: the interval's last tick)"),
        _is_degraded("true when the event or health row it reports on is"),
    ]
)

PIPELINE_HEALTH_LOG = StructType(
    [
        _run_id(),
        _f("interval_start", TimestampType(), "start of the pipeline run's data interval (UTC)", False),
        _f("interval_end", TimestampType(), "end of that interval, exclusive", False),
        _f("latest_tick_seen", TimestampType(), "the newest tick before interval_end with accepted sales rows"),
        _f(
            "freshness_lag_minutes",
            DoubleType(),
            "interval_end - (latest_tick_seen + one tick), in minutes, NULL: no data at all",
        ),
        _f(
            "expected_series",
            IntegerType(),
            "series with data in the health.expected_series_days before the interval (the interval's own if none)",
            False,
        ),
        _f("series_with_data", IntegerType(), "series with a sales_timeseries_data row in the interval", False),
        _f("coverage", DoubleType(), "share of expected series x ticks with data, in [0, 1]", False),
        _f("rows_read", LongType(), "input rows read over the interval's ticks (ingest_audit_log)", False),
        _f("rows_quarantined", LongType(), "of those, rows quarantined", False),
        _f("error_rate", DoubleType(), "rows_quarantined / rows_read (0 without rows)", False),
        _f(
            "rows_written",
            MapType(StringType(), LongType()),
            "table -> the run's rows written in the interval, per table the pipeline writes",
            False,
        ),
        _f("health_status", StringType(), "ok | degraded | stale", False),
        _f("problems", ArrayType(StringType()), "each failed check in words, worst first (empty when ok)", False),
        _f("report_status", StringType(), "= health_status (governance field)", False),
        _written_at("the interval's last tick"),
        _is_degraded("true when health_status is not ok"),
        _date(),
    ]
)

TABLE_MAINTENANCE_LOG = StructType(
    [
        _f("table_name", StringType(), "the registry table maintained", False),
        _written_at("the maintenance run's data interval end"),
        _f("files_before", LongType(), "data files in the table's current version before maintenance", False),
        _f("files_after", LongType(), "data files in its current version after OPTIMIZE and VACUUM", False),
        _f("partitions", LongType(), "partition values (1 for an unpartitioned table)", False),
        _f("bytes_after", LongType(), "size of the current version's data files after maintenance, in bytes", False),
        _f("files_compacted", LongType(), "small files OPTIMIZE rewrote (removed) into files_written", False),
        _f("files_written", LongType(), "files OPTIMIZE wrote in their place", False),
        _f(
            "files_vacuumed",
            LongType(),
            "unreferenced files older than maintenance.vacuum_retention_hours, deleted",
            False,
        ),
        _f("log_version", LongType(), "the table's latest commit after maintenance", False),
        _f("checkpoint_version", LongType(), "its latest Delta checkpoint, NULL: none yet"),
        _f("report_status", StringType(), "compacted | unchanged", False),
        _is_degraded("true when files_after > maintenance.max_files_per_partition x partitions"),
        _date(),
    ]
)
