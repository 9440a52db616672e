"""The one SparkSession builder every job and test uses."""

from __future__ import annotations

import os
import time

from pyspark.sql import SparkSession

from jobs.lib.config import Config


class DeltaUnavailableError(RuntimeError):
    pass


def build_spark(cfg: Config, app: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or reuse) the session with Delta and the project's Spark settings.

    The master is not set here: spark-submit (or the Airflow Spark connection) chooses it, and a plain
    ``python`` launch defaults to local. Jars are not set here either: the driver's classpath is fixed
    before Python runs, so they come from spark-defaults.conf (``make jars``) or the cluster's setup.
    """
    # Python-side timestamps (collect, pandas) must be UTC like the session, whatever the host says.
    os.environ["TZ"] = "UTC"
    time.tzset()
    builder = SparkSession.builder.appName(f"{cfg.spark.app_name}-{app}")
    for key, value in {**cfg.spark.conf, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        spark._jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
    except Exception as e:
        spark.stop()
        raise DeltaUnavailableError(
            "Delta Lake jars are not on the Spark classpath: run `make jars` (writes "
            ".cache/spark-conf/spark-defaults.conf and exports SPARK_CONF_DIR), or set "
            "spark.jars.packages=io.delta:delta-spark_4.2_2.13:4.4.0 on the cluster"
        ) from e
    return spark
