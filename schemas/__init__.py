"""Table schemas: ``schemas.mrs`` (the anomaly pipeline) and ``schemas.dfu`` (DFU clustering) define every StructType."""
