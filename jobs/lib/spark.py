"""The one SparkSession builder every job and test uses.

Two ways to reach Spark, chosen by configuration, never by code:

- **classic**: the job's own driver (``spark-submit`` or plain ``python``: local by default, or the master the
  Airflow Spark connection names). Every job pays for a JVM and a cold session (~10 s here).
- **Spark Connect**: when ``SPARK_REMOTE`` is set (``sc://host:port``), the job is a thin client of a warm,
  long-running Spark session (``jobs/runtime/spark_server.py`` locally, or a cluster's Connect server). Each stage is
  still its own Spark job and process; it only skips the start-up.
"""

from __future__ import annotations

import os
import time
import warnings

from pyspark.sql import SparkSession

from jobs.lib.config import Config

REMOTE_ENV = "SPARK_REMOTE"


class DeltaUnavailableError(RuntimeError):
    pass


def remote_url() -> str | None:
    """The Spark Connect server this process should use, or None for a classic session."""
    return os.environ.get(REMOTE_ENV) or None


def build_spark(cfg: Config, app: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or reuse) the session with Delta and the project's Spark settings.

    The master is not set here: spark-submit (or the Airflow Spark connection) chooses it, and a plain
    ``python`` launch defaults to local. Jars are not set here either: the driver's classpath is fixed
    before Python runs, so they come from spark-defaults.conf (``make jars``) or the cluster's setup.
    """
    # Python-side timestamps (collect, pandas) must be UTC like the session, whatever the host says.
    os.environ["TZ"] = "UTC"
    time.tzset()
    conf = {**cfg.spark.conf, **(extra_conf or {})}
    if remote_url():
        return _connect(remote_url(), app, conf)
    builder = SparkSession.builder.appName(f"{cfg.spark.app_name}-{app}")
    for key, value in conf.items():
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


def _connect(url: str, app: str, conf: dict[str, str]) -> SparkSession:
    """A Spark Connect session with the project's session-level settings; the server owns the static ones
    (extensions, catalog, UI), set when it started."""
    try:
        # One config request for all settings (not two per key): the server skips the static ones, which it
        # fixed when it started, with a warning each.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spark = SparkSession.builder.remote(url).appName(app).config(map=conf).getOrCreate()
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception as e:
        raise ConnectionError(
            f"no Spark Connect server answers at {url} ({type(e).__name__}): start one with "
            "`make spark-server`, or unset SPARK_REMOTE to run a classic Spark session"
        ) from e
    if "DeltaSparkSessionExtension" not in extensions:
        spark.stop()
        raise DeltaUnavailableError(f"the Spark Connect server at {url} has no Delta extension (spark.sql.extensions)")
    return spark


def quiet_logs(spark: SparkSession) -> None:
    """Errors only on the console, for commands that print reports (a Connect server keeps its own log level)."""
    if not remote_url():
        spark.sparkContext.setLogLevel("ERROR")
