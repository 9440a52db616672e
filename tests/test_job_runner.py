"""The job runner: a job forked from it behaves as ``python -m`` would (its directory, environment, arguments,
output and exit code), starts without the project's modules, and stops when asked."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from jobs.runtime.job_runner import JobRunnerUnavailable, run_job

JOB = textwrap.dedent(
    """
    import os, sys, time
    print("project preloaded:", [m for m in sys.modules if m.split(".")[0] in ("jobs", "schemas")])
    print("pyspark preloaded:", "pyspark.sql.connect.session" in sys.modules)
    print("cwd:", os.getcwd(), "tz:", time.tzname[0], "var:", os.environ.get("MRS_TEST_VAR"), "argv:", sys.argv[1:])
    print("to stderr", file=sys.stderr)
    if "--sleep" in sys.argv:
        time.sleep(60)
    if "--fail" in sys.argv:
        raise RuntimeError("the job failed")
    sys.exit(int(sys.argv[-1]))
    """
)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("runner") / "jobs.sock")
    proc = subprocess.Popen([sys.executable, "-m", "jobs.runtime.job_runner", "--socket", path], stdout=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"Job runner ready")
    yield path
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert not os.path.exists(path)


@pytest.fixture
def job_dir(tmp_path):
    (tmp_path / "runner_probe.py").write_text(JOB)
    return str(tmp_path)


def test_a_forked_job_gets_its_directory_environment_arguments_output_and_exit_code(runner, job_dir):
    lines = []
    env = {**os.environ, "MRS_TEST_VAR": "x1", "TZ": "Asia/Tokyo"}
    code = run_job(runner, "runner_probe", ["--a", "3"], env, job_dir, lines.append)
    assert code == 3
    # Sorted: stderr is unbuffered and stdout is not, as with ``python -m`` writing to a pipe.
    assert sorted(lines) == [
        f"cwd: {job_dir} tz: JST var: x1 argv: ['--a', '3']",
        "project preloaded: []",
        "pyspark preloaded: True",
        "to stderr",
    ]


def test_a_failing_job_exits_1_with_its_traceback(runner, job_dir):
    lines = []
    assert run_job(runner, "runner_probe", ["--fail", "0"], dict(os.environ), job_dir, lines.append) == 1
    assert "RuntimeError: the job failed" in lines


def test_a_job_stops_when_its_task_is_killed(runner, job_dir):
    pids, result = [], {}

    def run():
        args = ["--sleep", "0"]
        result["code"] = run_job(runner, "runner_probe", args, dict(os.environ), job_dir, print, pids.append)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while not pids and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(pids[0], signal.SIGTERM)  # what the operator's on_kill does
    t.join(timeout=30)
    assert result["code"] == -signal.SIGTERM


def test_no_runner_is_a_clear_error_the_operator_falls_back_on(tmp_path):
    with pytest.raises(JobRunnerUnavailable, match="no job runner at"):
        run_job(str(tmp_path / "none.sock"), "runner_probe", [], {}, str(tmp_path), print)
