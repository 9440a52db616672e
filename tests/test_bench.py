"""The benchmark's arithmetic and report, on explicit figures (the benchmark itself is `make bench`)."""

import copy
import json

from jobs.quality import bench


def tick(start: str, end: str, seconds: list[float], rows_out: list[int], reports: int = 0) -> dict:
    """One ``run_stages`` result with three stages, the third clustering ``reports`` open reports in no time."""
    stages = [
        {"stage": "ingest", "seconds": seconds[0], "rows_out": rows_out[0], "rows_per_s": None},
        {"stage": "detect_anomalies", "seconds": seconds[1], "rows_out": rows_out[1], "rows_per_s": None},
        {"stage": "cluster_minority_report", "seconds": 0.0, "rows_out": reports, "rows_per_s": None},
    ]
    total = sum(seconds)
    return {"start": start, "end": end, "rows_in": 100, "rows_out": sum(rows_out) + reports, "seconds": total,
            "rows_per_s": round(100 / total), "stages": stages}  # fmt: skip


def window(day: str, seconds: list[float], reports: list[int]) -> dict:
    """Consecutive ticks from 21:15 on 2026-03-``day``, each of ``seconds`` total, as one measured window."""
    runs = []
    for i, (total, n) in enumerate(zip(seconds, reports, strict=True)):
        at = f"2026-03-{day}T21:{15 + 15 * i:02d}:00+00:00", f"2026-03-{day}T21:{30 + 15 * i:02d}:00+00:00"
        runs.append(tick(*at, [total - 1.0, 1.0], [100, 10], n))
    return bench.mean_tick(runs)


def test_a_window_of_ticks_is_their_mean_per_stage_and_keeps_each_tick():
    runs = [
        tick("2026-03-04T21:15:00+00:00", "2026-03-04T21:30:00+00:00", [2.0, 1.0], [100, 10]),
        tick("2026-03-04T21:30:00+00:00", "2026-03-04T21:45:00+00:00", [4.0, 3.0], [100, 30], reports=2),
    ]
    assert bench.mean_tick(runs) == {
        "start": "2026-03-04T21:15:00+00:00",
        "end": "2026-03-04T21:45:00+00:00",
        "rows_in": 100,
        "rows_out": 121,
        "seconds": 5.0,
        "rows_per_s": 20,
        "stages": [
            {"stage": "ingest", "seconds": 3.0, "rows_out": 100, "rows_per_s": 33},
            {"stage": "detect_anomalies", "seconds": 2.0, "rows_out": 20, "rows_per_s": 50},
            {"stage": "cluster_minority_report", "seconds": 0.0, "rows_out": 1, "rows_per_s": None},
        ],
        "ticks_s": [3.0, 7.0],
        "reports": [0, 2],
    }


def test_history_ratio_compares_ticks_without_reports_and_falls_back_to_window_means():
    fixed = {"backfill": {"seconds": 600.0}, "io_floor": {"seconds": 60.0}, "output_floor": {"seconds": 90.0},
             "airflow_tick": {"seconds": 50.0}}  # fmt: skip
    # After 3 days no tick can carry a report (the baseline's warm-up); after 21 days two of four do.
    r = {**fixed, "tick_early": window("04", [10.0, 12.0, 11.0, 11.0], [0, 0, 0, 0]),
         "tick_late": window("21", [20.0, 22.0, 12.0, 12.0], [3, 1, 0, 0])}  # fmt: skip
    assert bench.ratios(r) == {
        "tick_history_ratio": 1.09,  # 12.0 / 11.0: the same work
        "tick_history_equal_work": True,
        "tick_history_windows_ratio": 1.5,  # 16.5 / 11.0
        "replay_speedup": 36.4,
        "backfill_io_ratio": 10.0,
        "backfill_full_io_ratio": 4.0,
        "airflow_tick_s": 50.0,
        "airflow_fixed_share": 0.76,  # 1 - 12.0 / 50.0: against the late ticks without reports, like itself
    }
    # With the tick before the window through Airflow too, carrying open reports.
    r["airflow_tick_reports"] = {"seconds": 70.0, "reports": 2}
    assert bench.ratios(r)["airflow_tick_reports_s"] == 70.0
    # Every late tick carried reports: nothing compares equal work, so the window means stand.
    r["tick_late"] = window("21", [20.0, 22.0], [3, 1])
    got = bench.ratios(r)
    assert (got["tick_history_ratio"], got["tick_history_equal_work"]) == (1.91, False)


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
    for key in ("tick_history_equal_work", "tick_history_windows_ratio"):
        old["ratios"].pop(key, None)
    new.pop("tick_early_0015", None)
    new["tick_before"] = {"tick_early": 9.9, "tick_late": 8.8}
    new["ratios"].pop("tick_time_of_day_ratio", None)
    for key, day in (("tick_early", "04"), ("tick_late", "21")):
        one = tick(f"2026-03-{day}T21:15:00+00:00", f"2026-03-{day}T21:30:00+00:00", [2.0, 1.0], [100, 10])
        two = tick(f"2026-03-{day}T21:30:00+00:00", f"2026-03-{day}T21:45:00+00:00", [4.0, 3.0], [100, 30])
        one["stages"] = two["stages"] = stages
        new[key] = bench.mean_tick([one, two])
    new["tick_early"]["reports"], new["tick_late"]["reports"] = [0, 0], [1, 0]
    new["airflow_tick"] |= {"start": "2026-03-21T23:45:00+00:00"}
    new["airflow_tick_reports"] = {"start": "2026-03-21T21:00:00+00:00", "seconds": 91.5, "reports": 1}
    new["ratios"] = bench.ratios(new)
    text = bench.render([new])
    assert "| tick through Airflow (12 tasks), carrying 1 open report, at 21:00 | 91.5 |" in text
    assert f"| tick through Airflow (12 tasks), at 23:45 | {new['airflow_tick']['seconds']} |" in text
    assert "| one tick through Airflow, carrying 1 open report, s | 91.5 | < 90.0 | NO |" in text
    assert "(mean of 2 ticks, 21:15-21:30, the ticks that carried no report) | 1.4 | <= 1.3 | NO |" in text
    assert "open reports (clustered again each tick): 0 of 2 after 3 days; 1 of 2 after 21 days" in text
    assert "| tick after 3 days, mean of 2 ticks, 21:15-21:30 | 5.0 |" in text
    assert "| tick after 21 days, mean of 2 ticks, 21:15-21:30 | 5.0 |" in text
    assert "9.9 s before the tick after 3 days, mean of 2 ticks" in text
    assert "3.0, 7.0 s (tick after 21 days, mean of 2 ticks, 21:15-21:30)" in text
    assert "Time of day" not in text
    # Older JSON: single ticks, labelled by their time, and the time-of-day ratio.
    text = bench.render([old])
    assert "| tick through Airflow (12 tasks) |" in text and "carrying" not in text
    assert "| tick after 3 days, at 00:15 | 3.0 |" in text
    assert "7.7 s before the tick after 3 days, at 00:15" in text
    assert "Time of day: after 3 days, the tick at 23:30 takes 1.0 x" in text
    assert "mean of" not in text
