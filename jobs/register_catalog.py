"""Register every MRS table in the ``mrs`` schema of the Spark catalog.

``--sql`` prints the statements (``make sql`` feeds them to spark-sql as its init file); without it they
run in a session. Idempotent: a table that is registered already is left as it is, and a table no stage
has written yet is created empty from its schema.

    python -m jobs.register_catalog --sql
"""

from __future__ import annotations

import argparse

from jobs.lib.config import load_config
from jobs.lib.spark import build_spark
from jobs.lib.tables import catalog_ddl


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    ddl = catalog_ddl(cfg)
    if a.sql:
        print(ddl)
        return

    spark = build_spark(cfg, "register_catalog")
    for stmt in filter(None, (s.strip() for s in ddl.split(";"))):
        spark.sql(stmt)
    print(f"registered {len(ddl.split(';')) - 2} tables in schema mrs")
    spark.stop()


if __name__ == "__main__":
    main()
