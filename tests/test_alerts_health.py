"""Alerts (send_alerts) and pipeline health (check_pipeline_health) on small hand-built tables.

Mail goes to the session's loopback SMTP server (fixture ``smtp_server``), read back to see what arrived.
"""

import hashlib
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import dates_of
from jobs.stages import check_pipeline_health, send_alerts
from jobs.stages.check_pipeline_health import health_row
from jobs.stages.send_alerts import (
    AlertDeliveryError,
    SmtpNotConfiguredError,
    SmtpSettings,
    event_notifications,
    health_notifications,
)
from schemas.mrs import INGEST_AUDIT_LOG, MINORITY_REPORTS_COHORTED_LOG, PIPELINE_HEALTH_LOG, SALES_TIMESERIES_DATA
from tests.conftest import make_config

RUN = "alerts-test"
T0 = datetime(2025, 8, 12, 10, 0, tzinfo=UTC)
TICK = timedelta(minutes=15)
END = T0 + 4 * TICK
STORES = {  # store -> (retailer, region, category)
    "S1": ("RET_01", "North", "CAT_A"),
    "S2": ("RET_02", "South", "CAT_B"),
    "S3": ("RET_02", "South", "CAT_B"),
    "S4": ("RET_02", "South", "CAT_A"),
}
SUBSCRIBERS = [
    {"email": "all@example.com", "name": "Everything"},
    {"email": "north@example.com", "scope": {"region": ["North"]}},
    {"email": "ret2b@example.com", "scope": {"retailer_id": ["RET_02"], "category": ["CAT_B"]}},
    {"email": "ops@example.com", "scope": {"retailer_id": ["RET_01"]}, "health": True},
]


def config(root, **extra):
    return make_config(root, **{"alerts.subscribers": SUBSCRIBERS, **extra})


def t(n: int) -> datetime:
    return T0 + n * TICK


def mrch(report_id, event, tick, severity, cause, store="S1", start=0, event_start=None, status="active"):
    """One MRCH row: report ``report_id`` (window from tick ``start``) in ``event`` at tick ``tick``."""
    retailer, region, category = STORES[store]
    row = {
        "report_id": report_id,
        "run_id": RUN,
        "series_key": f"{store}|K1",
        "store_id": store,
        "sku": "K1",
        "retailer_id": retailer,
        "region": region,
        "category": category,
        "window_start": t(start),
        "window_end": None,
        "direction": "spike",
        "report_group_id": event,
        "event_status": status,
        "version": tick - start + 1,
        "severity_score": severity,
        "impact_estimate": 10.0,
        "attributed_sales_total": 30.0,
        "baseline_sales_total": 20.0,
        "feature_vector": None,
        "cluster_id": None,
        "cluster_name": None,
        "similarity_score": None,
        "cluster_match_confidence": None,
        "tsne_x": None,
        "tsne_y": None,
        "proposed_cause": None,
        "proposed_cause_category": cause,
        "confidence_score": 0.8,
        "supporting_evidence": "",
        "cohort_id": f"MC-{event}-{tick}",
        "cohort_name": f"{cause}: {event}",
        "cohort_cause_category": cause,
        "cohort_confidence": 0.8,
        "cohort_reason": "single report",
        "cohort_size": 1,
        "cohort_store_count": 1,
        "event_window_start": t(start if event_start is None else event_start),
        "event_window_end": None,
        "report_status": "active",
        "written_at": t(tick),
        "is_degraded": False,
        "date": t(tick).date(),
    }
    return tuple(row[f] for f in MINORITY_REPORTS_COHORTED_LOG.fieldNames())


# E1 turns severe and a Competitor Stockout at tick 1; a RET_02/CAT_B store joins it only at tick 3.
# E2 is a mild Social/Viral Event from tick 2; E3 never triggers.
ROWS = [
    mrch("R1", "E1", 0, 0.50, "Data Error"),
    mrch("R1", "E1", 1, 0.92, "Competitor Stockout"),
    mrch("R1", "E1", 2, 0.95, "Competitor Stockout"),
    mrch("R1", "E1", 3, 0.95, "Competitor Stockout"),
    mrch("R9", "E1", 3, 0.97, "Competitor Stockout", store="S2", start=3, event_start=0),
    mrch("R2", "E2", 2, 0.40, "Social/Viral Event", store="S3", start=2),
    mrch("R2", "E2", 3, 0.45, "Social/Viral Event", store="S3", start=2),
    mrch("R3", "E3", 1, 0.70, "Data Error", store="S4", start=1),
]


def mrch_frame(spark, rows=ROWS):
    return spark.createDataFrame(rows, MINORITY_REPORTS_COHORTED_LOG)


KEY_COLS = ["event_id", "trigger_condition", "delivered_to", "written_at", "severity", "cause_category", "report_id"]


def keyed(spark, rows):
    schema = "event_id string, trigger_condition string, delivered_to string, written_at timestamp, "
    return spark.createDataFrame(rows, schema + "severity double, cause_category string, report_id string")


# -- event alerts: the transform ----------------------------------------------------------------------------
def test_triggers_fire_at_their_first_tick_for_the_subscribers_in_scope_then(spark, tmp_path):
    cfg = config(tmp_path)
    out = event_notifications(mrch_frame(spark), cfg.alerts, cfg.paths.artifacts / "events")
    sev, cs, viral = "severity>=0.9", "category:Competitor Stockout", "category:Social/Viral Event"
    e1_sev = [("E1", sev, who, t(1), 0.92, "Competitor Stockout", "R1") for who in ("all", "north", "ops")]
    e1_cat = [("E1", cs, who, t(1), 0.92, "Competitor Stockout", "R1") for who in ("all", "north", "ops")]
    e2 = [("E2", viral, who, t(2), 0.40, "Social/Viral Event", "R2") for who in ("all", "ret2b")]
    expected = keyed(spark, [(*r[:2], f"{r[2]}@example.com", *r[3:]) for r in e1_sev + e1_cat + e2])
    # ret2b@ is not told about E1: at its trigger tick no member was a RET_02/CAT_B store (one joined later).
    assert_df_equality(
        out.select(*KEY_COLS), expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True
    )

    row = out.where((F.col("event_id") == "E1") & (F.col("delivered_to") == "north@example.com"))
    row = row.where(F.col("trigger_condition") == sev).first()
    digest = hashlib.sha256(f"{RUN}|E1|{sev}|north@example.com".encode()).hexdigest()
    assert row["notification_id"] == f"NT-{digest}"
    assert (row["channel"], row["report_status"], row["is_degraded"]) == ("email+ui", "active", False)
    assert row["link"] == f"{cfg.paths.artifacts}/events/{RUN}/E1.png"
    assert row["subject"] == "[MRS alert] severity>=0.9: Competitor Stockout: E1"
    for text in (
        "Severity:  0.92 (alert threshold 0.9)",
        "Cause:     Competitor Stockout",
        "Stores:    S1 (1)",
        "SELECT * FROM mrs.minority_events_log WHERE event_id = 'E1' AND run_id = 'alerts-test'",
    ):
        assert text in row["body"]


def test_threshold_and_categories_come_from_config(spark, tmp_path):
    cfg = config(tmp_path, **{"alerts.severity_threshold": 0.7, "alerts.high_impact_categories": []})
    out = event_notifications(mrch_frame(spark), cfg.alerts, cfg.paths.artifacts / "events")
    got = {
        (r.event_id, r.trigger_condition, r.written_at) for r in out.where("delivered_to = 'all@example.com'").collect()
    }
    naive = {n: t(n).replace(tzinfo=None) for n in range(4)}
    assert got == {("E1", "severity>=0.7", naive[1]), ("E3", "severity>=0.7", naive[1])}


def test_scope_needs_each_list_matched_by_some_member(spark, tmp_path):
    subs = [
        {"email": "both@example.com", "scope": {"region": ["North"], "category": ["CAT_B"]}},  # S1 and S2 together
        {"email": "none@example.com", "scope": {"region": ["North"], "category": ["CAT_C"]}},
        {"email": "west@example.com", "scope": {"region": ["West"]}},
    ]
    cfg = make_config(tmp_path, **{"alerts.subscribers": subs})
    rows = [
        mrch("R1", "E5", 0, 0.95, "Data Error", store="S1"),
        mrch("R2", "E5", 0, 0.30, "Data Error", store="S2"),
    ]
    out = event_notifications(mrch_frame(spark, rows), cfg.alerts, cfg.paths.artifacts / "events")
    assert [(r.delivered_to, r.severity) for r in out.collect()] == [("both@example.com", 0.95)]


# -- event alerts: the job, with mail -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def mrch_table(spark, tmp_path_factory):
    """ROWS as a Delta table, written once; each test copies its files into its own lakehouse."""
    cfg = config(tmp_path_factory.mktemp("mrch"))
    lake = Lakehouse(spark, cfg)
    lake.append_new("minority_reports_cohorted_log", mrch_frame(spark), dates_of(T0, END))
    return Path(lake.path("minority_reports_cohorted_log"))


def lake_with(spark, cfg, table: Path) -> Lakehouse:
    lake = Lakehouse(spark, cfg)
    shutil.copytree(table, lake.path("minority_reports_cohorted_log"))
    return lake


@pytest.mark.slow
def test_range_run_equals_tick_by_tick_and_a_repeat_sends_nothing(spark, tmp_path, smtp_server, mrch_table):
    shared = {"paths.artifacts": str(tmp_path / "artifacts")}  # the link names it: the same for both lakes
    cfg_range, cfg_ticks = config(tmp_path / "range", **shared), config(tmp_path / "ticks", **shared)
    lake_range, lake_ticks = lake_with(spark, cfg_range, mrch_table), lake_with(spark, cfg_ticks, mrch_table)
    smtp_server.clear()

    first = send_alerts.run(spark, cfg_range, T0, END, RUN)
    assert first == {"ui_notifications_log": 8, "emails_sent": 8, "pending": 8}
    mail = smtp_server.clear()
    logged = lake_range.read("ui_notifications_log", RUN)
    assert sorted(rcpt[0] for rcpt, _ in mail) == sorted(r.delivered_to for r in logged.collect())
    by_id = {msg["X-MRS-Notification-Id"].strip(): msg for _, msg in mail}
    row = logged.where("delivered_to = 'ret2b@example.com'").first()
    msg = by_id[row["notification_id"]]
    assert (msg["From"], msg["To"], msg["Subject"]) == (cfg_range.alerts.sender, row["delivered_to"], row["subject"])
    assert "SELECT * FROM mrs.minority_events_log WHERE event_id = 'E2'" in msg.get_content()

    # The same run again (a retry, a backfill): no second email, no new row.
    assert send_alerts.run(spark, cfg_range, T0, END, RUN) == {
        "ui_notifications_log": 0,
        "emails_sent": 0,
        "pending": 0,
    }
    assert smtp_server.messages() == []
    assert lake_range.read("ui_notifications_log", RUN).count() == 8

    for n in range(4):
        send_alerts.run(spark, cfg_ticks, t(n), t(n + 1), RUN)
    assert len(smtp_server.clear()) == 8
    assert_df_equality(
        lake_ticks.read("ui_notifications_log", RUN), logged, ignore_row_order=True, ignore_nullable=True
    )


def test_a_failing_smtp_server_raises_and_records_nothing(spark, tmp_path, mrch_table):
    cfg = config(tmp_path)
    lake = lake_with(spark, cfg, mrch_table)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(AlertDeliveryError, match=rf"127\.0\.0\.1:{closed} failed after 0 of 8"):
        send_alerts.run(spark, cfg, T0, END, RUN, smtp=SmtpSettings(host="127.0.0.1", port=closed, timeout=5))
    assert lake.read("ui_notifications_log").count() == 0


def test_a_send_failing_midway_records_what_was_sent_and_a_retry_sends_the_rest(
    spark, tmp_path, smtp_server, mrch_table
):
    from aiosmtpd.controller import Controller

    class RefuseNorth:  # accepts mail, except for one recipient
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address == "north@example.com":
                return "550 mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    cfg = config(tmp_path)
    lake = lake_with(spark, cfg, mrch_table)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refusing = Controller(RefuseNorth(), hostname="127.0.0.1", port=port)
    refusing.start()
    try:
        with pytest.raises(AlertDeliveryError, match="failed after 1 of 8"):  # all@ of E1 first, then north@
            send_alerts.run(spark, cfg, T0, END, RUN, smtp=SmtpSettings(host="127.0.0.1", port=port))
    finally:
        refusing.stop()
    assert [r.delivered_to for r in lake.read("ui_notifications_log").collect()] == ["all@example.com"]
    smtp_server.clear()
    assert send_alerts.run(spark, cfg, T0, END, RUN)["emails_sent"] == 7  # the session's server, from the env
    assert len(smtp_server.clear()) == 7
    assert lake.read("ui_notifications_log").count() == 8


def test_pending_alerts_without_an_smtp_host_is_a_clear_error(spark, tmp_path, mrch_table):
    cfg = config(tmp_path)
    lake = lake_with(spark, cfg, mrch_table)
    with pytest.raises(SmtpNotConfiguredError, match=r"8 notification.* MRS_SMTP_HOST is not set"):
        send_alerts.run(spark, cfg, T0, END, RUN, smtp=SmtpSettings())
    assert lake.read("ui_notifications_log").count() == 0
    # Nothing to send needs no server at all.
    assert send_alerts.run(spark, cfg, END, END + TICK, RUN, smtp=SmtpSettings())["pending"] == 0


def test_smtp_settings_from_the_environment():
    env = {"MRS_SMTP_HOST": "mail.example.com", "MRS_SMTP_PORT": "587", "MRS_SMTP_USER": "mrs",
           "MRS_SMTP_PASSWORD": "secret", "MRS_SMTP_STARTTLS": "True"}  # fmt: skip
    s = SmtpSettings.from_env(env)
    assert (s.host, s.port, s.user, s.password, s.starttls) == ("mail.example.com", 587, "mrs", "secret", True)
    assert "secret" not in repr(s)
    # An Airflow connection without port or login renders those fields as "None".
    unset = SmtpSettings.from_env({"MRS_SMTP_HOST": "None", "MRS_SMTP_PORT": "None", "MRS_SMTP_USER": ""})
    assert (unset.host, unset.port, unset.user, unset.starttls) == (None, 25, None, False)
    with pytest.raises(ValueError, match="MRS_SMTP_PORT"):
        SmtpSettings.from_env({"MRS_SMTP_PORT": "25a"})
    with pytest.raises(ValueError, match="MRS_SMTP_STARTTLS"):
        SmtpSettings.from_env({"MRS_SMTP_STARTTLS": "maybe"})


# -- pipeline health -------------------------------------------------------------------------------------
def audit_rows(ticks, read=100, quarantined=1, empty=()):
    out = []
    for n in ticks:
        accepted = 0 if n in empty else read - quarantined
        row = (RUN, t(n), [], read if accepted else 0, accepted, quarantined if accepted else 0, 0, 2, [], t(n),
               accepted == 0, t(n).date())  # fmt: skip
        out.append(row)
    return out


def sales_rows(cells):
    """(series, tick) -> a sales_timeseries_data row."""
    rows = []
    for series, n in cells:
        ts = t(n)
        rows.append((RUN, series, series, None, "RET_01", "North", None, ts, 5.0, 5.0, 1, ts, False, ts.date()))
    return rows


def health_of(spark, cfg, audit, sales, written=(("ingest_audit_log", 4),)):
    a = spark.createDataFrame(audit, INGEST_AUDIT_LOG)
    s = spark.createDataFrame(sales_rows(sales), SALES_TIMESERIES_DATA)
    w = spark.createDataFrame(list(written), "table string, rows long")
    return health_row(a, s, w, RUN, T0, END, cfg.health, cfg.tick_seconds)


YESTERDAY = [("A", -96), ("B", -96)]  # both series had data the day before
FULL = [(x, n) for x in "AB" for n in range(4)]


def test_health_ok(spark, small_cfg):
    out = health_of(spark, small_cfg, audit_rows(range(-96, 4)), YESTERDAY + FULL)
    measures = (t(3), 0.0, 2, 2, 1.0, 400, 4, 0.01, {"ingest_audit_log": 4})
    governance = ("ok", [], "ok", t(3), False, t(3).date())
    expected = spark.createDataFrame([(RUN, T0, END, *measures, *governance)], PIPELINE_HEALTH_LOG)
    assert_df_equality(out, expected)


def test_health_degraded_by_coverage_error_rate_and_empty_ticks(spark, small_cfg):
    # B misses tick 2 and C (new) cannot make up for it; 10% of rows quarantined.
    cells = YESTERDAY + [c for c in FULL if c != ("B", 2)] + [("C", 2)]
    row = health_of(spark, small_cfg, audit_rows(range(4), quarantined=10), cells).first()
    assert (row.health_status, row.expected_series, row.series_with_data, row.coverage) == ("degraded", 2, 3, 0.875)
    assert row.error_rate == pytest.approx(0.1)
    assert row.problems == ["coverage 0.88 below 0.9", "error rate 0.1 above 0.05 (40 of 400 rows quarantined)"]
    assert (row.report_status, row.is_degraded) == ("degraded", True)

    # A tick without input: ingest's audit row for it is degraded.
    cells = YESTERDAY + [(x, n) for x in "AB" for n in (0, 1, 3)]
    row = health_of(spark, small_cfg, audit_rows(range(4), empty=(2,)), cells).first()
    assert (row.health_status, row.rows_read, row.rows_quarantined) == ("degraded", 300, 3)
    assert row.problems == ["coverage 0.75 below 0.9", "1 ingest tick(s) without input: 2025-08-12T10:30:00Z"]


def test_health_stale_and_no_data(spark, small_cfg):
    # Ingest ran (audit rows for every tick) but no data arrived after 08:45: the audit's newest tick is not data.
    audit = audit_rows(range(-7, 4), empty=range(-2, 4))
    row = health_of(spark, small_cfg, audit, [*YESTERDAY, ("A", -3), ("B", -3)]).first()
    assert (row.health_status, row.latest_tick_seen, row.freshness_lag_minutes) == (
        "stale",
        t(-3).replace(tzinfo=None),
        90.0,  # 11:00 - (09:15 + one tick)
    )
    assert row.problems[0] == "freshness lag 90 minutes above 60 (newest data at 2025-08-12T09:15:00Z)"
    assert row.problems[1] == "coverage 0 below 0.9"

    row = health_of(spark, small_cfg, audit_rows(range(4), empty=range(4)), []).first()
    assert (row.health_status, row.latest_tick_seen, row.freshness_lag_minutes) == ("stale", None, None)
    assert (row.expected_series, row.coverage, row.error_rate) == (0, 0.0, 0.0)
    assert row.problems[0] == "no sales data for this run yet"


def test_health_run_counts_rows_written_and_adds_nothing_when_repeated(spark, tmp_path):
    cfg = config(tmp_path)
    lake = Lakehouse(spark, cfg)
    days = dates_of(t(-96), END)
    lake.append_new("ingest_audit_log", spark.createDataFrame(audit_rows(range(-96, 4)), INGEST_AUDIT_LOG), days)
    sales = spark.createDataFrame(sales_rows(YESTERDAY + FULL), SALES_TIMESERIES_DATA)
    lake.append_new("sales_timeseries_data", sales, days)
    assert check_pipeline_health.run(spark, cfg, T0, END, RUN) == {"pipeline_health_log": 1, "health_status": "ok"}
    assert check_pipeline_health.run(spark, cfg, T0, END, RUN)["pipeline_health_log"] == 0
    row = lake.read("pipeline_health_log", RUN).first()
    written = row.rows_written
    assert (written["ingest_audit_log"], written["sales_timeseries_data"], written["minority_event_log"]) == (4, 8, 0)
    # The pipeline's own tables, not the other DAGs' (edits, rereviews, the cluster library).
    assert {"minority_reports", "protection_feed", "user_edits_log", "minority_report_reference_price"} <= set(written)
    assert not {"rereview_clustered_log", "user_minority_events_edits_log", "cluster_library"} & set(written)
    not_counted = {"minority_reports_as_of", "minority_events_as_of", "ui_notifications_log", "pipeline_health_log"}
    assert not not_counted & set(written) and len(written) == 21
    assert (row.rows_read, row.rows_quarantined, row.written_at) == (400, 4, t(3).replace(tzinfo=None))


# -- health alerts ---------------------------------------------------------------------------------------
def test_health_alerts_reach_only_health_subscribers(spark, tmp_path, smtp_server):
    cfg = config(tmp_path)
    ok = health_of(spark, cfg, audit_rows(range(-96, 4)), YESTERDAY + FULL)
    stale = health_of(spark, cfg, audit_rows(range(4), empty=range(4)), [])
    later = {"interval_start": F.lit(t(4)), "interval_end": F.lit(t(8)), "written_at": F.lit(t(7))}
    stale = stale.withColumns(later)  # a later run's row
    health = ok.unionByName(stale)
    out = health_notifications(health, cfg.alerts).collect()
    assert [(r.delivered_to, r.trigger_condition, r.event_id, r.report_status) for r in out] == [
        ("ops@example.com", "health:stale", None, "stale")
    ]
    digest = hashlib.sha256(f"{RUN}|health@2025-08-12T11:00:00Z|health:stale|ops@example.com".encode()).hexdigest()
    assert out[0].notification_id == f"NT-{digest}"
    assert "  - no sales data for this run yet" in out[0].body

    # Through the job: the health log rows of the interval, and no event rows at all.
    lake = Lakehouse(spark, cfg)
    lake.append_new("pipeline_health_log", health)
    smtp_server.clear()
    assert send_alerts.run(spark, cfg, T0, t(8), RUN)["emails_sent"] == 1
    [(rcpt, msg)] = smtp_server.clear()
    assert rcpt == ["ops@example.com"] and msg["Subject"].startswith("[MRS health] pipeline stale")


def test_health_counts_what_the_stages_before_it_write():
    from jobs.runtime.pipeline import STAGES

    assert check_pipeline_health.upstream() == STAGES[: STAGES.index(check_pipeline_health)]
