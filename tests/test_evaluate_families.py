"""The detection robustness bench: seeded families, ingest's tick grid, and the per-family figures."""

import pandas as pd
import pytest

from jobs.lib.config import load_config
from jobs.quality import evaluate_families as ef


def test_a_family_is_the_same_for_a_seed_and_differs_across_seeds():
    a, b = ef.family_series("heavy_tailed", 5, n_series=3), ef.family_series("heavy_tailed", 5, n_series=3)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x.readings, y.readings)
        assert x.anomalies == y.anomalies
    other = ef.family_series("heavy_tailed", 6, n_series=3)
    assert not a[0].readings["units"].equals(other[0].readings["units"])
    with pytest.raises(ValueError, match="unknown family 'viral'"):
        ef.family_series("viral", 5)


def test_readings_go_to_ticks_as_ingest_puts_them():
    readings = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-03-02 10:00:05", "2026-03-02 10:14:59", "2026-03-02 10:31:00"]),
            "units": [1.0, 2.0, 4.0],
        }
    )
    expected = pd.DataFrame({"ts": pd.to_datetime(["2026-03-02 10:00", "2026-03-02 10:30"]), "units": [3.0, 4.0]})
    pd.testing.assert_frame_equal(ef.to_ticks(readings, 15), expected)


def _rows(scores, reports, start="2026-03-09"):
    ts = pd.date_range(start, periods=len(scores), freq="15min")
    rid = [None if r is None else f"MR-{r}" for r in reports]
    first = {r: ts[rid.index(r)] for r in set(rid) if r}
    return pd.DataFrame(
        {
            "ts": ts,
            "actual_units": 1.0,
            "anomaly_score": scores,
            "report_id": rid,
            "report_status": ["none" if r is None else "active" for r in rid],
            "first_detected_from": [first.get(r, pd.NaT) for r in rid],
            "window_start": [first.get(r, pd.NaT) - pd.Timedelta("15min") for r in rid],  # onset a tick before
        }
    )


def test_a_series_scores_recall_delay_false_reports_and_its_blind_stretch():
    n = 96 * 2
    scores = [float("nan")] * 10 + [0.1] * (n - 10)
    reports = [None] * n
    for i in range(50, 54):  # found 2 ticks after the onset at tick 48
        reports[i] = "a"
    for i in range(150, 152):  # far from the labelled anomaly: false
        reports[i] = "b"
    rows = _rows(scores, reports)
    onset = rows["ts"][48]
    s = ef.Labelled("k", "weekly", pd.DataFrame(), [(onset, onset + pd.Timedelta(hours=2))])
    r = ef.score_series(s, rows)
    assert (r["found"], r["reports"], r["false"]) == (1, 2, 1)
    assert r["delays"] == [2.0] and r["onset_errors"] == [1.0]
    assert r["longest_unscored_ticks"] == 10 and r["series_days"] == 2.0
    assert r["nab"]["tp"] == 1 and r["nab"]["fp"] == 1


def test_the_bench_reports_every_family_and_the_pool():
    result = ef.run(load_config(), seeds=(3,), nab_dir=None, n_series=2)
    families = [t["family"] for t in result["table"]]
    assert families == [*ef.FAMILIES, "pooled"]
    pooled = result["table"][-1]
    assert pooled["series"] == 2 * len(ef.FAMILIES) and pooled["anomalies"] == pooled["series"]
    assert 0.0 <= pooled["recall"] <= 1.0 and pooled["nab"] is not None
    assert ef.report(result).splitlines()[0].startswith("family")
