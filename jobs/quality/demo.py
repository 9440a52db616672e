"""``make demo``: the whole loop on the embedded defaults (Spark local, Delta on local disk, Airflow on SQLite).

1. generate data; run ``mrs_pipeline`` through Airflow over the whole range (anomalies found, causes proposed,
   events formed, weekend mode confirming what it may, alerts emailed to a local mailbox, the protection feed,
   health checks); install the cluster library and draw the t-SNE map (``mrs_cluster_library``);
2. an analyst's turn through ``mrs_analyst_edit``: reject the top report of the review queue, correct and confirm
   the next, rename its event; then ``mrs_rereview`` re-proposes the rejected report's cause;
3. print detection, attribution and cohort quality against the generator's ground truth, and a summary;
4. a demo reset: ``mrs_pipeline``'s reset task makes ``demo-002`` active while ``demo-001`` stays queryable;
   the demo prints both, then resets back to ``demo-001`` so that ``make sql`` shows the loop above.

Running it again regenerates the same data and adds no rows to any table but ``demo_run_config`` (two resets
each time: resets are the one thing that append).

It tells the story on standard output, a line per step with its time and the pipeline run's progress, and ends
with the quality figures and the summary; Airflow's, Spark's and the mailbox's own output go to
``.data/demo/demo.log``, whose tail it prints when a step fails. ``--verbose`` (or ``DEMO_VERBOSE=1``) streams
that output too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import pandas as pd

from jobs.lib.config import load_config
from jobs.lib.names import WRITER_POOL
from jobs.lib.ticks import fmt_ts
from jobs.quality import generate_data
from jobs.runtime import mailbox, spark_server

RESET_RUN_ID = "demo-002"
WIDTH = 96  # where the step times line up
TAIL_LINES = 40
# The pipeline run is most of the demo's time; this many lines say how far it is without flooding the story.
PROGRESS_LINES = 3


# -- the narrative, as pure functions ------------------------------------------------------------------------
def fmt_elapsed(seconds: float) -> str:
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def step_line(label: str, seconds: float, width: int = WIDTH) -> str:
    t = fmt_elapsed(seconds)
    return f"{label} {'.' * max(2, width - len(label) - len(t) - 2)} {t}"


@dataclass(frozen=True)
class TaskEvent:
    kind: str  # "start", "end" or "skip"
    task_ids: tuple[str, ...]


# What `airflow dags test` logs around each task it runs (airflow.sdk.definitions.dag), and a branch's skips.
_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
_SKIP = re.compile(r"Skipping tasks \[(.*?)\]")


def task_event(line: str) -> TaskEvent | None:
    """The task start, end or skips a line of ``airflow dags test``'s output reports, if any."""
    if m := _START.search(line):
        return TaskEvent("start", (m[1],))
    if m := _END.search(line):
        return TaskEvent("end", (m[1],))
    if m := _SKIP.search(line):
        return TaskEvent("skip", tuple(re.findall(r"\('([^']+)',", m[1])))
    return None


def task_ids(lines: list[str]) -> list[str]:
    """The task ids ``airflow tasks list`` prints, one a line, among any log lines."""
    return [s for s in (line.strip() for line in lines) if re.fullmatch(r"[A-Za-z0-9_.-]+", s)]


@dataclass
class Progress:
    """How far a DAG run is: finished (ended or skipped) tasks of ``total``; ``feed`` returns a line to print
    when a task starts after at least 1/(PROGRESS_LINES+1) of the tasks finished since the last line."""

    dag_id: str
    total: int
    lines: int = PROGRESS_LINES
    finished: set[str] = field(default_factory=set)
    reported: int = 0

    def feed(self, event: TaskEvent, seconds: float) -> str | None:
        if event.kind != "start":
            self.finished.update(event.task_ids)
            return None
        task = event.task_ids[0]
        retry = task in self.finished
        self.finished.discard(task)  # a retry runs it again
        every = max(1, math.ceil(self.total / (self.lines + 1)))
        if len(self.finished) - self.reported < every and not retry:
            return None
        self.reported = len(self.finished)
        running = f"{task} (retry)" if retry else task
        return step_line(f"  {self.dag_id}: {len(self.finished)}/{self.total} tasks done, running {running}", seconds)


def abbrev(ident: str, keep: int = 11) -> str:
    """A report's or event's id shortened for the story (``MR-`` and 8 hex digits: unique enough to find)."""
    return ident if len(ident) <= keep + 1 else ident[:keep] + "…"


def failure_report(label: str, log: Path, tail: list[str], error: str) -> str:
    """What a failed step prints: the log's tail, where the whole log is, and which step failed."""
    return "\n".join(
        [
            f"--- last {len(tail)} lines of {log} ---",
            *(line.rstrip("\n") for line in tail),
            f"--- end of {log} ---",
            f"demo: step '{label}' failed: {error}",
        ]
    )


def short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- running steps ------------------------------------------------------------------------------------------
class StepFailed(Exception):
    pass


class Step:
    def __init__(self, story: Story, label: str):
        self.story, self.label, self.detail = story, label, ""
        self.t0 = time.monotonic()
        self.open = False  # the label is printed and the line waits for the step's time

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, line: str) -> None:
        if self.open:
            self.story.out.write("\n")
            self.open = False
        self.story.say(line)

    def finish(self, detail: str) -> None:
        line = step_line(self.label + detail, self.elapsed())
        if self.open:
            self.story.say(line[len(self.label) :])  # the rest of the line its label began
            self.open = False
        else:
            self.story.say(line)


class Story:
    """The demo's two outputs: the story (``out``) and the log of every subprocess and service (``log_path``)."""

    def __init__(self, log_path: Path, verbose: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        # Append mode: subprocesses writing to the file directly interleave with our lines instead of overwriting.
        self.log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
        self.log_path, self.verbose, self.out, self.err = log_path, verbose, out, err
        self.t0 = time.monotonic()

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    @contextmanager
    def step(self, label: str) -> Iterator[Step]:
        s = Step(self, label)
        print(f"\n=== {label}", file=self.log, flush=True)
        if self.verbose:
            self.say(f"=== {label}")
        else:
            self.out.write(label)
            self.out.flush()
            s.open = True
        try:
            yield s
        except (Exception, SystemExit) as e:
            if not isinstance(e, StepFailed):  # a failed command's own output says why; keep it in the tail
                traceback.print_exc(file=self.log)
            self.log.flush()
            s.finish(": FAILED")
            tail = self.log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            print(failure_report(label, self.log_path, tail, str(e) or type(e).__name__), file=self.err, flush=True)
            raise SystemExit(1) from e
        s.finish(s.detail)

    def run(self, *cmd: str, on_line: Callable[[str], None] | None = None, keep_stdout: bool = False) -> list[str]:
        """Run ``cmd`` with its output in the log (and streamed with --verbose); with ``keep_stdout``, only its
        stderr goes there and its stdout lines are returned."""
        print(f"$ {shlex.join(cmd)}", file=self.log, flush=True)
        stderr = (None if self.verbose else self.log) if keep_stdout else subprocess.STDOUT
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, errors="replace")
        kept = []
        for line in proc.stdout:
            self.log.write(line)
            if keep_stdout:
                kept.append(line.rstrip("\n"))
            elif self.verbose:
                self.out.write(line)
            if on_line:
                on_line(line)
        if rc := proc.wait():
            raise StepFailed(f"`{shlex.join(cmd)}` exited with code {rc}")
        return kept

    @contextmanager
    def stderr_to_log(self) -> Iterator[None]:
        """Children started in the block write their stderr to the log (unless verbose): the Spark server's."""
        if self.verbose:
            yield
            return
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(self.log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    def dag(self, step: Step, dag_id: str, logical_date: datetime, total: int | None = None, **conf) -> None:
        progress = Progress(dag_id, total) if total else None

        def on_line(line: str) -> None:
            if progress and (event := task_event(line)) and (msg := progress.feed(event, step.elapsed())):
                step.note(msg)

        conf_json = json.dumps(conf)
        self.run("airflow", "dags", "test", dag_id, logical_date.isoformat(), "--conf", conf_json, on_line=on_line)


def pick_edits(spark, cfg, run_id: str) -> tuple:
    """The review queue's top report (to reject) and the next one with an event (to correct and confirm)."""
    from jobs.lib.tables import Lakehouse

    reports = Lakehouse(spark, cfg).read("minority_reports", run_id)
    queue = reports.where("review_status = 'proposed' AND report_status = 'ended' AND report_group_id IS NOT NULL")
    top = queue.orderBy(queue.severity.desc(), "report_id").limit(2).collect()
    return tuple(top)


def summary(spark, cfg, run_id: str, box) -> str:
    from pyspark.sql import functions as F

    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    events = lake.read("minority_events_log", run_id).where("event_status != 'merged'")
    causes = events.groupBy("cause_category").count().orderBy(F.desc("count"), "cause_category").collect()
    reports = lake.read("minority_reports", run_id)
    statuses = {r.review_status: r["count"] for r in reports.groupBy("review_status").count().collect()}
    alerts = lake.read("ui_notifications_log", run_id)
    protected = lake.read("protection_feed", run_id).agg(
        F.count("*").alias("rows"), F.sum("anomalous_units").alias("units"), F.sum("anomalous_revenue").alias("rev")
    )
    p = protected.first()
    health = {
        r.health_status: r["count"]
        for r in lake.read("pipeline_health_log", run_id).groupBy("health_status").count().collect()
    }
    rereviewed = lake.read("rereview_proposed_attribution_log", run_id).count()
    analyst_edits = lake.read("user_edits_log", run_id).where(~F.col("author").startswith("automation:")).count()
    event_edits = lake.read("user_minority_events_edits_log", run_id).count()
    lines = [
        f"Summary of run {run_id}",
        f"  events found:       {events.count()} from {reports.count()} reports",
        "  causes:             " + ", ".join(f"{r.cause_category} {r['count']}" for r in causes),
        "  review:             " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())),
        f"  analyst edits:      {analyst_edits} report edits, {event_edits} event edits",
        f"  rereviewed:         {rereviewed} reports",
        f"  alerts sent:        {alerts.count()} notifications ({alerts.select('event_id').distinct().count()} events),"
        f" {len(mailbox.messages(box))} emails in {box}",
        f"  rows protected:     {p['rows']} store x SKU x tick rows, {p['units'] or 0:,.0f} units,"
        f" {p['rev'] or 0:,.0f} revenue kept from campaign credit",
        "  pipeline health:    " + ", ".join(f"{k} {v}" for k, v in sorted(health.items())),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--verbose",
        action="store_true",
        default=os.environ.get("DEMO_VERBOSE", "") not in ("", "0"),
        help="stream Airflow's, Spark's and the mailbox's output too (default: $DEMO_VERBOSE)",
    )
    a = p.parse_args(argv)
    cfg = load_config()
    g = cfg.generator
    run_id = cfg.pipeline.default_run_id
    data = cfg.paths.lakehouse.parent
    story = Story(data / "demo" / "demo.log", a.verbose)
    # This process's own log records (the mailbox's SMTP server, the Spark Connect client) and warnings too.
    logging.basicConfig(stream=story.log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not a.verbose:
        warnings.showwarning = lambda msg, cat, fn, ln, *_: print(f"{fn}:{ln}: {cat.__name__}: {msg}", file=story.log)
    story.say(f"MRS demo; the logs of Airflow, Spark and the mailbox: {short(story.log_path)} (DEMO_VERBOSE=1: here)")
    start = datetime.combine(g.start, datetime.min.time(), tzinfo=UTC)
    end = start + timedelta(days=g.days)
    box = data / "mailbox"
    py = sys.executable
    with ExitStack() as stack:
        with story.step("generate data") as s:
            counts = generate_data.generate(cfg, cfg.paths.landing)
            s.detail = (
                f": {counts['sales_rows']:,} sales rows, {counts['series']} series, "
                f"{counts['anomalies']} injected anomalies"
            )
        with story.step("start the mailbox, the warm Spark session and Airflow's metadata DB"):
            server = mailbox.start(box)
            stack.callback(server.stop)
            os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = mailbox.smtp_connection(server.port)
            # One warm Spark session for the whole demo: every task and job is its Spark Connect client.
            with story.stderr_to_log():
                url = stack.enter_context(spark_server.local_server())
            os.environ["SPARK_REMOTE"] = url
            os.environ["AIRFLOW_CONN_MRS_SPARK"] = spark_server.airflow_connection(url)
            story.run("airflow", "db", "migrate")
            story.run("airflow", "pools", "set", WRITER_POOL, "1", "one writer of the Delta lakehouse at a time")

        # 1. The pipeline over the whole range (back on the demo's run_id if an earlier demo reset it).
        with story.step(f"mrs_pipeline over {g.days} days from {start:%Y-%m-%d}") as s:
            total = len(task_ids(story.run("airflow", "tasks", "list", "mrs_pipeline", keep_stdout=True)))
            story.dag(s, "mrs_pipeline", end, total, start=fmt_ts(start), end=fmt_ts(end), reset_run_id=run_id)
            s.detail = f": {total} tasks"
        with story.step("mrs_cluster_library: install the cluster library, draw the t-SNE map") as s:
            story.dag(s, "mrs_cluster_library", end, mode="install")
        # The state as it stood three hours into the first competitor stockout (or any anomaly).
        truth = pd.read_csv(cfg.paths.landing / "ground_truth" / "ground_truth.csv", parse_dates=["start"])
        starts = truth.loc[truth["anomaly_type"] == "competitor_stockout", "start"]
        if len(truth):
            as_of = fmt_ts(((starts if len(starts) else truth["start"]).min() + pd.Timedelta(hours=3)).to_pydatetime())
            with story.step(f"the reports as they stood at {as_of}, 3 h into an anomaly (--as-of)"):
                story.run(py, "-m", "jobs.stages.hydrate_minority_reports", "--as-of", as_of)

        # 2. The analyst's turn, then the rereview.
        with story.step("the analyst picks from the review queue") as s:
            from jobs.lib.spark import build_spark

            spark = build_spark(cfg, "demo")
            stack.callback(spark.stop)
            picks = pick_edits(spark, cfg, run_id)
            s.detail = "" if len(picks) == 2 else f": {len(picks)} reports to review, no edits"
        if len(picks) == 2:
            rejected, fixed = picks
            edit = "mrs_analyst_edit: analyst"
            rej, fix, event = abbrev(rejected.report_id), abbrev(fixed.report_id), abbrev(fixed.report_group_id)
            with story.step(f"{edit}.alice rejects {rej} ({rejected.proposed_cause_category})") as s:
                story.dag(s, "mrs_analyst_edit", end + timedelta(hours=1), kind="report",
                          target_id=rejected.report_id, author="analyst.alice", decision="reject",
                          reason="the store reported no such trend")  # fmt: skip
            with story.step(f"{edit}.bob corrects {fix} to {fixed.proposed_cause_category_2}") as s:
                story.dag(s, "mrs_analyst_edit", end + timedelta(hours=2), kind="report", target_id=fixed.report_id,
                          author="analyst.bob", cause=fixed.proposed_cause_category_2, decision="confirm",
                          reason="the runner-up fits the store's story", evidence="store manager called")  # fmt: skip
            with story.step(f"{edit}.bob renames event {event}") as s:
                story.dag(s, "mrs_analyst_edit", end + timedelta(hours=3), kind="event",
                          target_id=fixed.report_group_id, author="analyst.bob",
                          cohort_name=f"Reviewed: {fixed.cohort_name}", decision="confirm")  # fmt: skip
        with story.step("mrs_rereview: re-propose the causes the analysts rejected") as s:
            story.dag(s, "mrs_rereview", end + timedelta(hours=4))

        # 3. Quality against the ground truth, and what the loop did (printed at the end).
        with story.step("score detection, attribution and cohorts against the ground truth"):
            figures = [
                line
                for job in ("evaluate_detection", "evaluate_attribution", "evaluate_cohorts")
                for line in story.run(py, "-m", f"jobs.quality.{job}", keep_stdout=True)
            ]
            result = summary(spark, cfg, run_id, box)

        # 4. A demo reset (the pipeline's reset task alone: the next pipeline runs would fill demo-002), the
        # before/after comparison, and back to the demo's run so that `make sql` shows the loop above.
        # Runs of their own (a logical date no other run has), so that the task takes these params.
        with story.step(f"demo reset: make {RESET_RUN_ID} the active run_id"):
            reset(story, end + timedelta(days=1), RESET_RUN_ID)
            compared = compare_runs(spark, cfg)
        for line in compared.splitlines():
            story.say(line)
        with story.step(f"demo reset: back to {run_id}"):
            reset(story, end + timedelta(days=1, minutes=cfg.pipeline.tick_minutes), run_id)
    story.say()
    for line in [*figures, result]:
        story.say(line)
    story.say(
        f"t-SNE map: {short(cfg.paths.artifacts)}/tsne_<run_id>.png; "
        f"event charts: {short(cfg.paths.artifacts)}/events/<run_id>/"
    )
    story.say(
        f"Done in {fmt_elapsed(time.monotonic() - story.t0)}. Next: `make sql` and the queries in "
        "docs/analyst_queries.md, or `make airflow` for the UI."
    )


def reset(story: Story, at: datetime, run_id: str) -> None:
    story.run("airflow", "tasks", "test", "mrs_pipeline", "reset_run_id", at.isoformat(),
              "--task-params", json.dumps({"reset_run_id": run_id}))  # fmt: skip


def compare_runs(spark, cfg) -> str:
    """What a reset changes: the active run_id, and every run's rows still there."""
    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    counts = lake.read("minority_reports").groupBy("run_id").count().orderBy("run_id").collect()
    active = lake.active_run_id()
    lines = [f"Demo reset: {active} is now the active run_id (every read path and view uses it)."]
    lines += [f"  {r.run_id}: {r['count']} reports" for r in counts] or ["  (no reports yet)"]
    if active not in {r.run_id for r in counts}:
        lines.append(f"  {active}: 0 reports (its pipeline runs have not started)")
    lines.append("  SELECT run_id, count(*) AS reports FROM mrs.minority_reports GROUP BY run_id;  -- the same in SQL")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
