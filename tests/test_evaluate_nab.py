"""NAB scoring against values worked out by hand from NAB v1.1's formulas, and detection over a slice of a real
NAB series (skipped where ../shared/data/nab is absent)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from jobs.quality import evaluate_nab as nab

pytestmark = pytest.mark.slow  # detection over a slice of a real NAB series

# 200 rows at 5 minutes; window A covers rows 100..109 (10 rows), window B rows 150..159. NAB leaves the first
# min(floor(0.15 * 200), 750) = 30 rows unscored.
TS = pd.date_range("2015-03-01 00:02:53", periods=200, freq="5min")
WINDOWS = [(TS[100], TS[109]), (TS[150], TS[159])]
MAX_TP = 2 / (1 + math.exp(-5)) - 1  # scaledSigmoid(-1): NAB divides true positives by it


def sig(x: float) -> float:
    return -1.0 if x >= 3 else 2 / (1 + math.exp(5 * x)) - 1


def score(*rows, windows=WINDOWS, ts=TS):
    detected = np.zeros(len(ts), dtype=bool)
    detected[list(rows)] = True
    return nab.nab_score(ts, detected, windows)


def test_scaled_sigmoid_matches_nab():
    assert nab.scaled_sigmoid([-1.0, 0.0, 1.0, 3.0, 50.0]).tolist() == pytest.approx(
        [0.986614, 0.0, -0.986614, -1.0, -1.0], abs=1e-6
    )
    assert nab.probation_rows(200) == 30
    assert nab.probation_rows(10320) == 750  # NAB computes the 15% on at most 5000 rows


def test_early_detection_scores_full_true_positive_and_missed_window_costs_one():
    r = score(100)  # A's first row: position -(109 - 100 + 1) / 10 = -1
    assert (r["tp"], r["fp"], r["fn"], r["windows"]) == (1, 0, 1, 2)
    assert r["tp_score"] == pytest.approx(1.0)
    assert r["raw"] == pytest.approx(1.0 - 1.0)  # + A, - B missed
    assert (r["null"], r["perfect"]) == (-2.0, 2.0)
    assert r["normalised"] == pytest.approx(50.0)
    assert r["delays_rows"] == [0, None]


def test_late_detection_scores_near_zero_and_only_the_first_in_a_window_counts():
    late = score(109, 159)  # each window's last row: position -1/10
    assert late["raw"] == pytest.approx(2 * sig(-0.1) / MAX_TP)
    assert late["raw"] == pytest.approx(2 * 0.248242, abs=1e-6)
    assert late["delays_rows"] == [9, 9]

    twice = score(102, 105, 150)  # 105 is a second detection in A: ignored, neither credit nor penalty
    assert twice["raw"] == pytest.approx(sig(-0.8) / MAX_TP + 1.0)
    assert (twice["tp"], twice["fp"], twice["redundant"]) == (2, 0, 1)


def test_false_positives_weigh_by_distance_past_the_previous_window():
    near = score(100, 110, 150)  # one row past A: position |110 - 109| / (10 - 1)
    assert near["fp_score"] == pytest.approx(0.11 * sig(1 / 9))
    assert near["fp_score"] == pytest.approx(-0.029793, abs=1e-6)
    far = score(100, 140, 150)  # 31 rows past A: 3.4 window lengths, the full -0.11
    assert far["fp_score"] == pytest.approx(-0.11)
    before = score(50, 100, 150)  # before any window: the full -0.11 as well
    assert before["fp_score"] == pytest.approx(-0.11)
    assert (far["fp"], far["raw"]) == (1, pytest.approx(2.0 - 0.11))


def test_probationary_rows_are_ignored():
    r = score(10, 29, 100)  # 10 and 29 fall in the first 30 rows
    assert (r["detections"], r["fp"], r["fp_score"]) == (1, 0, 0.0)
    # A window wholly inside the probation is not scored at all, nor counted in null and perfect.
    early = score(100, windows=[(TS[5], TS[9]), *WINDOWS])
    assert (early["windows"], early["null"], early["fn"]) == (2, -2.0, 1)


def test_normalisation_is_zero_for_never_firing_and_hundred_for_perfect():
    never = score()
    assert (never["raw"], never["normalised"], never["fn"]) == (-2.0, 0.0, 2)
    perfect = score(100, 150)
    assert perfect["raw"] == pytest.approx(2.0)
    assert perfect["normalised"] == pytest.approx(100.0)
    assert nab.pooled([never, perfect]) == pytest.approx(50.0)
    assert nab.nab_score(TS, np.zeros(200, bool), [])["normalised"] is None  # no window: nothing to normalise by


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="detected has 3 values for 200 timestamps"):
        nab.nab_score(TS, [True, False, True], WINDOWS)
    with pytest.raises(ValueError, match="overlap"):
        nab.nab_score(TS, np.zeros(200, bool), [(TS[100], TS[120]), (TS[110], TS[130])])
    with pytest.raises(ValueError, match="dividing a day"):
        nab.tick_minutes_of(pd.Series(pd.date_range("2015-01-01", periods=5, freq="7min")))


def test_a_report_tick_marks_the_row_it_covers():
    rows = pd.Series(pd.date_range("2015-03-01 00:02:53", periods=6, freq="5min"))
    mask = nab.detection_mask(rows, pd.Series(pd.to_datetime(["2015-03-01 00:10", "2015-03-01 00:25"])), 5)
    assert mask.tolist() == [False, False, True, False, False, True]


def test_skips_cleanly_where_the_folder_is_absent(tmp_path, capsys):
    nab.main(["--nab-dir", str(tmp_path / "nab")])  # returns (exit 0) without starting Spark
    assert capsys.readouterr().out.startswith("skipped: ")
    with pytest.raises(SystemExit):
        nab.main(["--nab-dir", str(tmp_path), "--detection", "lookback_days"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.skipif(not nab.DEFAULT_NAB_DIR.is_dir(), reason="../shared/data/nab is absent")
def test_detection_over_a_slice_of_nyc_taxi(spark, small_cfg):
    frame = nab.load_series(nab.DEFAULT_NAB_DIR / "nyc_taxi.csv")
    # Three weeks around the first labelled window (the NYC marathon, 30 Oct - 3 Nov 2014): a week of history
    # before detection starts, then the window.
    part = frame[(frame["timestamp"] >= "2014-10-16") & (frame["timestamp"] < "2014-11-06")].reset_index(drop=True)
    windows = nab.load_windows(nab.DEFAULT_NAB_DIR)["nyc_taxi.csv"]
    r = nab.evaluate_series(spark, small_cfg, "nyc_taxi", part, windows, nab.NAB_DETECTION)
    assert {"file", "tick_minutes", "reports", "raw", "normalised", "tp", "fp", "fn", "delays_rows"} <= set(r)
    assert r["tick_minutes"] == 30 and r["detection"]["lookback_days"] == small_cfg.detection.lookback_days
    assert r["rows"] == len(part) == 21 * 48 and r["rows_ingested"] == len(part)
    assert r["windows"] == 1 and r["tp"] + r["fn"] == 1
    assert r["rows"] - r["probation_rows"] > 0  # rows were scored
    assert -math.inf < r["normalised"] <= 100.0
    assert r["detections"] <= r["reports"]
    json.dumps(r)  # --json can print it
    assert nab.report([r]).count("nyc_taxi") == 1
