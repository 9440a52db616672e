"""DFU clustering API: ``GET /domains/dfu/clusters`` (the cluster summary) and ``GET /domains/dfu`` (DFUs by label).

``/domains/dfu/clusters`` returns ``{"clusters": [{cluster_assignment, dfu_count, avg_demand, cv_demand}, ...],
"total_dfus": N}`` (N = the DFUs of the clusters listed) from the same SQL text as the catalog view
``mrs.dfu_cluster_summary`` (jobs.dfu.summary), run over the Delta tables of the lakehouse, so both serve the same
numbers. Both endpoints filter with repeated ``?cluster_assignment=a&cluster_assignment=b`` (an unknown label
gives an empty list); ``/domains/dfu`` pages with ``limit`` (1..``MAX_LIMIT``) and ``offset``. ``GET /health``
says whether the tables are there (503 if not).

The data source is injected (``create_app(source)``): ``LakehouseSource`` wraps a SparkSession and a Lakehouse;
tests pass the session they already have.

    python -m jobs.dfu.api [--config C] [--host H] [--port P]
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.dfu.summary import run_summary
from jobs.lib.tables import Lakehouse

TABLES_READ = ("dim_dfu", "dfu_clustering_features")
DFU_COLUMNS = ("dfu_id", "item_id", "location_id", "cluster_assignment", "brand", "region", "abc_vol", "supergroup")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class SourceUnavailableError(RuntimeError):
    """A table the API reads does not exist yet."""


class DfuSource(Protocol):
    def clusters(self, cluster_assignments: list[str] | None) -> list[dict[str, Any]]: ...

    def dfus(self, cluster_assignments: list[str] | None, limit: int, offset: int) -> tuple[int, list[dict]]: ...

    def missing_tables(self) -> list[str]: ...


class LakehouseSource:
    """Reads the lakehouse's Delta tables with one SparkSession (built once, shared by requests)."""

    def __init__(self, spark: SparkSession, lakehouse: Lakehouse):
        self.spark = spark
        self.lake = lakehouse

    def missing_tables(self, tables: tuple[str, ...] = TABLES_READ) -> list[str]:
        # Asked afresh on every request: the service outlives jobs that may rebuild its tables.
        return [t for t in tables if not self.lake.exists(t, recheck=True)]

    def _check(self, tables: tuple[str, ...] = TABLES_READ) -> None:
        missing = self.missing_tables(tables)
        if missing:
            raise SourceUnavailableError(
                f"no Delta table yet for {missing} under {self.lake.root} (run cluster-generate and cluster-features)"
            )

    def ref(self, table: str) -> str:
        return "delta.`" + self.lake.path(table).replace("`", "``") + "`"

    def clusters(self, cluster_assignments: list[str] | None = None) -> list[dict[str, Any]]:
        self._check()
        return [r.asDict() for r in run_summary(self.spark, self.ref, cluster_assignments).collect()]

    def dfus(
        self, cluster_assignments: list[str] | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        self._check(("dim_dfu",))
        df = self.lake.read("dim_dfu").select(*DFU_COLUMNS)
        if cluster_assignments is not None:
            # isin binds values as literals in the plan: no SQL text is built from the request.
            df = df.where(F.col("cluster_assignment").isin(list(cluster_assignments)))
        total = df.count()
        page = df.orderBy("dfu_id").offset(offset).limit(limit).collect()
        return total, [r.asDict() for r in page]


class ClusterSummary(BaseModel):
    cluster_assignment: str
    dfu_count: int
    avg_demand: float | None
    cv_demand: float | None


class ClustersResponse(BaseModel):
    clusters: list[ClusterSummary]
    total_dfus: int


class Dfu(BaseModel):
    dfu_id: str
    item_id: str
    location_id: str
    cluster_assignment: str | None
    brand: str | None
    region: str | None
    abc_vol: str | None
    supergroup: str | None


class DfusResponse(BaseModel):
    dfus: list[Dfu]
    total: int
    limit: int
    offset: int


ClusterFilter = Annotated[
    list[str] | None, Query(description="keep these labels only (repeat the parameter for several)")
]


def create_app(source: DfuSource) -> FastAPI:
    """The FastAPI app over ``source``."""
    app = FastAPI(title="DFU clustering", description=__doc__.split("\n\n")[0])

    def _serve(fn, *args):
        try:
            return fn(*args)
        except SourceUnavailableError as e:
            raise HTTPException(status_code=503, detail=str(e)) from e

    # Plain ``def`` endpoints: FastAPI runs them in its thread pool, where blocking Spark calls belong.
    @app.get("/health")
    def health() -> dict[str, Any]:
        missing = source.missing_tables()
        if missing:
            raise HTTPException(status_code=503, detail={"status": "unavailable", "missing_tables": missing})
        return {"status": "ok"}

    @app.get("/domains/dfu/clusters", response_model=ClustersResponse)
    def clusters(cluster_assignment: ClusterFilter = None) -> dict[str, Any]:
        rows = _serve(source.clusters, cluster_assignment)
        return {"clusters": rows, "total_dfus": sum(r["dfu_count"] for r in rows)}

    @app.get("/domains/dfu", response_model=DfusResponse)
    def dfus(
        cluster_assignment: ClusterFilter = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        total, rows = _serve(source.dfus, cluster_assignment, limit, offset)
        return {"dfus": rows, "total": total, "limit": limit, "offset": offset}

    return app


def main(argv: list[str] | None = None) -> None:
    from jobs.dfu.config import load_clustering_config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="clustering config (default: $DFU_CLUSTERING_CONFIG or conf/...)")
    p.add_argument("--host", help="interface to listen on (default: api.host)")
    p.add_argument("--port", type=int, help="port (default: api.port)")
    a = p.parse_args(argv)
    ccfg = load_clustering_config(a.config)

    import uvicorn

    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark, quiet_logs

    cfg = load_config()
    spark = build_spark(cfg, "dfu-api")
    quiet_logs(spark)
    try:
        uvicorn.run(
            create_app(LakehouseSource(spark, Lakehouse(spark, cfg))),
            host=a.host or ccfg.api.host,
            port=a.port or ccfg.api.port,
        )
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
