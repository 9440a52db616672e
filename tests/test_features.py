"""The shape model (feature vectors), nearest-centroid matching and library learning: numpy only, no Spark."""

import numpy as np
import pandas as pd
import pytest

from jobs.lib.config import Clustering
from jobs.lib.features import BREADTH, FEATURES, Library, slice_features
from jobs.lib.labels import UNEXPLAINED
from jobs.library.build_cluster_library import train

TICK_H = 0.25
WS = pd.Timestamp("2025-08-12 10:00")


def features(actual, baseline=None, revenue=None, source_rows=None, breadth=None, ref_price=2.0):
    actual = np.asarray(actual, dtype=float)
    n = len(actual)
    baseline = np.full(n, 10.0) if baseline is None else np.asarray(baseline, dtype=float)
    revenue = actual * ref_price if revenue is None else np.asarray(revenue, dtype=float)
    source_rows = np.ones(n) if source_rows is None else np.asarray(source_rows, dtype=float)
    breadth = np.zeros((n, len(BREADTH))) if breadth is None else np.asarray(breadth, dtype=float)
    vec, used, degraded = slice_features(
        np.arange(n) * TICK_H, actual, baseline, revenue, source_rows, breadth, ref_price, WS, TICK_H
    )
    return (None if vec is None else dict(zip(FEATURES, vec, strict=True))), used, degraded


def test_a_viral_spike_rises_fast_and_fades_slowly():
    f, used, degraded = features([30, 50, 50, 40, 32, 26, 22, 19, 17, 15, 14, 13])
    assert used == 12 and not degraded
    assert f["uplift"] > 0.5 and f["peak"] == pytest.approx(np.log(51 / 11))
    assert f["skewness"] > 0  # mass early, long tail
    assert f["peak_position"] < 0.3
    assert f["decay_slope"] < 0 < f["rise_slope"]
    assert f["duration"] == pytest.approx(np.log1p(12 * TICK_H))
    assert f["tod_sin"] == pytest.approx(np.sin(2 * np.pi * 10 / 24))
    assert f["unit_price_shift"] == pytest.approx(0.0) and f["zero_share"] == 0.0


def test_a_plateau_is_flat_topped_and_a_store_outage_is_all_zeros():
    plateau, _, _ = features([25] * 16)
    assert plateau["kurtosis"] < 0 and plateau["volatility"] == pytest.approx(0.0)
    outage, _, _ = features([0] * 10, breadth=np.tile([1.0, 0, 0.3, 0], (10, 1)))
    assert outage["zero_share"] == 1.0 and outage["uplift"] < 0
    assert outage["breadth_store"] == 1.0 and outage["breadth_category_region"] == pytest.approx(0.3)


def test_data_errors_show_in_price_and_duplicates():
    glitch, _, _ = features([120] * 8, revenue=[20.0] * 8, ref_price=2.0)  # 12x units, same revenue
    assert glitch["unit_price_shift"] == pytest.approx(np.log(20 / 120 / 2.0))
    resent, _, _ = features([20] * 8, source_rows=[2, 2, 2, 2, 2, 2, 1, 1])
    assert resent["duplicate_share"] == pytest.approx(0.75)


def test_missing_ticks_degrade_the_vector_and_no_usable_tick_gives_none():
    f, used, degraded = features([30, np.nan, 40], baseline=[10, 10, np.nan])
    assert used == 1 and degraded and f is not None
    assert features([np.nan, np.nan]) == (None, 0, True)


def _library(centroids, metric="euclidean", names=("A", "B", "C")):
    k = len(centroids)
    rows = pd.DataFrame(
        {
            "library_version": "t",
            "cluster_id": [f"C{i + 1:02d}" for i in range(k)],
            "cluster_name": list(names[:k]),
            "detection_type": ["Data Error"] * k,
            "centroid": [list(map(float, c)) for c in centroids],
            "feature_names": [list(FEATURES)] * k,
            "feature_mean": [[0.0] * len(FEATURES)] * k,
            "feature_scale": [[1.0] * len(FEATURES)] * k,
            "feature_weights": [[1.0] * len(FEATURES)] * k,
            "distance_metric": metric,
            "distance_scale": 1.0,
        }
    )
    return Library.from_rows(rows)


def test_matching_picks_the_nearest_centroid_and_confidence_falls_between_two():
    e = np.eye(len(FEATURES))
    lib = _library([e[0] * 4, e[1] * 4, e[2] * 4])
    best, sim, conf, second = lib.match(e[0] * 4)
    assert (best, sim, conf) == (0, 1.0, 1.0) and second is not None
    best, sim, conf, _ = lib.match(e[0] * 2 + e[1] * 2)  # halfway between A and B
    assert best in (0, 1) and conf == pytest.approx(0.0) and 0 < sim < 1
    best, _, conf, _ = lib.match(e[0] * 3 + e[1] * 1)
    assert best == 0 and 0 < conf < 1
    cos = _library([e[0], e[1]], metric="cosine")
    assert cos.match(e[1] * 7)[0] == 1  # cosine: direction, not length


def test_a_library_built_for_other_features_is_refused():
    lib_rows = pd.DataFrame(
        {
            "library_version": ["old"],
            "cluster_id": ["C01"],
            "feature_names": [["uplift"]],
        }
    )
    with pytest.raises(ValueError, match="rebuild it"):
        Library.from_rows(lib_rows)


def test_training_picks_k_by_silhouette_and_names_clusters_by_majority_label():
    rng = np.random.default_rng(0)
    centres = {"social_viral": 0, "store_incident": 1, "unit_glitch": 2}
    x, labels = [], []
    for label, axis in centres.items():
        for _ in range(15):
            v = np.zeros(len(FEATURES))
            v[:3] = rng.normal(0, 0.2, 3)
            v[axis] += 5.0
            x.append(v)
            labels.append(label)
    labels[0] = None  # one unlabelled report does not rename its cluster
    settings = Clustering(library_version="t", library_file="x.json", k_min=2, k_max=6)
    model = train(np.array(x), labels, settings)
    assert model["k"] == 3
    names = sorted(c["cluster_name"] for c in model["clusters"])
    assert names == ["Store Outage", "TikTok Viral", "Unit Glitch"]
    assert [c["cluster_id"] for c in model["clusters"]] == ["C01", "C02", "C03"]
    assert sum(c["member_count"] for c in model["clusters"]) == 45
    assert UNEXPLAINED not in names
    assert model["feature_names"] == list(FEATURES)
    # Deterministic: the same data gives the same library.
    assert train(np.array(x), labels, settings) == model
