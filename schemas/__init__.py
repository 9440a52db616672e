"""Table schemas: ``schemas.mrs`` (anomaly pipeline) and ``schemas.dfu`` (DFU clustering), one StructType each."""
