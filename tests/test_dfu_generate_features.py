"""DFU clustering source data and features: the generator (deterministic, patterns spread and recoverable), the
features of hand-built series against numpy, exclusions that reconcile, idempotent writes and the training CSV."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from jobs.dfu import features as fe
from jobs.dfu.config import PATTERNS
from jobs.dfu.features import encode_for_training
from jobs.dfu.generate import WRITES, generate, months_back, to_spark, write
from jobs.lib.tables import TABLES, Lakehouse
from schemas import dfu as S

AS_OF = date(2025, 12, 1)


def _lake_cfg(small_cfg, tmp_path):
    """small_cfg with its own lakehouse: hand-built tables must not clobber the session's generated ones."""
    return small_cfg.model_copy(update={"paths": small_cfg.paths.model_copy(update={"lakehouse": tmp_path / "lake"})})


def _fact_rows(dfu: str, months: list[date], qty: list[float]) -> list[tuple]:
    item, loc = dfu.split("@")
    return [(item, loc, m, float(q), float(q) * 10.0) for m, q in zip(months, qty, strict=True)]


def _dims(dfus: list[str], items: list[str]) -> dict[str, pd.DataFrame]:
    """dim_item (every item a red wine, 36 lb cases of 12) and dim_dfu (no attributes) as the generator's frames."""
    item = {"category": "Wine", "class": "Red", "case_weight": 36.0, "bpc": 12.0}
    dim_item = pd.DataFrame([{"item_id": i, "item_desc": i, **item} for i in items])
    keys = ("dfu_id", "item_id", "location_id")
    dim_dfu = pd.DataFrame([dict(zip(keys, (d, *d.split("@")), strict=True)) for d in dfus])
    return {
        "dim_item": dim_item.reindex(columns=[f.name for f in S.DIM_ITEM.fields]),
        "dim_dfu": dim_dfu.reindex(columns=[f.name for f in S.DIM_DFU.fields]),
        "dfu_pattern_truth": pd.DataFrame(columns=[f.name for f in S.DFU_PATTERN_TRUTH.fields]),
    }


# --- generator ------------------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_spreads_patterns_tiers_and_launches(dfu_cfg):
    gen = dfu_cfg.generator
    a, b = generate(gen, 12), generate(gen, 12)
    for name in WRITES:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["fact_sales_monthly"].equals(
        generate(gen.model_copy(update={"seed": gen.seed + 1}), 12)["fact_sales_monthly"]
    )

    truth, facts, dims = a["dfu_pattern_truth"], a["fact_sales_monthly"], a["dim_dfu"]
    n = gen.items * gen.locations
    assert len(truth) == len(dims) == n and len(a["dim_item"]) == gen.items
    counts = truth["pattern"].value_counts()
    assert set(counts.index) == set(PATTERNS) and counts.max() - counts.min() <= 1
    assert set(truth.loc[truth.pattern.isin(["intermittent", "lumpy"]), "volume_tier"]) == {"low", "medium"}
    assert set(truth.loc[truth.pattern == "steady", "volume_tier"]) == {"low", "medium", "high"}
    # Recent launches: round(short_history_pct * n) DFUs first sell fewer than 12 months before end_month.
    recent = truth["first_month"] > months_back(gen.end_month, 12)[0]
    assert recent.sum() == round(gen.short_history_pct * n)
    # A sparse fact: no zero rows, one row per DFU and month, nothing before launch or after end_month.
    assert (facts["qty"] > 0).all() and not facts.duplicated(["item_id", "location_id", "month"]).any()
    f = facts.assign(dfu_id=facts.item_id + "@" + facts.location_id).merge(truth, on="dfu_id")
    assert (f["month"] >= f["first_month"]).all() and f["month"].max() == gen.end_month
    assert dims["cluster_assignment"].isna().all() and set(dims["dfu_id"]) == set(truth["dfu_id"])
    assert 0 < dims["supergroup"].isna().sum() < n * 0.1  # a few NULLs, as in real master data


# --- features of hand-built series ----------------------------------------------------------------------------

WINDOW = months_back(AS_OF, 24)  # 2024-01 .. 2025-12
STEADY = [100, 104, 97, 101, 99, 103, 96, 130, 102, 98, 101, 99, 103, 97, 100, 98, 104, 101, 99, 96, 102, 100, 97, 103]
SEASONAL = [
    round(60 * (1 + 0.5 * np.cos(2 * np.pi * (m.month - 12) / 12))) + (2 if m.year == 2025 else 0) for m in WINDOW
]
TRENDING = [round(20 * 1.04**t) for t in range(24)]
# Sales in 8 months from 2024-02 (the grid starts there), a stored zero in 2024-03, nothing else: zeros between.
INTERMITTENT = {date(2024, 2, 1): 6, date(2024, 3, 1): 0, date(2024, 5, 1): 5, date(2024, 6, 1): 7,
                date(2024, 10, 1): 6, date(2025, 2, 1): 5, date(2025, 5, 1): 8, date(2025, 9, 1): 6,
                date(2025, 11, 1): 7}  # fmt: skip


def _hand_facts(spark):
    old = months_back(date(2023, 12, 1), 6)  # sales before the window: they count for history only
    rows = (
        _fact_rows("STEADY@L1", old + WINDOW, [150] * 6 + STEADY)
        + _fact_rows("SEASONAL@L1", WINDOW, SEASONAL)
        + _fact_rows("TREND@L1", WINDOW, TRENDING)
        + _fact_rows("INTERM@L1", list(INTERMITTENT), list(INTERMITTENT.values()))
    )
    return spark.createDataFrame(rows, S.FACT_SALES_MONTHLY)


def reference(q: list[float], months: list[date]) -> dict[str, float]:
    """The features of one dense series, computed with numpy from the definitions in jobs/dfu/features.py."""
    q = np.asarray(q, dtype=float)
    n, t = len(q), np.arange(len(q))
    mean, std = q.mean(), q.std(ddof=1)
    slope = np.polyfit(t, q, 1)[0]
    season_slope = np.mean(q[12:] - q[:-12]) / 12 if n > 12 else slope
    first3, last3 = q[:3].mean(), q[-3:].mean()
    k, h = min(12, n // 2), n // 2
    fk, lk = q[:k].mean(), q[-k:].mean()
    growth = min((lk / fk) ** (12 / (n - k)) - 1, 5.0) if fk > 0 else (5.0 if lk > 0 else 0.0)
    fit = mean + season_slope * (t - t.mean())
    cal = np.array([m.month for m in months])
    idx = {c: np.mean((q / fit)[(cal == c) & (fit > 0)]) for c in sorted(set(cal))}
    norm = np.array(list(idx.values())) / np.mean(list(idx.values()))
    q1, q3 = np.percentile(q, [25, 75])
    nz = q[q > 0]
    runs, cur = [0], 0
    for v in q:
        cur = cur + 1 if v == 0 else 0
        runs.append(cur)
    cv = std / mean
    return {
        "mean_demand": mean, "median_demand": np.median(q), "std_demand": std, "cv_demand": cv,
        "min_demand": q.min(), "max_demand": q.max(), "total_demand": q.sum(),
        "trend_slope": slope, "trend_pct_change": (last3 - first3) / (first3 if first3 > 0 else mean),
        "trend_direction": int(np.sign(slope * 12 / mean)) if abs(slope * 12 / mean) > 0.1 else 0,
        "seasonality_strength": norm.max() - norm.min(), "seasonal_index_std": norm.std(),
        "peak_month": list(idx)[int(np.argmax(norm))],
        "year_over_year_correlation": np.corrcoef(q[:-12], q[12:])[0, 1] if n >= 14 else 0.0,
        "zero_demand_pct": (q == 0).mean(), "sparsity_score": max(runs) / n, "demand_stability": 1 / (1 + cv),
        "outlier_count": int(((q < q1 - 1.5 * (q3 - q1)) | (q > q3 + 1.5 * (q3 - q1))).sum()),
        "adi": n / len(nz), "cv2_nonzero": (nz.std(ddof=1) / nz.mean()) ** 2 if len(nz) > 1 else 0.0,
        "growth_rate": growth,
        "acceleration": (np.polyfit(t[-h:], q[-h:], 1)[0] - np.polyfit(t[:h], q[:h], 1)[0]) * 12 / mean,
        "recent_vs_historical": last3 / mean,
    }  # fmt: skip


def test_the_grid_is_dense_and_starts_at_the_first_sale_in_the_window(spark):
    grid = fe.monthly_grid(_hand_facts(spark), AS_OF, 24).where("dfu_id = 'INTERM@L1'")
    months = WINDOW[1:]
    expected = spark.createDataFrame(
        [(m, i, float(INTERMITTENT.get(m, 0))) for i, m in enumerate(months)], "month date, t int, qty double"
    )
    assert_df_equality(grid.select("month", "t", "qty"), expected, ignore_row_order=True, ignore_nullable=True)
    assert {tuple(r) for r in grid.select("history_months", "window_months").distinct().collect()} == {(23, 23)}


def test_features_of_hand_built_series_match_numpy(spark):
    got = fe.time_series_features(fe.monthly_grid(_hand_facts(spark), AS_OF, 24))
    discrete = ["dfu_id", "history_months", "window_months", "trend_direction", "peak_month", "outlier_count"]
    expected = spark.createDataFrame(
        [
            ("INTERM@L1", 23, 23, 0, 5, 0),  # two sales in May
            ("SEASONAL@L1", 24, 24, 0, 12, 0),
            ("STEADY@L1", 30, 24, 0, 8, 1),  # the August spike of 130
            ("TREND@L1", 24, 24, 1, 1, 0),
        ],
        StructType([StructField(c, StringType() if c == "dfu_id" else IntegerType()) for c in discrete]),
    )
    assert_df_equality(got.select(discrete), expected, ignore_row_order=True, ignore_nullable=True)

    series = {
        "STEADY@L1": (STEADY, WINDOW),
        "SEASONAL@L1": (SEASONAL, WINDOW),
        "TREND@L1": (TRENDING, WINDOW),
        "INTERM@L1": ([INTERMITTENT.get(m, 0) for m in WINDOW[1:]], WINDOW[1:]),
    }
    rows = {r["dfu_id"]: r.asDict() for r in got.collect()}  # four rows
    for dfu, (q, months) in series.items():
        ref = reference(q, months)
        for name in S.TIME_SERIES_FEATURES:
            assert rows[dfu][name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), (dfu, name)
    # The patterns read as intended through the labelling thresholds.
    assert rows["STEADY@L1"]["cv_demand"] < 0.3 and rows["SEASONAL@L1"]["seasonality_strength"] > 0.5
    assert rows["TREND@L1"]["growth_rate"] == pytest.approx(1.04**12 - 1, rel=0.02)
    assert rows["INTERM@L1"]["zero_demand_pct"] == pytest.approx(15 / 23) and rows["INTERM@L1"]["adi"] > 1.32
    assert rows["INTERM@L1"]["sparsity_score"] == pytest.approx(3 / 23)


# --- exclusions, writes, CSV ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_exclusions_reconcile_reruns_add_no_rows_and_the_csv_follows_the_contract(spark, small_cfg, dfu_cfg, tmp_path):
    cfg = _lake_cfg(small_cfg, tmp_path)
    lake = Lakehouse(spark, cfg)
    with pytest.raises(ValueError, match="fact_sales_monthly is empty"):
        fe.run(spark, cfg, dfu_cfg, output=tmp_path / "f.csv")
    rows = (
        _fact_rows("A@L1", WINDOW, STEADY)
        + _fact_rows("B@L2", WINDOW, TRENDING)
        + _fact_rows("SHORT@L1", WINDOW[-5:], [10, 12, 11, 9, 10])
        + _fact_rows("GONE@L1", [date(2023, 3, 1), date(2023, 5, 1)], [4, 6])
        + _fact_rows("ORPHAN@L1", WINDOW, STEADY)  # its item is not in dim_item
        + _fact_rows("A@L9", WINDOW, STEADY)  # not in dim_dfu
    )
    facts = pd.DataFrame(rows, columns=[f.name for f in S.FACT_SALES_MONTHLY.fields])
    dims = _dims(["A@L1", "B@L2", "SHORT@L1", "GONE@L1", "ORPHAN@L1", "NEVER@L1"], ["A", "B", "SHORT", "GONE", "NEVER"])
    counts = write(spark, cfg, {"fact_sales_monthly": facts, **dims})  # NEVER@L1 has no facts at all
    assert counts == {"fact_sales_monthly": len(rows), "dim_item": 5, "dim_dfu": 6, "dfu_pattern_truth": 0}

    out = tmp_path / "clustering_features.csv"
    first = fe.run(spark, cfg, dfu_cfg, output=out)
    assert first["as_of_month"] == "2025-12-01"  # the latest month in the facts
    assert (first["dfus_seen"], first["featured"], first["excluded"]) == (7, 2, 5)
    expected = spark.createDataFrame(
        [
            (AS_OF, "A@L9", "unknown_dfu", 24, "in fact_sales_monthly but not in dim_dfu"),
            (AS_OF, "ORPHAN@L1", "unknown_item", 24, "item ORPHAN not in dim_item"),
            (AS_OF, "GONE@L1", "no_demand_in_window", 34,
             "no sales in the 24-month window ending 2025-12 (last sale 2023-05)"),
            (AS_OF, "NEVER@L1", "no_demand_in_window", 0, "no rows in fact_sales_monthly up to 2025-12"),
            (AS_OF, "SHORT@L1", "insufficient_history", 5, "5 months of history (first sale 2025-08) < min 12"),
        ],
        S.DFU_CLUSTERING_EXCLUSIONS,
    )  # fmt: skip
    assert_df_equality(lake.read("dfu_clustering_exclusions"), expected, ignore_row_order=True, ignore_nullable=True)
    feats = lake.read("dfu_clustering_features")
    assert sorted(r["dfu_id"] for r in feats.collect()) == ["A@L1", "B@L2"]
    assert feats.where("category = 'Wine' AND case_weight = 36.0 AND bpc = 12.0").count() == 2  # attributes joined
    csv_bytes = out.read_bytes()

    again = fe.run(spark, cfg, dfu_cfg, output=out)
    assert again == first and out.read_bytes() == csv_bytes  # same rows, same bytes
    assert (lake.read("dfu_clustering_features").count(), lake.read("dfu_clustering_exclusions").count()) == (2, 5)
    csv = pd.read_csv(out)
    numeric = [f"item__{c}" for c in S.ITEM_NUMERIC] + [f"dfu__{c}" for c in S.DFU_NUMERIC]
    head = ["dfu_id", "as_of_month", *S.TIME_SERIES_FEATURES, *numeric]
    assert list(csv.columns[: len(head)]) == head
    onehot = list(csv.columns[len(head) :])
    assert onehot[:2] == ["item__category=Wine", "item__class=Red"] and all("=" in c for c in onehot)
    assert all(c.startswith(("item__", "dfu__")) for c in onehot)
    assert "dfu__region=unknown" in onehot and set(csv[onehot].stack()) <= {0, 1}
    assert list(csv["dfu_id"]) == ["A@L1", "B@L2"] and set(csv["as_of_month"]) == {"2025-12-01"}
    assert csv[numeric].notna().all().all() and csv["item__case_weight"].tolist() == [36.0, 36.0]


def _feature_rows(spark, rows: list[dict]):
    base = dict.fromkeys(S.TIME_SERIES_FEATURES, 0.0) | {"trend_direction": 0, "peak_month": 1, "outlier_count": 0}
    full = [
        {"as_of_month": AS_OF, "item_id": "I", "location_id": "L", "history_months": 24, "window_months": 24} | base | r
        for r in rows
    ]
    cols = [f.name for f in S.DFU_CLUSTERING_FEATURES.fields]
    return spark.createDataFrame([tuple(r.get(c) for c in cols) for r in full], S.DFU_CLUSTERING_FEATURES)


def test_encode_for_training_one_hot_other_unknown_and_median_fill(spark):
    df = _feature_rows(
        spark,
        [
            {"dfu_id": "d1", "category": "Wine", "case_weight": 30.0, "mean_demand": 5.0},
            {"dfu_id": "d2", "category": "Wine", "case_weight": None},
            {"dfu_id": "d3", "category": "Beer", "case_weight": 20.0},
            {"dfu_id": "d4", "category": "Spirits", "case_weight": 40.0},
            {"dfu_id": "d5", "category": None, "case_weight": 10.0},
        ],
    )
    got = encode_for_training(df, 2)
    cat = ["item__category=Wine", "item__category=Beer", "item__category=other", "item__category=unknown"]
    assert [c for c in got.columns if c.startswith("item__category")] == cat  # Beer beats Spirits on the name
    expected = spark.createDataFrame(
        [("d1", "2025-12-01", 5.0, 30.0, 1, 0, 0, 0), ("d2", "2025-12-01", 0.0, 25.0, 1, 0, 0, 0),
         ("d3", "2025-12-01", 0.0, 20.0, 0, 1, 0, 0), ("d4", "2025-12-01", 0.0, 40.0, 0, 0, 1, 0),
         ("d5", "2025-12-01", 0.0, 10.0, 0, 0, 0, 1)],
        StructType(
            [StructField(c, StringType()) for c in ("dfu_id", "as_of_month")]
            + [StructField(c, DoubleType()) for c in ("mean_demand", "item__case_weight")]
            + [StructField(c, IntegerType()) for c in cat]
        ),
    )  # fmt: skip
    cols = ["dfu_id", "as_of_month", "mean_demand", "item__case_weight", *cat]
    assert_df_equality(got.select(cols), expected, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)
    # A column with every value NULL: filled with 0, and only "=unknown".
    assert got.select("dfu__alcoh_pct").distinct().collect()[0][0] == 0.0
    assert [c for c in got.columns if c.startswith("dfu__region")] == ["dfu__region=unknown"]


# --- the generated demo set end to end -----------------------------------------------------------------------


def test_generated_patterns_are_recoverable_from_the_features(spark, dfu_cfg):
    frames = generate(dfu_cfg.generator, dfu_cfg.clustering.min_months_history)
    facts, items, dfus = (to_spark(spark, frames[n], TABLES[n].schema) for n in WRITES[:3])
    features, excluded = fe.build(facts, items, dfus, AS_OF, 24, dfu_cfg.clustering.min_months_history)
    got = features.select("dfu_id", *S.TIME_SERIES_FEATURES).toPandas()
    reasons = {r["dfu_id"]: r["reason"] for r in excluded.collect()}
    assert len(got) + len(reasons) == 120 and set(reasons.values()) == {"insufficient_history"}
    truth = frames["dfu_pattern_truth"]
    assert set(truth.loc[truth["first_month"] > months_back(AS_OF, 12)[0], "dfu_id"]) <= set(reasons)
    assert got.notna().all().all()  # the training matrix has no holes

    med = (
        got.merge(truth, on="dfu_id")
        .groupby("pattern")[
            ["cv_demand", "seasonality_strength", "growth_rate", "zero_demand_pct", "cv2_nonzero", "adi"]
        ]
        .median()
    )
    lab = dfu_cfg.clustering.labeling
    assert med.loc["steady", "cv_demand"] < lab.cv_thresholds.steady
    assert med.loc["seasonal", "seasonality_strength"] > lab.seasonality_threshold
    assert med.loc["growing", "growth_rate"] > lab.trend_threshold > abs(med.loc["steady", "growth_rate"])
    assert med.loc["declining", "growth_rate"] < -lab.trend_threshold
    for p in ("intermittent", "lumpy"):
        assert med.loc[p, "zero_demand_pct"] > lab.zero_demand_threshold and med.loc[p, "adi"] > lab.intermittency.adi
    for p in ("steady", "seasonal", "growing", "declining"):
        assert med.loc[p, "zero_demand_pct"] < lab.zero_demand_threshold
    assert med.loc["intermittent", "cv2_nonzero"] < lab.intermittency.cv2 < med.loc["lumpy", "cv2_nonzero"]
