"""make evaluate's table: one row per seed from the three evaluations' figures, and their mean."""

from jobs.quality import evaluate


def seed_result(seed, false_reports, top1):
    return {
        "seed": seed,
        "detection": {
            "series_days_scored": 1000,
            "injected_anomalies": 12,
            "reports": 40,
            "false_reports": false_reports,
            "anomaly_recall": 1.0,
            "series_recall": 0.9,
            "false_reports_per_100_series_days": false_reports / 10,
            "median_delay_ticks": 4.0,
            "p90_delay_ticks": 12.0,
            "onset_within_1_tick": 0.8,
        },
        "top1": top1,
        "top3": 1.0,
        "cluster_purity": 0.9,
        "cohorts": {"event_accuracy": None},  # no multi-store anomaly in this seed
    }


def test_figures_and_mean_make_the_table():
    rows = [evaluate.figures(seed_result(1, 4, 1.0)), evaluate.figures(seed_result(2, 8, 0.5))]
    assert rows[0]["precision"] == 0.9 and rows[1]["precision"] == 0.8
    mean = evaluate.mean_row(rows)
    assert round(mean["precision"], 6) == 0.85 and mean["top1"] == 0.75 and mean["cohort_accuracy"] is None
    lines = evaluate.table(rows).splitlines()
    assert lines[0].startswith("| seed | detection recall | series recall | precision |")
    assert lines[2] == "| 1 | 100.0% | 90.0% | 90.0% | 0.40 | 4.0 | 12.0 | 80.0% | 100.0% | 100.0% | 90.0% | n/a |"
    assert lines[4] == "| mean | 100.0% | 90.0% | 85.0% | 0.60 | 4.0 | 12.0 | 80.0% | 75.0% | 100.0% | 90.0% | n/a |"
