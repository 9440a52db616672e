"""Table maintenance: small files compacted, replaced files vacuumed, the data unchanged, a second run a no-op."""

from datetime import UTC, date, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import Row
from pyspark.sql import functions as F

from jobs.lib.tables import Lakehouse
from jobs.runtime import maintain_tables
from schemas.mrs import DEMO_RUN_CONFIG, INGEST_QUARANTINE
from tests.conftest import make_config

pytestmark = pytest.mark.slow  # compaction and VACUUM over the lakehouse, three runs

END = datetime(2025, 8, 20, tzinfo=UTC)


def quarantine_row(i: int, day: date) -> Row:
    at = datetime.combine(day, datetime.min.time())
    return Row("run-1", f"f{i}.csv", f"h{i}", "bad_units", "units: 'x'", "x", at, True, day)


def fragmented_lakehouse(spark, cfg) -> Lakehouse:
    """demo_run_config in 10 one-row commits (10 files, and Delta's checkpoint at version 10); ingest_quarantine in
    3 commits over 2 days (6 files)."""
    lake = Lakehouse(spark, cfg)
    for seq in range(10):
        row = Row(seq, f"run-{seq}", "test", datetime(2025, 8, 4) + timedelta(hours=seq))
        lake.append_new("demo_run_config", spark.createDataFrame([row], DEMO_RUN_CONFIG))
    days = [date(2025, 8, 18), date(2025, 8, 19)]
    for i in range(3):
        rows = [quarantine_row(10 * i + d, day) for d, day in enumerate(days)]
        lake.append_new("ingest_quarantine", spark.createDataFrame(rows, INGEST_QUARANTINE), days)
    return lake


def test_maintenance_compacts_changes_no_data_reruns_add_nothing_and_vacuums_after_the_retention(spark, tmp_path):
    cfg = make_config(tmp_path, **{"maintenance.max_files_per_partition": 1})
    lake = fragmented_lakehouse(spark, cfg)
    names = ("demo_run_config", "ingest_quarantine")
    before = {n: lake.read(n).localCheckpoint() for n in names}
    files = lambda n: sum("_delta_log" not in f.parts for f in (cfg.paths.lakehouse / n).rglob("*.parquet"))  # noqa: E731
    # A MERGE also leaves files no commit refers to: VACUUM deletes those too, with the replaced ones.
    on_disk = {n: files(n) for n in names}

    result = maintain_tables.run(spark, cfg, END - timedelta(days=1), END)

    assert result["tables"] == 2 and result["files_compacted"] == 16 and result["degraded"] == []
    cols = ["table_name", "files_before", "files_after", "partitions", "files_compacted", "files_written"]
    cols += ["files_vacuumed", "log_version", "checkpoint_version", "report_status", "is_degraded"]
    log = lambda at: lake.read("table_maintenance_log").where(F.col("written_at") == at).select(*cols)  # noqa: E731
    expected = spark.createDataFrame(
        [
            ("demo_run_config", 10, 1, 1, 10, 1, 0, 11, 10, "compacted", False),
            ("ingest_quarantine", 6, 2, 2, 6, 2, 0, 4, None, "compacted", False),
        ],
        log(END).schema,
    )
    assert_df_equality(log(END).orderBy("table_name"), expected, ignore_nullable=True)
    for name, rows in before.items():
        assert_df_equality(lake.read(name), rows, ignore_row_order=True)
    # A week's retention keeps the replaced files: time travel to before the compaction still works.
    assert spark.read.format("delta").option("versionAsOf", 1).load(lake.path("demo_run_config")).count() == 1

    version = lambda n: spark.sql(f"DESCRIBE HISTORY {lake.table_sql(n)} LIMIT 1").first()["version"]  # noqa: E731
    versions = {n: version(n) for n in names}
    assert maintain_tables.run(spark, cfg, END - timedelta(days=1), END)["table_maintenance_log"] == 0
    assert {n: version(n) for n in names} == versions  # nothing left to compact: no commit

    # A day later, with no retention: the replaced and orphaned files go, the current ones stay (VACUUM commits
    # its start and end: two versions).
    cfg0 = make_config(tmp_path, **{"maintenance.vacuum_retention_hours": 0})
    later = maintain_tables.run(spark, cfg0, END, END + timedelta(days=1))
    assert later["files_compacted"] == 0 and later["tables"] == 2
    expected = spark.createDataFrame(
        [
            ("demo_run_config", 1, 1, 1, 0, 0, on_disk["demo_run_config"], 13, 10, "unchanged", False),
            ("ingest_quarantine", 2, 2, 2, 0, 0, on_disk["ingest_quarantine"], 6, None, "unchanged", False),
        ],
        log(END).schema,
    )
    assert_df_equality(log(END + timedelta(days=1)).orderBy("table_name"), expected, ignore_nullable=True)
    assert {n: files(n) for n in names} == {"demo_run_config": 1, "ingest_quarantine": 2}
    for name, rows in before.items():
        assert_df_equality(lake.read(name), rows, ignore_row_order=True)
    assert spark.sql(f"DESCRIBE DETAIL {lake.table_sql('table_maintenance_log')}").first()["numFiles"] == 1
