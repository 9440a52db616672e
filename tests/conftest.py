"""One Spark session for the whole test run, small generated data, and a config pointing at tmp dirs."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPARK_CONF_DIR", str(REPO / ".cache" / "spark-conf"))
os.environ["TZ"] = "UTC"
# Spark's Python workers must be this interpreter (pandas, numpy), however pytest was started.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
# py4j logs its connection teardown at interpreter exit, after pytest has closed the captured streams.
logging.getLogger("py4j").setLevel(logging.WARNING)

# Small but complete: 4 stores x 3 SKUs, 12 days, every anomaly type after the 7-day warm-up.
SMALL = {
    "generator.seed": 11,
    "generator.days": 12,
    "generator.retailers": 2,
    "generator.regions": 2,
    "generator.stores_per_retailer": 2,
    "generator.skus": 3,
    "generator.categories": 2,
    "generator.first_anomaly_day": 8,
    "generator.bad_rows_per_file": 6,
    "generator.missing_input_hours": ["2025-08-13T03:00:00Z"],
    "generator.anomalies": {
        "social_viral": 1,
        "competitor_stockout": 1,
        "promo_with_campaign": 1,
        "store_incident": 1,
        "feed_duplication": 1,
        "unit_glitch": 1,
    },
}


# On the tests' small data, compiling a Java class for each new query plan costs more than running the operators
# one by one (a warm pipeline pass over the small data: 70.8 s with whole-stage codegen, 49.8 s without). Every
# test session, job process and Spark Connect server of the suite runs so; production keeps Spark's default.
# (Expression codegen stays: without it, 48.2 s, but Spark cannot decode catalog.listTables rows.)
SMALL_DATA_SPARK_CONF = {"spark.sql.codegen.wholeStage": "false"}


def make_config(root: Path, **extra):
    """Write a config file for the small data set under ``root`` (so subprocesses can use it) and load it."""
    from jobs.lib.config import derive_config, load_config

    spark_conf = {**(extra.pop("spark.conf", None) or load_config().spark.conf), **SMALL_DATA_SPARK_CONF}
    overrides = {
        "spark.conf": spark_conf,
        **SMALL,
        "paths.landing": str(root / "landing"),
        "paths.lakehouse": str(root / "lakehouse"),
        "paths.metastore": str(root / "metastore"),
        "paths.artifacts": str(root / "artifacts"),
        **extra,
    }
    return derive_config(root, overrides)


# DFU clustering on a small generated set: 40 items x 3 locations = 120 DFUs, 36 months.
SMALL_DFU = {"generator": {"items": 40, "locations": 3}}


def make_clustering_config(root: Path, **sections):
    """Write a clustering config (conf/clustering_config.yaml, small generator, files and MLflow under ``root``)
    and load it. ``sections`` override whole keys of the top level, e.g. ``clustering={...}`` merges into it."""
    import yaml

    from jobs.dfu.config import DEFAULT_CLUSTERING_CONFIG, load_clustering_config

    raw = yaml.safe_load(DEFAULT_CLUSTERING_CONFIG.read_text())
    raw["output_dir"] = str(root / "clustering")
    raw["mlflow"] = {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "artifact_location": str(root / "mlflow-artifacts"),
        "experiment": "dfu_clustering",
    }
    for key, value in {**SMALL_DFU, **sections}.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    root.mkdir(parents=True, exist_ok=True)
    path = root / "clustering_config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_clustering_config(path)


@pytest.fixture(scope="session")
def dfu_cfg(tmp_path_factory):
    """The session's clustering config (small generator); its tables live in ``small_cfg``'s lakehouse."""
    return make_clustering_config(tmp_path_factory.mktemp("dfu"))


@pytest.fixture(scope="session")
def small_cfg(tmp_path_factory):
    return make_config(tmp_path_factory.mktemp("mrs"))


@pytest.fixture(scope="session")
def spark(small_cfg):
    from jobs.lib.spark import build_spark
    from jobs.runtime.spark_server import free_port, server_conf

    session = build_spark(
        small_cfg,
        "tests",
        {
            # The session is also a Spark Connect server: the Airflow end-to-end tests run their jobs in it warm.
            **server_conf("127.0.0.1", free_port()),
            "spark.master": "local[2]",
            # The default 1 GiB heap ran out building a broadcast late in a full run (the suite's many runs).
            "spark.driver.memory": "2g",
            # Throughput over pause times for the suite's one long-lived JVM: a fresh-lake pipeline pass took
            # ~10 % less with the parallel collector than with G1 (75.1 against 82.9 s, 4 warm passes each).
            "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.catalogImplementation": "in-memory",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect_url(spark):
    """The test session's own Spark Connect endpoint, with a job runner beside it (as ``spark_server`` starts)."""
    import subprocess

    from jobs.runtime.job_runner import default_socket

    port = int(spark.conf.get("spark.connect.grpc.binding.port"))
    runner = subprocess.Popen(
        [sys.executable, "-m", "jobs.runtime.job_runner", "--socket", default_socket(port)], stdout=subprocess.PIPE
    )
    assert runner.stdout.readline().startswith(b"Job runner ready")
    yield f"sc://127.0.0.1:{port}"
    runner.terminate()
    runner.wait(timeout=30)


class SmtpSink:
    """What the loopback SMTP server received: (envelope recipients, parsed message) per mail."""

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._received: list[tuple[list[str], object]] = []
        self.host = "127.0.0.1"
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        from email import message_from_bytes
        from email.policy import default

        msg = message_from_bytes(envelope.content, policy=default)
        with self._lock:
            self._received.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def messages(self) -> list[tuple[list[str], object]]:
        with self._lock:
            return list(self._received)

    def clear(self) -> list[tuple[list[str], object]]:
        """Empty the mailbox; returns what it held."""
        with self._lock:
            out, self._received = self._received, []
            return out


@pytest.fixture(scope="session")
def smtp_server():
    """A local SMTP server on 127.0.0.1 for the whole session; MRS_SMTP_HOST/PORT point at it meanwhile, so
    pipeline code run in-process sends its mail here. ``smtp_server.messages()`` / ``.clear()`` read it."""
    from aiosmtpd.controller import Controller

    from jobs.runtime.mailbox import free_port

    sink = SmtpSink()
    sink.port = free_port()
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    saved = {k: os.environ.get(k) for k in ("MRS_SMTP_HOST", "MRS_SMTP_PORT")}
    os.environ["MRS_SMTP_HOST"], os.environ["MRS_SMTP_PORT"] = sink.host, str(sink.port)
    yield sink
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    controller.stop()
