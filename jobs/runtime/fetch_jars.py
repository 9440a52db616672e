"""Fetch Delta Lake's JVM jars from Maven Central once, and point Spark at them.

Resolves ``io.delta:delta-spark_<spark>_2.13:<delta>`` with the Ivy that ships inside pyspark, keeps the
jars Spark does not already bundle (so nothing shadows Spark's own, newer Jackson, Parquet or Hadoop), and
writes ``spark-defaults.conf`` into the Spark conf dir with those jars on the driver and executor classpath.
Every ``spark-submit`` and test session then starts without resolving anything.

    python -m jobs.runtime.fetch_jars --dest .cache/jars --conf-dir .cache/spark-conf
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark

DELTA_ARTIFACT = ("io.delta", "delta-spark_4.2_2.13", "4.4.0")


def _artifact(jar_name: str, with_org: bool) -> str:
    """``org.apache.parquet_parquet-column-1.16.0.jar`` (Ivy, with_org) or ``parquet-column-1.17.0.jar``
    (Spark's own) -> ``parquet-column``."""
    base = jar_name.split("_", 1)[1] if with_org else jar_name
    return re.sub(r"-\d[\w.]*(-\d+)?\.jar$", "", base)


def fetch(dest: Path, conf_dir: Path) -> list[Path]:
    spark_jars = Path(pyspark.__file__).parent / "jars"
    ivy = next(spark_jars.glob("ivy-*.jar"))
    staging = dest.parent / (dest.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        "java",
        "-jar",
        str(ivy),
        "-dependency",
        *DELTA_ARTIFACT,
        "-confs",
        "default",
        "-types",
        "jar",
        "-m2compatible",
        "-cache",
        str(dest.parent / "ivy"),
        "-retrieve",
        str(staging / "[organisation]_[artifact]-[revision](-[classifier]).[ext]"),
    ]
    print("resolving", ":".join(DELTA_ARTIFACT), "from Maven Central ...", flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"could not resolve {':'.join(DELTA_ARTIFACT)}:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    bundled = {_artifact(p.name, with_org=False) for p in spark_jars.glob("*.jar")}
    keep = sorted(p for p in staging.glob("*.jar") if _artifact(p.name, with_org=True) not in bundled)
    if not any(p.name.startswith("io.delta_delta-spark") for p in keep):
        sys.exit(f"resolution finished but no delta-spark jar was retrieved into {staging}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for p in keep:
        shutil.copy2(p, dest / p.name)
    shutil.rmtree(staging, ignore_errors=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    classpath = f"{dest.resolve()}/*"
    (conf_dir / "spark-defaults.conf").write_text(
        "# Written by `make jars` (jobs/runtime/fetch_jars.py): Delta jars cached from Maven Central.\n"
        f"spark.driver.extraClassPath   {classpath}\n"
        f"spark.executor.extraClassPath {classpath}\n"
    )
    # Spark's INFO chatter would bury each task's own log lines in Airflow. A Spark Connect server logs every
    # error it returns with its stack trace: the client's (the Airflow task's) log has it already, and most are
    # expected (a job asking for a table that only another DAG creates).
    (conf_dir / "log4j2.properties").write_text(
        "rootLogger.level = warn\nrootLogger.appenderRef.stdout.ref = console\n"
        "appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex\n"
        "logger.delta.name = org.apache.spark.sql.delta\nlogger.delta.level = warn\n"
        "logger.connect.name = org.apache.spark.sql.connect.utils.ErrorUtils\nlogger.connect.level = off\n"
    )
    (dest / ".complete").write_text("\n".join(p.name for p in keep) + "\n")
    print(f"cached {len(keep)} jars in {dest}; classpath written to {conf_dir / 'spark-defaults.conf'}")
    return keep


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dest", type=Path, default=Path(".cache/jars"))
    p.add_argument("--conf-dir", type=Path, default=Path(".cache/spark-conf"))
    a = p.parse_args(argv)
    fetch(a.dest, a.conf_dir)


if __name__ == "__main__":
    main()
