"""Write ``docs/tables.md``, the table reference, from the schemas: every table of the registry with its
description, natural key and partitioning, and each column's type, nullability and description (the same text
Delta and ``DESCRIBE mrs.<table>`` show as its comment); then the catalog's views.

    python -m jobs.runtime.tables_doc          # what `make tables-doc` runs; tests/test_tables_doc.py checks it
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pyspark.sql.types import StructType

from jobs.lib.config import REPO_ROOT
from jobs.lib.tables import TABLES, VIEW_DESCRIPTIONS, Table

OUTPUT = REPO_ROOT / "docs" / "tables.md"


def cell(text: str) -> str:
    """Text for a Markdown table cell: pipes would split the cell, and <word> would render as an HTML tag."""
    return re.sub(r"([|<>*])", r"\\\1", text)


def columns(schema: StructType, prefix: str = "") -> list[str]:
    """One table row per column, a nested struct's fields after it as ``parent.child``."""
    rows = []
    for f in schema.fields:
        kind = f"`{f.dataType.simpleString()}`"
        nullable = "yes" if f.nullable else "no"
        rows.append(f"| `{prefix}{f.name}` | {kind} | {nullable} | {cell(f.metadata.get('comment', ''))} |")
        if isinstance(f.dataType, StructType):
            rows += columns(f.dataType, f"{prefix}{f.name}.")
    return rows


def section(t: Table) -> str:
    key = ", ".join(f"`{k}`" for k in t.keys)
    part = f"partitioned by {', '.join(f'`{p}`' for p in t.partition_by)}" if t.partition_by else "not partitioned"
    return "\n".join(
        [
            f"## {t.name}",
            "",
            f"{cell(t.description)}." if t.description else "",
            "",
            f"Natural key: {key}; {part}.",
            "",
            "| column | type | nullable | description |",
            "| --- | --- | --- | --- |",
            *columns(t.schema),
            "",
        ]
    )


def render() -> str:
    index = [f"| [{t.name}](#{t.name}) | {cell(t.description)} |" for t in TABLES.values()]
    views = [f"| `{name}` | {cell(text)} |" for name, text in VIEW_DESCRIPTIONS.items()]
    head = [
        "# Tables",
        "",
        "Generated from `schemas/` by `make tables-doc` (`jobs/runtime/tables_doc.py`): edit the descriptions there, "
        "not here; a test fails when this page is stale. Each column's description is also its comment in Delta and "
        "Spark SQL (`DESCRIBE mrs.<table>` after `make sql`). Tables are in the registry's order "
        "(`jobs/lib/tables.py`).",
        "",
        "| table | one line |",
        "| --- | --- |",
        *index,
        "",
        "Views (registered with the tables in schema `mrs`):",
        "",
        "| view | one line |",
        "| --- | --- |",
        *views,
        "",
    ]
    return "\n".join(head + [section(t) for t in TABLES.values()]).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, default=OUTPUT)
    a = p.parse_args(argv)
    a.output.write_text(render())
    print(f"wrote {a.output}: {len(TABLES)} tables, {len(VIEW_DESCRIPTIONS)} views")


if __name__ == "__main__":
    main()
