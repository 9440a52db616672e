import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality

from jobs.lib.config import load_config
from jobs.stages import detect_anomalies as det

DAY0 = datetime(2025, 8, 4, tzinfo=UTC)
SPIKE_DAY = DAY0 + timedelta(days=10)


def steady_series(days=11, level=10.0, events=()):
    """A store open 08:00-20:00 selling `level` units a tick; events are (start, ticks, value) overrides."""
    ts = pd.date_range(DAY0.replace(tzinfo=None), periods=days * 96, freq="15min")
    units = np.where((ts.hour >= 8) & (ts.hour < 20), level, 0.0)
    for start, n, value in events:
        i = int((pd.Timestamp(start.replace(tzinfo=None)) - ts[0]) / pd.Timedelta("15min"))
        units[i : i + n] = value
    meta = {
        "series_key": "S1|K1",
        "store_id": "S1",
        "sku": "K1",
        "retailer_id": "R1",
        "region": "North",
        "category": "CAT_A",
    }
    return pd.DataFrame({**meta, "ts": ts, "units": units})


def params(start, end):
    return det.Params.from_config(load_config(), start, end)


NO_OPEN = pd.DataFrame(columns=det.OPEN_COLS)


def test_report_id_follows_spec_decision_2():
    expected = "MR-" + hashlib.sha256(b"S1|K1|2025-08-14T12:00:00Z").hexdigest()
    assert det.report_id("S1|K1", pd.Timestamp("2025-08-14 12:00:00")) == expected


def test_spike_opens_a_report_that_closes_after_the_quiet_streak():
    spike = SPIKE_DAY + timedelta(hours=12)
    pdf = steady_series(events=[(spike, 6, 60.0)])
    out = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1)))
    reports = out[out.report_status != "none"]
    assert list(reports.report_status) == ["active"] * 8 + ["ended"]  # 6 spike ticks + 2 quiet, then closed
    assert reports.ts.iloc[0] == pd.Timestamp("2025-08-14 12:00")
    assert reports.window_end.iloc[-1] == pd.Timestamp("2025-08-14 14:00")
    assert reports.report_id.nunique() == 1
    last = reports.iloc[-1]
    assert last.attributed_sales_total == 6 * 60 + 2 * 10
    assert last.baseline_sales_total == 8 * 10
    assert last.report_direction == "spike"
    assert last.severity == pytest.approx(1 - 81 / 381)  # 1 - exp(-|ln((380 + 1) / (80 + 1))|)
    assert out.anomaly_score.between(0, 1).all()
    assert not out.is_anomalous[out.ts < pd.Timestamp("2025-08-14 12:00")].any()


def test_a_store_going_dark_is_a_drop():
    outage = SPIKE_DAY + timedelta(hours=10)
    pdf = steady_series(events=[(outage, 12, 0.0)])
    out = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1)))
    reports = out[out.report_status != "none"]
    assert len(reports) > 0
    assert (reports.report_direction == "drop").all()
    assert reports.ts.iloc[0] < pd.Timestamp("2025-08-14 11:00")  # found within the first hour


def test_missing_ticks_are_degraded_not_scored():
    pdf = steady_series()
    pdf = pdf[~pdf.ts.between(pd.Timestamp("2025-08-14 09:00"), pd.Timestamp("2025-08-14 09:45"))]
    out = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1)))
    hole = out[out.ts.between(pd.Timestamp("2025-08-14 09:00"), pd.Timestamp("2025-08-14 09:45"))]
    assert len(hole) == 4 and hole.is_degraded.all() and hole.anomaly_score.isna().all()
    assert not out.drop(hole.index).is_degraded.any()


def test_warm_up_has_no_baseline_and_is_degraded():
    pdf = steady_series(days=4)
    out = det.detect_series(pdf, NO_OPEN, params(DAY0 + timedelta(days=3), DAY0 + timedelta(days=4)))
    assert out.baseline_units.isna().all() and out.is_degraded.all() and (out.history_days == 3).all()


def test_split_runs_carry_the_open_report_and_match_one_run():
    spike = SPIKE_DAY + timedelta(hours=12)
    pdf = steady_series(events=[(spike, 6, 60.0)])
    day_end = SPIKE_DAY + timedelta(days=1)
    whole = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, day_end))
    cut = spike + timedelta(minutes=45)
    first = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, cut))
    last_row = first.iloc[[-1]].rename(columns={})
    open_pdf = last_row[last_row.report_status == "active"][det.OPEN_COLS]
    assert len(open_pdf) == 1
    second = det.detect_series(pdf, open_pdf, params(cut, day_end))
    both = pd.concat([first, second], ignore_index=True)
    pd.testing.assert_frame_equal(both, whole, check_dtype=False)


def test_a_batch_of_series_gets_the_rows_each_series_gets_alone():
    """detect_series is vectorised over series: batching must not change one value of any series."""
    spike = SPIKE_DAY + timedelta(hours=12)
    cut = spike + timedelta(minutes=45)
    one = steady_series(events=[(spike, 6, 60.0)])
    first = det.detect_series(one, NO_OPEN, params(SPIKE_DAY, cut))
    open_pdf = first.iloc[[-1]][det.OPEN_COLS]  # a report carried into the run
    frames = {
        "S1|K1": one,
        "S2|K1": steady_series(level=4.0, events=[(SPIKE_DAY + timedelta(hours=9), 8, 0.0)]),
        "S3|K1": steady_series(level=25.0),
        "S4|K1": steady_series(days=5),  # warm-up: no baseline yet
    }
    for key, pdf in frames.items():
        pdf["series_key"], pdf["store_id"] = key, key.split("|")[0]
    p = params(cut, SPIKE_DAY + timedelta(days=1))
    batch = det.detect_series(pd.concat(frames.values(), ignore_index=True), open_pdf, p)
    alone = [det.detect_series(pdf, open_pdf if key == "S1|K1" else NO_OPEN, p) for key, pdf in frames.items()]
    expected = pd.concat(alone, ignore_index=True)
    pd.testing.assert_frame_equal(batch, expected, check_dtype=False)
    assert set(batch.report_status) == {"none", "active", "ended"}


def test_spark_transform_writes_one_mrdl_snapshot_per_active_tick(spark):
    spike = SPIKE_DAY + timedelta(hours=12)
    pdf = steady_series(events=[(spike, 6, 60.0)])
    series = spark.createDataFrame(pdf)
    empty_open = spark.createDataFrame([], det.OUTPUT_SCHEMA).select(*det.OPEN_COLS)
    p = params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1))
    logs = det.to_logs(det.detect(series, empty_open, p), "r1", "m1")
    got = logs["minority_reports_detected_log"].select(
        "report_id", "window_start", "window_end", "report_status", "written_at"
    )
    rid = det.report_id("S1|K1", pd.Timestamp("2025-08-14 12:00"))
    start = datetime(2025, 8, 14, 12, 0)
    rows = [(rid, start, None, "active", start + timedelta(minutes=15 * k)) for k in range(8)]
    rows.append((rid, start, start + timedelta(hours=2), "ended", start + timedelta(hours=2)))
    expected = spark.createDataFrame(
        rows,
        "report_id string, window_start timestamp, window_end timestamp, report_status string, written_at timestamp",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert logs["anomaly_classifier_model_prediction_log"].count() == 96


def test_kept_day_baselines_give_the_rows_of_a_run_over_the_whole_history(spark):
    """The state path: baselines fitted once per day (``profiles``), then a tick reads only its day's sales."""
    spike = SPIKE_DAY + timedelta(hours=12)
    pdf = steady_series(events=[(spike, 6, 60.0)])
    empty_open = spark.createDataFrame([], det.OUTPUT_SCHEMA).select(*det.OPEN_COLS)
    p = params(spike + timedelta(minutes=30), spike + timedelta(minutes=45))  # one tick, mid-report
    whole = det.detect(spark.createDataFrame(pdf), empty_open, p)

    history = spark.createDataFrame(pdf[pdf["ts"] < pd.Timestamp(p.days[0])])
    baselines = det.profiles(history, p, p.days)
    today = spark.createDataFrame(pdf[pdf["ts"] >= pd.Timestamp(p.days[0])])
    kept = det.detect(today, empty_open, p, baselines)

    assert [(r.date, r.history_days, len(r.baseline)) for r in baselines.collect()] == [(SPIKE_DAY.date(), 10, 96)]
    assert_df_equality(kept, whole, ignore_nullable=True)
    assert kept.first().report_status == "active"
