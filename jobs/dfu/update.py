"""Cluster update: write each DFU's cluster label to ``dim_dfu.cluster_assignment`` (``cluster-update``).

Reads ``cluster_assignments.csv`` (dfu_id, cluster_id, ...) and ``cluster_labels.csv`` (cluster_id, label, ...)
from the input directory (default: the clustering ``output_dir``) and joins them into one label per DFU. Before
writing it prints the change counts: ``to_update`` (DFUs whose label is new or changed), ``unchanged``,
``not_in_dim_dfu`` (labelled DFUs dim_dfu does not have: never inserted, reported as a warning),
``not_clustered`` (dim_dfu rows without a label this run: left untouched, so a label from an earlier run stays;
``not_clustered_with_label`` counts those) and, per label, the number of DFUs carrying it after the update.
``--dry-run`` prints the same counts and writes nothing.

Targets: ``delta`` (default) MERGEs into the Delta table ``dim_dfu``, setting ``cluster_assignment`` only where it
differs and inserting nothing; ``postgres`` is the same command for deployments that keep dim_dfu in PostgreSQL
(table and key column from the ``postgres`` config section, the DSN from ``--dsn`` or the environment variable
``postgres.dsn_env`` names): the labels are COPYed into a temporary table and one transaction counts and runs
``UPDATE ... WHERE cluster_assignment IS DISTINCT FROM label`` (rolled back on a dry run). Either way re-running
with the same files changes nothing.

    python -m jobs.dfu.update [--config C] [--input DIR] [--dry-run] [--target delta|postgres] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from jobs.dfu.config import ClusteringConfig, load_clustering_config
from jobs.lib.config import Config

WRITES = ("dim_dfu",)
ASSIGNMENTS_CSV = "cluster_assignments.csv"
LABELS_CSV = "cluster_labels.csv"
ASSIGNMENTS_COLUMNS = ("dfu_id", "cluster_id")
LABELS_COLUMNS = ("cluster_id", "label")
COUNT_KEYS = ("to_update", "unchanged", "not_in_dim_dfu", "not_clustered", "not_clustered_with_label")
TARGET_COLUMN = "cluster_assignment"
_SAMPLE = 5  # DFU ids quoted in the not-in-dim_dfu warning


# -- inputs -----------------------------------------------------------------------------------------------------
def _header(path: Path, required: tuple[str, ...]) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (run cluster-train and cluster-label first, or pass --input)")
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header}")
    return header


def read_cluster_labels(path: Path) -> list[tuple[int, str]]:
    """(cluster_id, label) per row of cluster_labels.csv: one row per cluster, so read without Spark."""
    _header(path, LABELS_COLUMNS)
    out: dict[int, str] = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            raw, label = (row.get("cluster_id") or "").strip(), (row.get("label") or "").strip()
            try:
                cluster = int(raw)
            except ValueError:
                raise ValueError(f"{path}: line {n}: cluster_id {raw!r} is not an integer") from None
            if not label:
                raise ValueError(f"{path}: line {n}: cluster_id {cluster} has an empty label")
            if cluster in out:
                raise ValueError(f"{path}: line {n}: cluster_id {cluster} appears more than once")
            out[cluster] = label
    return sorted(out.items())


def read_assignments(spark: SparkSession, path: Path) -> DataFrame:
    """cluster_assignments.csv as text columns (ids keep leading zeros; cluster_id is cast on joining)."""
    header = _header(path, ASSIGNMENTS_COLUMNS)
    # The header's own names as the schema: no inference pass, and columns match by name, not position.
    schema = StructType([StructField(c, StringType()) for c in header])
    return spark.read.csv(str(path), header=True, schema=schema, enforceSchema=False)


def labels_by_dfu(assignments: DataFrame, labels: DataFrame) -> DataFrame:
    """(dfu_id, cluster_id, label) per assigned DFU; cluster_id is null where not an integer, label null where the
    cluster has no label row."""
    a = assignments.select(F.trim("dfu_id").alias("dfu_id"), F.trim("cluster_id").try_cast("int").alias("cluster_id"))
    return a.join(F.broadcast(labels.select("cluster_id", "label")), "cluster_id", "left").select(
        "dfu_id", "cluster_id", "label"
    )


def load_labels(spark: SparkSession, input_dir: Path) -> DataFrame:
    """The (dfu_id, label) rows to write, from the two CSVs of ``input_dir``; bad input raises naming the file."""
    a_path, l_path = input_dir / ASSIGNMENTS_CSV, input_dir / LABELS_CSV
    assignments = read_assignments(spark, a_path)
    labels = spark.createDataFrame(read_cluster_labels(l_path), "cluster_id int, label string")
    joined = labels_by_dfu(assignments, labels)
    stats = joined.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("dfu_id").alias("dfus"),
        F.sum(F.when(F.coalesce("dfu_id", F.lit("")) == "", 1).otherwise(0)).alias("no_dfu"),
        F.sum(F.when(F.col("cluster_id").isNull(), 1).otherwise(0)).alias("bad_cluster"),
        F.sum(F.when(F.col("cluster_id").isNotNull() & F.col("label").isNull(), 1).otherwise(0)).alias("no_label"),
    ).first()
    if stats["no_dfu"]:
        raise ValueError(f"{a_path}: {stats['no_dfu']} row(s) without a dfu_id")
    if stats["bad_cluster"]:
        raise ValueError(f"{a_path}: {stats['bad_cluster']} row(s) whose cluster_id is not an integer")
    if stats["rows"] != stats["dfus"]:
        raise ValueError(f"{a_path}: {stats['rows'] - stats['dfus']} duplicate dfu_id row(s); one cluster per DFU")
    if stats["no_label"]:
        unlabelled = joined.where(F.col("label").isNull()).select("cluster_id").distinct()
        ids = sorted(r["cluster_id"] for r in unlabelled.limit(_SAMPLE).collect())
        raise ValueError(f"{l_path}: no label for cluster_id(s) {ids} used by {stats['no_label']} DFU(s) in {a_path}")
    return joined.select("dfu_id", "label")


# -- change counts (the same figures for both targets) -----------------------------------------------------------
def plan_changes(dim_dfu: DataFrame, labels: DataFrame) -> DataFrame:
    """Per DFU in either input: (dfu_id, current, label, status, after); status is to_update, unchanged,
    not_in_dim_dfu or not_clustered, and ``after`` the assignment the DFU has once the update ran (null for
    DFUs not in dim_dfu)."""
    t = dim_dfu.select("dfu_id", F.col(TARGET_COLUMN).alias("current"), F.lit(True).alias("_t"))
    s = labels.select("dfu_id", "label", F.lit(True).alias("_s"))
    j = t.join(s, "dfu_id", "full_outer")
    status = (
        F.when(j["_t"].isNull(), "not_in_dim_dfu")
        .when(j["_s"].isNull(), "not_clustered")
        .when(F.col("current").eqNullSafe(F.col("label")), "unchanged")
        .otherwise("to_update")
    )
    after = F.when(j["_t"].isNotNull(), F.coalesce("label", "current"))
    return j.select("dfu_id", "current", "label", status.alias("status"), after.alias("after"))


def tally(groups: Iterable[tuple[str, str | None, int, int]]) -> dict[str, Any]:
    """The change counts from (status, after, DFUs, DFUs with a current label) groups: both targets compute these
    groups (Spark or SQL) and report through here."""
    out: dict[str, Any] = {**dict.fromkeys(COUNT_KEYS, 0), "unassigned_after": 0}
    labels: dict[str, int] = {}
    for status, after, n, had in groups:
        out[status] += n
        if status == "not_clustered":
            out["not_clustered_with_label"] += had
        if status != "not_in_dim_dfu":
            if after is None:
                out["unassigned_after"] += n
            else:
                labels[after] = labels.get(after, 0) + n
    out["labels_after"] = dict(sorted(labels.items()))
    return out


def count_changes(plan: DataFrame) -> dict[str, Any]:
    """The change counts of a ``plan_changes`` frame (one small aggregation, statuses x labels)."""
    had = F.sum(F.when(F.col("current").isNotNull(), 1).otherwise(0))
    rows = plan.groupBy("status", "after").agg(F.count(F.lit(1)).alias("n"), had.alias("had")).collect()
    return tally((r["status"], r["after"], r["n"], r["had"]) for r in rows)


# -- targets ------------------------------------------------------------------------------------------------------
def update_delta(spark: SparkSession, cfg: Config, labels: DataFrame, dry_run: bool = False) -> dict[str, Any]:
    """Count, then (unless ``dry_run``) MERGE ``labels`` into the Delta dim_dfu: update where different, no insert."""
    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    if not lake.exists("dim_dfu"):
        raise ValueError(f"dim_dfu: no Delta table at {lake.path('dim_dfu')} (run cluster-generate first)")
    plan = plan_changes(lake.read("dim_dfu"), labels)
    result = {"target": "delta", "table": lake.path("dim_dfu"), "dry_run": dry_run, **count_changes(plan)}
    if result["not_in_dim_dfu"]:
        sample = plan.where("status = 'not_in_dim_dfu'").select("dfu_id").orderBy("dfu_id").limit(_SAMPLE)
        result["not_in_dim_dfu_sample"] = [r["dfu_id"] for r in sample.collect()]
    updated = 0
    if not dry_run and result["to_update"]:
        clause = f"WHEN MATCHED AND NOT (t.{TARGET_COLUMN} <=> s.label) THEN UPDATE SET t.{TARGET_COLUMN} = s.label"
        updated = lake.merge("dim_dfu", labels, "t.dfu_id = s.dfu_id", clause)["updated"]
    result["updated"] = updated
    return result


def _pg_parts(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


def update_postgres(
    dsn: str, table: str, key_column: str, rows: Iterable[tuple[str, str]], dry_run: bool = False
) -> dict[str, Any]:
    """Count, then (unless ``dry_run``) UPDATE ``table.cluster_assignment`` from the (key, label) ``rows``, in one
    transaction: rows are COPYed into a temporary table typed like the target, no row is inserted."""
    import psycopg
    from psycopg import sql

    schema, name = _pg_parts(table)
    tbl = sql.Identifier(*([schema] if schema else []), name)
    key, col = sql.Identifier(key_column), sql.Identifier(TARGET_COLUMN)
    tmp = sql.Identifier("dfu_cluster_labels_tmp")
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = coalesce(%s, current_schema()) AND table_name = %s",
            (schema, name),
        )
        columns = {r[0] for r in cur.fetchall()}
        if not columns:
            raise ValueError(f"PostgreSQL: table {table!r} does not exist (postgres.table)")
        missing = [c for c in (key_column, TARGET_COLUMN) if c not in columns]
        if missing:
            raise ValueError(f"PostgreSQL: table {table!r} has no column(s) {missing} (postgres.key_column)")
        if not dry_run:
            # Counts and the UPDATE must see the same rows: keep other writers out until commit (readers are fine).
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(tbl))
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {key} AS key, {col} AS label FROM {tbl} WITH NO DATA"
            ).format(tmp=tmp, key=key, col=col, tbl=tbl)
        )
        with cur.copy(sql.SQL("COPY {} (key, label) FROM STDIN").format(tmp)) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (key)").format(tmp))
        cur.execute(sql.SQL("ANALYZE {}").format(tmp))
        cur.execute(
            sql.SQL(
                "SELECT CASE WHEN t.{key} IS NULL THEN 'not_in_dim_dfu' WHEN s.key IS NULL THEN 'not_clustered' "
                "WHEN t.{col} IS NOT DISTINCT FROM s.label THEN 'unchanged' ELSE 'to_update' END AS status, "
                "CASE WHEN t.{key} IS NOT NULL THEN coalesce(s.label, t.{col}) END AS after, "
                "count(*), count(t.{col}) FROM {tbl} t FULL JOIN {tmp} s ON t.{key} = s.key GROUP BY 1, 2"
            ).format(key=key, col=col, tbl=tbl, tmp=tmp)
        )
        result = {"target": "postgres", "table": table, "dry_run": dry_run, **tally(cur.fetchall())}
        if result["not_in_dim_dfu"]:
            cur.execute(
                sql.SQL(
                    "SELECT s.key FROM {tmp} s WHERE NOT EXISTS (SELECT 1 FROM {tbl} t WHERE t.{key} = s.key) "
                    "ORDER BY s.key LIMIT %s"
                ).format(tmp=tmp, tbl=tbl, key=key),
                (_SAMPLE,),
            )
            result["not_in_dim_dfu_sample"] = [r[0] for r in cur.fetchall()]
        cur.execute(
            sql.SQL(
                "UPDATE {tbl} t SET {col} = s.label FROM {tmp} s "
                "WHERE t.{key} = s.key AND t.{col} IS DISTINCT FROM s.label"
            ).format(tbl=tbl, col=col, tmp=tmp, key=key)
        )
        if dry_run:
            conn.rollback()
            result["updated"] = 0
        else:
            result["updated"] = cur.rowcount
            conn.commit()
    return result


def resolve_dsn(ccfg: ClusteringConfig, dsn: str | None) -> str:
    """``--dsn`` else the environment variable named by ``postgres.dsn_env``; never the config file."""
    value = dsn or os.environ.get(ccfg.postgres.dsn_env)
    if not value:
        raise ValueError(f"--target postgres: pass --dsn or set the environment variable {ccfg.postgres.dsn_env}")
    return value


def run(
    spark: SparkSession,
    cfg: Config,
    ccfg: ClusteringConfig,
    input_dir: Path | None = None,
    dry_run: bool = False,
    target: str = "delta",
    dsn: str | None = None,
) -> dict[str, Any]:
    """Read the labels from ``input_dir`` (default ``ccfg.output_dir``) and update dim_dfu on ``target``."""
    labels = load_labels(spark, Path(input_dir or ccfg.output_dir))
    if target == "delta":
        return update_delta(spark, cfg, labels, dry_run)
    if target == "postgres":
        value = resolve_dsn(ccfg, dsn)
        rows = ((r["dfu_id"], r["label"]) for r in labels.toLocalIterator())
        return update_postgres(value, ccfg.postgres.table, ccfg.postgres.key_column, rows, dry_run)
    raise ValueError(f"unknown target {target!r}: delta or postgres")


def report_lines(result: dict[str, Any]) -> list[str]:
    """The printed report: counts, then the label distribution after the update."""
    mode = "dry run, nothing written" if result["dry_run"] else f"{result['updated']} rows updated"
    lines = [f"cluster-update ({result['target']}: {result['table']}): {mode}"]
    lines += [f"  {k:<26}{result[k]:>8}" for k in COUNT_KEYS]
    lines.append("  DFUs per label after the update:")
    lines += [f"    {label:<24}{n:>8}" for label, n in result["labels_after"].items()]
    lines.append(f"    {'(unassigned)':<24}{result['unassigned_after']:>8}")
    return lines


def warning_lines(result: dict[str, Any]) -> list[str]:
    if not result["not_in_dim_dfu"]:
        return []
    sample = ", ".join(result.get("not_in_dim_dfu_sample", []))
    return [
        f"WARNING: {result['not_in_dim_dfu']} labelled DFU(s) are not in dim_dfu and were not written "
        f"(cluster-update never inserts DFUs), e.g. {sample}"
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="clustering config (default: $DFU_CLUSTERING_CONFIG or conf/...)")
    p.add_argument("--input", type=Path, help="directory with cluster_assignments.csv and cluster_labels.csv")
    # `--dry-run=false` too: the DAG renders its form's checkbox into the flag.
    p.add_argument(
        "--dry-run",
        nargs="?",
        const="true",
        default="false",
        choices=("true", "false"),
        help="print the change counts, write nothing",
    )
    p.add_argument("--target", choices=("delta", "postgres"), default="delta")
    p.add_argument("--dsn", help="PostgreSQL connection string (default: the env var postgres.dsn_env names)")
    a = p.parse_args(argv)
    a.dry_run = a.dry_run == "true"
    ccfg = load_clustering_config(a.config)
    input_dir = Path(a.input or ccfg.output_dir)
    try:
        # Fail on a missing file or column before paying for a Spark session.
        _header(input_dir / ASSIGNMENTS_CSV, ASSIGNMENTS_COLUMNS)
        read_cluster_labels(input_dir / LABELS_CSV)
        if a.target == "postgres":
            resolve_dsn(ccfg, a.dsn)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"cluster-update: {e}")

    import psycopg

    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark, quiet_logs

    cfg = load_config()
    spark = build_spark(cfg, "dfu-update")
    quiet_logs(spark)
    try:
        result = run(spark, cfg, ccfg, input_dir, a.dry_run, a.target, a.dsn)
    except (ValueError, FileNotFoundError, psycopg.Error) as e:
        sys.exit(f"cluster-update: {e}")
    finally:
        spark.stop()
    for line in warning_lines(result):
        print(line, file=sys.stderr)
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
