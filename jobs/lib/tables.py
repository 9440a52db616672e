"""The table registry: where each table lives, its schema, its natural key, and how it is written.

Logs are append-only (spec decision 7). ``append_new`` writes with an insert-only MERGE on the table's
natural key, restricted to the dates being written so the merge reads only those partitions (and, for a
run's ticks, to the files of those ticks): re-running a run, retrying a task or backfilling a range twice
adds no rows, and costs the same however long the table's history grows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType, TimestampType

from jobs.lib.config import Config
from jobs.lib.ticks import dates_between, dates_of
from schemas import dfu, mrs


@dataclass(frozen=True)
class Table:
    name: str
    schema: StructType
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ("date",)
    description: str = ""

    @property
    def time_key(self) -> str | None:
        """The key's timestamp column (a row's tick), if it has one."""
        return next((k for k in self.keys if isinstance(self.schema[k].dataType, TimestampType)), None)


TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table("demo_run_config", mrs.DEMO_RUN_CONFIG, ("seq",), (), "active run_id: the row with the latest seq"),
        Table(
            "unified_sales_data",
            mrs.UNIFIED_SALES_DATA,
            ("run_id", "batch_id", "store_id", "sku", "ts"),
            description="accepted input rows, as delivered",
        ),
        Table(
            "ingest_quarantine",
            mrs.INGEST_QUARANTINE,
            ("run_id", "source_file", "record_hash", "reason_code"),
            description="rejected input rows with a reason code",
        ),
        Table(
            "ingest_audit_log",
            mrs.INGEST_AUDIT_LOG,
            ("run_id", "tick_ts"),
            description="per tick: rows read = accepted + quarantined + duplicates dropped",
        ),
        Table(
            "sales_timeseries_data",
            mrs.SALES_TIMESERIES_DATA,
            ("run_id", "series_key", "ts"),
            description="one row per series per tick",
        ),
        Table(
            "baseline_profile_log",
            mrs.BASELINE_PROFILE_LOG,
            ("run_id", "series_key", "date"),
            description="detection's state: each series' baseline per time-of-day slot for a day, fitted once",
        ),
        Table(
            "baseline_sales_model_prediction_log",
            mrs.BASELINE_SALES_MODEL_PREDICTION_LOG,
            ("run_id", "series_key", "ts"),
            description="expected sales per series and tick",
        ),
        Table(
            "anomaly_classifier_model_prediction_log",
            mrs.ANOMALY_CLASSIFIER_MODEL_PREDICTION_LOG,
            ("run_id", "series_key", "ts"),
            description="anomaly score and decision per series and tick",
        ),
        Table(
            "minority_reports_detected_log",
            mrs.MINORITY_REPORTS_DETECTED_LOG,
            ("run_id", "report_id", "written_at"),
            description="MRDL: one snapshot per active report per tick",
        ),
        Table(
            "contextual_data",
            mrs.CONTEXTUAL_DATA,
            ("run_id", "record_id"),
            (),
            "context signals (social trends, competitor stockouts, incidents) with their time range and scope",
        ),
        Table(
            "all_campaign_data",
            mrs.ALL_CAMPAIGN_DATA,
            ("run_id", "record_id"),
            (),
            "paid campaigns and in-store promotions with their time range and scope",
        ),
        Table(
            "cluster_library",
            mrs.CLUSTER_LIBRARY,
            ("library_version", "cluster_id"),
            (),
            "named cluster centroids by library version (a model registry: not filtered by run_id)",
        ),
        Table(
            "minority_reports_clustered_log",
            mrs.MINORITY_REPORTS_CLUSTERED_LOG,
            ("run_id", "report_id", "written_at"),
            description="MRCL: feature vector and nearest library cluster per report per tick",
        ),
        Table(
            "minority_report_reference_price",
            mrs.MINORITY_REPORT_REFERENCE_PRICE,
            ("run_id", "report_id"),
            (),
            "each report's usual revenue per unit before its window, written by clustering when it first sees it",
        ),
        Table(
            "minority_reports_proposed_attribution_log",
            mrs.MINORITY_REPORTS_PROPOSED_ATTRIBUTION_LOG,
            ("run_id", "report_id", "written_at"),
            description="MRPAL: ranked proposed causes with confidence and evidence per report per tick",
        ),
        Table(
            "minority_report_embedding",
            mrs.MINORITY_REPORT_EMBEDDING,
            ("run_id", "embedding_id", "point_type", "point_id"),
            (),
            "t-SNE coordinates of reports and library centroids, one set per embedding_id",
        ),
        Table(
            "minority_reports_cohorted_log",
            mrs.MINORITY_REPORTS_COHORTED_LOG,
            ("run_id", "report_id", "written_at"),
            description="MRCH: each report's event (report_group_id) per tick while the event is active or changes",
        ),
        Table(
            "minority_event_log",
            mrs.MINORITY_EVENT_LOG,
            ("run_id", "event_id", "written_at"),
            description="MELOG: the event registry, a row when an event is created or its state changes",
        ),
        Table(
            "minority_event_ended_log",
            mrs.MINORITY_EVENT_ENDED_LOG,
            ("run_id", "event_id", "written_at"),
            description="the authoritative window_end of each event, a row each time it ends",
        ),
        Table(
            "user_edits_log",
            mrs.USER_EDITS_LOG,
            ("edit_id",),
            (),
            "analysts' (and automation rules') edits to reports: cause corrections, reviews, evidence, comments",
        ),
        Table(
            "user_minority_events_edits_log",
            mrs.USER_MINORITY_EVENTS_EDITS_LOG,
            ("edit_id",),
            (),
            "analysts' edits to Minority Events: cohort cause, name, review, evidence, comments",
        ),
        Table(
            "minority_reports_finalised_log",
            mrs.MINORITY_REPORTS_FINALISED_LOG,
            ("run_id", "report_id", "written_at", "finalised_id"),
            description="MRFL: model outputs merged with edits, the latest edit per field winning, with sources",
        ),
        Table(
            "rereview_worklist_log",
            mrs.REREVIEW_WORKLIST_LOG,
            ("run_id", "rereview_id"),
            (),
            "reports picked for rereview (low confidence, rejected, older model) and the versions to use",
        ),
        Table(
            "rereview_clustered_log",
            mrs.REREVIEW_CLUSTERED_LOG,
            ("run_id", "rereview_id"),
            (),
            "rereview: the worklist's reports clustered again with the current library",
        ),
        Table(
            "rereview_proposed_attribution_log",
            mrs.REREVIEW_PROPOSED_ATTRIBUTION_LOG,
            ("run_id", "rereview_id"),
            (),
            "rereview: causes proposed again with the current model, rejected causes left out",
        ),
        Table(
            "minority_reports",
            mrs.MINORITY_REPORTS,
            ("run_id", "report_id"),
            (),
            "hydrated: one row per report, the latest row of every report log merged wide",
        ),
        Table(
            "minority_events_log",
            mrs.MINORITY_EVENTS_LOG,
            ("run_id", "event_id"),
            (),
            "hydrated: one row per Minority Event with its reports, stores, totals, cause and status",
        ),
        Table(
            "minority_reports_as_of",
            mrs.MINORITY_REPORTS_AS_OF,
            ("as_of", "run_id", "report_id"),
            (),
            "minority_reports rebuilt as it stood at a past tick (hydrate --as-of), one set per as_of",
        ),
        Table(
            "minority_events_as_of",
            mrs.MINORITY_EVENTS_AS_OF,
            ("as_of", "run_id", "event_id"),
            (),
            "minority_events_log rebuilt as it stood at a past tick (hydrate --as-of), one set per as_of",
        ),
        Table(
            "protection_feed",
            mrs.PROTECTION_FEED,
            ("run_id", "report_id", "ts"),
            (),
            "for the MMM and the bandit: anomalous units and revenue per store, SKU and tick to exclude",
        ),
        Table(
            "ui_notifications_log",
            mrs.UI_NOTIFICATIONS_LOG,
            ("notification_id",),
            (),
            "alerts: one row per event (or health check), trigger and recipient, emailed and shown in-platform",
        ),
        Table(
            "pipeline_health_log",
            mrs.PIPELINE_HEALTH_LOG,
            ("run_id", "interval_start", "interval_end"),
            (),
            "per pipeline run: freshness, coverage, error rate and rows written per stage",
        ),
        Table(
            "table_maintenance_log",
            mrs.TABLE_MAINTENANCE_LOG,
            ("table_name", "written_at"),
            (),
            "per table and maintenance run: data files before and after compaction, vacuumed files, checkpoint",
        ),
        # The DFU clustering product (note 003): source tables, then what its steps write.
        Table("fact_sales_monthly", dfu.FACT_SALES_MONTHLY, ("item_id", "location_id", "month"), (), "DFU demand"),
        Table("dim_item", dfu.DIM_ITEM, ("item_id",), (), "item attributes"),
        Table("dim_dfu", dfu.DIM_DFU, ("dfu_id",), (), "DFU attributes and cluster_assignment"),
        Table("dfu_pattern_truth", dfu.DFU_PATTERN_TRUTH, ("dfu_id",), (), "generated DFUs: the intended pattern"),
        Table(
            "dfu_clustering_features",
            dfu.DFU_CLUSTERING_FEATURES,
            ("as_of_month", "dfu_id"),
            (),
            "per DFU and as-of month: the volume, trend, seasonality, volatility and growth features clustered on",
        ),
        Table(
            "dfu_clustering_exclusions",
            dfu.DFU_CLUSTERING_EXCLUSIONS,
            ("as_of_month", "dfu_id"),
            (),
            "DFUs a clustering run left out, and why (too little history, no demand, unknown item)",
        ),
    ]
}

CATALOG_SCHEMA = "mrs"


def column_ddl(schema: StructType, sep: str = ", ") -> str:
    """A schema as the column list of CREATE TABLE (nullability and column comments kept)."""
    return sep.join(
        f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}"
        + (f" COMMENT {sql_string(f.metadata['comment'])}" if f.metadata.get("comment") else "")
        for f in schema.fields
    )


def sql_string(value: str) -> str:
    """A string as a Spark SQL literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def union_all(frames: list[DataFrame]) -> DataFrame:
    """The frames' rows in order, unioned as a balanced tree: a plan log2(n) deep, not n (a month of daily files
    chained one by one is too deep a plan for Spark Connect's protobuf messages)."""
    while len(frames) > 1:
        pairs = [frames[i].unionByName(frames[i + 1]) for i in range(0, len(frames) - 1, 2)]
        frames = pairs + ([frames[-1]] if len(frames) % 2 else [])
    return frames[0]


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """Select and cast a frame's columns to exactly a table's schema (order and column comments included: a frame
    conformed to a table equals one built from its schema or read back from it)."""
    missing = [f.name for f in schema.fields if f.name not in df.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing} of the target schema")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name, metadata=f.metadata) for f in schema.fields])


# MRFL can hold several rows of a report at one tick (a model snapshot, then edits): these break the tie.
MRFL_ORDER = ("written_at", "model_written_at", "edit_seq")


def latest(df: DataFrame, *keys: str, order: tuple[str, ...] = ("written_at",)) -> DataFrame:
    """The newest row (by ``order``, descending) of each key: how a log's snapshots resolve to a current state."""
    w = Window.partitionBy(*(keys or ("report_id",))).orderBy(*[F.col(c).desc() for c in order])
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


class Lakehouse:
    """Delta tables by path under ``paths.lakehouse``; the one way jobs read and write tables."""

    def __init__(self, spark: SparkSession, cfg: Config):
        self.spark = spark
        self.cfg = cfg
        self.root = cfg.paths.lakehouse
        # Tables known to exist: a job asks once per table, not once per read. Tables are never dropped while
        # a job runs.
        self._existing: set[str] = set()
        # Of each table found, the declared columns it lacks (a table written by an earlier release).
        self._lacks: dict[str, list[StructField]] = {}

    def path(self, name: str) -> str:
        return str(self.root / TABLES[name].name)

    def table_sql(self, name: str) -> str:
        """The table as a path identifier for Spark SQL."""
        return f"delta.`{self.path(name)}`"

    def ensure(self, name: str) -> None:
        """Create the table from its schema if it is not there yet.

        Plain SQL rather than the DeltaTable API: it runs the same in a classic session and through Spark
        Connect (which would need Delta's server plugin for the API)."""
        if self.exists(name):
            self.add_new_columns(name)
            return
        t = TABLES[name]
        part = f" PARTITIONED BY ({', '.join(t.partition_by)})" if t.partition_by else ""
        self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self.table_sql(name)} ({column_ddl(t.schema)}) USING DELTA{part}")
        self._existing.add(name)
        self._lacks[name] = []

    def add_new_columns(self, name: str) -> None:
        """Give a table written by an earlier release the columns added since (nullable: its old rows read them as
        NULL; so a column a release adds is declared nullable, or the catalog's CREATE would not match it). Writers
        only (a metadata commit): every write, and catalog registration."""
        new = self._lacks.get(name)
        if new:
            cols = column_ddl(StructType([StructField(f.name, f.dataType, True, f.metadata) for f in new]))
            self.spark.sql(f"ALTER TABLE {self.table_sql(name)} ADD COLUMNS ({cols})")
            self._lacks[name] = []

    def exists(self, name: str, recheck: bool = False) -> bool:
        """Whether the table is there; ``recheck`` asks Spark even if this Lakehouse found it before (a
        long-lived service's health check, whose tables may be removed under it)."""
        if name in self._existing and not recheck:
            return True
        try:
            self._probe(name)
        except AnalysisException:
            self._existing.discard(name)
            return False
        self._existing.add(name)
        return True

    def _probe(self, name: str) -> None:
        """Raise AnalysisException unless the table is there. Resolving its schema loads the snapshot, which the
        read that follows reuses; a DESCRIBE DETAIL ran a Spark job as well (~50 ms a table, ~1 s of a stage
        that reads 20 tables)."""
        have = set(self.spark.read.format("delta").load(self.path(name)).schema.fieldNames())
        self._lacks[name] = [f for f in TABLES[name].schema.fields if f.name not in have]

    def read(self, name: str, run_id: str | None = None) -> DataFrame:
        """A table's rows, for one run_id when given; an empty frame if the table does not exist yet."""
        t = TABLES[name]
        if not self.exists(name):
            df = self.spark.createDataFrame([], t.schema)
        else:
            df = self.spark.read.format("delta").load(self.path(name))
            # A table from an earlier release, not written since: the columns added since read as NULL.
            new = self._lacks.get(name, [])
            if new:
                df = df.select("*", *[F.lit(None).cast(f.dataType).alias(f.name, metadata=f.metadata) for f in new])
        return df if run_id is None else df.where(F.col("run_id") == run_id)

    def read_ticks(self, name: str, run_id: str, lo: datetime, end: datetime) -> DataFrame:
        """A run's rows of a date-partitioned table with their tick (the key's timestamp) in [lo, end); Delta
        skips the other days."""
        tick = F.col(TABLES[name].time_key)
        in_range = (tick >= F.lit(lo)) & (tick < F.lit(end))
        return self.read(name, run_id).where(dates_between(lo, end)).where(in_range)

    def append_new(
        self,
        name: str,
        df: DataFrame,
        dates: Iterable[date] | None = None,
        within: tuple[datetime, datetime] | None = None,
        skip_if_empty: bool = False,
    ) -> int:
        """Insert the rows whose natural key is not in the table yet; returns how many were inserted.

        ``dates`` bounds the merge to the partitions the rows fall in (required for date-partitioned tables).
        ``within`` = (start, end) promises that every row's tick (the key's timestamp column) lies in
        [start, end): the merge then reads only the files whose statistics overlap it, so a tick at 23:30 reads
        no more of its day's partition than one at 00:15. A row outside the range would not be matched.
        ``skip_if_empty`` is for frames the caller has persisted, cheap to test: an empty one creates the table
        if need be and runs no MERGE: one with nothing to insert commits nothing, but its planning alone costs
        ~0.5 s at scale M.
        """
        t = TABLES[name]
        if skip_if_empty and df.isEmpty():
            self.ensure(name)
            return 0
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in t.keys)
        if within is not None:
            if t.time_key is None:
                raise ValueError(f"append_new({name}): within needs a timestamp column in the key {t.keys}")
            dates = dates_of(*within) if dates is None else dates
            # Literals in UTC: Delta's MERGE does not bind parameter markers.
            lo, hi = (f"TIMESTAMP'{x.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00:00'" for x in within)
            cond += f" AND t.`{t.time_key}` >= {lo} AND t.`{t.time_key}` < {hi}"
        if "date" in t.partition_by:
            if dates is None:
                raise ValueError(f"append_new({name}): dates are required for a date-partitioned table")
            days = sorted(set(dates))
            if not days:
                return 0
            cond += " AND t.date IN (" + ", ".join(f"DATE'{d.isoformat()}'" for d in days) + ")"
        return self.merge(name, conform(df, t.schema), cond, "WHEN NOT MATCHED THEN INSERT *")["inserted"]

    def upsert(self, name: str, df: DataFrame) -> dict[str, int]:
        """Derived tables only (hydration): insert new keys, overwrite the rows of keys already there."""
        t = TABLES[name]
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in t.keys)
        result = self.merge(
            name, conform(df, t.schema), cond, "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )
        return {k: result[k] for k in ("inserted", "updated")}

    def merge(self, name: str, source: DataFrame, cond: str, clauses: str) -> dict[str, int]:
        """``MERGE INTO`` the table from ``source`` (aliased t and s); the rows inserted, updated, deleted."""
        self.ensure(name)
        query = f"MERGE INTO {self.table_sql(name)} t USING {{source}} s ON {cond} {clauses}"
        metrics = self.spark.sql(query, source=source).first()
        return {k: int(metrics[f"num_{k}_rows"]) if metrics else 0 for k in ("inserted", "updated", "deleted")}

    def replace_where(self, name: str, df: DataFrame, condition: str) -> int:
        """Derived tables only: atomically replace the rows matching ``condition`` with ``df``."""
        t = TABLES[name]
        self.ensure(name)
        rows = conform(df, t.schema)
        rows.write.format("delta").mode("overwrite").option("replaceWhere", condition).save(self.path(name))
        return self.read(name).where(condition).count()

    def next_tick(self, run_id: str) -> datetime:
        """The data time of an action taken between ticks (an edit, a rereview): the tick after the latest one
        ingested. Stamping it so keeps replays of ticks already run unchanged (decision 6) and lets the next
        scheduled run pick the action up."""
        last = self.read("ingest_audit_log", run_id).agg(F.max("tick_ts")).first()[0]
        if last is None:
            raise ValueError(f"run_id {run_id!r} has no ingested ticks yet: nothing to act on")
        return last.replace(tzinfo=UTC) + timedelta(seconds=self.cfg.tick_seconds)

    # -- run_id (spec decision 8) -------------------------------------------------------------------
    def active_run_id(self) -> str:
        latest = self.read("demo_run_config").orderBy(F.col("seq").desc()).select("run_id").first()
        return latest["run_id"] if latest else self.cfg.pipeline.default_run_id

    def reset_run_id(self, run_id: str, written_at: datetime, reason: str = "demo reset") -> bool:
        """Make ``run_id`` the active one by appending a row; a no-op if it already is."""
        if self.active_run_id() == run_id:
            return False
        last = self.read("demo_run_config").agg(F.max("seq")).first()[0]
        row = [(int(last or 0) + 1, run_id, reason, written_at)]
        self.append_new("demo_run_config", self.spark.createDataFrame(row, TABLES["demo_run_config"].schema))
        return True


# One line per view of ``views``: the catalog registers it as the view's comment, and docs/tables.md lists it.
VIEW_DESCRIPTIONS = {
    "active_minority_reports": "minority_reports of the active run only",
    "active_minority_events": "minority_events_log of the active run only",
    "review_queue": "the active run's reports awaiting review (proposed), most severe and largest impact first",
    "protection_feed_daily": "the active run's protection_feed per store, SKU and day, for the MMM and the bandit",
    "minority_reports_map": "every hydrated report with its point on the latest t-SNE map of its run",
    "dfu_cluster_summary": "DFUs, average demand and average CV per cluster_assignment (the SQL the DFU API serves)",
}


def views(cfg: Config, schema: str = CATALOG_SCHEMA) -> dict[str, str]:
    """Views over the tables of ``schema``, for analysts: the active run's objects, reports on the latest t-SNE map,
    and the DFU cluster summary (the same SQL the DFU API serves)."""

    s = schema
    active = f"coalesce((SELECT max_by(run_id, seq) FROM {s}.demo_run_config), '{cfg.pipeline.default_run_id}')"
    return {
        "active_minority_reports": f"SELECT * FROM {s}.minority_reports WHERE run_id = {active}",
        "active_minority_events": f"SELECT * FROM {s}.minority_events_log WHERE run_id = {active}",
        # Weekday work for analysts: what automation did not decide, most severe and largest first.
        "review_queue": (
            "SELECT report_id, run_id, store_id, sku, retailer_id, region, category, window_start, window_end, "
            "report_status, round(severity, 3) AS severity, "
            "round(attributed_sales_total - baseline_sales_total, 1) AS impact_units, "
            "proposed_cause_category, round(confidence_score, 3) AS confidence_score, confidence_tier, "
            f"report_group_id AS event_id, cohort_name FROM {s}.minority_reports "
            f"WHERE run_id = {active} AND review_status = 'proposed' "
            "ORDER BY severity DESC, abs(attributed_sales_total - baseline_sales_total) DESC, report_id"
        ),
        # For the MMM and the bandit: what not to credit campaigns with, per store, SKU and day.
        "protection_feed_daily": (
            "SELECT run_id, store_id, sku, date, sum(anomalous_units) AS anomalous_units, "
            "sum(anomalous_revenue) AS anomalous_revenue, sum(actual_units) AS actual_units, "
            "sum(baseline_units) AS baseline_units, sum(actual_revenue) AS actual_revenue, count(*) AS report_ticks, "
            "count(DISTINCT report_id) AS report_count, array_sort(collect_set(event_id)) AS event_ids, "
            "array_sort(collect_set(cause_category)) AS cause_categories, "
            "array_sort(collect_set(review_status)) AS review_statuses, bool_or(is_degraded) AS is_degraded "
            f"FROM {s}.protection_feed WHERE run_id = {active} GROUP BY run_id, store_id, sku, date"
        ),
        "minority_reports_map": (
            f"SELECT r.*, e.tsne_x, e.tsne_y, e.embedding_id FROM {s}.minority_reports r LEFT JOIN ("
            "SELECT run_id, point_id, tsne_x, tsne_y, embedding_id, row_number() OVER (PARTITION BY run_id, "
            f"point_id ORDER BY written_at DESC, embedding_id DESC) AS rn FROM {s}.minority_report_embedding "
            "WHERE point_type = 'report') e ON e.run_id = r.run_id AND e.point_id = r.report_id AND e.rn = 1"
        ),
        "dfu_cluster_summary": dfu.summary_sql(lambda t: f"{s}.{t}"),
    }


def catalog_ddl(cfg: Config, schema: str = CATALOG_SCHEMA) -> str:
    """SQL that registers every table and view in the ``mrs`` schema (or ``schema``) of a Spark catalog (idempotent).

    A table created here gets its column comments; one that exists must carry the same ones (Delta refuses a
    CREATE whose columns differ from the table's, comments included): ``register_catalog`` updates them first."""
    lines = [f"CREATE SCHEMA IF NOT EXISTS {schema};"]
    for t in TABLES.values():
        cols = column_ddl(t.schema, ",\n  ")
        part = f"\nPARTITIONED BY ({', '.join(t.partition_by)})" if t.partition_by else ""
        comment = t.description.replace("'", "").replace(";", ",")  # statements are split on ';'
        lines.append(
            f"CREATE TABLE IF NOT EXISTS {schema}.{t.name} (\n  {cols}\n) USING DELTA{part}\n"
            f"COMMENT '{comment}'\nLOCATION '{cfg.paths.lakehouse / t.name}';"
        )
    for name, query in views(cfg, schema).items():
        comment = sql_string(VIEW_DESCRIPTIONS[name])
        lines.append(f"CREATE OR REPLACE VIEW {schema}.{name} COMMENT {comment} AS {query};")
    return "\n".join(lines) + "\n"
