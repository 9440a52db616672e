"""The benchmark's arithmetic and report, on explicit figures (the benchmark itself is `make bench`)."""

import copy
import json

from jobs import bench


def tick(start: str, end: str, seconds: list[float], rows_out: list[int]) -> dict:
    """One ``run_stages`` result with two stages."""
    stages = [
        {"stage": "ingest", "seconds": seconds[0], "rows_out": rows_out[0], "rows_per_s": None},
        {"stage": "detect_anomalies", "seconds": seconds[1], "rows_out": rows_out[1], "rows_per_s": None},
    ]
    total = sum(seconds)
    return {"start": start, "end": end, "rows_in": 100, "rows_out": sum(rows_out), "seconds": total,
            "rows_per_s": round(100 / total), "stages": stages}  # fmt: skip


def test_a_window_of_ticks_is_their_mean_per_stage_and_keeps_each_tick():
    runs = [
        tick("2026-03-04T21:15:00+00:00", "2026-03-04T21:30:00+00:00", [2.0, 1.0], [100, 10]),
        tick("2026-03-04T21:30:00+00:00", "2026-03-04T21:45:00+00:00", [4.0, 3.0], [100, 30]),
    ]
    assert bench.mean_tick(runs) == {
        "start": "2026-03-04T21:15:00+00:00",
        "end": "2026-03-04T21:45:00+00:00",
        "rows_in": 100,
        "rows_out": 120,
        "seconds": 5.0,
        "rows_per_s": 20,
        "stages": [
            {"stage": "ingest", "seconds": 3.0, "rows_out": 100, "rows_per_s": 33},
            {"stage": "detect_anomalies", "seconds": 2.0, "rows_out": 20, "rows_per_s": 50},
        ],
        "ticks_s": [3.0, 7.0],
    }


def test_report_shows_windows_and_still_renders_older_single_tick_json():
    # The committed figures give every other field; the ticks are set here, in both formats.
    base = json.loads((bench.RESULTS / "bench_S.json").read_text())
    stages = base["tick_late"]["stages"]
    old, new = copy.deepcopy(base), copy.deepcopy(base)
    for key, day in (("tick_early_0015", "04"), ("tick_early", "04"), ("tick_late", "21")):
        at = "00:15" if key.endswith("0015") else "23:30"
        old[key] = tick(f"2026-03-{day}T{at}:00+00:00", f"2026-03-{day}T23:45:00+00:00", [2.0, 1.0], [100, 10])
        old[key]["stages"] = stages
    old["tick_before"] = {"tick_early_0015": 7.7, "tick_early": 9.9, "tick_late": 8.8}
    old["ratios"]["tick_time_of_day_ratio"] = 1.0
    new.pop("tick_early_0015", None)
    new["tick_before"] = {"tick_early": 9.9, "tick_late": 8.8}
    new["ratios"].pop("tick_time_of_day_ratio", None)
    for key, day in (("tick_early", "04"), ("tick_late", "21")):
        one = tick(f"2026-03-{day}T21:15:00+00:00", f"2026-03-{day}T21:30:00+00:00", [2.0, 1.0], [100, 10])
        two = tick(f"2026-03-{day}T21:30:00+00:00", f"2026-03-{day}T21:45:00+00:00", [4.0, 3.0], [100, 30])
        one["stages"] = two["stages"] = stages
        new[key] = bench.mean_tick([one, two])
    text = bench.render([new])
    assert "| tick after 3 days, mean of 2 ticks, 21:15-21:30 | 5.0 |" in text
    assert "| tick after 21 days, mean of 2 ticks, 21:15-21:30 | 5.0 |" in text
    assert "9.9 s before the tick after 3 days, mean of 2 ticks" in text
    assert "3.0, 7.0 s (tick after 21 days, mean of 2 ticks, 21:15-21:30)" in text
    assert "Time of day" not in text
    # Older JSON: single ticks, labelled by their time, and the time-of-day ratio.
    text = bench.render([old])
    assert "| tick after 3 days, at 00:15 | 3.0 |" in text
    assert "7.7 s before the tick after 3 days, at 00:15" in text
    assert "Time of day: after 3 days, the tick at 23:30 takes 1.0 x" in text
    assert "mean of" not in text
