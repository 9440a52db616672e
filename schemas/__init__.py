"""Table schemas: ``schemas.mrs`` defines every table's StructType."""
