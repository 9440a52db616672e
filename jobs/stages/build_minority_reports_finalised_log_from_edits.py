"""Finalisation (MRFL): the model's proposal for each report merged with the edits made to it.

For every report with a model row (MRPAL, or a rereview's re-proposal) or an edit written in [start, end), one
``minority_reports_finalised_log`` row per such tick: the newest model row at that tick, then every edit up to
it applied in order (``written_at``, ``edit_seq``), the latest edit per field winning:

- ``proposed_cause_category``: an analyst's correction; its impact vector follows the taxonomy and its
  confidence is 1 (a person decided); ``proposed_cause``: the narrative (defaults to who corrected it, and why);
- ``review_status``: proposed, then confirmed / rejected (analysts) or auto_confirmed (automation rules). A
  rejection records the rejected cause in ``rejected_categories`` and holds until a rereview re-proposes;
- ``supporting_evidence``: the model's list plus each piece analysts added; ``analyst_comment``: the latest.

``field_sources`` names, per field, where its value came from: model, analyst or automation. Runs the
automation rules first (``jobs.stages.apply_automation_rules``): their decisions are edits like any other.

    spark-submit jobs/stages/build_minority_reports_finalised_log_from_edits.py --config conf/mrs.yaml \\
        --start ... --end ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config
from jobs.lib.tables import TABLES, Lakehouse
from jobs.lib.ticks import dates_between, dates_of, fmt_ts
from jobs.stages import apply_automation_rules
from schemas.mrs import REPORT_COLUMNS

WRITES = ("user_edits_log", "minority_reports_finalised_log")
FIELDS = (
    "proposed_cause_category",
    "proposed_cause",
    "impact_vector",
    "confidence_score",
    "confidence_tier",
    "review_status",
    "supporting_evidence",
    "analyst_comment",
)
MODEL_COLS = [
    *REPORT_COLUMNS,
    "proposed_cause",
    "proposed_cause_category",
    "impact_vector",
    "confidence_score",
    "confidence_tier",
    "supporting_evidence",
    "cluster_id",
    "library_version",
    "attribution_model_version",
    "model_source",
    "report_status",
    "written_at",
    "is_degraded",
]
EDIT_COLS = ["field", "value", "author", "reason", "edit_seq", "edit_id"]


def _tier(score: float, medium: float, high: float) -> str:
    return "High" if score >= high else "Medium" if score >= medium else "Low"


def _answered(history: pd.DataFrame, at: pd.Timestamp, rejected: list[str], default: str) -> str:
    """The model cause a rejection at ``at`` answered: the proposal before that tick, unless that one is
    rejected already and a rereview re-proposed at the same tick (the analyst rejects the re-proposal)."""
    before = history[history["written_at"] < at]
    cause = before.iloc[-1]["proposed_cause_category"] if len(before) else default
    same = history[(history["written_at"] == at) & (history["model_source"] == "rereview")]
    return same.iloc[-1]["proposed_cause_category"] if cause in rejected and len(same) else cause


def finalise(
    model: pd.Series,
    edits: pd.DataFrame,
    t: pd.Timestamp,
    impact_vectors: dict,
    tiers: tuple,
    history: pd.DataFrame | None = None,
) -> dict:
    """One report at tick ``t``: its newest model row and its edits up to ``t`` (in order) -> an MRFL row.

    ``history`` (the report's model rows up to ``t``, oldest first) tells which cause a rejection answered."""
    row = {c: model[c] for c in REPORT_COLUMNS}
    final = {f: model.get(f) for f in FIELDS if f in model.index}
    final["supporting_evidence"] = list(model["supporting_evidence"])
    final["review_status"], final["analyst_comment"] = "proposed", None
    sources = dict.fromkeys(FIELDS, "model")
    rejected: list[str] = []
    edited_by, seq, last_edit, reviewed_at = None, -1, "", None
    for e in edits.itertuples(index=False):
        src = "automation" if e.author.startswith("automation:") else "analyst"
        if e.field == "proposed_cause_category":
            note = f" ({e.reason})" if isinstance(e.reason, str) and e.reason else ""
            final.update(
                proposed_cause_category=e.value,
                proposed_cause=f"{e.value}: set by {e.author}{note}",
                impact_vector=impact_vectors[e.value],
                confidence_score=1.0,
                confidence_tier=_tier(1.0, *tiers),
            )
            sources.update(dict.fromkeys(FIELDS[:5], src))
        elif e.field == "proposed_cause":
            final["proposed_cause"], sources["proposed_cause"] = e.value, src
        elif e.field == "review_status":
            final["review_status"], sources["review_status"], reviewed_at = e.value, src, e.written_at
            answered = final["proposed_cause_category"]
            if sources["proposed_cause_category"] == "model" and history is not None:
                answered = _answered(history, e.written_at, rejected, answered)
            if e.value == "rejected" and answered not in rejected:
                rejected.append(answered)
        elif e.field == "supporting_evidence":
            final["supporting_evidence"].append(f"analyst:{e.author}: {e.value}")
            sources["supporting_evidence"] = src
        elif e.field == "comment":
            final["analyst_comment"], sources["analyst_comment"] = e.value, src
        edited_by, seq, last_edit = e.author, int(e.edit_seq), e.edit_id
    # A rejection answers the cause it was made on: a rereview's new proposal (one not rejected) is open for
    # review again. Rereview and rejection may share a tick; the category tells which answers which.
    if (
        final["review_status"] == "rejected"
        and model["model_source"] == "rereview"
        and model["written_at"] >= reviewed_at
        and sources["proposed_cause_category"] == "model"
        and model["proposed_cause_category"] not in rejected
    ):
        final["review_status"], sources["review_status"] = "proposed", "model"
    model_at = pd.Timestamp(model["written_at"])
    fid = f"{model['report_id']}|{model['model_source']}|{fmt_ts(model_at)}|{last_edit}"
    row.update(final)
    row.update(
        rejected_categories=rejected,
        field_sources=sources,
        edited_by=edited_by,
        cluster_id=model["cluster_id"],
        library_version=model["library_version"],
        attribution_model_version=model["attribution_model_version"],
        model_source=model["model_source"],
        model_written_at=model_at,
        edit_seq=seq,
        finalised_id=hashlib.sha256(fid.encode()).hexdigest(),
        report_status=model["report_status"],
        written_at=t,
        is_degraded=bool(model["is_degraded"]),
        date=t.date(),
    )
    return row


def finalised_rows(model: DataFrame, edits: DataFrame, start: datetime, cfg: Config) -> DataFrame:
    """Model rows (``MODEL_COLS``) and edit rows of the reports to finalise, written before the interval's end
    -> MRFL rows for the ticks in [start, end) at which a report has a model row or an edit."""
    schema = TABLES["minority_reports_finalised_log"].schema
    names = [f.name for f in schema.fields]
    a = cfg.attribution
    since = pd.Timestamp(start).tz_convert("UTC").tz_localize(None)
    both = model.withColumn("_kind", F.lit("model")).unionByName(
        edits.select("run_id", "report_id", "written_at", *EDIT_COLS).withColumn("_kind", F.lit("edit")),
        allowMissingColumns=True,
    )

    def fn(pdf: pd.DataFrame) -> Iterator[pd.DataFrame]:
        m = pdf[pdf["_kind"] == "model"].sort_values(["written_at", "model_source"])
        e = pdf[pdf["_kind"] == "edit"].sort_values(["written_at", "edit_seq"])
        rows = []
        for t in sorted(set(pdf.loc[pdf["written_at"] >= since, "written_at"])):
            current = m[m["written_at"] <= t]
            if len(current):
                tiers = (a.tier_medium, a.tier_high)
                rows.append(finalise(current.iloc[-1], e[e["written_at"] <= t], t, a.impact_vectors, tiers, current))
        return pd.DataFrame(rows, columns=names)

    ddl = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
    return both.groupBy("report_id").applyInPandas(fn, ddl)


def read_inputs(lake: Lakehouse, run_id: str, start: datetime, end: datetime) -> tuple[DataFrame, DataFrame] | None:
    """Model rows (pipeline and rereview, with the library version that clustered them) and edits of the
    reports touched in [start, end), from the earliest touched report's window_start."""
    in_range = (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))
    before_end = F.col("written_at") < F.lit(end)
    edits = lake.read("user_edits_log", run_id).where(before_end)
    rr_pal = lake.read("rereview_proposed_attribution_log", run_id).where(before_end)
    touched = (
        lake.read("minority_reports_proposed_attribution_log", run_id)
        .where(dates_between(start, end))
        .where(in_range)
        .select("report_id", "window_start")
        .unionByName(rr_pal.where(in_range).select("report_id", "window_start"))
        .unionByName(edits.where(in_range).select("report_id", "window_start"))
    )
    lo = touched.agg(F.min("window_start")).first()[0]
    if lo is None:
        return None
    ids = touched.select("report_id").distinct()
    mrpal = lake.read("minority_reports_proposed_attribution_log", run_id).where(dates_between(lo, end))
    mrcl = lake.read("minority_reports_clustered_log", run_id).where(dates_between(lo, end))
    pipeline = (
        mrpal.where(before_end)
        .join(ids, "report_id", "left_semi")
        .join(mrcl.select("report_id", "written_at", "library_version"), ["report_id", "written_at"], "left")
        .withColumn("model_source", F.lit("pipeline"))
    )
    rr_cl = lake.read("rereview_clustered_log", run_id).select("rereview_id", "library_version")
    rereview = (
        rr_pal.join(ids, "report_id", "left_semi")
        .join(rr_cl, "rereview_id", "left")
        .withColumn("model_source", F.lit("rereview"))
    )
    model = pipeline.unionByName(rereview, allowMissingColumns=True).select(
        *[c for c in MODEL_COLS if c != "attribution_model_version"],
        F.col("model_version").alias("attribution_model_version"),
    )
    return model, edits.join(ids, "report_id", "left_semi")


def finalise_range(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str) -> int:
    """MRFL rows for [start, end), without running the automation rules (edits and rereview use this)."""
    lake = Lakehouse(spark, cfg)
    inputs = read_inputs(lake, run_id, start, end)
    if inputs is None:
        return 0
    return lake.append_new("minority_reports_finalised_log", finalised_rows(*inputs, start, cfg), dates_of(start, end))


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    run_id = run_id or Lakehouse(spark, cfg).active_run_id()
    written = apply_automation_rules.run(spark, cfg, start, end, run_id)
    return {**written, "minority_reports_finalised_log": finalise_range(spark, cfg, start, end, run_id)}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "build_minority_reports_finalised_log_from_edits", run, argv)


if __name__ == "__main__":
    main()
