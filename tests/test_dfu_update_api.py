"""cluster-update (Delta MERGE and PostgreSQL), the dfu_cluster_summary SQL, and the DFU API, on hand-built rows."""

from __future__ import annotations

import csv
import re
from datetime import date

import pytest
from chispa import assert_df_equality
from fastapi.testclient import TestClient

from jobs.dfu import update
from jobs.dfu.api import LakehouseSource, create_app
from jobs.dfu.summary import run_summary
from jobs.lib.tables import Lakehouse
from schemas import dfu
from schemas.dfu import SUMMARY_COLUMNS, summary_sql
from tests.conftest import make_config

# dfu_id -> cluster_assignment before the update
BEFORE = {
    "I1@L1": "high_volume_steady",  # labelled the same: unchanged
    "I2@L1": None,  # new label
    "I3@L1": "lumpy_low_volume",  # changed label
    "I4@L1": "high_volume_steady",  # not clustered this run: keeps its label
    "I5@L1": None,  # not clustered, never labelled
}
ASSIGNMENTS = [("I1@L1", 0, 0.1), ("I2@L1", 1, 0.2), ("I3@L1", 2, 0.3), ("I9@L9", 0, 0.4)]  # I9@L9: not in dim_dfu
LABELS = [(0, "high_volume_steady"), (1, "seasonal_high_volume"), (2, "intermittent_low_volume")]
AFTER = {**BEFORE, "I2@L1": "seasonal_high_volume", "I3@L1": "intermittent_low_volume"}
COUNTS = {
    "to_update": 2,
    "unchanged": 1,
    "not_in_dim_dfu": 1,
    "not_clustered": 2,
    "not_clustered_with_label": 1,
    "labels_after": {"high_volume_steady": 2, "intermittent_low_volume": 1, "seasonal_high_volume": 1},
    "unassigned_after": 1,
}


def dim_dfu_rows(assignments: dict[str, str | None], **attrs) -> list[tuple]:
    rows = []
    for dfu_id, label in assignments.items():
        item, loc = dfu_id.split("@")
        values = {"dfu_id": dfu_id, "item_id": item, "location_id": loc, "cluster_assignment": label}
        values |= {"brand": f"B-{item}", "region": "North", **attrs}
        rows.append(tuple(values.get(f.name) for f in dfu.DIM_DFU.fields))
    return rows


def write_table(lake, name, df):
    # The registry's table (NOT NULL keys and all), then a plain append: several jobs cheaper than append_new's MERGE.
    lake.ensure(name)
    df.write.format("delta").mode("append").save(lake.path(name))


def write_dim_dfu(spark, lake, assignments):
    write_table(lake, "dim_dfu", spark.createDataFrame(dim_dfu_rows(assignments), dfu.DIM_DFU))


def write_csvs(root, assignments=ASSIGNMENTS, labels=LABELS):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / update.ASSIGNMENTS_CSV, "w", newline="") as f:
        csv.writer(f).writerows([("dfu_id", "cluster_id", "distance_to_centroid"), *assignments])
    with open(root / update.LABELS_CSV, "w", newline="") as f:
        rows = [(c, lab, "high", "steady", 1) for c, lab in labels]
        csv.writer(f).writerows([("cluster_id", "label", "volume_tier", "pattern", "size"), *rows])
    return root


def version(spark, lake):
    return spark.sql(f"DESCRIBE HISTORY {lake.table_sql('dim_dfu')} LIMIT 1").first()["version"]


@pytest.fixture
def lakehouse(spark, tmp_path):
    cfg = make_config(tmp_path / "mrs")
    lake = Lakehouse(spark, cfg)
    write_dim_dfu(spark, lake, BEFORE)
    return cfg, lake


def test_merge_counts_then_updates_only_what_differs_and_a_rerun_changes_nothing(spark, dfu_cfg, lakehouse, tmp_path):
    cfg, lake = lakehouse
    inputs = write_csvs(tmp_path / "in")
    v0 = version(spark, lake)

    dry = update.run(spark, cfg, dfu_cfg, inputs, dry_run=True)
    assert {k: dry[k] for k in COUNTS} == COUNTS and dry["updated"] == 0
    assert dry["not_in_dim_dfu_sample"] == ["I9@L9"]
    assert version(spark, lake) == v0  # the dry run wrote nothing

    real = update.run(spark, cfg, dfu_cfg, inputs)
    assert {k: real[k] for k in COUNTS} == COUNTS and real["updated"] == 2
    expected = spark.createDataFrame(dim_dfu_rows(AFTER), dfu.DIM_DFU)
    assert_df_equality(lake.read("dim_dfu"), expected, ignore_row_order=True)
    assert version(spark, lake) == v0 + 1

    again = update.run(spark, cfg, dfu_cfg, inputs)
    assert (again["to_update"], again["unchanged"], again["updated"]) == (0, 3, 0)
    assert again["labels_after"] == COUNTS["labels_after"]
    assert version(spark, lake) == v0 + 1  # nothing to change: no commit

    report = "\n".join(update.report_lines(dry))
    assert "dry run, nothing written" in report and "seasonal_high_volume" in report
    assert "1 labelled DFU(s) are not in dim_dfu" in update.warning_lines(dry)[0]


def test_plan_changes_classifies_each_dfu(spark):
    dim = spark.createDataFrame(dim_dfu_rows({"A@1": "x", "B@1": None, "C@1": "y"}), dfu.DIM_DFU)
    labels = spark.createDataFrame([("A@1", "x"), ("B@1", "z"), ("D@1", "x")], "dfu_id string, label string")
    got = update.plan_changes(dim, labels)
    expected = spark.createDataFrame(
        [
            ("A@1", "x", "x", "unchanged", "x"),
            ("B@1", None, "z", "to_update", "z"),
            ("C@1", "y", None, "not_clustered", "y"),
            ("D@1", None, "x", "not_in_dim_dfu", None),
        ],
        "dfu_id string, current string, label string, status string, after string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


@pytest.mark.parametrize(
    "breakage, problem",
    [
        ("no_labels_file", "cluster_labels.csv: no such file"),
        ("no_label_column", "cluster_labels.csv: missing column(s) ['label']"),
        ("duplicate_cluster_label", "cluster_labels.csv: line 5: cluster_id 2 appears more than once"),
        ("unknown_cluster", "no label for cluster_id(s) [7] used by 1 DFU(s)"),
        ("bad_cluster_id", "cluster_assignments.csv: 1 row(s) whose cluster_id is not an integer"),
        ("duplicate_dfu", "cluster_assignments.csv: 1 duplicate dfu_id row(s)"),
    ],
)
def test_bad_input_is_named(spark, small_cfg, dfu_cfg, tmp_path, breakage, problem):
    extra = {"unknown_cluster": ("I5@L1", 7, 0.1), "bad_cluster_id": ("I5@L1", "two", 0.1)}
    extra["duplicate_dfu"] = ("I1@L1", 1, 0.1)
    labels = [*LABELS, (2, "other")] if breakage == "duplicate_cluster_label" else LABELS
    inputs = write_csvs(tmp_path / "in", ASSIGNMENTS + ([extra[breakage]] if breakage in extra else []), labels)
    if breakage == "no_labels_file":
        (inputs / update.LABELS_CSV).unlink()
    if breakage == "no_label_column":
        (inputs / update.LABELS_CSV).write_text("cluster_id,name\n0,x\n")
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(problem)):
        update.run(spark, small_cfg, dfu_cfg, inputs, dry_run=True)


def test_command_line_fails_on_a_missing_file_before_starting_spark(dfu_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv(dfu_cfg.postgres.dsn_env, raising=False)
    with pytest.raises(SystemExit, match=r"cluster_assignments\.csv: no such file"):
        update.main(["--config", str(dfu_cfg.source), "--input", str(tmp_path), "--dry-run"])
    write_csvs(tmp_path)
    with pytest.raises(SystemExit, match="pass --dsn or set the environment variable DFU_POSTGRES_DSN"):
        update.main(["--config", str(dfu_cfg.source), "--input", str(tmp_path), "--target", "postgres"])


def test_a_missing_dim_dfu_is_an_error_not_an_empty_table(spark, dfu_cfg, tmp_path):
    cfg = make_config(tmp_path / "mrs")
    with pytest.raises(ValueError, match="dim_dfu: no Delta table"):
        update.run(spark, cfg, dfu_cfg, write_csvs(tmp_path / "in"), dry_run=True)
    assert not Lakehouse(spark, cfg).exists("dim_dfu")


# -- PostgreSQL target -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def pg_rows(dsn, table="dim_dfu"):
    import psycopg

    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(f"SELECT dfu_id, cluster_assignment FROM {table}").fetchall())


def test_postgres_target_dry_run_then_update_then_rerun(spark, dfu_cfg, small_cfg, postgres, tmp_path, monkeypatch):
    import psycopg

    with psycopg.connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS dim_dfu")
        conn.execute("CREATE TABLE dim_dfu (dfu_id varchar(64) PRIMARY KEY, brand text, cluster_assignment text)")
        with conn.cursor().copy("COPY dim_dfu (dfu_id, brand, cluster_assignment) FROM STDIN") as copy:
            for dfu_id, label in BEFORE.items():
                copy.write_row((dfu_id, "B", label))
    inputs = write_csvs(tmp_path / "in")
    monkeypatch.setenv(dfu_cfg.postgres.dsn_env, postgres)  # the DSN comes from the environment

    dry = update.run(spark, small_cfg, dfu_cfg, inputs, dry_run=True, target="postgres")
    assert {k: dry[k] for k in COUNTS} == COUNTS and dry["updated"] == 0
    assert dry["not_in_dim_dfu_sample"] == ["I9@L9"]
    assert pg_rows(postgres) == BEFORE

    real = update.run(spark, small_cfg, dfu_cfg, inputs, target="postgres")
    assert {k: real[k] for k in COUNTS} == COUNTS and real["updated"] == 2
    assert pg_rows(postgres) == AFTER

    again = update.run(spark, small_cfg, dfu_cfg, inputs, target="postgres", dsn=postgres)
    assert (again["to_update"], again["unchanged"], again["updated"]) == (0, 3, 0)
    assert pg_rows(postgres) == AFTER


def test_postgres_target_names_a_missing_table_or_column(postgres):
    import psycopg

    with psycopg.connect(postgres) as conn:
        conn.execute("DROP TABLE IF EXISTS dfu_no_label")
        conn.execute("CREATE TABLE dfu_no_label (dfu_id text PRIMARY KEY)")
    rows = [("I1@L1", "x")]
    with pytest.raises(ValueError, match="table 'no_such_table' does not exist"):
        update.update_postgres(postgres, "no_such_table", "dfu_id", rows)
    with pytest.raises(ValueError, match=r"no column\(s\) \['cluster_assignment'\]"):
        update.update_postgres(postgres, "dfu_no_label", "dfu_id", rows)


# -- summary SQL and API ---------------------------------------------------------------------------------------------
SUMMARY_DFUS = {"A@1": "a_label", "B@1": "a_label", "C@1": "b_label", "D@1": "b_label", "E@1": None}
# (as_of_month, dfu_id, mean_demand, cv_demand): A@1's earlier row must not count.
FEATURES = [
    (date(2025, 11, 1), "A@1", 100.0, 0.9),
    (date(2025, 12, 1), "A@1", 20.0, 0.3),
    (date(2025, 12, 1), "B@1", 30.0, 0.1),
    (date(2025, 12, 1), "C@1", 5.0, 1.23456),
    (date(2025, 12, 1), "E@1", 1000.0, 9.0),  # no assignment: left out
]  # D@1 has no features: counted, not averaged
SUMMARY_SCHEMA = "cluster_assignment string, dfu_count bigint, avg_demand double, cv_demand double"
EXPECTED_SUMMARY = [("a_label", 2, 25.0, 0.2), ("b_label", 2, 5.0, 1.235)]


@pytest.fixture(scope="module")
def summary_lake(spark, tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("summary"))
    lake = Lakehouse(spark, cfg)
    write_dim_dfu(spark, lake, SUMMARY_DFUS)
    rows = []
    for as_of, dfu_id, mean, cv in FEATURES:
        item, loc = dfu_id.split("@")
        values = {"as_of_month": as_of, "dfu_id": dfu_id, "item_id": item, "location_id": loc}
        values |= {"history_months": 24, "window_months": 24, "mean_demand": mean, "cv_demand": cv}
        rows.append(tuple(values.get(f.name) for f in dfu.DFU_CLUSTERING_FEATURES.fields))
    write_table(lake, "dfu_clustering_features", spark.createDataFrame(rows, dfu.DFU_CLUSTERING_FEATURES))
    return lake


def test_summary_sql_over_delta_paths_and_as_a_catalog_view(spark, summary_lake):
    by_path = LakehouseSource(spark, summary_lake).ref
    expected = spark.createDataFrame(EXPECTED_SUMMARY, SUMMARY_SCHEMA)
    assert_df_equality(run_summary(spark, by_path), expected, ignore_nullable=True, ignore_metadata=True)
    only_b = spark.createDataFrame(EXPECTED_SUMMARY[1:], SUMMARY_SCHEMA)
    got = run_summary(spark, by_path, ["b_label", "x"])
    assert_df_equality(got, only_b, ignore_nullable=True, ignore_metadata=True)
    # A value is bound, not spliced: a quote in it is just an unknown label.
    assert run_summary(spark, by_path, ["a_label' OR '1'='1"]).count() == 0
    assert run_summary(spark, by_path, []).count() == 0

    # The same text as a catalog view (what tables.views() registers, in a schema of this test's own).
    s = "dfu_summary_test"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {s}")
    for name in ("dim_dfu", "dfu_clustering_features"):
        spark.sql(f"CREATE TABLE IF NOT EXISTS {s}.{name} USING DELTA LOCATION '{summary_lake.path(name)}'")
    spark.sql(f"CREATE OR REPLACE VIEW {s}.dfu_cluster_summary AS {summary_sql(lambda t: f'{s}.{t}')}")
    assert ";" not in summary_sql(lambda t: f"{s}.{t}")
    got = spark.table(f"{s}.dfu_cluster_summary")
    assert_df_equality(got, expected, ignore_nullable=True, ignore_metadata=True)


def test_api_clusters_filter_dfu_list_and_validation(spark, summary_lake, tmp_path):
    client = TestClient(create_app(LakehouseSource(spark, summary_lake)))
    assert client.get("/health").json() == {"status": "ok"}

    body = client.get("/domains/dfu/clusters").json()
    assert body == {
        "clusters": [dict(zip(SUMMARY_COLUMNS, r, strict=True)) for r in EXPECTED_SUMMARY],
        "total_dfus": 4,
    }
    one = client.get("/domains/dfu/clusters", params={"cluster_assignment": ["b_label", "nope"]}).json()
    assert [c["cluster_assignment"] for c in one["clusters"]] == ["b_label"] and one["total_dfus"] == 2
    assert client.get("/domains/dfu/clusters?cluster_assignment=nope").json() == {"clusters": [], "total_dfus": 0}

    page = client.get("/domains/dfu", params={"cluster_assignment": "a_label", "limit": 1, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)
    assert page["dfus"] == [
        {
            "dfu_id": "B@1",
            "item_id": "B",
            "location_id": "1",
            "cluster_assignment": "a_label",
            "brand": "B-B",
            "region": "North",
            "abc_vol": None,
            "supergroup": None,
        }
    ]
    assert [d["dfu_id"] for d in client.get("/domains/dfu").json()["dfus"]] == list(SUMMARY_DFUS)
    for bad in ("0", "100000", "many"):
        assert client.get(f"/domains/dfu?limit={bad}").status_code == 422
    assert client.get("/domains/dfu?offset=-1").status_code == 422

    empty = TestClient(create_app(LakehouseSource(spark, Lakehouse(spark, make_config(tmp_path / "mrs")))))
    r = empty.get("/domains/dfu/clusters")
    assert r.status_code == 503 and "dim_dfu" in r.json()["detail"]
    assert empty.get("/health").status_code == 503
