"""Rereview: the worklist from finalised rows, clustering and attribution again, rejected causes left out.

The pipeline runs once, in process, over the one small-data day with two anomalies (three reports, all ended
by midnight); each test works on its own copy of that lakehouse and writes MRFL rows by hand.
"""

import hashlib
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.lib.config import DETECTION_TYPES
from jobs.lib.tables import TABLES, Lakehouse, latest
from jobs.library import build_cluster_library
from jobs.quality.generate_data import generate
from jobs.review import build_rereview_worklist, rereview_cluster_reports, rereview_propose_cause
from jobs.stages import cluster_minority_report, detect_anomalies, ingest, propose_cause_for_minority
from tests.conftest import make_config

pytestmark = pytest.mark.slow  # a day's run of four stages, then rereviews

RUN = "demo-001"
START = datetime(2025, 8, 4, tzinfo=UTC)
DAY = datetime(2025, 8, 12, tzinfo=UTC)  # a promotion and a unit glitch; the 7 days before are the warm-up
T = DAY + timedelta(days=1)  # the tick after the latest one ingested
JOBS = (build_rereview_worklist, rereview_cluster_reports, rereview_propose_cause)
REREVIEW_LOGS = ("rereview_worklist_log", "rereview_clustered_log", "rereview_proposed_attribution_log")
MRCL, MRPAL, MRFL = (
    "minority_reports_clustered_log",
    "minority_reports_proposed_attribution_log",
    "minority_reports_finalised_log",
)
# The day's reports by series: one left Low, one whose cause an analyst rejected, one confirmed.
LOW, REJECTED, FINE = "STORE_004|SKU_003", "STORE_003|SKU_001", "STORE_004|SKU_001"
WORKLIST_COLS = [
    "report_id",
    "reasons",
    "rejected_categories",
    "previous_cause_category",
    "previous_confidence",
    "previous_library_version",
    "previous_model_version",
    "library_version",
    "attribution_model_version",
    "report_status",
    "written_at",
    "date",
]


@pytest.fixture(scope="module")
def day_run(spark, tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("rereview"))
    generate(cfg, cfg.paths.landing)
    ingest.run(spark, cfg, START, T, RUN)
    for stage in (detect_anomalies, cluster_minority_report, propose_cause_for_minority):
        stage.run(spark, cfg, DAY, T, RUN)
    return cfg


@pytest.fixture
def lake(spark, day_run, tmp_path):
    """A copy of the day's lakehouse for one test, with the reports' MRFL rows written by hand."""
    cfg = make_config(tmp_path, **{"paths.landing": str(day_run.paths.landing)})
    shutil.copytree(day_run.paths.lakehouse, cfg.paths.lakehouse)
    lake = Lakehouse(spark, cfg)
    ids = report_ids(lake)
    pal = {r.report_id: r for r in latest(lake.read(MRPAL, RUN), "run_id", "report_id").collect()}
    low, rejected, fine = (pal[ids[s]] for s in (LOW, REJECTED, FINE))
    rows = [
        finalised(low, cfg, confidence_score=0.41, confidence_tier="Low"),
        finalised(
            rejected,
            cfg,
            review_status="rejected",
            rejected_categories=[rejected.proposed_cause_category],
            edit_seq=1,
        ),
        # An older state: the current row (below) wins.
        finalised(fine, cfg, confidence_tier="Low", written_at=fine.written_at - tick_of(cfg)),
        finalised(fine, cfg, review_status="confirmed", confidence_tier="High"),
        # After T: an analyst's rejection the worklist at T does not see yet.
        finalised(
            fine,
            cfg,
            review_status="rejected",
            rejected_categories=[fine.proposed_cause_category],
            written_at=T + tick_of(cfg),
            model_written_at=T,
            edit_seq=1,
        ),
        # Still active: the pipeline's, however low.
        finalised(low, cfg, report_id="MR-active", report_status="active", window_end=None, confidence_tier="Low"),
    ]
    write_mrfl(lake, rows)
    return lake


def tick_of(cfg):
    return timedelta(seconds=cfg.tick_seconds)


def report_ids(lake) -> dict[str, str]:
    rows = lake.read("minority_reports_detected_log", RUN).select("series_key", "report_id").distinct().collect()
    ids = {r.series_key: r.report_id for r in rows}
    assert {LOW, REJECTED, FINE} <= set(ids), ids
    return ids


def finalised(pal, cfg, **changes) -> dict:
    """An MRFL row from a report's MRPAL row: the model's values, nothing edited, then ``changes``."""
    row = {f.name: pal[f.name] for f in TABLES[MRFL].schema.fields if f.name in pal.__fields__}
    row.update(
        review_status="proposed",
        analyst_comment=None,
        rejected_categories=[],
        field_sources={},
        edited_by=None,
        library_version=cfg.clustering.library_version,
        attribution_model_version=pal.model_version,
        model_source="pipeline",
        model_written_at=pal.written_at,
        edit_seq=-1,
    )
    row.update(changes)
    row["finalised_id"] = hashlib.sha256(repr(sorted(row.items())).encode()).hexdigest()
    row["date"] = row["written_at"].date()
    return row


def write_mrfl(lake, rows):
    schema = TABLES[MRFL].schema
    df = lake.spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)
    lake.append_new(MRFL, df, {r["date"] for r in rows})


def rr_id(report_id, library, model, rejected=()) -> str:
    key = "|".join([report_id, library, model, ",".join(sorted(rejected))])
    return "RR-" + hashlib.sha256(key.encode()).hexdigest()


def run_all(spark, cfg) -> list[dict]:
    return [job.run(spark, cfg, RUN) for job in JOBS]


def written(worklist=0, clustered=0, proposed=0, stale=(0, 0)) -> list[dict]:
    return [
        {"rereview_worklist_log": worklist},
        {"rereview_clustered_log": clustered, "stale": stale[0]},
        {"rereview_proposed_attribution_log": proposed, "stale": stale[1]},
    ]


def counts(lake) -> dict:
    return {n: lake.read(n, RUN).count() for n in REREVIEW_LOGS}


def stamped(df, lake, rereview_ids: dict):
    """Pipeline rows of the reports in ``rereview_ids`` as a rereview at T writes them."""
    ids = lake.spark.createDataFrame(list(rereview_ids.items()), "report_id string, rereview_id string")
    out = latest(df, "run_id", "report_id").join(ids, "report_id")
    return out.withColumns({"written_at": F.lit(T), "date": F.lit(T.date())})


# -- the worklist ------------------------------------------------------------------------------------------
def test_worklist_picks_ended_reports_with_a_reason_and_reruns_add_nothing(spark, lake):
    cfg, ids = lake.cfg, report_ids(lake)
    lib, model = cfg.clustering.library_version, cfg.attribution.model_version
    pal = {r.report_id: r for r in latest(lake.read(MRPAL, RUN), "run_id", "report_id").collect()}
    cause = pal[ids[REJECTED]].proposed_cause_category

    assert build_rereview_worklist.run(spark, cfg, RUN) == {"rereview_worklist_log": 2}
    got = lake.read("rereview_worklist_log", RUN)
    expected = spark.createDataFrame(
        [
            (ids[LOW], ["low_confidence"], [], pal[ids[LOW]].proposed_cause_category, 0.41, lib, model),
            (
                ids[REJECTED],
                ["analyst_rejected"],
                [cause],
                cause,
                pal[ids[REJECTED]].confidence_score,
                lib,
                model,
            ),
        ],
        "report_id string, reasons array<string>, rejected_categories array<string>, "
        "previous_cause_category string, previous_confidence double, previous_library_version string, "
        "previous_model_version string",
    ).withColumns(
        {
            "library_version": F.lit(lib),
            "attribution_model_version": F.lit(model),
            "report_status": F.lit("ended"),
            "written_at": F.lit(T),
            "date": F.lit(T.date()),
        }
    )
    assert_df_equality(
        got.select(WORKLIST_COLS), expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True
    )
    assert {r.rereview_id for r in got.collect()} == {
        rr_id(ids[LOW], lib, model),
        rr_id(ids[REJECTED], lib, model, [cause]),
    }
    # Again at the same tick: the same ids, nothing added.
    assert build_rereview_worklist.run(spark, cfg, RUN) == {"rereview_worklist_log": 0}

    # On demand over a date range: only reports whose window starts in [from, to).
    starts = {r.report_id: r.window_start for r in lake.read(MRFL, RUN).collect()}
    lo = starts[ids[LOW]]
    rows = build_rereview_worklist.worklist(lake.read(MRFL, RUN), T, lib, model, lo, lo + tick_of(cfg))
    assert [r.report_id for r in rows.collect()] == [ids[LOW]]
    assert build_rereview_worklist.worklist(lake.read(MRFL, RUN), T, lib, model, window_to=lo).count() == 0


def test_bad_date_range_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        build_rereview_worklist.parse_args(["--from", "2025-08-13", "--to", "2025-08-12"])
    assert "--to (2025-08-12T00:00:00Z) must be after --from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_rereview_worklist.parse_args(["--from", "yesterday"])
    assert "--from: 'yesterday' is not an ISO-8601 timestamp" in capsys.readouterr().err


# -- clustering and attribution again ----------------------------------------------------------------------
def test_rereview_writes_one_row_per_entry_at_T_without_rejected_causes_and_reruns_add_nothing(spark, lake):
    cfg, ids = lake.cfg, report_ids(lake)
    assert run_all(spark, cfg) == written(2, 2, 2)
    worklist = {r.report_id: r for r in lake.read("rereview_worklist_log", RUN).collect()}
    rr = {rid: w.rereview_id for rid, w in worklist.items()}
    low, rejected = ids[LOW], ids[REJECTED]

    # Clustering with the library the pipeline used gives the pipeline's rows, stamped at T.
    clustered = lake.read("rereview_clustered_log", RUN)
    expected = stamped(lake.read(MRCL, RUN), lake, rr)
    expected = expected.select(clustered.columns)
    assert_df_equality(clustered, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)

    # Attribution: the Low report's row is the pipeline's (same model, same evidence, nothing rejected) ...
    got = lake.read("rereview_proposed_attribution_log", RUN)
    pipeline = stamped(lake.read(MRPAL, RUN), lake, rr)
    assert_df_equality(
        got.where(F.col("report_id") == low),
        pipeline.where(F.col("report_id") == low).select(got.columns),
        ignore_nullable=True,
        ignore_metadata=True,
    )
    # ... the rejected one's proposes the pipeline's runners-up first, with their own confidence, and the
    # rejected cause at no rank.
    row = got.where(F.col("report_id") == rejected).first()
    before = pipeline.where(F.col("report_id") == rejected).first()
    ranked = [row[f"proposed_cause_category{s}"] for s in ("", "_2", "_3")]
    assert worklist[rejected].rejected_categories == [before.proposed_cause_category]
    assert before.proposed_cause_category not in ranked and None not in ranked
    assert ranked[:2] == [before.proposed_cause_category_2, before.proposed_cause_category_3]
    assert (row.confidence_score, row.confidence_score_2) == (before.confidence_score_2, before.confidence_score_3)
    assert row.supporting_evidence == before.supporting_evidence
    assert {(r.written_at, r.date, r.model_version) for r in got.collect()} == {
        (T.replace(tzinfo=None), T.date(), cfg.attribution.model_version)
    }
    assert {r.rereview_id for r in got.collect()} == set(rr.values())

    # Retried or repeated: nothing pending, nothing added.
    assert run_all(spark, cfg) == written()


def test_attribution_with_every_cause_rejected_proposes_nothing(spark, lake):
    snap = (
        latest(lake.read(MRCL, RUN), "run_id", "report_id")
        .limit(1)
        .withColumns(
            {
                "feeds_missing": F.array(F.lit("all_campaign_data"), F.lit("contextual_data")),
                "attributed_sales_total": F.lit(10.0),
                "baseline_sales_total": F.lit(5.0),
                "rejected_categories": F.array(*[F.lit(c) for c in DETECTION_TYPES]),
            }
        )
    )
    row = propose_cause_for_minority.attribute(snap, *[None] * 2, {}, lake.cfg.attribution, RUN).first()
    assert [row[f"proposed_cause_category{s}"] for s in ("", "_2", "_3")] == [None] * 3
    assert row.confidence_tier is None and row.confidence_score is None and row.model_version


def test_a_rereviewed_report_is_picked_again_only_when_another_cause_is_rejected(spark, lake):
    cfg, ids = lake.cfg, report_ids(lake)
    lib, model = cfg.clustering.library_version, cfg.attribution.model_version
    build_rereview_worklist.run(spark, cfg, RUN)
    # Say finalisation at T took the rereview's proposals (here: the pipeline's, which the rereview reproduces
    # for an unchanged model): the Low report is still Low, the other is confirmed, its rejected cause kept.
    pal = {r.report_id: r for r in latest(lake.read(MRPAL, RUN), "run_id", "report_id").collect()}
    low, other = pal[ids[LOW]], pal[ids[REJECTED]]
    at_t = {"model_source": "rereview", "written_at": T, "model_written_at": T}
    write_mrfl(
        lake,
        [
            finalised(low, cfg, confidence_tier="Low", **at_t),
            finalised(
                other,
                cfg,
                review_status="confirmed",
                rejected_categories=lake.read("rereview_worklist_log", RUN)
                .where(F.col("report_id") == ids[REJECTED])
                .first()
                .rejected_categories,
                edit_seq=1,
                **at_t,
            ),
        ],
    )
    later = T + tick_of(cfg)
    done = lake.read("rereview_worklist_log", RUN)
    worklist = build_rereview_worklist.worklist(lake.read(MRFL, RUN), later, lib, model)
    # The Low report comes back with the id it already has: nothing new to do for it. What is new is the
    # rejection written after T, which the worklist at T could not see.
    assert rr_id(ids[LOW], lib, model) in {r.rereview_id for r in worklist.collect()}
    new = rereview_cluster_reports.pending(worklist, done).collect()
    assert [(r.report_id, r.reasons) for r in new] == [(ids[FINE], ["analyst_rejected"])]

    # An analyst rejects the rereview's cause: a new rejection set, a new rereview.
    write_mrfl(
        lake,
        [
            finalised(
                low,
                cfg,
                confidence_tier="Low",
                review_status="rejected",
                rejected_categories=[low.proposed_cause_category],
                edit_seq=1,
                **at_t,
            )
        ],
    )
    worklist = build_rereview_worklist.worklist(lake.read(MRFL, RUN), later, lib, model)
    new = {r.report_id: r for r in rereview_cluster_reports.pending(worklist, done).collect()}
    assert set(new) == {ids[FINE], ids[LOW]}
    assert (new[ids[LOW]].reasons, new[ids[LOW]].rejected_categories) == (
        ["low_confidence", "analyst_rejected"],
        [low.proposed_cause_category],
    )
    assert new[ids[LOW]].rereview_id == rr_id(ids[LOW], lib, model, [low.proposed_cause_category])


def test_new_model_versions_bring_older_model_reports_and_leave_stale_entries(spark, lake, tmp_path):
    build_rereview_worklist.run(spark, lake.cfg, RUN)  # two entries under the old versions, never processed
    cfg = make_config(
        tmp_path / "v2",
        **{
            "paths.lakehouse": str(lake.cfg.paths.lakehouse),
            "clustering.library_version": "generated-v2",
            "attribution.model_version": "evidence-v2",
        },
    )
    shipped = cluster_minority_report.library_frame(cfg.clustering.library_file).assign(library_version="generated-v2")
    build_cluster_library.install(spark, cfg, shipped)
    ids = report_ids(lake)
    assert run_all(spark, cfg) == written(3, 3, 3, stale=(2, 0))
    worklist = lake.read("rereview_worklist_log", RUN).where(F.col("library_version") == "generated-v2")
    expected = spark.createDataFrame(
        [
            (ids[LOW], ["low_confidence", "older_model"]),
            (ids[REJECTED], ["analyst_rejected", "older_model"]),
            (ids[FINE], ["older_model"]),
        ],
        "report_id string, reasons array<string>",
    )
    got = worklist.select("report_id", "reasons")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
    clustered = lake.read("rereview_clustered_log", RUN).join(worklist.select("rereview_id"), "rereview_id")
    assert {r.library_version for r in clustered.collect()} == {"generated-v2"}
    proposed = lake.read("rereview_proposed_attribution_log", RUN)
    assert {r.model_version for r in proposed.collect()} == {"evidence-v2"}
    assert counts(lake) == {
        "rereview_worklist_log": 5,
        "rereview_clustered_log": 3,
        "rereview_proposed_attribution_log": 3,
    }
