"""Analyst edits: correct a report's cause, confirm or reject it, add evidence or a comment; the same for a
Minority Event. Edits land in the append-only ``user_edits_log`` / ``user_minority_events_edits_log``.

    python -m jobs.review.edit report MR-<sha> --author alice --cause "Competitor Stockout" --reason "rival closed"
    python -m jobs.review.edit report MR-<sha> --author alice --reject --reason "a promo, not a stockout"
    python -m jobs.review.edit event ME-<sha> --author bob --cause "Social/Viral Event" --name "TikTok trend, North"

An edit is validated before anything is written: an unknown report or event, a field that cannot be edited
(``--set FIELD=VALUE`` names fields directly), a cause outside the taxonomy or a missing author is refused with
a message naming the problem (exit code 2). An edit is stamped with the tick after the latest one ingested
(data time, like every row), so the next pipeline run sees it and replays of earlier ticks do not. Afterwards
the command finalises and re-hydrates what it touched (``jobs.review.refresh_reports``) unless ``--no-refresh``.

Idempotent: the Airflow DAG passes its run id as ``--request-id``, so a repeated run adds nothing; an edit that
would change nothing (the field already holds that value, the evidence is already there) is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.lib.config import DETECTION_TYPES, Config, load_config
from jobs.lib.tables import TABLES, Lakehouse, latest
from schemas.mrs import EDITABLE_EVENT_FIELDS, EDITABLE_REPORT_FIELDS

WRITES = ("user_edits_log", "user_minority_events_edits_log")
ANALYST_DECISIONS = {"confirm": "confirmed", "reject": "rejected"}
ID_PATTERN = {"report": r"^MR-[0-9a-f]{64}$", "event": r"^ME-[0-9a-f]{64}$"}
# Fields whose latest value wins; the others accumulate.
APPENDED = {"supporting_evidence"}


class EditError(ValueError):
    """An edit that cannot be accepted; the message names the problem."""


@dataclass(frozen=True)
class EditRequest:
    kind: str  # report | event
    target_id: str
    author: str
    changes: tuple[tuple[str, str], ...]  # (field, value) in the order they apply
    reason: str | None = None
    request_id: str | None = None

    @property
    def table(self) -> str:
        return "user_edits_log" if self.kind == "report" else "user_minority_events_edits_log"

    @property
    def key(self) -> str:
        return "report_id" if self.kind == "report" else "event_id"


def changes_from_flags(
    kind: str, cause=None, narrative=None, decision=None, evidence=None, comment=None, name=None, sets=()
) -> tuple[tuple[str, str], ...]:
    """The command's flags as (field, value) pairs; a cause comes before its narrative."""
    cause_field = "proposed_cause_category" if kind == "report" else "cause_category"
    out = []
    if cause:
        out.append((cause_field, cause))
    if narrative:
        out.append(("proposed_cause" if kind == "report" else "cohort_name", narrative))
    if name:
        out.append(("cohort_name", name))
    if decision:
        if decision not in ANALYST_DECISIONS:
            raise EditError(f"decision {decision!r}: use one of {sorted(ANALYST_DECISIONS)}")
        out.append(("review_status", ANALYST_DECISIONS[decision]))
    if evidence:
        out.append(("supporting_evidence", evidence))
    if comment:
        out.append(("comment", comment))
    for item in sets:
        if "=" not in item:
            raise EditError(f"--set {item!r}: expected FIELD=VALUE")
        f, v = item.split("=", 1)
        out.append((f.strip(), v.strip()))
    return tuple(out)


def validate(req: EditRequest) -> None:
    """Checks that need no data: raise EditError naming the first problem."""
    if req.kind not in ID_PATTERN:
        raise EditError(f"kind {req.kind!r}: edits apply to a 'report' or an 'event'")
    if not re.match(ID_PATTERN[req.kind], req.target_id or ""):
        raise EditError(f"{req.kind} id {req.target_id!r} is malformed: expected {ID_PATTERN[req.kind]}")
    if not (req.author or "").strip():
        raise EditError("author: missing; every edit names who made it (--author)")
    if req.author.startswith("automation:"):
        raise EditError(f"author {req.author!r}: the automation: prefix is reserved for automation rules")
    if not req.changes:
        raise EditError("nothing to edit: give a cause, a decision, evidence, a comment or --set FIELD=VALUE")
    editable = EDITABLE_REPORT_FIELDS if req.kind == "report" else EDITABLE_EVENT_FIELDS
    for f, v in req.changes:
        if f not in editable:
            article = "an" if req.kind == "event" else "a"
            raise EditError(f"field {f!r} of {article} {req.kind} cannot be edited; editable: {list(editable)}")
        if not (v or "").strip():
            raise EditError(f"field {f!r}: empty value")
        if f in ("proposed_cause_category", "cause_category") and v not in DETECTION_TYPES:
            raise EditError(f"{f} {v!r} is not in the taxonomy: {list(DETECTION_TYPES)}")
        if f == "review_status" and v not in ANALYST_DECISIONS.values():
            raise EditError(f"review_status {v!r}: analysts may set {sorted(ANALYST_DECISIONS.values())}")


def _sha(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def edit_rows(req: EditRequest, target: dict, previous: list[dict], seq_base: int, written_at: datetime) -> list[dict]:
    """The rows an accepted edit appends: one per changed field, skipping changes that would change nothing.

    ``target`` has run_id, window_start, report_status (and report_id for events); ``previous`` are the
    target's earlier edits (field, value, edit_seq)."""
    current: dict[str, str] = {}
    appended: dict[str, set] = {}
    for p in sorted(previous, key=lambda r: r["edit_seq"]):
        current[p["field"]] = p["value"]
        appended.setdefault(p["field"], set()).add(p["value"])
    request = req.request_id or "cli:" + _sha(req.author, req.target_id, repr(req.changes), str(seq_base))
    prefix = "UE-" if req.kind == "report" else "EE-"
    rows = []
    for f, v in req.changes:
        if (f in APPENDED and v in appended.get(f, ())) or (f not in APPENDED and current.get(f) == v):
            continue
        rows.append(
            {
                "edit_id": prefix + _sha(request, req.target_id, f),
                req.key: req.target_id,
                "field": f,
                "value": v,
                "author": req.author.strip(),
                "reason": req.reason or None,
                "request_id": request,
                "edit_seq": seq_base + len(rows) + 1,
                "written_at": written_at,
                "is_degraded": False,
                **target,
            }
        )
    return rows


def find_target(lake: Lakehouse, req: EditRequest, run_id: str) -> dict:
    """The edited object's run_id, window_start and status; EditError if the run has no such object."""
    if req.kind == "report":
        rows = lake.read("minority_reports_detected_log", run_id).where(F.col("report_id") == req.target_id)
        row = latest(rows, "report_id").select("window_start", "report_status").first()
    else:
        rows = lake.read("minority_event_log", run_id).where(F.col("event_id") == req.target_id)
        row = (
            latest(rows, "event_id")
            .select("window_start", "report_id", F.col("event_status").alias("report_status"))
            .first()
        )
    if row is None:
        raise EditError(f"unknown {req.kind} {req.target_id} in run {run_id!r}")
    return {"run_id": run_id, **row.asDict()}


def record(spark: SparkSession, cfg: Config, req: EditRequest, run_id: str | None = None) -> dict:
    """Validate and append an edit; returns the rows written and the data time they carry."""
    validate(req)
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    target = find_target(lake, req, run_id)
    written_at = lake.next_tick(run_id)
    log = lake.read(req.table, run_id)
    previous = [
        r.asDict() for r in log.where(F.col(req.key) == req.target_id).select("field", "value", "edit_seq").collect()
    ]
    seq_base = log.agg(F.max("edit_seq")).first()[0] or 0
    rows = edit_rows(req, target, previous, seq_base, written_at)
    written = 0
    if rows:
        written = lake.append_new(req.table, spark.createDataFrame(rows, TABLES[req.table].schema))
    return {req.table: written, "written_at": written_at, "skipped": len(req.changes) - len(rows)}


def refuse(problem: Exception) -> None:
    print(f"edit refused: {problem}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["report", "event"])
    p.add_argument("target_id", help="MR-... (report) or ME-... (event)")
    p.add_argument("--config")
    p.add_argument("--run-id", help="default: the active run_id")
    p.add_argument("--author", default="", help="who makes the edit (required)")
    p.add_argument("--reason", default="", help="why: kept with the edit")
    p.add_argument("--cause", default="", help=f"corrected cause, one of: {', '.join(DETECTION_TYPES)}")
    p.add_argument("--narrative", default="", help="the cause in words (report); for events, like --name")
    p.add_argument("--name", default="", help="event: a new cohort name")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--approve", dest="decision", action="store_const", const="confirm")
    g.add_argument("--reject", dest="decision", action="store_const", const="reject")
    g.add_argument("--decision", dest="decision", default="", help="confirm | reject")
    p.add_argument("--evidence", default="", help="a piece of evidence to add")
    p.add_argument("--comment", default="")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--request-id", default="", help="idempotency key (the DAG passes its run id)")
    p.add_argument("--no-refresh", action="store_true", help="only record (the DAG refreshes in its next task)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    try:
        changes = changes_from_flags(
            a.kind, a.cause, a.narrative, a.decision or None, a.evidence, a.comment, a.name, a.sets
        )
        req = EditRequest(a.kind, a.target_id, a.author, changes, a.reason or None, a.request_id or None)
        validate(req)  # before a Spark session: a bad edit fails fast
    except EditError as e:
        refuse(e)
    from jobs.lib.spark import build_spark
    from jobs.review import refresh_reports

    spark = build_spark(cfg, "edit")
    try:
        result = record(spark, cfg, req, a.run_id)
    except EditError as e:
        spark.stop()
        refuse(e)
    print(f"edit {a.kind} {a.target_id}: {result}")
    if not a.no_refresh:
        print(f"refresh: {refresh_reports.run(spark, cfg, a.run_id)}")
    spark.stop()


if __name__ == "__main__":
    main()
