"""Ingest stage: landing CSV files -> ``unified_sales_data`` -> ``sales_timeseries_data``.

Reads the sales files of the data interval (``unified_sales_data/*_YYYY-MM-DD.csv`` for the interval's
dates, plus any file without a date in its name), validates every row, and appends:

- ``unified_sales_data``: accepted rows as delivered
- ``ingest_quarantine``: rejected rows with a reason code (nothing is lost)
- ``sales_timeseries_data``: one row per series per tick (units and revenue summed over the tick)
- ``ingest_audit_log``: per tick, rows read = accepted + quarantined + duplicates dropped

A tick with no input gets an audit row with ``is_degraded`` set; a missing input folder or a bad config
stops the job with a message naming it.

    spark-submit jobs/stages/ingest.py --config conf/mrs.yaml --start 2025-08-04T00:00:00Z --end 2025-08-05T00:00:00Z
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.cli import parse_stage_args
from jobs.lib.config import Config
from jobs.lib.spark import build_spark
from jobs.lib.tables import Lakehouse, union_all
from jobs.lib.ticks import dates_of, ticks

INPUT_COLUMNS = [
    "timestamp",
    "batch_id",
    "store_id",
    "retailer_id",
    "region",
    "sku",
    "category",
    "units",
    "revenue",
]
TS_FORMATS = [
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "yyyy-MM-dd'T'HH:mm:ss",
    "yyyy-MM-dd HH:mm:ssXXX",
    "yyyy-MM-dd HH:mm:ss",
]
DATED_FILE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.csv$")

# The tables this job appends to: each table has exactly one writer task in the DAG.
WRITES = (
    "unified_sales_data",
    "ingest_quarantine",
    "sales_timeseries_data",
    "ingest_audit_log",
    "contextual_data",
    "all_campaign_data",
)


class InputMissingError(FileNotFoundError):
    pass


# -- reading -----------------------------------------------------------------------------------------
def landing_files(folder: Path, start: datetime, end: datetime) -> tuple[list[Path], list[date]]:
    """The files a run over [start, end) reads, and the interval's dates that have no file."""
    if not folder.is_dir():
        raise InputMissingError(f"input folder not found: {folder}")
    wanted = set(dates_of(start, end))
    files, seen = [], set()
    for p in sorted(folder.glob("*.csv")):
        m = DATED_FILE.search(p.name)
        if m is None:
            files.append(p)
        elif date.fromisoformat(m.group(1)) in wanted:
            files.append(p)
            seen.add(date.fromisoformat(m.group(1)))
    undated = any(DATED_FILE.search(p.name) is None for p in files)
    missing = [] if undated else sorted(wanted - seen)
    return files, missing


def csv_header(path: Path, case_sensitive: bool = False) -> list[str]:
    """A file's column names as Spark's CSV reader names them (``_c<i>`` for a blank one, ``<name><i>`` for a
    repeated one), read here: asking Spark cost a job per file, 14 of a small pass's 65 ingest jobs."""
    # Undecodable bytes are replaced, as Spark does: a bad row is quarantined later, not a crash here.
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        row = next(csv.reader(f), [])
    fold = (lambda n: n) if case_sensitive else str.lower
    names = [fold(n) for n in row if n]
    repeated = {n for n in names if names.count(n) > 1}
    return [f"_c{i}" if not n else f"{n}{i}" if fold(n) in repeated else n for i, n in enumerate(row)]


def read_raw(spark: SparkSession, path: Path, required: list[str], columns: list[str] = INPUT_COLUMNS) -> DataFrame:
    """One file's rows as strings in the canonical ``columns``, with ``_raw`` and ``_problem``.

    ``_problem`` is set for the whole file when its header lacks a required column (schema drift), and per
    row when a line does not parse as CSV. ``_raw`` is the text of a line that does not parse, and the JSON of
    every line of a file whose header is not ``columns``; otherwise NULL, and ``raw_record`` rebuilds the same
    JSON from the columns, for the few rows that are rejected (at scale M, classifying 7 days took 42 s instead
    of 47 s when every row's JSON was made)."""
    header = csv_header(path, spark.conf.get("spark.sql.caseSensitive") == "true")
    missing = [c for c in required if c not in header]
    schema = ", ".join(f"`{c}` STRING" for c in header) + ", `_corrupt` STRING"
    df = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt")
        .schema(schema)
        .csv(str(path))
    )
    raw = None if header == columns else F.to_json(F.struct(*[F.col(f"`{c}`") for c in header]))
    if missing:
        problem = F.lit(f"SCHEMA_DRIFT|header lacks required column(s) {', '.join(missing)}")
    else:
        problem = F.when(F.col("_corrupt").isNotNull(), F.lit("MALFORMED_ROW|line does not match the header"))
    return df.select(
        *[(F.col(f"`{c}`") if c in header else F.lit(None).cast("string")).alias(c) for c in columns],
        F.lit(path.name).alias("source_file"),
        (F.col("_corrupt") if raw is None else F.coalesce(F.col("_corrupt"), raw)).alias("_raw"),
        problem.alias("_problem"),
    )


def raw_record(columns: list[str] = INPUT_COLUMNS) -> Column:
    """A ``read_raw`` row as delivered: its kept ``_raw``, else the JSON of its columns (the same text)."""
    return F.coalesce(F.col("_raw"), F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])))


# -- transforms ----------------------------------------------------------------------------------------
def _parse_ts(c: Column) -> Column:
    return F.coalesce(*[F.try_to_timestamp(c, F.lit(fmt)) for fmt in TS_FORMATS])


def tick_floor(ts: Column, tick_seconds: int) -> Column:
    secs = F.unix_timestamp(ts)
    return F.timestamp_seconds(secs - F.pmod(secs, F.lit(tick_seconds)))


def _blank(c: str) -> Column:
    return F.col(c).isNull() | (F.trim(F.col(c)) == "")


def classify(
    raw: DataFrame, tick_seconds: int, grain: str, start: datetime | None = None, end: datetime | None = None
) -> DataFrame:
    """Parse, validate and de-duplicate raw rows (those owned by the ticks in [start, end) when given).

    Adds ``ts``, ``units_d``, ``revenue_d``, ``tick_ts`` (the tick that owns the row: its own tick, or for
    an unparseable timestamp the first tick of its file's valid data), ``reason_code``/``reason_detail``
    (NULL when accepted) and ``is_duplicate`` (an exact copy of an earlier row, dropped).
    """
    df = raw.withColumn("ts", _parse_ts(F.col("timestamp")))
    df = df.withColumn("units_d", F.col("units").try_cast("double"))
    df = df.withColumn("revenue_d", F.col("revenue").try_cast("double"))
    # An aggregate joined back, not a window: a window over a file sends all its rows through one task.
    firsts = df.groupBy("source_file").agg(F.min("ts").alias("_file_first"))
    df = df.join(F.broadcast(firsts), "source_file", "left").select(*df.columns, "_file_first")
    file_day = F.to_timestamp(F.regexp_extract("source_file", DATED_FILE.pattern, 1))
    df = df.withColumn(
        "tick_ts",
        F.coalesce(
            tick_floor(F.col("ts"), tick_seconds),
            tick_floor(F.col("_file_first"), tick_seconds),
            file_day,
            F.lit("1970-01-01 00:00:00").cast("timestamp"),
        ),
    ).drop("_file_first")
    if start is not None:
        # Copies and key conflicts share their timestamp, hence their tick: a tick's rows are classified alone
        # (a tick run reads its day's whole file; the checks below then see one tick of it, not 96).
        df = df.where((F.col("tick_ts") >= F.lit(start)) & (F.col("tick_ts") < F.lit(end)))
    checks: list[tuple[Column, str, Column]] = [
        (F.col("_problem").isNotNull(), "", F.col("_problem")),
        (
            F.col("ts").isNull(),
            "BAD_TIMESTAMP",
            F.format_string("timestamp %s is not ISO-8601", F.col("timestamp")),
        ),
        (_blank("store_id"), "NULL_KEY", F.lit("store_id is empty")),
        (
            _blank("units"),
            "NON_NUMERIC_UNITS",
            F.lit("units is empty"),
        ),
        (
            F.col("units_d").isNull() | F.isnan("units_d"),
            "NON_NUMERIC_UNITS",
            F.format_string("units '%s' is not a number", F.col("units")),
        ),
        (F.col("units_d") < 0, "NEGATIVE_UNITS", F.format_string("units %s is negative", F.col("units"))),
        (
            ~_blank("revenue") & F.col("revenue_d").isNull(),
            "NON_NUMERIC_REVENUE",
            F.format_string("revenue '%s' is not a number", F.col("revenue")),
        ),
    ]
    if grain == "store_sku":
        checks.insert(3, (_blank("sku"), "NULL_KEY", F.lit("sku is empty at store_sku grain")))
    code, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for cond, c, d in reversed(checks):
        if c:
            code, detail = F.when(cond, F.lit(c)).otherwise(code), F.when(cond, d).otherwise(detail)
        else:  # file-level problems carry "CODE|detail"
            code = F.when(cond, F.split(d, r"\|")[0]).otherwise(code)
            detail = F.when(cond, F.split(d, r"\|")[1]).otherwise(detail)
    df = df.withColumn("reason_code", code).withColumn("reason_detail", detail)

    # Rows that share a delivery key (batch, store, sku, tick) but disagree on values cannot both be true.
    # Copies share their key too, so one shuffle by key serves both windows (the second refines the first).
    key = ["batch_id", "store_id", "sku", "ts"]
    content = F.struct(*[c for c in INPUT_COLUMNS if c not in key])
    by_key = Window.partitionBy(*key)
    conflict = ~F.min(content).over(by_key).eqNullSafe(F.max(content).over(by_key)) & F.col("reason_code").isNull()
    df = df.withColumn(
        "reason_detail",
        F.when(conflict, F.lit("another row has the same batch, store, sku and timestamp")).otherwise(
            F.col("reason_detail")
        ),
    ).withColumn("reason_code", F.when(conflict, F.lit("DUPLICATE_KEY_CONFLICT")).otherwise(F.col("reason_code")))

    # Exact copies of a row (whatever file they came in) are dropped; the first by file name is kept. Only a
    # rejected copy's raw text reaches a table, so only those are ordered by it (to_json is dear at millions).
    rejected_raw = F.when(F.col("reason_code").isNotNull(), raw_record())
    first = Window.partitionBy(*key, *[c for c in INPUT_COLUMNS if c not in key]).orderBy("source_file", rejected_raw)
    return df.withColumn("is_duplicate", F.row_number().over(first) > 1)


def narrow(classified: DataFrame) -> DataFrame:
    """What the outputs read of classified rows: the cache a range run keeps (millions of rows) stays small.
    ``_raw`` is the raw record of the rows that reach the quarantine, NULL for the others."""
    kept = ["batch_id", "source_file", "ts", "store_id", "retailer_id", "region", "sku", "category", "units_d",
            "revenue_d", "tick_ts", "reason_code", "reason_detail", "is_duplicate"]  # fmt: skip
    rejected = F.col("reason_code").isNotNull() & ~F.col("is_duplicate")
    return classified.select(*kept, F.when(rejected, raw_record()).alias("_raw"))


def accepted_rows(classified: DataFrame, run_id: str) -> DataFrame:
    ok = classified.where(F.col("reason_code").isNull() & ~F.col("is_duplicate"))
    return ok.select(
        F.lit(run_id).alias("run_id"),
        F.coalesce(F.col("batch_id"), F.col("source_file")).alias("batch_id"),
        "source_file",
        "ts",
        F.trim("store_id").alias("store_id"),
        "retailer_id",
        "region",
        F.trim("sku").alias("sku"),
        "category",
        F.col("units_d").alias("units"),
        F.col("revenue_d").alias("revenue"),
        F.col("tick_ts").alias("written_at"),
        F.lit(False).alias("is_degraded"),
        F.to_date("tick_ts").alias("date"),
    )


def quarantine_rows(classified: DataFrame, run_id: str) -> DataFrame:
    bad = classified.where(F.col("reason_code").isNotNull() & ~F.col("is_duplicate"))
    return bad.select(
        F.lit(run_id).alias("run_id"),
        "source_file",
        F.sha2(F.col("_raw"), 256).alias("record_hash"),
        "reason_code",
        "reason_detail",
        F.col("_raw").alias("raw_record"),
        F.col("tick_ts").alias("written_at"),
        F.lit(False).alias("is_degraded"),
        F.to_date("tick_ts").alias("date"),
    )


def series_key(grain: str) -> Column:
    return F.col("store_id") if grain == "store" else F.concat_ws("|", "store_id", "sku")


def to_timeseries(accepted: DataFrame, tick_seconds: int, grain: str) -> DataFrame:
    """One row per series per tick: units and revenue summed over the rows of the tick."""
    df = accepted.withColumn("tick", tick_floor(F.col("ts"), tick_seconds))
    if grain == "store":
        df = df.withColumn("sku", F.lit(None).cast("string"))
    return (
        df.groupBy("run_id", series_key(grain).alias("series_key"), "store_id", "sku", "tick")
        .agg(
            F.max("retailer_id").alias("retailer_id"),
            F.max("region").alias("region"),
            F.max("category").alias("category") if grain == "store_sku" else F.lit(None).alias("category"),
            F.sum("units").alias("units"),
            F.sum("revenue").alias("revenue"),
            F.count(F.lit(1)).alias("source_rows"),
        )
        .select(
            "run_id",
            "series_key",
            "store_id",
            "sku",
            "retailer_id",
            "region",
            "category",
            F.col("tick").alias("ts"),
            "units",
            "revenue",
            "source_rows",
            F.col("tick").alias("written_at"),
            F.lit(False).alias("is_degraded"),
            F.to_date("tick").alias("date"),
        )
    )


def audit(
    classified: DataFrame, points: DataFrame, tick_frame: DataFrame, run_id: str, feeds_missing: list[str] = ()
) -> DataFrame:
    """Per tick of the interval: the reconciliation counts and the reference feeds that were absent (attribution
    reads these to know its evidence is incomplete); ticks with no input are degraded.

    ``series_count`` counts the tick's ``points`` (its ``sales_timeseries_data`` rows, one per series with
    accepted rows): read back from the table, not a distinct count over every accepted row, which was a
    27-million-row shuffle at scale M."""
    accepted = F.col("reason_code").isNull() & ~F.col("is_duplicate")
    counts = classified.groupBy("tick_ts").agg(
        F.count(F.lit(1)).alias("rows_read"),
        F.sum(accepted.cast("long")).alias("rows_accepted"),
        F.sum((F.col("reason_code").isNotNull() & ~F.col("is_duplicate")).cast("long")).alias("rows_quarantined"),
        F.sum(F.col("is_duplicate").cast("long")).alias("rows_duplicate_dropped"),
        F.array_sort(F.collect_set("source_file")).alias("source_files"),
    )
    series = points.groupBy(F.col("ts").alias("tick_ts")).agg(F.count(F.lit(1)).alias("series_count"))
    zero = F.lit(0).cast("long")
    return (
        tick_frame.join(counts, "tick_ts", "left")
        .join(series, "tick_ts", "left")
        .select(
            F.lit(run_id).alias("run_id"),
            "tick_ts",
            F.coalesce("source_files", F.array().cast("array<string>")).alias("source_files"),
            *[
                F.coalesce(c, zero).alias(c)
                for c in ("rows_read", "rows_accepted", "rows_quarantined", "rows_duplicate_dropped", "series_count")
            ],
            F.array(*[F.lit(f) for f in sorted(feeds_missing)]).cast("array<string>").alias("feeds_missing"),
            F.col("tick_ts").alias("written_at"),
            (F.coalesce("rows_accepted", zero) == 0).alias("is_degraded"),
            F.to_date("tick_ts").alias("date"),
        )
    )


# -- reference feeds: context signals and campaigns ------------------------------------------------------
@dataclass(frozen=True)
class Feed:
    """A landing folder of time-ranged records (``start``/``end``) that attribution reads as evidence."""

    table: str
    columns: list[str]
    required: list[str]
    numeric: str
    key: str | None  # the feed's own record id column; otherwise a hash of the record's content


FEEDS = [
    Feed(
        "contextual_data",
        ["signal_type", "start", "end", "store_id", "region", "category", "sku", "source", "detail", "intensity"],
        ["signal_type", "start", "end"],
        "intensity",
        None,
    ),
    Feed(
        "all_campaign_data",
        ["campaign_id", "campaign_type", "channel", "retailer_id", "category", "sku", "start", "end", "daily_spend"],
        ["campaign_id", "start", "end"],
        "daily_spend",
        "campaign_id",
    ),
]


def classify_feed(raw: DataFrame, feed: Feed, tick_seconds: int) -> DataFrame:
    """Parse and validate feed records: adds ``start_ts``/``end_ts``, ``record_id``, ``tick_ts`` (the tick
    that owns a bad record: its start's, or its file's first valid start's), reasons and duplicates."""
    df = raw.withColumn("start_ts", _parse_ts(F.col("start"))).withColumn("end_ts", _parse_ts(F.col("end")))
    df = df.withColumn("value_d", F.col(feed.numeric).try_cast("double"))
    file_first = F.min("start_ts").over(Window.partitionBy("source_file"))
    df = df.withColumn(
        "tick_ts",
        F.coalesce(
            tick_floor(F.col("start_ts"), tick_seconds),
            tick_floor(file_first, tick_seconds),
            F.lit("1970-01-01 00:00:00").cast("timestamp"),
        ),
    )
    checks: list[tuple[Column, str, Column]] = [
        (F.col("start_ts").isNull() | F.col("end_ts").isNull(), "BAD_TIMESTAMP",
         F.format_string("start %s / end %s is not ISO-8601", F.col("start"), F.col("end"))),
        (F.col("end_ts") <= F.col("start_ts"), "BAD_TIMESTAMP", F.lit("end is not after start")),
        *[(_blank(c), "NULL_KEY", F.lit(f"{c} is empty")) for c in feed.required if c not in ("start", "end")],
        (~_blank(feed.numeric) & F.col("value_d").isNull(), "NON_NUMERIC_VALUE",
         F.format_string(f"{feed.numeric} '%s' is not a number", F.col(feed.numeric))),
    ]  # fmt: skip
    code, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for cond, c, d in reversed(checks):
        code, detail = F.when(cond, F.lit(c)).otherwise(code), F.when(cond, d).otherwise(detail)
    problem = F.col("_problem").isNotNull()
    code = F.when(problem, F.split("_problem", r"\|")[0]).otherwise(code)
    detail = F.when(problem, F.split("_problem", r"\|")[1]).otherwise(detail)
    content = F.sha2(F.concat_ws("\u0001", *[F.coalesce(F.col(c), F.lit("\u0000")) for c in feed.columns]), 256)
    first = Window.partitionBy("_content").orderBy("source_file", "_raw")
    return (
        df.withColumn("_raw", raw_record(feed.columns))  # feeds are small: every record's raw text is kept
        .withColumn("reason_code", code)
        .withColumn("reason_detail", detail)
        .withColumn("_content", content)
        .withColumn("is_duplicate", F.row_number().over(first) > 1)
        .withColumn("record_id", F.col(feed.key) if feed.key else F.col("_content"))
    )


def feed_rows(classified: DataFrame, feed: Feed, run_id: str, start: datetime, end: datetime) -> DataFrame:
    """Valid records whose time range overlaps [start, end), stamped with the tick they start in."""
    ok = classified.where(F.col("reason_code").isNull() & ~F.col("is_duplicate"))
    ok = ok.where((F.col("start_ts") < F.lit(end)) & (F.col("end_ts") > F.lit(start)))
    values = [F.col(c) for c in feed.columns if c not in ("start", "end", feed.numeric)]
    return ok.select(
        F.lit(run_id).alias("run_id"),
        "record_id",
        *values,
        F.col("start_ts").alias("start"),
        F.col("end_ts").alias("end"),
        F.col("value_d").alias(feed.numeric),
        "source_file",
        F.col("tick_ts").alias("written_at"),
        F.lit(False).alias("is_degraded"),
    )


def ingest_feeds(spark: SparkSession, lake: Lakehouse, cfg: Config, start, end, run_id: str) -> dict:
    """Load context and campaign records for the interval; a missing feed is reported, not fatal (attribution
    then runs degraded on intrinsic evidence)."""
    written = {}
    for feed in FEEDS:
        folder = cfg.paths.landing / feed.table
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if not files:
            written[feed.table] = "missing"
            continue
        raw = union_all([read_raw(spark, f, feed.required, feed.columns) for f in files])
        classified = classify_feed(raw, feed, cfg.tick_seconds).persist()
        written[feed.table] = lake.append_new(feed.table, feed_rows(classified, feed, run_id, start, end))
        owned = classified.where((F.col("tick_ts") >= F.lit(start)) & (F.col("tick_ts") < F.lit(end)))
        written[f"{feed.table}_quarantined"] = lake.append_new(
            "ingest_quarantine", quarantine_rows(owned, run_id), dates_of(start, end), skip_if_empty=True
        )
        classified.unpersist()
    return written


# -- the job -----------------------------------------------------------------------------------------
def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    tick_s, grain = cfg.tick_seconds, cfg.pipeline.grain
    files, missing_days = landing_files(cfg.paths.landing / "unified_sales_data", start, end)
    tick_list = ticks(start, end, tick_s)
    tick_frame = spark.createDataFrame([(t,) for t in tick_list], "tick_ts timestamp")
    if files:
        raw = union_all([read_raw(spark, f, cfg.ingest.required_columns) for f in files])
        classified = narrow(classify(raw, tick_s, grain, start, end)).persist()
    else:
        classified = None
    days = dates_of(start, end)
    written = {"files": len(files), "missing_days": [d.isoformat() for d in missing_days]}
    written.update(ingest_feeds(spark, lake, cfg, start, end, run_id))
    feeds_missing = [f.table for f in FEEDS if written[f.table] == "missing"]
    if classified is not None:
        accepted = accepted_rows(classified, run_id)
        written["unified_sales_data"] = lake.append_new("unified_sales_data", accepted, within=(start, end))
        written["ingest_quarantine"] = lake.append_new(
            "ingest_quarantine", quarantine_rows(classified, run_id), days, skip_if_empty=True
        )
        written["sales_timeseries_data"] = lake.append_new(
            "sales_timeseries_data", to_timeseries(accepted, tick_s, grain), within=(start, end)
        )
        points = lake.read_ticks("sales_timeseries_data", run_id, start, end)
        audit_df = audit(classified, points, tick_frame, run_id, feeds_missing)
    else:
        empty = spark.createDataFrame(
            [],
            "tick_ts timestamp, reason_code string, is_duplicate boolean, source_file string",
        )
        audit_df = audit(empty, spark.createDataFrame([], "ts timestamp"), tick_frame, run_id, feeds_missing)
    written["ingest_audit_log"] = lake.append_new("ingest_audit_log", audit_df, within=(start, end))
    if classified is not None:
        classified.unpersist()
    return written


def main(argv: list[str] | None = None) -> None:
    a = parse_stage_args(__doc__.split("\n\n")[0], argv)
    spark = build_spark(a.cfg, "ingest")
    try:
        written = run(spark, a.cfg, a.start, a.end, a.run_id)
    except InputMissingError as e:
        raise SystemExit(f"ingest: {e}") from None
    print(f"ingest {a.start:%Y-%m-%dT%H:%MZ} .. {a.end:%Y-%m-%dT%H:%MZ}: {written}")
    spark.stop()


if __name__ == "__main__":
    main()
