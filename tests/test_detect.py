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
    # 6 spike ticks, then 5 quiet: a long window speaks while the last 4 ticks still deviate, then 3 quiet ticks
    assert list(reports.report_status) == ["active"] * 11 + ["ended"]
    assert reports.ts.iloc[0] == pd.Timestamp("2025-08-14 12:00")  # found on the spike's first tick
    assert (reports.window_start == pd.Timestamp("2025-08-14 12:00")).all()
    assert reports.window_end.iloc[-1] == pd.Timestamp("2025-08-14 14:45")
    assert reports.report_id.nunique() == 1
    last = reports.iloc[-1]
    assert last.attributed_sales_total == 6 * 60 + 5 * 10
    assert last.baseline_sales_total == 11 * 10
    assert last.report_direction == "spike"
    assert last.severity == pytest.approx(1 - 111 / 411)  # 1 - exp(-|ln((410 + 1) / (110 + 1))|)
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
    # ... and dated from the first dark tick, its totals from there
    assert (reports.window_start == pd.Timestamp("2025-08-14 10:00")).all()
    first = reports.iloc[0]
    ticks = int((first.ts - pd.Timestamp("2025-08-14 10:00")) / pd.Timedelta("15min")) + 1
    assert (first.attributed_sales_total, first.baseline_sales_total) == (0.0, 10.0 * ticks)


def test_missing_ticks_are_degraded_not_scored():
    pdf = steady_series()
    pdf = pdf[~pdf.ts.between(pd.Timestamp("2025-08-14 09:00"), pd.Timestamp("2025-08-14 09:45"))]
    out = det.detect_series(pdf, NO_OPEN, params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1)))
    hole = out[out.ts.between(pd.Timestamp("2025-08-14 09:00"), pd.Timestamp("2025-08-14 09:45"))]
    assert len(hole) == 4 and hole.is_degraded.all() and hole.anomaly_score.isna().all()
    assert not out.drop(hole.index).is_degraded.any()


def test_a_new_series_is_unscored_one_day_then_scored_by_a_degraded_fallback():
    pdf = steady_series(days=4)
    first = det.detect_series(pdf, NO_OPEN, params(DAY0, DAY0 + timedelta(days=1)))
    assert first.baseline_units.isna().all() and first.anomaly_score.isna().all() and first.is_degraded.all()
    assert (first.unscored_reason == "no_history").all()  # it says why
    out = det.detect_series(pdf, NO_OPEN, params(DAY0 + timedelta(days=3), DAY0 + timedelta(days=4)))
    assert out.anomaly_score.notna().all() and out.unscored_reason.isna().all()
    assert out.is_degraded.all() and (out.history_days == 3).all()  # below min_history_days: a fallback


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
    rows = [(rid, start, None, "active", start + timedelta(minutes=15 * k)) for k in range(11)]
    end = start + timedelta(hours=2, minutes=45)
    rows.append((rid, start, end, "ended", end))
    expected = spark.createDataFrame(
        rows,
        "report_id string, window_start timestamp, window_end timestamp, report_status string, written_at timestamp",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    assert logs["anomaly_classifier_model_prediction_log"].count() == 96


def test_kept_day_baselines_give_the_rows_of_a_run_over_the_whole_history(spark):
    """The state path: baselines fitted once per day (``profiles``) with the calibration samples kept by the days
    before, then a tick reads only its day's sales."""
    spike = SPIKE_DAY + timedelta(hours=12)
    pdf = steady_series(events=[(spike, 6, 60.0)])
    # Sales with noise (twice a Poisson's spread), so the calibration has something to measure.
    pdf["units"] = np.random.default_rng(8).poisson(pdf["units"] * 0.5) * 2.0
    empty_open = spark.createDataFrame([], det.OUTPUT_SCHEMA).select(*det.OPEN_COLS)
    p = params(spike + timedelta(minutes=30), spike + timedelta(hours=5))  # from mid-report to quiet ticks
    whole = det.detect(spark.createDataFrame(pdf), empty_open, p)

    history = spark.createDataFrame(pdf[pdf["ts"] < pd.Timestamp(p.days[0])])
    # The days before keep their calibration samples (as baseline_profile_log does): computed here from scratch.
    before = [p.days[0] - timedelta(days=i) for i in range(1, p.lookback_days)]
    kept_rows = det.series_profiles(pdf[pdf["ts"] < pd.Timestamp(p.days[0])], p, before)[det.SAMPLE_COLS]
    # Days 7 and 8, the first scored by the seasonal baseline, left samples (kept with the day after each).
    assert kept_rows["scored_ticks"].gt(0).sum() == 2
    earlier = spark.createDataFrame(
        kept_rows, "series_key string, date date, calibration_sample array<double>, scored_ticks int"
    )
    baselines = det.profiles(history, earlier, p, p.days)
    today = spark.createDataFrame(pdf[pdf["ts"] >= pd.Timestamp(p.days[0])])
    kept = det.detect(today, empty_open, p, baselines)

    assert [(r.date, r.history_days, len(r.baseline)) for r in baselines.collect()] == [(SPIKE_DAY.date(), 10, 96)]
    assert_df_equality(kept, whole, ignore_nullable=True)
    assert kept.first().report_status == "active"


def test_a_series_with_readings_missing_is_scored_and_says_where_it_cannot_be():
    pdf = steady_series(days=4)
    rng = np.random.default_rng(3)
    pdf = pdf[rng.random(len(pdf)) > 0.3]  # 30% of the readings lost: no day has 90% of its ticks
    out = det.detect_series(pdf, NO_OPEN, params(DAY0 + timedelta(days=3), DAY0 + timedelta(days=4)))
    read = out.actual_units.notna()
    assert (out.history_days == 3).all() and out.anomaly_score[read].notna().all()
    assert (out.unscored_reason[~read] == "no_reading").all() and out.anomaly_score[~read].isna().all()


def test_the_opening_score_spends_the_false_alarm_budget():
    p = params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1))
    # 0.5 reports per 100 series-days at 96 ticks a day, either direction: p = 2.6e-5 per tick
    assert p.score_on == pytest.approx(-np.log10(0.5 / 100 / 96 / 2) / 10)
    assert det.Params(**{**p.__dict__, "tick_seconds": 300}).score_on > p.score_on  # more ticks, each stricter


def _samples(p, z_scale, windows_per_day, days):
    """Day samples of a series whose busy windows' z are N(0, z_scale^2) (the quantiles the sample keeps)."""
    k = det.sample_size(p)
    rng = np.random.default_rng(5)
    out = np.full((1, days, len(p.windows), 1 + 2 * k), np.nan)
    for d in range(days):
        for i in range(len(p.windows)):
            z = rng.normal(0, z_scale, windows_per_day)
            out[0, d, i, 0] = windows_per_day
            out[0, d, i, 1 : 1 + k] = -np.sort(-z)[:k]
            out[0, d, i, 1 + k :] = -np.sort(z)[:k]
    return out.reshape(1, days, -1), np.full((1, days), 96)


def test_calibration_divides_z_by_how_much_noisier_a_series_is_than_its_model():
    p = params(SPIKE_DAY, SPIKE_DAY + timedelta(days=1))
    ok = np.array([14])
    n = 14 * 96  # busy windows behind it: its own scale, blended with the prior (1) by n / (n + PRIOR_WINDOWS)
    w = n / (n + det.PRIOR_WINDOWS)
    noisy = det.calibrate(*_samples(p, 2.0, 96, 14), p, ok)
    assert noisy == pytest.approx(np.full_like(noisy, 2.0 * w + 1 - w), rel=0.1)
    plain = det.calibrate(*_samples(p, 1.0, 96, 14), p, ok)
    assert plain == pytest.approx(np.ones_like(plain), rel=0.1)
    few = det.calibrate(*_samples(p, 2.0, 60, 1), p, ok)  # 60 windows: mostly the prior, 1
    assert (few < 1.5).all() and (few > 1.0).all()
    # One day of an anomaly (a promo's afternoon: every window's top values far out) is left out: the series is
    # not deaf to the next one for the whole lookback.
    samples, counts = _samples(p, 1.0, 96, 14)
    k = det.sample_size(p)
    promo = samples.reshape(1, 14, len(p.windows), 1 + 2 * k)
    promo[0, 13, :, 1 : 1 + k] = np.linspace(12.0, 8.0, k)
    after = det.calibrate(promo.reshape(1, 14, -1), counts, p, ok)
    assert after == pytest.approx(plain, rel=0.05)
    learning = det.calibrate(*_samples(p, 1.0, 60, 14), p, np.array([1]))  # 1 day of history of 7
    assert learning == pytest.approx(np.full_like(learning, 1 + det.LEARNING_SCALE * 6 / 7))
    # On the normal scale: the same z means less on the noisier series, and a heavier tail grows slower.
    z = np.array([4.0])
    assert det.calibrated(z, np.array([2.0]), np.array([2.0])) == pytest.approx([2.0])
    assert (
        det.calibrated(z, np.array([1.0]), np.array([1.5]))[0] < det.calibrated(z, np.array([1.0]), np.array([1.0]))[0]
    )
