"""The registry's append: only new keys go in, and a tick's merge reads only its own tick's files; column comments
reach Delta and the catalog."""

from datetime import UTC, datetime, timedelta

import pytest
from pyspark.sql.types import StructField, StructType

from jobs.lib.tables import TABLES, Lakehouse, column_ddl
from jobs.runtime import register_catalog
from schemas.mrs import INGEST_AUDIT_LOG
from tests.conftest import make_config

DAY = datetime(2025, 8, 4, tzinfo=UTC)
TICK = timedelta(minutes=15)


def audit_tick(spark, at: datetime, rows_read: int):
    naive = at.replace(tzinfo=None)
    row = ("run-1", naive, [], rows_read, rows_read, 0, 0, 1, [], naive, False, naive.date())
    return spark.createDataFrame([row], INGEST_AUDIT_LOG)


def file_ticks(spark, path) -> list[datetime]:
    return [r["tick_ts"].replace(tzinfo=UTC) for r in spark.read.parquet(str(path)).select("tick_ts").collect()]


def test_a_ticks_merge_reads_only_its_ticks_files_and_a_rerun_adds_nothing(spark, tmp_path):
    lake = Lakehouse(spark, make_config(tmp_path))
    name = "ingest_audit_log"
    ticks = [DAY + i * TICK for i in range(4)]
    for i, at in enumerate(ticks):  # one commit, so one file, per tick of the day
        assert lake.append_new(name, audit_tick(spark, at, 10 + i), within=(at, at + TICK)) == 1
    assert lake.append_new(name, audit_tick(spark, ticks[2], 99), within=(ticks[2], ticks[2] + TICK)) == 0
    assert sorted(r["rows_read"] for r in lake.read(name).collect()) == [10, 11, 12, 13]

    # The proof that the merge skips the day's other files: with the first tick's file gone from the disk
    # (behind Delta's back), merging the last tick again still works; a merge that opened it would fail.
    first = next(f for f in (tmp_path / "lakehouse" / name).rglob("*.parquet") if file_ticks(spark, f) == [ticks[0]])
    first.unlink()
    assert lake.append_new(name, audit_tick(spark, ticks[3], 99), within=(ticks[3], ticks[3] + TICK)) == 0
    with pytest.raises(Exception, match=r"FileNotFound|does not exist"):
        lake.append_new(name, audit_tick(spark, ticks[3], 99), dates=[DAY.date()])

    # Rows outside the promised range would go unmatched: the range must name a key's timestamp column.
    with pytest.raises(ValueError, match="within needs a timestamp column"):
        lake.append_new("cluster_library", audit_tick(spark, DAY, 1), within=(DAY, DAY + TICK))


class CountingLakehouse(Lakehouse):
    """A Lakehouse counting the existence checks it sends to Spark."""

    checks = 0

    def _probe(self, name):
        self.checks += 1
        return super()._probe(name)


def test_a_job_asks_once_whether_a_table_exists_but_never_remembers_a_missing_one(spark, tmp_path):
    cfg = make_config(tmp_path)
    lake, other_job = CountingLakehouse(spark, cfg), Lakehouse(spark, cfg)
    name = "ingest_audit_log"
    assert lake.read(name).count() == 0 and not lake.exists(name)
    other_job.append_new(name, audit_tick(spark, DAY, 5), within=(DAY, DAY + TICK))
    assert lake.read(name).count() == 1  # created meanwhile by another job: seen, as a miss is not kept
    before = lake.checks
    assert [lake.read(name).count() for _ in range(3)] == [1, 1, 1]
    assert lake.append_new(name, audit_tick(spark, DAY + TICK, 6), within=(DAY + TICK, DAY + 2 * TICK)) == 1
    assert lake.checks == before  # found once, then known for the rest of the job
    assert lake.exists(name, recheck=True) and lake.checks == before + 1  # a service's health check asks


def test_an_empty_frame_skipped_creates_the_table_and_runs_no_merge_a_full_one_still_merges(
    spark, tmp_path, monkeypatch
):
    lake = Lakehouse(spark, make_config(tmp_path))
    name = "ingest_audit_log"
    empty = audit_tick(spark, DAY, 1).limit(0)
    merges = []
    merge = lake.merge
    monkeypatch.setattr(lake, "merge", lambda *a, **k: merges.append(a[0]) or merge(*a, **k))
    assert lake.append_new(name, empty, within=(DAY, DAY + TICK), skip_if_empty=True) == 0
    assert lake.exists(name, recheck=True) and lake.read(name).count() == 0
    assert merges == []  # created, and no MERGE (an empty one would commit nothing, but costs its planning)
    assert lake.append_new(name, audit_tick(spark, DAY, 7), within=(DAY, DAY + TICK), skip_if_empty=True) == 1
    assert lake.append_new(name, audit_tick(spark, DAY, 8), within=(DAY, DAY + TICK), skip_if_empty=True) == 0
    assert merges == [name, name]
    assert [r["rows_read"] for r in lake.read(name).collect()] == [7]


def comments(schema: StructType) -> dict[str, str | None]:
    return {f.name: f.metadata.get("comment") for f in schema.fields}


def described(spark, table: str) -> dict[str, str | None]:
    """Column -> comment as ``DESCRIBE`` shows it (partition rows repeat a column; the rows after are not columns)."""
    rows = spark.sql(f"DESCRIBE {table}").collect()
    return {r["col_name"]: r["comment"] for r in rows if r["col_name"] and not r["col_name"].startswith("#")}


def test_column_comments_reach_delta_and_the_catalog_also_for_a_table_written_before_them(spark, tmp_path):
    cfg = make_config(tmp_path)
    lake = Lakehouse(spark, cfg)
    delta_schema = lambda n: spark.read.format("delta").load(lake.path(n)).schema  # noqa: E731
    # A table the pipeline creates carries every column's description in its Delta schema.
    new = "ingest_audit_log"
    lake.append_new(new, audit_tick(spark, DAY, 5), within=(DAY, DAY + TICK))
    assert comments(delta_schema(new)) == comments(TABLES[new].schema)
    assert described(spark, lake.table_sql(new)) == comments(TABLES[new].schema)

    # A table written before there were descriptions: writes leave its schema as it is, registration updates it.
    old = "demo_run_config"
    bare = StructType([StructField(f.name, f.dataType, f.nullable) for f in TABLES[old].schema.fields])
    spark.sql(f"CREATE TABLE {lake.table_sql(old)} ({column_ddl(bare)}) USING DELTA")
    assert lake.reset_run_id("run-2", DAY)
    assert set(comments(delta_schema(old)).values()) == {None}
    schema = "mrs_comments_test"  # the session catalog's mrs schema belongs to the pipeline tests
    try:
        assert register_catalog.register(spark, cfg, schema) == {old: 4}
        for name in (old, new):
            assert described(spark, f"{schema}.{name}") == comments(TABLES[name].schema)
        # Up to date: registering again changes nothing and commits nothing.
        version = lambda n: spark.sql(f"DESCRIBE HISTORY {lake.table_sql(n)} LIMIT 1").first()["version"]  # noqa: E731
        before = {name: version(name) for name in (old, new)}
        assert register_catalog.register(spark, cfg, schema) == {}
        assert {name: version(name) for name in (old, new)} == before
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_table_written_by_an_earlier_release_reads_its_new_columns_as_null_and_gains_them_on_write(spark, tmp_path):
    lake = Lakehouse(spark, make_config(tmp_path))
    name = "ingest_audit_log"
    old_schema = StructType([f for f in TABLES[name].schema.fields if f.name != "is_degraded"])
    old_row = audit_tick(spark, DAY, 5).drop("is_degraded")
    spark.sql(f"CREATE TABLE {lake.table_sql(name)} ({column_ddl(old_schema)}) USING DELTA PARTITIONED BY (date)")
    old_row.write.format("delta").mode("append").save(lake.path(name))

    # Read before any write: the column is there, NULL on the old row; the table itself is untouched.
    assert [(r["rows_read"], r["is_degraded"]) for r in lake.read(name).collect()] == [(5, None)]
    assert "is_degraded" not in spark.read.format("delta").load(lake.path(name)).columns

    # A write adds the column; the old row keeps NULL, the new one its value, and a rerun adds nothing.
    later = DAY + TICK
    assert lake.append_new(name, audit_tick(spark, later, 6), within=(later, later + TICK)) == 1
    assert (
        Lakehouse(spark, make_config(tmp_path)).append_new(
            name, audit_tick(spark, later, 6), within=(later, later + TICK)
        )
        == 0
    )
    rows = spark.read.format("delta").load(lake.path(name)).orderBy("tick_ts").collect()
    assert [(r["rows_read"], r["is_degraded"]) for r in rows] == [(5, None), (6, False)]


def test_catalog_registration_gives_a_table_from_an_earlier_release_its_new_columns(spark, tmp_path):
    cfg = make_config(tmp_path)
    lake = Lakehouse(spark, cfg)
    name = "baseline_profile_log"  # as seasonal-median-v1 wrote it, before the calibration columns
    added = {"dispersion", "calibration_sample", "scored_ticks", "calibration"}
    old_schema = StructType([f for f in TABLES[name].schema.fields if f.name not in added])
    part = ", ".join(TABLES[name].partition_by)
    spark.sql(f"CREATE TABLE {lake.table_sql(name)} ({column_ddl(old_schema)}) USING DELTA PARTITIONED BY ({part})")
    schema = "mrs_upgrade_test"  # the session catalog's mrs schema belongs to the pipeline tests
    try:
        register_catalog.register(spark, cfg, schema)  # its CREATE declares the new columns: they must be there
        assert described(spark, f"{schema}.{name}") == comments(TABLES[name].schema)
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
