"""The demo's narrative (jobs/quality/demo.py): step lines, the pipeline run's progress read from Airflow's own
``[DAG TEST]`` lines, and what a failed step prints. No Spark and no Airflow: the commands are tiny Pythons."""

import io
import shlex
import sys

import pytest

from jobs.quality import demo
from jobs.quality.demo import (
    Progress,
    Story,
    TaskEvent,
    abbrev,
    failure_report,
    fmt_elapsed,
    step_line,
    task_event,
    task_ids,
)

# Lines as `airflow dags test` (Airflow 3.3) prints them.
STARTING = (
    "2026-12-07T05:22:24.173788Z [info     ] [DAG TEST] starting task_id=ingest map_index=-1 "
    "[airflow.sdk.definitions.dag] loc=dag.py:1501"
)
RUNNING = (
    "2026-12-07T05:22:24.174408Z [info     ] [DAG TEST] running task <TaskInstance: mrs_pipeline.ingest "
    "manual__2026-12-07T05:22:09.113711+00:00 [TaskInstanceState.SCHEDULED] ti_id=01a24ef3> "
    "[airflow.sdk.definitions.dag] loc=dag.py:1504"
)
ENDED = (
    "2026-12-07T05:22:24.291202Z [info     ] [DAG TEST] end task task_id=ingest map_index=-1 "
    "[airflow.sdk.definitions.dag] loc=dag.py:1563"
)
SKIPPING = (
    "2026-12-07T05:22:23.992433Z [info     ] Skipping tasks [('reset_run_id', -1), ('other', 2)] "
    "[airflow.task.operators.airflow.providers.standard.decorators.branch_python._BranchPythonDecoratedOperator] "
    "loc=skipmixin.py:163"
)
PIPELINE = [
    "reset_requested",
    "reset_run_id",
    "ingest",
    "detect_anomalies",
    "cluster_minority_report",
    "propose_cause_for_minority",
    "build_minority_report_cohorts",
    "build_minority_reports_finalised_log_from_edits",
    "hydrate_minority_reports",
    "render_event_charts",
    "build_protection_feed",
    "check_pipeline_health",
    "send_alerts",
]


def test_elapsed_times_read_as_seconds_minutes_or_hours():
    assert [fmt_elapsed(s) for s in (0, 4.23, 59.94, 59.96, 65, 3599, 3725)] == [
        "0.0s",
        "4.2s",
        "59.9s",
        "1m00s",
        "1m05s",
        "59m59s",
        "1h02m",
    ]


def test_a_step_line_ends_with_its_time_aligned():
    assert step_line("generate data", 3.14, width=30) == "generate data ........... 3.1s"
    assert step_line("a label longer than the width", 75, width=30) == "a label longer than the width .. 1m15s"


def test_task_events_come_from_airflows_dag_test_lines():
    assert task_event(STARTING) == TaskEvent("start", ("ingest",))
    assert task_event(ENDED) == TaskEvent("end", ("ingest",))
    assert task_event(SKIPPING) == TaskEvent("skip", ("reset_run_id", "other"))
    assert task_event(RUNNING) is None
    assert task_event("hello from a task") is None


def test_task_ids_skip_log_lines_among_them():
    lines = ["2026-12-07T05:22:07Z [warning  ] Could not import graphviz. [py.warnings]", "ingest\n", "send_alerts"]
    assert task_ids(lines) == ["ingest", "send_alerts"]


def test_the_pipeline_run_reports_progress_three_times():
    """The demo's run: the branch skips the reset, then every stage in order."""
    p = Progress("mrs_pipeline", total=len(PIPELINE))
    events = [TaskEvent("start", ("reset_requested",)), TaskEvent("skip", ("reset_run_id",))]
    events.append(TaskEvent("end", ("reset_requested",)))
    for task in PIPELINE[2:]:
        events += [TaskEvent("start", (task,)), TaskEvent("end", (task,))]
    lines = [line for i, e in enumerate(events) if (line := p.feed(e, 60.0 * i))]
    assert lines == [
        "  mrs_pipeline: 4/13 tasks done, running cluster_minority_report ......................... 7m00s",
        "  mrs_pipeline: 8/13 tasks done, running hydrate_minority_reports ....................... 15m00s",
        "  mrs_pipeline: 12/13 tasks done, running send_alerts ................................... 23m00s",
    ]
    assert len(p.finished) == 13


def test_a_retried_task_is_reported_and_counts_once():
    p = Progress("mrs_rereview", total=2)
    assert p.feed(TaskEvent("start", ("rereview",)), 1) is None
    assert p.feed(TaskEvent("end", ("rereview",)), 2) is None
    assert p.feed(TaskEvent("start", ("rereview",)), 63) == step_line(
        "  mrs_rereview: 0/2 tasks done, running rereview (retry)", 63
    )
    assert p.feed(TaskEvent("end", ("rereview",)), 64) is None
    assert p.finished == {"rereview"}


def test_ids_are_shortened_for_the_story():
    assert abbrev("MR-f5156515594cf73ae5f0d04a4c575597865aba368bb1822752b4922d56d63c64") == "MR-f5156515…"
    assert abbrev("ME-fa3b4dc2d") == "ME-fa3b4dc2d"


def test_a_failure_report_names_the_step_and_the_log():
    assert failure_report("ingest", demo.Path("/x/demo.log"), ["a\n", "b\n"], "`airflow` exited with code 1") == (
        "--- last 2 lines of /x/demo.log ---\n"
        "a\n"
        "b\n"
        "--- end of /x/demo.log ---\n"
        "demo: step 'ingest' failed: `airflow` exited with code 1"
    )


class Clock:
    """time.monotonic for the demo module: each call a second later."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


@pytest.fixture
def story(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "time", Clock())
    return Story(tmp_path / "demo" / "demo.log", verbose=False, out=io.StringIO(), err=io.StringIO())


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_a_step_prints_one_line_and_its_command_writes_the_log(story):
    with story.step("say hello") as s:
        story.run(*py("import sys; print('hello'); print('oops', file=sys.stderr)"))
        s.detail = ": said"
    assert story.out.getvalue() == step_line("say hello: said", 1.0) + "\n"
    log = story.log_path.read_text()
    assert "=== say hello\n$ " in log
    assert log.endswith("hello\noops\n")


def test_kept_stdout_is_returned_and_stderr_logged(story):
    with story.step("score"):
        code = "import sys; print('recall 100%'); print('a warning', file=sys.stderr)"
        figures = story.run(*py(code), keep_stdout=True)
    assert figures == ["recall 100%"]
    assert story.out.getvalue().count("\n") == 1
    log = story.log_path.read_text()
    assert "recall 100%\n" in log and "a warning\n" in log


def test_progress_lines_break_the_steps_line_and_it_ends_whole(story):
    with story.step("mrs_pipeline") as s:
        s.note("  1/2 tasks done")
    assert story.out.getvalue() == "mrs_pipeline\n  1/2 tasks done\n" + step_line("mrs_pipeline", 1.0) + "\n"


def test_a_failed_command_prints_the_logs_tail_and_names_the_step(story):
    code = "import sys; [print('line', i) for i in range(100)]; sys.exit(3)"
    with pytest.raises(SystemExit) as exc, story.step("the failing step"):
        story.run(*py(code))
    assert exc.value.code == 1
    assert story.out.getvalue() == step_line("the failing step: FAILED", 1.0) + "\n"
    err = story.err.getvalue().splitlines()
    assert err[0] == f"--- last 40 lines of {story.log_path} ---"
    assert err[1:41] == [f"line {i}" for i in range(60, 100)]
    assert err[41:] == [
        f"--- end of {story.log_path} ---",
        f"demo: step 'the failing step' failed: `{shlex.join(py(code))}` exited with code 3",
    ]


def test_an_exception_in_a_step_leaves_its_traceback_in_the_log(story):
    with pytest.raises(SystemExit), story.step("read the queue"):
        raise ValueError("no such table")
    assert story.err.getvalue().endswith("demo: step 'read the queue' failed: no such table\n")
    assert "ValueError: no such table" in story.log_path.read_text()


def test_verbose_streams_the_commands_output_too(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "time", Clock())
    story = Story(tmp_path / "demo.log", verbose=True, out=io.StringIO(), err=io.StringIO())
    with story.step("say hello"):
        story.run(*py("print('hello')"))
    assert story.out.getvalue() == "=== say hello\nhello\n" + step_line("say hello", 1.0) + "\n"
