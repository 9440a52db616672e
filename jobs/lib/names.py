"""Names shared by the DAG files and the jobs: plain constants, importable without Spark or the config."""

# The taxonomy (spec decision 11).
DETECTION_TYPES = (
    "Data Error",
    "Marketing Misattribution",
    "Competitor Stockout",
    "Social/Viral Event",
    "Operational/Store Issue",
)
IMPACT_VECTORS = ("baseline drift", "attribution error", "spend leakage", "operational disruption")

# Every task that writes a Delta table runs in this one-slot Airflow pool: the pipeline, the edit DAG and the
# rereview DAG share tables (MRFL, the hydrated ones), and Delta on a local disk must never see two writers.
WRITER_POOL = "mrs_lakehouse_writers"

# Updated by the pipeline's finalisation task; starts the rereview DAG.
FINALISED_ASSET = "mrs://lakehouse/minority_reports_finalised_log"
