"""Alerts: email the subscribers of every Minority Event that turns severe or high-impact, and of unhealthy runs.

Spec note 004 section 8.1. A Minority Event alerts when, at some tick, its most severe member report reaches
``alerts.severity_threshold`` (trigger ``severity>=0.9``) or its cohort cause is one of
``alerts.high_impact_categories`` (trigger ``category:<Detection Type>``). Each trigger is dated by the FIRST tick
it held, read from the event's ``minority_reports_cohorted_log`` (MRCH) rows back to its window start, so a run
over a range writes the same rows as tick-by-tick runs, and a trigger that an earlier run failed to send is
sent by the next run that sees the event.
A subscriber (``alerts.subscribers``) receives it when each list of its scope (retailer_id, region, category;
empty = any) is matched by some member report of the event at that tick. ``pipeline_health_log`` rows of the
interval that are not ok go to the subscribers with ``health: true`` (trigger ``health:<status>``).

Every (event or health check, trigger, recipient) gets exactly one email and one ``ui_notifications_log`` row,
``notification_id`` = NT- + sha256(run_id | event_id or health@<interval_start> | trigger | recipient), however
often the run is repeated: notifications already in the log are not sent again. Mail goes through one SMTP
connection per run, configured by ``MRS_SMTP_HOST``, ``MRS_SMTP_PORT``, ``MRS_SMTP_USER``, ``MRS_SMTP_PASSWORD``
and ``MRS_SMTP_STARTTLS`` (the DAG renders them from the Airflow connection ``alerts.smtp_conn_id``). Only what
was sent is recorded: when a send fails, the ones sent before it are recorded and the job fails, so a retry
sends the rest.

    spark-submit jobs/stages/send_alerts.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from pyspark.sql import Column, DataFrame, Row, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Alerts, Config
from jobs.lib.tables import Lakehouse, conform
from jobs.lib.ticks import dates_between, parse_ts
from schemas.mrs import UI_NOTIFICATIONS_LOG

WRITES = ("ui_notifications_log",)
CHANNEL = "email+ui"
HEALTH_DAG = "mrs_pipeline"  # the DAG whose runs a health alert links to

MRCH_COLUMNS = (
    "run_id",
    "report_group_id",
    "report_id",
    "store_id",
    "retailer_id",
    "region",
    "category",
    "window_start",
    "severity_score",
    "cohort_cause_category",
    "cohort_name",
    "event_status",
    "event_window_start",
    "written_at",
    "is_degraded",
)


class SmtpNotConfiguredError(RuntimeError):
    """Notifications are pending but there is no SMTP server to send them through."""


class AlertDeliveryError(RuntimeError):
    """A notification could not be sent; those sent before it are recorded."""


# -- SMTP settings --------------------------------------------------------------------------------------
_UNSET = ("", "None")  # an Airflow template renders a connection field that is not set as "None"


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpSettings:
        """Read ``MRS_SMTP_*``; a malformed value raises naming its variable."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            v = env.get(name, "").strip()
            return None if v in _UNSET else v

        port = get("MRS_SMTP_PORT")
        if port is not None and not port.isdigit():
            raise ValueError(f"MRS_SMTP_PORT: {port!r} is not a port number")
        tls = (get("MRS_SMTP_STARTTLS") or "false").lower()
        if tls not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"MRS_SMTP_STARTTLS: {tls!r} must be true or false")
        return cls(
            host=get("MRS_SMTP_HOST"),
            port=int(port) if port else 25,
            user=get("MRS_SMTP_USER"),
            password=get("MRS_SMTP_PASSWORD"),
            starttls=tls in ("true", "1", "yes"),
        )


# -- transforms -----------------------------------------------------------------------------------------
def _iso(c: Column | str) -> Column:
    return F.date_format(c, "yyyy-MM-dd'T'HH:mm:ss'Z'")


def _notification_id(*parts: Column) -> Column:
    return F.concat(F.lit("NT-"), F.sha2(F.concat_ws("|", *parts), 256))


def _subscribers(spark: SparkSession, alerts: Alerts, health_only: bool = False) -> DataFrame:
    rows = [
        (s.email, s.name or s.email, s.scope.retailer_id, s.scope.region, s.scope.category)
        for s in alerts.subscribers
        if s.health or not health_only
    ]
    schema = "delivered_to string, sub_name string, s_retailer array<string>, s_region array<string>, "
    return spark.createDataFrame(rows, schema + "s_category array<string>")


def event_states(mrch: DataFrame) -> DataFrame:
    """MRCH rows -> one row per event and tick: its members' largest severity, cause, name, status, anchor
    (the earliest member, ties by report_id, as cohorting picks it) and the stores, retailers, regions and
    categories its members cover."""
    return mrch.groupBy("run_id", F.col("report_group_id").alias("event_id"), "written_at").agg(
        F.max("severity_score").alias("severity"),
        F.max("cohort_cause_category").alias("cause_category"),  # one value per event and tick
        F.max("cohort_name").alias("cohort_name"),
        F.max("event_status").alias("event_status"),
        F.min("event_window_start").alias("event_window_start"),
        F.min_by("report_id", F.struct("window_start", "report_id")).alias("anchor_report_id"),
        F.count_distinct("report_id").alias("report_count"),
        F.array_sort(F.collect_set("store_id")).alias("stores"),
        F.collect_set("retailer_id").alias("retailers"),
        F.collect_set("region").alias("regions"),
        F.collect_set("category").alias("categories"),
        F.max(F.col("is_degraded").cast("int")).cast("boolean").alias("is_degraded"),
    )


def first_triggers(states: DataFrame, alerts: Alerts) -> DataFrame:
    """The event states at the first tick each trigger held, with its ``trigger_condition``."""
    severe = F.when(
        F.col("severity") >= F.lit(alerts.severity_threshold), F.lit(f"severity>={alerts.severity_threshold:g}")
    )
    high_impact = F.when(
        F.col("cause_category").isin(list(alerts.high_impact_categories)),
        F.concat(F.lit("category:"), "cause_category"),
    )
    held = states.withColumn(
        "trigger_condition", F.explode(F.filter(F.array(severe, high_impact), lambda c: c.isNotNull()))
    )
    first = Window.partitionBy("run_id", "event_id", "trigger_condition").orderBy("written_at")
    return held.withColumn("_rn", F.row_number().over(first)).where("_rn = 1").drop("_rn")


def _in_scope(wanted: str, have: str) -> Column:
    return (F.size(wanted) == 0) | F.coalesce(F.arrays_overlap(wanted, have), F.lit(False))


def event_notifications(mrch: DataFrame, alerts: Alerts, charts_dir: Path | str) -> DataFrame:
    """MRCH rows of the events to check (each back to its window start) -> their notification rows
    (schema UI_NOTIFICATIONS_LOG), one per event, trigger and subscriber in scope at the trigger's first tick.
    ``charts_dir`` is where render_event_charts draws them (``<artifacts>/events``)."""
    states = event_states(mrch.select(*MRCH_COLUMNS))
    fired = first_triggers(states, alerts)
    subs = _subscribers(mrch.sparkSession, alerts)
    matched = fired.crossJoin(subs).where(
        _in_scope("s_retailer", "retailers") & _in_scope("s_region", "regions") & _in_scope("s_category", "categories")
    )
    cause = F.coalesce("cause_category", F.lit("not proposed yet"))
    sql = F.format_string(
        "SELECT * FROM mrs.minority_events_log WHERE event_id = '%s' AND run_id = '%s'", "event_id", "run_id"
    )
    chart = F.concat(F.lit(f"{charts_dir}/"), "run_id", F.lit("/"), "event_id", F.lit(".png"))
    body = F.concat_ws(
        "\n",
        F.format_string("Hello %s,", "sub_name"),
        F.lit(""),
        F.format_string("Minority Event %s met %s at %s.", "event_id", "trigger_condition", _iso("written_at")),
        F.lit(""),
        F.concat(F.lit("Event:     "), "cohort_name"),
        F.concat(F.lit("Cause:     "), cause),
        F.format_string("Severity:  %.2f (alert threshold %s)", "severity", F.lit(f"{alerts.severity_threshold:g}")),
        F.format_string("Status:    %s since %s", "event_status", _iso("event_window_start")),
        F.format_string("Stores:    %s (%d)", F.array_join("stores", ", "), F.size("stores")),
        F.format_string("Reports:   %d, the earliest %s", "report_count", "anchor_report_id"),
        F.when(F.col("is_degraded"), F.lit("Note:      an input was missing for some of its reports")),
        F.lit(""),
        F.concat(F.lit("Chart: "), chart),
        F.lit("Open it in Spark SQL (make sql):"),
        F.concat(F.lit("  "), sql),
    )
    return conform(
        matched.select(
            _notification_id("run_id", "event_id", "trigger_condition", "delivered_to").alias("notification_id"),
            "run_id",
            "event_id",
            "trigger_condition",
            "delivered_to",
            F.lit(CHANNEL).alias("channel"),
            F.format_string("[MRS alert] %s: %s", "trigger_condition", "cohort_name").alias("subject"),
            body.alias("body"),
            chart.alias("link"),
            "severity",
            "cause_category",
            F.col("anchor_report_id").alias("report_id"),
            F.col("event_status").alias("report_status"),
            "written_at",
            "is_degraded",
        ),
        UI_NOTIFICATIONS_LOG,
    )


def health_notifications(health: DataFrame, alerts: Alerts) -> DataFrame:
    """``pipeline_health_log`` rows -> a notification per row that is not ok and subscriber with ``health``."""
    bad = health.where(F.col("health_status") != "ok")
    subs = _subscribers(health.sparkSession, alerts, health_only=True)
    rows = bad.crossJoin(subs).withColumn("trigger_condition", F.concat(F.lit("health:"), "health_status"))
    span = F.format_string("%s .. %s", _iso("interval_start"), _iso("interval_end"))
    sql = F.format_string(
        "SELECT * FROM mrs.pipeline_health_log WHERE run_id = '%s' AND interval_start = TIMESTAMP'%s'",
        "run_id",
        F.date_format("interval_start", "yyyy-MM-dd HH:mm:ss"),
    )
    lag = F.when(F.col("freshness_lag_minutes").isNull(), F.lit("no data")).otherwise(
        F.format_string("%.0f minutes", "freshness_lag_minutes")
    )
    body = F.concat_ws(
        "\n",
        F.format_string("Hello %s,", "sub_name"),
        F.lit(""),
        F.format_string("The pipeline run %s for %s is %s:", "run_id", span, "health_status"),
        F.concat_ws("\n", F.transform("problems", lambda p: F.concat(F.lit("  - "), p))),
        F.lit(""),
        F.concat(F.lit("Freshness lag: "), lag),
        F.format_string(
            "Coverage:      %.3f (%d of %d expected series had data)", "coverage", "series_with_data", "expected_series"
        ),
        F.format_string(
            "Error rate:    %.3f (%d of %d rows quarantined)", "error_rate", "rows_quarantined", "rows_read"
        ),
        F.lit(""),
        F.lit(f"Runs: {alerts.link_base}/dags/{HEALTH_DAG}"),
        F.lit("Open it in Spark SQL (make sql):"),
        F.concat(F.lit("  "), sql),
    )
    return conform(
        rows.select(
            _notification_id(
                "run_id", F.concat(F.lit("health@"), _iso("interval_start")), "trigger_condition", "delivered_to"
            ).alias("notification_id"),
            "run_id",
            F.lit(None).cast("string").alias("event_id"),
            "trigger_condition",
            "delivered_to",
            F.lit(CHANNEL).alias("channel"),
            F.format_string("[MRS health] pipeline %s for %s (run %s)", "health_status", span, "run_id").alias(
                "subject"
            ),
            body.alias("body"),
            F.lit(f"{alerts.link_base}/dags/{HEALTH_DAG}").alias("link"),
            F.lit(None).cast("double").alias("severity"),
            F.lit(None).cast("string").alias("cause_category"),
            F.lit(None).cast("string").alias("report_id"),
            F.col("health_status").alias("report_status"),
            "written_at",
            "is_degraded",
        ),
        UI_NOTIFICATIONS_LOG,
    )


# -- delivery -------------------------------------------------------------------------------------------
def message(row: Row | Mapping, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row["delivered_to"]
    msg["Subject"] = row["subject"]
    # The one wall-clock value here: when the mail leaves. It is never stored.
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{row['notification_id']}@mrs>"
    msg["X-MRS-Notification-Id"] = row["notification_id"]
    msg.set_content(row["body"] + (f"\n\nLink: {row['link']}\n" if row["link"] else "\n"))
    return msg


def deliver(rows: list, smtp: SmtpSettings, sender: str) -> tuple[list[str], Exception | None]:
    """Send one message per row over one connection; (ids sent, the error that stopped it or None)."""
    sent: list[str] = []
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as conn:
            if smtp.starttls:
                conn.starttls(context=ssl.create_default_context())
            if smtp.user:
                conn.login(smtp.user, smtp.password or "")
            for row in rows:
                conn.send_message(message(row, sender))
                sent.append(row["notification_id"])
    except (OSError, smtplib.SMTPException) as e:
        return sent, e
    return sent, None


# -- the job --------------------------------------------------------------------------------------------
def read_event_rows(lake: Lakehouse, run_id: str, start: datetime, end: datetime) -> DataFrame | None:
    """MRCH rows of the events with a row written in [start, end), each back to its window start."""
    mrch = lake.read("minority_reports_cohorted_log", run_id)
    now = mrch.where(dates_between(start, end)).where(
        (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))
    )
    lo = now.agg(F.min("event_window_start")).first()[0]
    if lo is None:
        return None
    lo = parse_ts(lo)
    events = now.select("report_group_id").distinct()
    back = mrch.where(dates_between(lo, end)).where(
        (F.col("written_at") >= F.lit(lo)) & (F.col("written_at") < F.lit(end))
    )
    return back.join(events, "report_group_id", "left_semi")


def notifications(lake: Lakehouse, cfg: Config, run_id: str, start: datetime, end: datetime) -> DataFrame:
    """Every notification the interval calls for: its events' triggers and its unhealthy runs."""
    health = lake.read("pipeline_health_log", run_id).where(
        (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))
    )
    out = health_notifications(health, cfg.alerts)
    mrch = read_event_rows(lake, run_id, start, end)
    if mrch is not None:
        out = event_notifications(mrch, cfg.alerts, cfg.paths.artifacts / "events").unionByName(out)
    return out


def run(
    spark: SparkSession,
    cfg: Config,
    start: datetime,
    end: datetime,
    run_id: str | None = None,
    smtp: SmtpSettings | None = None,
) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    already = lake.read("ui_notifications_log", run_id).select("notification_id")
    pending = notifications(lake, cfg, run_id, start, end).join(already, "notification_id", "left_anti")
    order = ("written_at", F.col("event_id").asc_nulls_first(), "trigger_condition", "delivered_to")
    todo = pending.orderBy(*order).collect()
    if not todo:
        return {"ui_notifications_log": 0, "emails_sent": 0, "pending": 0}
    smtp = smtp or SmtpSettings.from_env()
    if not smtp.host:
        raise SmtpNotConfiguredError(
            f"{len(todo)} notification(s) to send but MRS_SMTP_HOST is not set: give the DAG the Airflow "
            f"connection {cfg.alerts.smtp_conn_id!r} (host, port, login) or export MRS_SMTP_HOST; nothing was recorded"
        )
    sent, error = deliver(todo, smtp, cfg.alerts.sender)
    recorded = 0
    if sent:
        # Exactly the rows that went out (collected above), whatever the tables hold by now.
        done = set(sent)
        rows = [r for r in todo if r["notification_id"] in done]
        recorded = lake.append_new("ui_notifications_log", spark.createDataFrame(rows, UI_NOTIFICATIONS_LOG))
    if error is not None:
        raise AlertDeliveryError(
            f"sending alerts through {smtp.host}:{smtp.port} failed after {len(sent)} of {len(todo)}: {error!r}; "
            f"the {len(sent)} sent are recorded and a retry sends the rest"
        ) from error
    return {"ui_notifications_log": recorded, "emails_sent": len(sent), "pending": len(todo)}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "send_alerts", run, argv)


if __name__ == "__main__":
    main()
