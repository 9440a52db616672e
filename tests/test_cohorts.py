"""Cohorting: the linking rules on one tick (pandas), and event lifecycles across ticks (Spark, chispa)."""

import hashlib
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from chispa import assert_df_equality

from jobs.lib.tables import TABLES
from jobs.stages.build_minority_report_cohorts import cohort, cohort_tick, event_id, snapshots

T0 = pd.Timestamp("2025-08-12 10:00")
TICK = pd.Timedelta(minutes=15)


def report(rid, store="S1", sku="K1", start=T0, end=None, cause="Competitor Stockout", cluster="Competitor Stockout",
           region="North", retailer="R1", refs=(), direction="spike"):  # fmt: skip
    return {
        "report_id": rid,
        "series_key": f"{store}|{sku}",
        "store_id": store,
        "sku": sku,
        "retailer_id": retailer,
        "region": region,
        "category": "CAT_A",
        "window_start": pd.Timestamp(start),
        "window_end": pd.Timestamp(end) if end is not None else pd.NaT,
        "direction": direction,
        "report_status": "ended" if end is not None else "active",
        "cluster_name": cluster,
        "proposed_cause_category": cause,
        "confidence_score": 0.8,
        "supporting_evidence": [f"contextual_data:{r} -> {cause} +2.40" for r in refs],
        "is_degraded": False,
    }


def groups(out: pd.DataFrame) -> set[frozenset]:
    return {frozenset(g["report_id"]) for _, g in out.groupby("report_group_id")}


def test_event_id_follows_spec_decision_3():
    digest = hashlib.sha256(b"MR-abc|2025-08-12T10:00:00Z").hexdigest()
    assert event_id("MR-abc", T0) == f"ME-{digest}"


def test_temporal_adjacency_joins_a_series_and_like_reports_of_one_store(small_cfg):
    c = small_cfg.cohorting  # gap 30 minutes
    s = pd.DataFrame(
        [
            report("A", sku="K1", start=T0, end=T0 + 4 * TICK),
            report("B", sku="K1", start=T0 + 6 * TICK),  # 30 minutes after A ended: adjacent
            report("C", sku="K2", start=T0 + TICK),  # another SKU, same cause and direction: same event
            report("D", sku="K3", start=T0 + TICK, cause="Social/Viral Event", cluster="TikTok Viral"),
            report("E", sku="K4", start=T0 - 12 * TICK, end=T0 - 4 * TICK),  # ended 1 hour before A began
        ]
    )
    out = cohort_tick(s, T0 + 8 * TICK, c)
    assert groups(out) == {frozenset("ABC"), frozenset("D"), frozenset("E")}
    abc = out[out["report_id"] == "B"].iloc[0]
    assert abc["report_group_id"] == event_id("A", T0)  # the earliest report anchors the event
    assert (abc["cohort_reason"], abc["cohort_size"], abc["event_status"]) == ("temporal adjacency", 3, "active")
    assert abc["cohort_name"] == "Competitor Stockout: CAT_A at S1"


def test_shared_cause_joins_stores_that_cite_one_record_or_else_match_one_cluster(small_cfg):
    c = small_cfg.cohorting
    later = T0 + TICK
    west = {"region": "West", "retailer": "R3"}
    s = pd.DataFrame(
        [
            report("A", store="S1", refs=["ctx-1"]),
            report("B", store="S2", start=later, refs=["ctx-1"]),  # the same notice: joins
            report("C", store="S3", start=later, refs=["ctx-2"]),  # a different notice: its own event
            report("D", store="S4", start=later, cluster="Promo Uplift"),  # another cluster and no record
            report("E", store="S5", start=later, region="South", retailer="R2"),  # outside the scope
            report("F", store="S6", start=later, cluster="Competitor Stockout 2", refs=["ctx-1"]),
            report("G", store="S7", start=later, cluster="TikTok Viral", refs=["ctx-1"]),  # the notice wins
            report("H", store="S8", start=later, cluster="TikTok Viral", refs=["ctx-3"]),
            # Without records, the cluster family decides.
            report("J", store="S10", start=later, cluster="Promo Uplift", **west),
            report("K", store="S11", start=later, cluster="Promo Uplift 2", **west),
            report("L", store="S12", start=later, cluster="TikTok Viral", **west),
            report("M", store="S13", sku="K2", start=later, cluster="Promo Uplift", **west),  # another product
        ]
    )
    out = cohort_tick(s, T0 + 4 * TICK, c)
    assert groups(out) == {frozenset(g) for g in ("ABFG", "C", "D", "E", "H", "JK", "L", "M")}
    row = out[out["report_id"] == "A"].iloc[0]
    assert (row["cohort_reason"], row["cohort_store_count"]) == ("shared cause", 4)
    assert row["cohort_name"] == "Competitor Stockout: K1 at 4 stores in North"
    assert row["cohort_confidence"] == pytest.approx(0.8)


def test_events_ended_beyond_the_lookback_are_final_and_left_out(small_cfg):
    c = small_cfg.cohorting
    old = report("A", start=T0, end=T0 + TICK)
    now = T0 + pd.Timedelta(hours=c.lookback_hours) + 2 * TICK
    assert cohort_tick(pd.DataFrame([old]), now, c).empty
    assert len(cohort_tick(pd.DataFrame([old]), now - 2 * TICK, c)) == 1


# -- lifecycles across ticks through the Spark transform ---------------------------------------------------
def _snapshots(spark, reports: list[dict]):
    """MRDL, MRCL and MRPAL rows for hand-made reports: one snapshot per tick from start to end (or last)."""
    mrdl, mrcl, mrpal = [], [], []
    for r in reports:
        t = r["start"]
        while t <= (r["end"] if r["end"] is not None else r["last"]):
            ended = r["end"] is not None and t == r["end"]
            keys = {
                "report_id": r["id"],
                "run_id": "t",
                "series_key": f"{r['store']}|K1",
                "store_id": r["store"],
                "sku": "K1",
                "retailer_id": "R1",
                "region": "North",
                "category": "CAT_A",
                "window_start": r["start"],
                "window_end": r["end"] if ended else None,
                "direction": "spike",
                "report_status": "ended" if ended else "active",
                "written_at": t,
                "is_degraded": False,
                "date": t.date(),
            }
            mrdl.append(
                {
                    **keys,
                    "first_detected_from": r["start"],
                    "severity": 0.5,
                    "peak_anomaly_score": 0.9,
                    "attributed_sales_total": 30.0,
                    "baseline_sales_total": 10.0,
                    "ticks_active": 1,
                    "model_version": "m",
                }
            )
            mrcl.append(
                {
                    **keys,
                    "feature_vector": [0.0],
                    "feature_names": ["x"],
                    "slice_ticks": 1,
                    "library_version": "v",
                    "cluster_id": "C01",
                    "cluster_name": r["cluster"],
                    "similarity_score": 0.9,
                    "cluster_match_confidence": 0.5,
                    "second_cluster_name": None,
                }
            )
            mrpal.append(
                {
                    **keys,
                    "cluster_id": "C01",
                    "cluster_name": r["cluster"],
                    **{f"proposed_cause{s}": "x" for s in ("", "_2", "_3")},
                    "proposed_cause_category": "Competitor Stockout",
                    "proposed_cause_category_2": "Data Error",
                    "proposed_cause_category_3": "Social/Viral Event",
                    **{f"impact_vector{s}": "baseline drift" for s in ("", "_2", "_3")},
                    "confidence_score": 0.8,
                    "confidence_score_2": 0.1,
                    "confidence_score_3": 0.05,
                    "confidence_tier": "High",
                    "supporting_evidence": [],
                    "evidence_sources_missing": [],
                    "model_version": "e",
                }
            )
            t += timedelta(minutes=15)

    def frame(rows, table):
        schema = TABLES[table].schema
        return spark.createDataFrame([tuple(row[f.name] for f in schema.fields) for row in rows], schema)

    return snapshots(
        frame(mrdl, "minority_reports_detected_log"),
        frame(mrcl, "minority_reports_clustered_log"),
        frame(mrpal, "minority_reports_proposed_attribution_log"),
    )


def _t(hh, mm):
    return datetime(2025, 8, 12, hh, mm)


def test_an_event_ends_reopens_with_its_identity_and_absorbs_a_later_merge(spark, small_cfg):
    # A (S1) ends at 10:30; B (S1) starts 10:45, within the 30-minute gap: the event reopens as A's.
    # C (S2) starts 10:15 in another cluster, then nothing links it; D (S2, A's cluster) starts 11:00 and
    # overlaps B, so C+D's event (anchored by C, 10:15) merges with A's (anchored by A, 10:00).
    cs, last = "Competitor Stockout", _t(11, 30)
    reports = [
        {"id": "A", "store": "S1", "start": _t(10, 0), "end": _t(10, 30), "cluster": cs},
        {"id": "B", "store": "S1", "start": _t(10, 45), "end": None, "last": last, "cluster": cs},
        {"id": "C", "store": "S2", "start": _t(10, 15), "end": None, "last": last, "cluster": "Promo Uplift"},
        {"id": "D", "store": "S2", "start": _t(11, 0), "end": None, "last": last, "cluster": cs},
    ]
    snaps = _snapshots(spark, reports)
    empty = spark.createDataFrame([], TABLES["minority_report_embedding"].schema)
    start, end = datetime(2025, 8, 12, 10, 0, tzinfo=UTC), datetime(2025, 8, 12, 11, 30, tzinfo=UTC)
    out = cohort(snaps, empty, start, end, small_cfg, "t")
    ea, ec = event_id("A", _t(10, 0)), event_id("C", _t(10, 15))
    cols = ["written_at", "event_id", "change", "event_status", "report_count", "merged_into"]
    got = out["minority_event_log"].select(*cols)
    expected = spark.createDataFrame(
        [
            (_t(10, 0), ea, "created", "active", 1, None),
            (_t(10, 15), ec, "created", "active", 1, None),
            (_t(10, 30), ea, "ended", "ended", 1, None),
            (_t(10, 45), ea, "reopened", "active", 2, None),
            # D joins C (its series) and shares A's cause and cluster with B: C's event merges into A's.
            (_t(11, 0), ea, "membership", "active", 4, None),
            (_t(11, 0), ec, "merged", "merged", 1, ea),
        ],
        "written_at timestamp, event_id string, change string, event_status string, report_count int, "
        "merged_into string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

    ended = out["minority_event_ended_log"].select("event_id", "window_end", "written_at").collect()
    assert [tuple(r) for r in ended] == [(ea, _t(10, 30), _t(10, 30))]
    mrch = out["minority_reports_cohorted_log"]
    # At 11:15 all four reports are one active event anchored by A; A's row keeps coming while it is active.
    at = mrch.where(mrch.written_at == _t(11, 15)).select("report_id", "report_group_id", "cohort_size").collect()
    assert sorted((r.report_id, r.report_group_id, r.cohort_size) for r in at) == [(x, ea, 4) for x in "ABCD"]
    versions = [r.version for r in mrch.where("report_id = 'B'").orderBy("written_at").collect()]
    assert versions == sorted(versions) and versions[0] == 1
