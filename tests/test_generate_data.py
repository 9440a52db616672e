import filecmp

import pandas as pd

from jobs.quality.generate_data import DETECTION_TYPE, generate
from tests.conftest import make_config


def test_generator_is_seeded_and_deterministic(tmp_path):
    cfg = make_config(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    generate(cfg, a)
    generate(cfg, b)
    for sub in ("unified_sales_data", "contextual_data", "all_campaign_data", "ground_truth"):
        cmp = filecmp.dircmp(a / sub, b / sub)
        assert cmp.left_list and not cmp.diff_files and not cmp.left_only and not cmp.right_only, sub
    other = make_config(tmp_path, **{"generator.seed": 12})
    generate(other, tmp_path / "c")
    first = sorted((a / "unified_sales_data").glob("*.csv"))[0].name
    assert (a / "unified_sales_data" / first).read_bytes() != (
        tmp_path / "c" / "unified_sales_data" / first
    ).read_bytes()


def test_generator_writes_every_anomaly_type_context_and_bad_rows(tmp_path):
    cfg = make_config(tmp_path)
    counts = generate(cfg, tmp_path)
    truth = pd.read_csv(tmp_path / "ground_truth" / "ground_truth.csv")
    assert set(truth.anomaly_type) == set(DETECTION_TYPE)
    assert counts["anomalies"] == truth.anomaly_id.nunique() == 6
    # A competitor stockout lifts a category across a region's stores: several series at once.
    assert truth[truth.anomaly_type == "competitor_stockout"].series_key.nunique() >= 2
    ctx = pd.read_csv(tmp_path / "contextual_data" / "contextual_data.csv")
    assert {"social_trend", "competitor_stockout"} <= set(ctx.signal_type)
    cmp = pd.read_csv(tmp_path / "all_campaign_data" / "all_campaign_data.csv")
    assert {"paid_social", "in_store_promo"} <= set(cmp.campaign_type)
    day = pd.read_csv(sorted((tmp_path / "unified_sales_data").glob("*.csv"))[0], dtype=str, keep_default_na=False)
    assert (day.store_id == "").any()
    assert (day.units == "n/a").any()
    assert day.duplicated().any()
    # Dense feed: one row per series and tick (12 series x 96 ticks), plus the bad rows.
    assert len(day) == 12 * 96 + cfg.generator.bad_rows_per_file
