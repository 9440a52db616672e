"""Edits, automation rules and finalisation as pure functions; the loop on real data is in test_pipeline.py."""

from datetime import datetime

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.lib.config import load_config
from jobs.lib.tables import TABLES
from jobs.review.edit import EditError, EditRequest, changes_from_flags, edit_rows, validate
from jobs.stages import apply_automation_rules
from jobs.stages.build_minority_reports_finalised_log_from_edits import finalise

REPORT = "MR-" + "a" * 64
EVENT = "ME-" + "b" * 64


@pytest.mark.parametrize(
    ("req", "problem"),
    [
        (EditRequest("report", "MR-123", "alice", (("review_status", "confirmed"),)), "malformed"),
        (EditRequest("report", REPORT, " ", (("review_status", "confirmed"),)), "author: missing"),
        (EditRequest("report", REPORT, "automation:me", (("comment", "x"),)), "reserved for automation"),
        (EditRequest("report", REPORT, "alice", ()), "nothing to edit"),
        (EditRequest("report", REPORT, "alice", (("severity", "1"),)), "'severity' of a report cannot be edited"),
        (EditRequest("event", EVENT, "alice", (("proposed_cause", "x"),)), "'proposed_cause' of an event cannot"),
        (EditRequest("report", REPORT, "alice", (("proposed_cause_category", "Aliens"),)), "not in the taxonomy"),
        (EditRequest("report", REPORT, "alice", (("review_status", "auto_confirmed"),)), "analysts may set"),
        (EditRequest("report", REPORT, "alice", (("comment", ""),)), "empty value"),
    ],
)
def test_validation_refuses_with_a_message_naming_the_problem(req, problem):
    with pytest.raises(EditError, match=problem):
        validate(req)


def test_flags_become_changes_in_the_order_they_apply():
    assert changes_from_flags("report", cause="Data Error", narrative="feed replayed", decision="reject") == (
        ("proposed_cause_category", "Data Error"),
        ("proposed_cause", "feed replayed"),
        ("review_status", "rejected"),
    )
    assert changes_from_flags("event", cause="Data Error", name="Feed outage") == (
        ("cause_category", "Data Error"),
        ("cohort_name", "Feed outage"),
    )
    with pytest.raises(EditError, match="FIELD=VALUE"):
        changes_from_flags("report", sets=["severity"])


def test_an_edit_that_changes_nothing_is_skipped_and_a_request_id_makes_repeats_identical():
    at = datetime(2025, 8, 20, 12)
    target = {"run_id": "r1", "window_start": datetime(2025, 8, 20, 9), "report_status": "ended"}
    req = EditRequest("report", REPORT, "alice", (("review_status", "rejected"), ("supporting_evidence", "e1")))
    rows = edit_rows(req, target, [], 4, at)
    assert [(r["field"], r["value"], r["edit_seq"]) for r in rows] == [
        ("review_status", "rejected", 5),
        ("supporting_evidence", "e1", 6),
    ]
    previous = [{"field": r["field"], "value": r["value"], "edit_seq": r["edit_seq"]} for r in rows]
    assert edit_rows(req, target, previous, 6, at) == []  # already so: nothing to add
    dag = EditRequest("report", REPORT, "alice", (("comment", "look"),), request_id="manual__2025-08-21")
    assert edit_rows(dag, target, [], 0, at) == edit_rows(dag, target, [], 0, at)
    assert edit_rows(dag, target, [], 0, at)[0]["edit_id"] != edit_rows(req, target, [], 0, at)[0]["edit_id"]


def _model(**over) -> pd.Series:
    row = {
        "report_id": REPORT,
        "run_id": "r1",
        "series_key": "S1|K1",
        "store_id": "S1",
        "sku": "K1",
        "retailer_id": "R1",
        "region": "North",
        "category": "C1",
        "window_start": pd.Timestamp("2025-08-20 09:00"),
        "window_end": pd.Timestamp("2025-08-20 11:00"),
        "direction": "spike",
        "proposed_cause": "Social/Viral Event: trend",
        "proposed_cause_category": "Social/Viral Event",
        "impact_vector": "spend leakage",
        "confidence_score": 0.62,
        "confidence_tier": "Medium",
        "supporting_evidence": ["context:abc -> Social/Viral Event +3.00"],
        "cluster_id": "c3",
        "library_version": "generated-v1",
        "attribution_model_version": "evidence-v1",
        "model_source": "pipeline",
        "report_status": "ended",
        "written_at": pd.Timestamp("2025-08-20 11:00"),
        "is_degraded": False,
    }
    return pd.Series({**row, **over})


def _edits(*rows) -> pd.DataFrame:
    cols = ["field", "value", "author", "reason", "edit_seq", "edit_id", "written_at"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], columns=cols)


CFG = load_config()
IV, TIERS = CFG.attribution.impact_vectors, (CFG.attribution.tier_medium, CFG.attribution.tier_high)
T = pd.Timestamp("2025-08-21 00:00")


def test_finalise_merges_edits_over_the_model_latest_per_field_with_sources():
    edits = _edits(
        ("review_status", "rejected", "alice", "not viral", 1, "UE-1", T),
        ("proposed_cause_category", "Marketing Misattribution", "bob", "promo ran", 2, "UE-2", T),
        ("supporting_evidence", "promo flyer in store", "bob", None, 3, "UE-3", T),
        ("comment", "first look", "alice", None, 4, "UE-4", T),
        ("comment", "checked with the store", "alice", None, 5, "UE-5", T),
        ("review_status", "confirmed", "bob", None, 6, "UE-6", T),
    )
    row = finalise(_model(), edits, T, IV, TIERS)
    assert row["proposed_cause_category"] == "Marketing Misattribution"
    assert row["proposed_cause"] == "Marketing Misattribution: set by bob (promo ran)"
    assert (row["impact_vector"], row["confidence_score"], row["confidence_tier"]) == ("attribution error", 1.0, "High")
    assert row["review_status"] == "confirmed"
    assert row["rejected_categories"] == ["Social/Viral Event"]
    assert row["supporting_evidence"] == [
        "context:abc -> Social/Viral Event +3.00",
        "analyst:bob: promo flyer in store",
    ]
    assert row["analyst_comment"] == "checked with the store"
    assert row["field_sources"] == {
        "proposed_cause_category": "analyst",
        "proposed_cause": "analyst",
        "impact_vector": "analyst",
        "confidence_score": "analyst",
        "confidence_tier": "analyst",
        "review_status": "analyst",
        "supporting_evidence": "analyst",
        "analyst_comment": "analyst",
    }
    assert (row["edited_by"], row["edit_seq"], row["written_at"]) == ("bob", 6, T)
    assert row["model_written_at"] == pd.Timestamp("2025-08-20 11:00")
    # No edits: the model's proposal, awaiting review.
    plain = finalise(_model(), _edits(), T, IV, TIERS)
    assert (plain["review_status"], plain["edit_seq"], plain["edited_by"]) == ("proposed", -1, None)
    assert set(plain["field_sources"].values()) == {"model"}
    assert plain["finalised_id"] != row["finalised_id"]


def test_a_rejection_holds_until_a_rereview_proposes_again_and_automation_is_its_own_source():
    rejected = _edits(("review_status", "rejected", "alice", None, 1, "UE-1", T))
    assert finalise(_model(), rejected, T, IV, TIERS)["review_status"] == "rejected"
    later = T + pd.Timedelta(minutes=15)
    rereview = _model(model_source="rereview", written_at=later, proposed_cause_category="Competitor Stockout")
    row = finalise(rereview, rejected, later, IV, TIERS, pd.DataFrame([_model(), rereview]))
    assert (row["review_status"], row["field_sources"]["review_status"]) == ("proposed", "model")
    assert row["rejected_categories"] == ["Social/Viral Event"]
    # A rereview at the rejection's own tick answers it too; rejecting the rereview's proposal then holds.
    same_tick = _model(model_source="rereview", written_at=T, proposed_cause_category="Competitor Stockout")
    assert finalise(same_tick, rejected, T, IV, TIERS, pd.DataFrame([_model(), same_tick]))["review_status"] == (
        "proposed"
    )
    twice = _edits(
        ("review_status", "rejected", "alice", None, 1, "UE-1", T),
        ("review_status", "rejected", "alice", None, 2, "UE-2", later),
    )
    row = finalise(rereview, twice, later, IV, TIERS, pd.DataFrame([_model(), rereview]))
    assert row["review_status"] == "rejected"
    assert row["rejected_categories"] == ["Social/Viral Event", "Competitor Stockout"]
    auto = _edits(("review_status", "auto_confirmed", "automation:weekend_mode", "rule", 0, "UE-9", T))
    row = finalise(_model(), auto, T, IV, TIERS)
    assert (row["review_status"], row["field_sources"]["review_status"]) == ("auto_confirmed", "automation")


def test_weekend_mode_confirms_confident_undecided_reports_once_at_the_first_qualifying_tick(spark):
    schema = TABLES["minority_reports_proposed_attribution_log"].schema
    base = {f.name: None for f in schema.fields}

    def pal(report, ts, conf):
        return {
            **base,
            "report_id": report,
            "run_id": "r1",
            "series_key": "s",
            "store_id": "S1",
            "window_start": datetime(2025, 8, 8),
            "direction": "spike",
            "confidence_score": conf,
            "supporting_evidence": [],
            "evidence_sources_missing": [],
            "model_version": "m",
            "report_status": "active",
            "written_at": ts,
            "is_degraded": False,
            "date": ts.date(),
        }

    sat, sun, fri = datetime(2025, 8, 9, 10), datetime(2025, 8, 10, 10), datetime(2025, 8, 8, 10)
    rows = [
        pal("MR-weekend", sun, 0.9),
        pal("MR-weekend", sat, 0.75),  # the first qualifying tick wins
        pal("MR-friday", fri, 0.95),  # not a weekend
        pal("MR-unsure", sat, 0.7),  # not above 0.7
        pal("MR-decided", sat, 0.9),  # an analyst decided before
    ]
    mrpal = spark.createDataFrame(rows, schema)
    decisions = spark.createDataFrame(
        [("MR-decided", datetime(2025, 8, 9, 9))], "report_id string, written_at timestamp"
    )
    got = apply_automation_rules.automation_edits(mrpal, decisions, CFG.automation)
    expected = spark.createDataFrame(
        [
            (
                apply_automation_rules.edit_id("weekend_mode", "MR-weekend"),
                "r1",
                "MR-weekend",
                "review_status",
                "auto_confirmed",
                "automation:weekend_mode",
                "weekend_mode: confidence 0.75 above 0.70 on a Saturday",
                "automation:weekend_mode",
                0,
                datetime(2025, 8, 8),
                "active",
                sat,
                False,
            )
        ],
        TABLES["user_edits_log"].schema,
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    assert got.where(F.col("report_id") != "MR-weekend").count() == 0


def test_the_edit_command_refuses_bad_input_before_starting_spark(small_cfg):
    import subprocess
    import sys

    def edit(*args):
        cmd = [sys.executable, "-m", "jobs.review.edit", *args, "--config", str(small_cfg.source)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    res = edit("report", REPORT, "--author", "alice", "--cause", "Aliens")
    assert res.returncode == 2 and "'Aliens' is not in the taxonomy" in res.stderr
    res = edit("report", REPORT, "--reject")
    assert res.returncode == 2 and "author: missing" in res.stderr
    res = edit("event", EVENT, "--author", "alice", "--set", "severity=1")
    assert res.returncode == 2 and "'severity' of an event cannot be edited" in res.stderr
