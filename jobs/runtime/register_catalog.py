"""Register every MRS table and view in the ``mrs`` schema of the Spark catalog, and run SQL files against it.

``--sql`` prints the statements (``make sql`` feeds them to spark-sql as its init file); without it they
run in a session. Idempotent: a table that is registered already is left as it is, and a table no stage
has written yet is created empty from its schema.

Column comments (the descriptions in ``schemas/``) live in each table's Delta schema, which ``DESCRIBE`` shows
however the table is registered. A table is created with them; one written before a description existed or
changed gets it here, before the statements run: one ``ALTER TABLE ... ALTER COLUMN ... COMMENT`` per table
whose comments differ (a Delta metadata commit), nothing for a table already up to date. ``--comments`` does
only that (``make sql`` runs it before its shell).

``--run FILE`` then runs each query of a SQL file (``-- comment`` lines before a query describe it) and
prints its result, as a table or, with ``--markdown``, as the page ``docs/analyst_queries.md`` is made from.

    python -m jobs.runtime.register_catalog --sql
    python -m jobs.runtime.register_catalog --comments
    python -m jobs.runtime.register_catalog --run docs/analyst_queries.sql --markdown > docs/analyst_queries.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from jobs.lib.config import Config, load_config
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import CATALOG_SCHEMA, TABLES, Lakehouse, catalog_ddl, sql_string


def statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def comment_changes(current: StructType, wanted: StructType) -> dict[str, str]:
    """Column -> its comment in ``wanted``, for the columns of ``current`` whose comment differs."""
    have = {f.name: f.metadata.get("comment") for f in current.fields}
    return {
        f.name: f.metadata["comment"]
        for f in wanted.fields
        if f.name in have and f.metadata.get("comment") and have[f.name] != f.metadata["comment"]
    }


def update_comments(spark: SparkSession, cfg: Config) -> dict[str, int]:
    """Bring the columns of every existing table, and their comments, up to its schema's; how many comments changed,
    per table."""
    lake = Lakehouse(spark, cfg)
    changed = {}
    for t in TABLES.values():
        if not lake.exists(t.name):
            continue  # not written yet: registration creates it with its comments
        lake.add_new_columns(t.name)  # a CREATE declaring columns the table lacks would fail too
        current = spark.read.format("delta").load(lake.path(t.name)).schema
        todo = comment_changes(current, t.schema)
        if todo:
            cols = ", ".join(f"`{c}` COMMENT {sql_string(v)}" for c, v in todo.items())
            spark.sql(f"ALTER TABLE {lake.table_sql(t.name)} ALTER COLUMN {cols}")
            changed[t.name] = len(todo)
    return changed


def register(spark: SparkSession, cfg: Config, schema: str = CATALOG_SCHEMA) -> dict[str, int]:
    """Every table and view in ``schema`` of the session's catalog, column comments brought up to date first (a
    CREATE over a table whose comments differ would fail); returns the comments changed per table."""
    changed = update_comments(spark, cfg)
    for stmt in statements(catalog_ddl(cfg, schema)):
        spark.sql(stmt)
    return changed


def queries(path: Path) -> list[tuple[str, str]]:
    """(description, query) per statement of a SQL file; the description is its leading comment lines."""
    out = []
    for stmt in statements(path.read_text()):
        lines = stmt.splitlines()
        doc = [ln.removeprefix("--").strip() for ln in lines if ln.startswith("--")]
        body = "\n".join(ln for ln in lines if not ln.startswith("--"))
        out.append((" ".join(doc), body.strip()))
    return out


def markdown(spark: SparkSession, path: Path, limit: int = 20) -> str:
    """Each query of ``path`` with its description and result as Markdown."""
    parts = [
        "# Analyst queries\n",
        f"The queries in `{path.name}`, with their output on the demo data (`make demo`). Run them in `make sql`, "
        f"or all at once with `python -m jobs.runtime.register_catalog --run docs/{path.name}`; this page is made by "
        "the same command with `--markdown`.\n",
    ]
    for doc, query in queries(path):
        df = spark.sql(query)
        rows = df.limit(limit).collect()
        table = ["| " + " | ".join(df.columns) + " |", "|" + " --- |" * len(df.columns)]
        table += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
        parts += [f"## {doc}\n", f"```sql\n{query};\n```\n", "\n".join(table) + "\n"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    p.add_argument("--comments", action="store_true", help="only bring existing tables' column comments up to date")
    p.add_argument("--run", type=Path, help="a SQL file whose queries to run once the catalog is registered")
    p.add_argument("--markdown", action="store_true", help="with --run: print the queries and results as Markdown")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    ddl = catalog_ddl(cfg)
    if a.sql:
        print(ddl)
        return

    spark = build_spark(cfg, "register_catalog")
    quiet_logs(spark)
    if a.comments:
        changed = update_comments(spark, cfg)
        print(f"column comments updated: {changed}" if changed else "column comments up to date")
        spark.stop()
        return
    changed = register(spark, cfg)
    if a.run and a.markdown:
        print(markdown(spark, a.run))
    elif a.run:
        for doc, query in queries(a.run):
            print(f"-- {doc}")
            spark.sql(query).show(20, truncate=False)
    else:
        print(f"registered the tables and views of schema mrs: {len(statements(ddl)) - 1} statements")
        if changed:
            print(f"column comments updated: {changed}")
    spark.stop()


if __name__ == "__main__":
    main()
