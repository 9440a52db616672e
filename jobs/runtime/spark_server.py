"""A warm Spark session that the jobs reach through Spark Connect (``make spark-server``).

Every stage job is a short Python process; through this server it skips the JVM start, the session start and
the cold first queries (about 10 s a stage here, most of a tick's cost). It is a classic session (the one
session builder, the project's Delta settings) with Spark Connect's plugin, so jobs run on exactly the engine
they would build themselves. Point the Airflow connection ``mrs_spark`` at it with conn type ``spark_connect``,
or set ``SPARK_REMOTE=sc://127.0.0.1:15002`` for a job run by hand. On a cluster, use its own Connect server.

Beside it runs the job runner (``jobs/runtime/job_runner.py``), a warm Python the Airflow tasks fork their jobs from, so
that a job skips its imports too; the connection's extra names its socket.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jobs.lib.config import load_config
from jobs.runtime.job_runner import default_socket

CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"


def server_conf(
    host: str, port: int, master: str | None = None, driver_memory: str | None = None, java_options: str = ""
) -> dict[str, str]:
    """What turns a classic session into a Spark Connect server on ``host:port`` (``java_options``: the
    config's own driver JVM options, kept)."""
    conf = {
        "spark.plugins": CONNECT_PLUGIN,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
    }
    if master:
        conf["spark.master"] = master
    if driver_memory:
        conf["spark.driver.memory"] = driver_memory
        # Off-heap is bounded too, so the driver's whole footprint stays near the heap plus a fixed margin:
        # direct buffers (Arrow batches to Python workers, gRPC results) get at most 512 MiB.
        conf["spark.driver.extraJavaOptions"] = f"{java_options} -XX:MaxDirectMemorySize=512m".strip()
    return conf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(config: str | None = None, port: int | None = None, timeout: float = 180) -> Iterator[str]:
    """Run a server in a child process for the block (the demo, the benchmark); yields its ``sc://`` URL."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "jobs.runtime.spark_server",
        "--port",
        str(port),
        *(["--config", config] if config else []),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "SPARK_REMOTE": ""})
    try:
        deadline = time.monotonic() + timeout
        for line in proc.stdout:
            if line.startswith("Spark Connect server ready"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Spark Connect server did not start within {timeout:.0f} s")
        else:
            raise RuntimeError(f"Spark Connect server exited with {proc.wait()} before it was ready")
        yield f"sc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def airflow_connection(url: str, job_runner: bool = True) -> str:
    """The Airflow connection (as ``AIRFLOW_CONN_MRS_SPARK`` JSON) that runs the DAGs' jobs against ``url``, a
    server of this module's: forked from its job runner, or (``job_runner=False``) each a new process."""
    host, _, port = url.removeprefix("sc://").rstrip("/").partition(":")
    port = int(port or 15002)
    extra = {"job_runner": default_socket(port)} if job_runner else {}
    return json.dumps({"conn_type": "spark_connect", "host": host, "port": port, "extra": extra})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=15002, help="Spark Connect port (default 15002)")
    p.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    p.add_argument("--driver-memory", default="2560m", help="driver heap (default 2560m: under 4 GiB in all)")
    p.add_argument("--job-runner", help="the job runner's socket (default: per port, in the temp dir; '' for none)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    os.environ.pop("SPARK_REMOTE", None)  # this process is the server, not a client of one
    path = default_socket(a.port) if a.job_runner is None else a.job_runner
    if path and os.path.exists(path):
        os.unlink(path)  # left by a server that was killed: ready means the new runner listens
    # A process of its own (fork and exec), not a fork of this one: this one hosts the JVM's gateway.
    runner = subprocess.Popen([sys.executable, "-m", "jobs.runtime.job_runner", "--socket", path]) if path else None
    # glibc gives each of the JVM's many threads its own 64 MiB malloc arena; two keep native memory small.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    from jobs.lib.spark import build_spark

    own = cfg.spark.conf.get("spark.driver.extraJavaOptions", "")
    spark = build_spark(cfg, "spark-server", server_conf(a.host, a.port, a.master, a.driver_memory, own))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if runner is not None:
        _wait_for(path, runner)
    print(f"Spark Connect server ready at sc://{a.host}:{a.port} (Spark UI {spark.sparkContext.uiWebUrl})", flush=True)
    stop.wait()
    if runner is not None:
        runner.terminate()
        runner.wait(timeout=30)
    spark.stop()


def _wait_for(path: str, runner: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if runner.poll() is not None:
            raise RuntimeError(f"the job runner exited with {runner.returncode} before it listened on {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the job runner did not listen on {path} within {timeout:.0f} s")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
