"""The registry's append: only new keys go in, and a tick's merge reads only its own tick's files."""

from datetime import UTC, datetime, timedelta

import pytest

from jobs.lib.tables import Lakehouse
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
