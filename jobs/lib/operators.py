"""The Airflow operator every DAG runs a Spark job with.

One task per stage either way; the Airflow connection (``conn_id``) decides how the job reaches Spark:

- conn type ``spark``: ``spark-submit`` to the connection's master (local, standalone, YARN, Kubernetes);
- conn type ``spark_connect``: the job runs as a Python process that is a Spark Connect client of a warm,
  long-running session (``make spark-server`` locally), so a stage skips the JVM and session start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.sdk import BaseHook

REPO = Path(__file__).resolve().parents[2]


class SparkJobFailed(RuntimeError):
    pass


class SparkJobOperator(SparkSubmitOperator):
    """``SparkSubmitOperator``, or the same job as a Spark Connect client when the connection is one."""

    ui_color = "#e4f0e8"

    def execute(self, context):
        if BaseHook.get_connection(self._conn_id).conn_type != SparkConnectHook.conn_type:
            return super().execute(context)
        url = SparkConnectHook(self._conn_id).get_connection_url()
        # As a module from the repo root, like the package it is (a script's folder would shadow the stdlib).
        module = ".".join(Path(self.application).resolve().relative_to(REPO).with_suffix("").parts)
        command = [sys.executable, "-m", module, *(str(a) for a in self.application_args or [])]
        env = {**os.environ, **(self.env_vars or {}), "SPARK_REMOTE": url}
        self._subprocess = SubprocessHook()
        result = self._subprocess.run_command(command, env=env, cwd=str(REPO))
        if result.exit_code:
            raise SparkJobFailed(f"{module} (Spark Connect {url}) exited with {result.exit_code}: {result.output}")

    def on_kill(self) -> None:
        if getattr(self, "_subprocess", None) is not None:
            self._subprocess.send_sigterm()
        else:
            super().on_kill()
