"""Any CSV in the input format, at any tick from 5 minutes to 1 day, runs through detection."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs.lib.ticks import parse_ts
from jobs.stages import detect_anomalies as det
from jobs.stages import ingest
from tests.conftest import make_config

pytestmark = pytest.mark.slow  # detection over real series at other tick lengths

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
DAY0 = datetime(2025, 8, 4, tzinfo=UTC)


def params(tick_minutes, start, end, **detection):
    cfg = make_config(Path("/nonexistent"), **{"pipeline.tick_minutes": tick_minutes}, **detection)
    return det.Params.from_config(cfg, start, end)


def series(tick_minutes, days, level_fn, spike_at=None, spike_ticks=0, spike_value=0.0):
    ts = pd.date_range(DAY0.replace(tzinfo=None), periods=days * 1440 // tick_minutes, freq=f"{tick_minutes}min")
    rng = np.random.default_rng(3)
    units = rng.poisson(level_fn(ts)).astype(float)
    if spike_at is not None:
        i = int((pd.Timestamp(spike_at.replace(tzinfo=None)) - ts[0]) / pd.Timedelta(minutes=tick_minutes))
        units[i : i + spike_ticks] = spike_value
    meta = {"series_key": "S1", "store_id": "S1", "sku": None, "retailer_id": None, "region": None, "category": None}
    return pd.DataFrame({**meta, "ts": ts, "units": units})


@pytest.mark.parametrize("tick_minutes", [5, 60, 1440])
def test_detection_runs_at_any_tick_length_and_finds_a_spike(tick_minutes):
    days = 40 if tick_minutes == 1440 else 12
    day = DAY0 + timedelta(days=days - 1)
    spike = day + timedelta(hours=12) if tick_minutes < 1440 else day
    width = max(1, 60 // tick_minutes)
    pdf = series(
        tick_minutes, days, lambda ts: np.full(len(ts), 20.0), spike, width, 200.0 * max(1, tick_minutes // 60)
    )
    start = day if tick_minutes < 1440 else day - timedelta(days=5)
    out = det.detect_series(
        pdf, pd.DataFrame(columns=det.OPEN_COLS), params(tick_minutes, start, day + timedelta(days=1))
    )
    assert len(out) == (1440 // tick_minutes) * (1 if tick_minutes < 1440 else 6)
    assert out.baseline_units.notna().all()
    opened = out[out.report_status == "active"].ts
    assert len(opened) and opened.iloc[0] == pd.Timestamp(spike.replace(tzinfo=None))


@pytest.mark.skipif(not (NAB / "nyc_taxi.csv").exists(), reason="../shared/data/nab is absent")
def test_real_series_at_30_minutes_store_grain(spark, tmp_path):
    """NYC taxi demand as one store's sales: a labelled window (the marathon weekend) gets a report."""
    cfg = make_config(
        tmp_path, **{"pipeline.tick_minutes": 30, "pipeline.grain": "store", "detection.lookback_days": 28}
    )
    folder = cfg.paths.landing / "unified_sales_data"
    folder.mkdir(parents=True)
    raw = pd.read_csv(NAB / "nyc_taxi.csv")
    raw = raw[(raw.timestamp >= "2014-10-13") & (raw.timestamp < "2014-11-04")]
    pd.DataFrame({"timestamp": raw.timestamp, "store_id": "nyc_taxi", "units": raw.value}).to_csv(
        folder / "nyc_taxi.csv", index=False
    )
    start, end = parse_ts("2014-10-13T00:00:00Z"), parse_ts("2014-11-04T00:00:00Z")
    assert ingest.run(spark, cfg, start, end, run_id="nab")["sales_timeseries_data"] == len(raw)
    det.run(spark, cfg, start, end, run_id="nab")
    from jobs.lib.tables import Lakehouse

    lake = Lakehouse(spark, cfg)
    assert lake.read("anomaly_classifier_model_prediction_log", "nab").count() == len(raw)
    window = json.loads((NAB / "combined_windows.json").read_text())["realKnownCause/nyc_taxi.csv"][0]
    w0, w1 = (pd.Timestamp(x).to_pydatetime().replace(tzinfo=UTC) for x in window)
    hits = lake.read("minority_reports_detected_log", "nab").where(
        (F.col("window_start") < F.lit(w1)) & (F.coalesce("window_end", "written_at") > F.lit(w0))
    )
    assert hits.count() > 0
