"""Table maintenance: keeps every Delta table's log and files healthy as ticks accumulate.

Each tick appends a few small files to each log table (one per partition a MERGE touched), so a month of
15-minute ticks would leave thousands per table, and every read would list and open them all. Once per run of
the ``mrs_maintenance`` DAG, for every table of the registry that exists:

- ``OPTIMIZE`` bin-packs each partition's small files into one (Delta skips partitions with a single file and
  commits nothing when no partition needs it, so a second run is a no-op);
- ``VACUUM`` deletes files no version within ``maintenance.vacuum_retention_hours`` refers to (the files
  OPTIMIZE replaced, once old enough; time travel within the retention still works);
- checkpoints are Delta's own, written every ``delta.checkpointInterval`` (10) commits; the row records the
  latest, so a table whose log is not being checkpointed shows.

One ``table_maintenance_log`` row per table and run, keyed by (table_name, written_at = the interval's end):
``is_degraded`` when the table still has more than ``maintenance.max_files_per_partition`` files per
partition afterwards. The task runs in the lakehouse writers' pool: OPTIMIZE and VACUUM are writes.

    spark-submit jobs/runtime/maintain_tables.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config
from jobs.lib.tables import TABLES, Lakehouse
from schemas.mrs import TABLE_MAINTENANCE_LOG

LOG = "table_maintenance_log"
WRITES = (LOG,)
# Delta refuses a shorter retention unless told the caller means it (readers of old versions could break).
DELTA_MIN_RETENTION_HOURS = 168


def detail(lake: Lakehouse, name: str) -> tuple[int, int]:
    """(data files, bytes) of a table's current version, from its log: no data is read."""
    d = lake.spark.sql(f"DESCRIBE DETAIL {lake.table_sql(name)}").select("numFiles", "sizeInBytes").first()
    return int(d["numFiles"]), int(d["sizeInBytes"])


def partitions(lake: Lakehouse, name: str) -> int:
    """How many partition values the table holds (1 when it is not partitioned)."""
    parts = TABLES[name].partition_by
    return max(int(lake.read(name).select(*parts).distinct().count()), 1) if parts else 1


def log_versions(lake: Lakehouse, name: str) -> tuple[int, int | None]:
    """(latest commit, latest checkpoint or None)."""
    version = lake.spark.sql(f"DESCRIBE HISTORY {lake.table_sql(name)} LIMIT 1").first()["version"]
    # Spark's file sources skip every file whose name starts with "_", so _last_checkpoint reads as empty
    # (and they warn once that the _delta_log folder's own name is such a name). The checkpoint files name
    # their version themselves; binaryFile reads no content when only the path is selected.
    files = lake.spark.read.format("binaryFile").option("pathGlobFilter", "*.checkpoint*")
    names = files.load(f"{lake.path(name)}/_delta_log").select(F.element_at(F.split("path", "/"), -1).alias("f"))
    cp = names.agg(F.max(F.regexp_extract("f", r"^(\d+)\.checkpoint", 1).cast("long"))).first()[0]
    return int(version), None if cp is None else int(cp)


def compact(lake: Lakehouse, name: str) -> tuple[int, int]:
    """OPTIMIZE the table; (files removed, files added)."""
    m = lake.spark.sql(f"OPTIMIZE {lake.table_sql(name)}").select("metrics.numFilesRemoved", "metrics.numFilesAdded")
    row = m.first()
    return int(row["numFilesRemoved"] or 0), int(row["numFilesAdded"] or 0)


def vacuum(lake: Lakehouse, name: str, hours: int) -> int:
    """VACUUM with the configured retention; how many data files it deleted (a local disk's .crc files not
    counted)."""
    target = f"{lake.table_sql(name)} RETAIN {hours} HOURS"
    doomed = lake.spark.sql(f"VACUUM {target} DRY RUN").where(F.col("path").endswith(".parquet")).count()
    if doomed:
        lake.spark.sql(f"VACUUM {target}").collect()  # one row: the table's path
    return doomed


def maintain(lake: Lakehouse, name: str, at: datetime) -> dict:
    m = lake.cfg.maintenance
    before, _ = detail(lake, name)
    removed, added = compact(lake, name)
    vacuumed = vacuum(lake, name, m.vacuum_retention_hours)
    after, size = detail(lake, name)
    parts = partitions(lake, name)
    version, checkpoint = log_versions(lake, name)
    return {
        "table_name": name,
        "written_at": at.replace(tzinfo=None),
        "files_before": before,
        "files_after": after,
        "partitions": parts,
        "bytes_after": size,
        "files_compacted": removed,
        "files_written": added,
        "files_vacuumed": vacuumed,
        "log_version": version,
        "checkpoint_version": checkpoint,
        "report_status": "compacted" if removed else "unchanged",
        "is_degraded": after > m.max_files_per_partition * parts,
        "date": at.date(),
    }


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    """Maintain every existing table at the interval's end (``run_id`` is not used: tables hold every run)."""
    lake = Lakehouse(spark, cfg)
    if cfg.maintenance.vacuum_retention_hours < DELTA_MIN_RETENTION_HOURS:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    rows = [maintain(lake, name, end) for name in TABLES if name != LOG and lake.exists(name)]
    log = spark.createDataFrame(rows, TABLE_MAINTENANCE_LOG) if rows else None
    written = lake.append_new(LOG, log) if log is not None else 0
    # The log is compacted too, but not logged: a re-run would otherwise add its row (it exists only after the
    # first run), and its files are counted in DESCRIBE DETAIL like any table's.
    compact(lake, LOG)
    vacuum(lake, LOG, cfg.maintenance.vacuum_retention_hours)
    compacted = sum(r["files_compacted"] for r in rows)
    degraded = [r["table_name"] for r in rows if r["is_degraded"]]
    return {
        "tables": len(rows),
        "files_compacted": compacted,
        "files_after": sum(r["files_after"] for r in rows),
        "degraded": degraded,
        "table_maintenance_log": written,
    }


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "maintain_tables", run, argv)


if __name__ == "__main__":
    main()
