"""The Airflow operator every DAG runs a Spark job with.

One task per stage either way; the Airflow connection (``conn_id``) decides how the job reaches Spark:

- conn type ``spark``: ``spark-submit`` to the connection's master (local, standalone, YARN, Kubernetes);
- conn type ``spark_connect``: the job runs as a Python process that is a Spark Connect client of a warm,
  long-running session (``make spark-server`` locally), so a stage skips the JVM and session start-up. When the
  connection's extra names a ``job_runner`` socket (``jobs/runtime/job_runner.py``, started beside the local server),
  that process is forked from a Python with the client's libraries already imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.sdk import BaseHook

from jobs.runtime.job_runner import JobRunnerUnavailable, run_job

REPO = Path(__file__).resolve().parents[2]


class SparkJobFailed(RuntimeError):
    pass


class SparkJobOperator(SparkSubmitOperator):
    """``SparkSubmitOperator``, or the same job as a Spark Connect client when the connection is one."""

    ui_color = "#e4f0e8"

    def execute(self, context):
        conn = BaseHook.get_connection(self._conn_id)
        if conn.conn_type != SparkConnectHook.conn_type:
            return super().execute(context)
        url = SparkConnectHook(self._conn_id).get_connection_url()
        # As a module from the repo root, like the package it is (a script's folder would shadow the stdlib).
        module = ".".join(Path(self.application).resolve().relative_to(REPO).with_suffix("").parts)
        args = [str(a) for a in self.application_args or []]
        env = {**os.environ, **(self.env_vars or {}), "SPARK_REMOTE": url}
        runner = conn.extra_dejson.get("job_runner")
        if runner:
            try:
                code = self._run_forked(runner, module, args, env)
            except JobRunnerUnavailable as e:
                self.log.warning("%s; starting %s as a new process", e, module)
            else:
                if code:
                    raise SparkJobFailed(f"{module} (Spark Connect {url}, job runner {runner}) exited with {code}")
                return
        self._subprocess = SubprocessHook()
        result = self._subprocess.run_command([sys.executable, "-m", module, *args], env=env, cwd=str(REPO))
        if result.exit_code:
            raise SparkJobFailed(f"{module} (Spark Connect {url}) exited with {result.exit_code}: {result.output}")

    def _run_forked(self, runner: str, module: str, args: list[str], env: dict[str, str]) -> int:
        self.log.info("Running %s %s through the job runner at %s", module, " ".join(args), runner)

        def started(pid: int) -> None:
            self._job_pid = pid

        return run_job(runner, module, args, env, str(REPO), self.log.info, started)

    def on_kill(self) -> None:
        if getattr(self, "_job_pid", None) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._job_pid, signal.SIGTERM)
        elif getattr(self, "_subprocess", None) is not None:
            self._subprocess.send_sigterm()
        else:
            super().on_kill()
