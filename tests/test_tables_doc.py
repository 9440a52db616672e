"""Every column is described in schemas/, and docs/tables.md is what those descriptions render to (no Spark)."""

import pytest
from pyspark.sql.types import ArrayType, DataType, MapType, StringType, StructType

from jobs.lib.tables import TABLES, VIEW_DESCRIPTIONS, views
from jobs.runtime import tables_doc
from schemas import dfu, mrs
from tests.conftest import make_config


def described(dtype: DataType, path: str) -> list[tuple[str, str | None]]:
    """(column path, comment) of every field of a type, nested struct fields included."""
    if isinstance(dtype, ArrayType):
        return described(dtype.elementType, path)
    if isinstance(dtype, MapType):
        return described(dtype.keyType, path) + described(dtype.valueType, path)
    if not isinstance(dtype, StructType):
        return []
    out = []
    for f in dtype.fields:
        out.append((f"{path}.{f.name}", f.metadata.get("comment")))
        out += described(f.dataType, f"{path}.{f.name}")
    return out


def test_every_column_of_every_table_has_a_one_line_description():
    columns = [c for t in TABLES.values() for c in described(t.schema, t.name)]
    assert len(columns) > 400
    missing = [name for name, comment in columns if not (isinstance(comment, str) and comment.strip())]
    assert not missing, f"columns without a description (metadata 'comment'): {missing}"
    # The catalog's SQL is split into statements on ';' (register_catalog, spark-sql's init file).
    bad = [name for name, comment in columns if ";" in comment or "\n" in comment]
    assert not bad, f"descriptions must be one line without ';': {bad}"


@pytest.mark.parametrize("schema", [mrs, dfu])
def test_a_column_without_a_description_is_refused_where_it_is_defined(schema):
    with pytest.raises(ValueError, match="column x: a one-line description is required"):
        schema._f("x", StringType(), False)  # the old signature: nullability where the description goes
    with pytest.raises(ValueError, match="column x"):
        schema._f("x", StringType(), " ")


def test_every_view_has_a_description(tmp_path):
    assert list(VIEW_DESCRIPTIONS) == list(views(make_config(tmp_path)))


def test_docs_tables_md_is_generated_from_the_schemas():
    assert tables_doc.OUTPUT.read_text() == tables_doc.render(), (
        "docs/tables.md is stale: run `make tables-doc` and commit it"
    )
