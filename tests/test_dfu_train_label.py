"""DFU clustering: training (K selection, size constraint, determinism, MLflow reuse), labelling and scoring."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from jobs.dfu import evaluate, label, train
from jobs.dfu.config import Clustering, Labeling

BLOB_COLUMNS = [
    "mean_demand",
    "cv_demand",
    "zero_demand_pct",
    "cv2_nonzero",
    "seasonality_strength",
    "growth_rate",
    "trend_slope",
]
PLAIN = {"log_features": [], "exclude_features": []}


def matrix(x: np.ndarray, columns=BLOB_COLUMNS, seed: int = 0) -> pd.DataFrame:
    """A training matrix in the contract's naming: the given features plus two weak item attributes."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(x, columns=columns)
    df.insert(0, "as_of_month", "2025-12-01")
    df.insert(0, "dfu_id", [f"ITM{i:05d}@DC-1" for i in range(len(df))])
    df["item__case_weight"] = rng.normal(30, 3, len(df)).round(3)
    df["item__category=Spirits"] = rng.integers(0, 2, len(df))
    return df


def blobs(k: int, n: int = 240, seed: int = 3, **kw) -> pd.DataFrame:
    x, _ = make_blobs(n_samples=n, centers=k, n_features=len(BLOB_COLUMNS), random_state=seed, **kw)
    return matrix(x)


def clustering(**kw) -> Clustering:
    return Clustering.model_validate({**PLAIN, **kw})


# -- K selection ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [4, 5])
def test_every_method_finds_the_blobs_k(k):
    r = train.train(blobs(k), clustering(k_range=(2, 9)))
    assert r.metadata["k_by_method"] == {"elbow": k, "silhouette": k, "gap": k}
    assert r.metadata["chosen_k"] == k
    assert [s["k"] for s in r.metadata["k_scores"]] == list(range(2, 10))
    # clusters numbered by size, largest first
    assert r.metadata["cluster_sizes"] == sorted(r.metadata["cluster_sizes"], reverse=True)
    assert r.assignments["cluster_id"].value_counts().sort_index().tolist() == r.metadata["cluster_sizes"]


def test_elbow_is_the_point_farthest_from_the_chord():
    ks = [2, 3, 4, 5, 6, 7]
    wcss = [100, 50, 20, 17, 15, 14]  # the bend is at 4
    d = train.elbow_distances(ks, wcss)
    assert int(np.argmax(d)) == 2 and d[0] == pytest.approx(0) and d[-1] == pytest.approx(0)


def test_gap_rule_takes_the_smallest_k_within_one_sd_of_the_next():
    ks = [2, 3, 4, 5]
    gap = [0.5, 0.9, 0.95, 0.97]
    s = [0.1, 0.1, 0.1, 0.1]
    assert train.gap_choice(ks, gap, s, ks) == 3  # 0.9 >= 0.95 - 0.1
    assert train.gap_choice(ks, [0.1, 0.5, 0.9, 1.5], [0.01] * 4, ks) == 5  # never: the largest gap


def _scores(sil, wcss, gap, meets):
    return [
        {"k": k, "wcss": w, "silhouette": si, "gap": g, "gap_sd": 0.01, "meets_min_size": m}
        for k, si, w, g, m in zip(range(2, 2 + len(sil)), sil, wcss, gap, meets, strict=True)
    ]


def test_vote_majority_tie_goes_to_silhouette_and_selection_keys():
    # elbow 4, silhouette 5, gap 6 (steadily rising): no majority -> silhouette's 5
    scores = _scores([0.3, 0.4, 0.5, 0.6, 0.5], [100, 50, 20, 17, 15], [0.1, 0.2, 0.3, 0.4, 0.5], [True] * 5)
    chosen, by, _, warnings = train.choose_k(scores, "vote")
    assert by == {"elbow": 4, "silhouette": 5, "gap": 6} and chosen == 5
    assert warnings == ["gap statistic still rising at K=6, the top of k_range: the data may hold more clusters"]
    assert train.choose_k(scores, "gap")[0] == 6 and train.choose_k(scores, "elbow")[0] == 4
    # elbow and gap agree on 4: the majority wins over silhouette
    scores = _scores([0.3, 0.4, 0.5, 0.6, 0.5], [100, 50, 20, 17, 15], [0.1, 0.2, 0.9, 0.4, 0.5], [True] * 5)
    assert train.choose_k(scores, "vote")[:2] == (4, {"elbow": 4, "silhouette": 5, "gap": 4})


def test_min_cluster_size_constraint():
    # five blobs, one of them 4 DFUs out of 204 (2%): K=5 only passes a 1% minimum
    x, _ = make_blobs(n_samples=[50, 50, 50, 50, 4], n_features=len(BLOB_COLUMNS), random_state=3, center_box=(-12, 12))
    frame = matrix(x)
    free = train.train(frame, clustering(k_range=(2, 8), min_cluster_size_pct=1.0))
    assert free.metadata["chosen_k"] == 5 and min(free.metadata["cluster_sizes"]) == 4
    bound = train.train(frame, clustering(k_range=(2, 8), min_cluster_size_pct=5.0))
    assert bound.metadata["chosen_k"] == 4 and min(bound.metadata["cluster_sizes"]) >= 0.05 * len(frame)
    by_k = {s["k"]: s for s in bound.metadata["k_scores"]}
    assert not by_k[5]["meets_min_size"] and by_k[5]["smallest_cluster_pct"] == pytest.approx(4 / 204 * 100, abs=1e-4)
    assert bound.metadata["k_by_method_unconstrained"]["silhouette"] == 5
    # no K can give every cluster 60%: choose anyway, and say so
    none = train.train(frame, clustering(k_range=(2, 8), min_cluster_size_pct=60.0))
    assert any("no K meets min_cluster_size_pct" in w for w in none.metadata["warnings"])
    assert any(w.startswith(f"chosen K={none.metadata['chosen_k']}") for w in none.metadata["warnings"])


# -- preparation ---------------------------------------------------------------------------------------------------
def test_prepare_logs_drops_low_variance_and_weights_groups():
    x, _ = make_blobs(n_samples=100, centers=3, n_features=len(BLOB_COLUMNS), random_state=1)
    frame = matrix(x)
    frame["mean_demand"] = np.exp(frame["mean_demand"])  # heavy tailed: logged back
    frame["outlier_count"] = 0
    frame.loc[0, "outlier_count"] = 1  # variance on [0, 1] of 0.0099: dropped
    c = clustering(log_features=["mean_demand"], exclude_features=["trend_slope"], feature_weights={"item": 0.5})
    p = train.prepare(frame, c)
    assert p.dropped == ["outlier_count"] and p.excluded == ["trend_slope"]
    assert "trend_slope" not in p.columns and "item__case_weight" in p.columns
    # item: 2 columns weighted 0.5 -> 0.5/sqrt(2) each; volume group: 2 columns (mean_demand, cv_demand) -> 1/sqrt(2)
    assert p.weights["item__case_weight"] == pytest.approx(0.5 / np.sqrt(2))
    assert p.weights["cv_demand"] == pytest.approx(1 / np.sqrt(2))
    assert p.weights["seasonality_strength"] == pytest.approx(1.0)
    # standard scaling times the weight: the group's total variance is w**2
    item = [i for i, col in enumerate(p.columns) if col.startswith("item__")]
    assert p.x[:, item].var(axis=0).sum() == pytest.approx(0.25)
    assert train.prepare(frame, c.model_copy(update={"use_pca": True})).pca_components >= 1


def test_bad_matrix_names_the_problem():
    frame = blobs(3, n=30)
    with pytest.raises(ValueError, match=r"null or infinite values in \['cv_demand'\]"):
        train.check_matrix(frame.assign(cv_demand=np.nan))
    with pytest.raises(ValueError, match="columns of no feature group"):
        train.check_matrix(frame.assign(colour=1.0))
    with pytest.raises(ValueError, match="duplicate dfu_id"):
        train.check_matrix(pd.concat([frame, frame.iloc[:1]]))


# -- outputs, determinism, MLflow --------------------------------------------------------------------------------
def test_outputs_are_the_same_bytes_twice(tmp_path, dfu_cfg):
    src = tmp_path / "clustering_features.csv"
    blobs(4, n=120).to_csv(src, index=False)
    runs = [train.run(dfu_cfg, src, tmp_path / f"out{i}", track=False, k_range=(2, 6)) for i in (1, 2)]
    assert runs[0]["chosen_k"] == 4
    names = [
        "cluster_assignments.csv",
        "cluster_centroids.csv",
        "cluster_metadata.json",
        *[f"plots/{p}.png" for p in train.PLOTS],
    ]
    for name in names:
        assert (tmp_path / "out1" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes(), name
    md = json.loads((tmp_path / "out1" / "cluster_metadata.json").read_text())
    assert md["input"] == str(src.resolve()) and md["n_dfus"] == 120 and md["k_range"] == [2, 6]
    cent = pd.read_csv(tmp_path / "out1" / "cluster_centroids.csv")
    assign = pd.read_csv(tmp_path / "out1" / "cluster_assignments.csv")
    assert list(cent.columns[:3]) == ["cluster_id", "size", "size_pct"] and cent["size"].sum() == 120
    # centroids are the members' means in original units
    members = blobs(4, n=120)[assign["cluster_id"] == 0]
    assert cent.loc[0, "mean_demand"] == pytest.approx(members["mean_demand"].mean(), abs=1e-6)


def test_mlflow_run_is_reused_for_the_same_input_and_parameters(tmp_path, dfu_cfg):
    from mlflow.tracking import MlflowClient

    src = tmp_path / "features.csv"
    blobs(3, n=90, seed=8).to_csv(src, index=False)
    out = tmp_path / "out"
    args = ["--config", str(dfu_cfg.source), "--input", str(src), "--output-dir", str(out), "--k-range", "2", "5"]
    train.main(args)
    first = json.loads((out / "cluster_metadata.json").read_text())
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = train.run(dfu_cfg, src, out, k_range=(2, 5))
    assert again["mlflow_run_reused"] and again["mlflow_run_id"] == first["mlflow_run_id"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    client = MlflowClient(dfu_cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(dfu_cfg.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.fingerprint = '{first['fingerprint']}'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.params["k_min"] == "2" and run.data.metrics["chosen_k"] == 3
    assert [m.step for m in client.get_metric_history(run.info.run_id, "silhouette")] == [2, 3, 4, 5]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"cluster_assignments.csv", "cluster_centroids.csv", "cluster_metadata.json", "plots"} <= artifacts

    # labelling logs its files to the same run
    result = label.run(dfu_cfg, out / "cluster_centroids.csv", out / "cluster_assignments.csv",
                       out / "cluster_metadata.json", out)  # fmt: skip
    assert result["mlflow_logged"] and result["statistic"] == "median"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "labels")} == {
        "labels/cluster_labels.csv",
        "labels/cluster_profiles.json",
    }
    # other parameters: a new run
    other = train.run(dfu_cfg, src, tmp_path / "out2", k_range=(2, 4))
    assert not other["mlflow_run_reused"] and other["mlflow_run_id"] != first["mlflow_run_id"]


# -- labels --------------------------------------------------------------------------------------------------------
PROFILES = {  # cluster_id: (expected label, per-DFU features around which the members sit)
    0: ("high_volume_steady", dict(mean_demand=2000, cv_demand=0.1, zero_demand_pct=0, cv2_nonzero=0.01,
                                   seasonality_strength=0.2, growth_rate=0.0, adi=1)),
    1: ("seasonal_medium_volume", dict(mean_demand=100, cv_demand=0.4, zero_demand_pct=0, cv2_nonzero=0.15,
                                       seasonality_strength=1.0, growth_rate=0.02, adi=1)),
    2: ("high_volume_growing", dict(mean_demand=1500, cv_demand=0.3, zero_demand_pct=0, cv2_nonzero=0.1,
                                    seasonality_strength=0.25, growth_rate=0.6, adi=1)),
    3: ("medium_volume_declining", dict(mean_demand=120, cv_demand=0.35, zero_demand_pct=0.0, cv2_nonzero=0.12,
                                        seasonality_strength=0.3, growth_rate=-0.45, adi=1)),
    4: ("intermittent_low_volume", dict(mean_demand=8, cv_demand=1.3, zero_demand_pct=0.55, cv2_nonzero=0.1,
                                        seasonality_strength=2.8, growth_rate=0.1, adi=2.4)),
    5: ("lumpy_low_volume", dict(mean_demand=10, cv_demand=2.0, zero_demand_pct=0.6, cv2_nonzero=1.0,
                                 seasonality_strength=4.0, growth_rate=0.3, adi=2.5)),
    6: ("medium_volume_volatile", dict(mean_demand=90, cv_demand=0.9, zero_demand_pct=0.1, cv2_nonzero=0.5,
                                       seasonality_strength=0.4, growth_rate=0.05, adi=1.1)),
}  # fmt: skip


def members_frame() -> pd.DataFrame:
    rows = []
    for cid, (_, f) in PROFILES.items():
        for j, jitter in enumerate((0.9, 1.0, 1.1, 0.95, 25.0 if cid == 0 else 1.05)):  # one outlier in cluster 0
            scaled = {k: v * jitter for k, v in f.items()}
            categories = {"item__category=Spirits": int(j < 3), "item__category=Wine": int(j >= 3)}
            rows.append({"dfu_id": f"D{cid}{j}", "cluster_id": cid, **scaled, "peak_month": 7, **categories})
    return pd.DataFrame(rows)


def test_labels_for_hand_built_cluster_profiles():
    profiles, cuts = label.profile_clusters(members_frame(), Labeling())
    assert {p["cluster_id"]: p["label"] for p in profiles} == {cid: lbl for cid, (lbl, _) in PROFILES.items()}
    by = {p["cluster_id"]: p for p in profiles}
    # medians, not means: cluster 0's outlier DFU (cv 2.5) does not make it volatile
    assert by[0]["median"]["cv_demand"] == pytest.approx(0.1) and by[0]["mean"]["cv_demand"] > 0.3
    assert by[5]["sb_class"] == "lumpy" and by[4]["sb_class"] == "intermittent" and by[0]["sb_class"] == "smooth"
    assert by[5]["rule"].startswith("zero_demand_pct 0.6 > 0.2, cv2_nonzero 1 > 0.49")
    assert by[0]["top_categories"]["item__category"][0] == {"level": "Spirits", "share": 0.6}
    assert by[0]["peak_month"] == 7 and sum(p["size"] for p in profiles) == 35
    assert cuts["low"] < cuts["high"]
    # thresholds come from the config: a higher seasonality threshold turns cluster 1 into a plain one
    strict = Labeling.model_validate({"seasonality_threshold": 1.5})
    relabelled = {p["cluster_id"]: p["pattern"] for p in label.profile_clusters(members_frame(), strict)[0]}
    assert relabelled[1] == "variable"


def test_label_composition_round_trips():
    assert label.compose("high", "seasonal") == "seasonal_high_volume"
    assert label.compose("low", "declining") == "low_volume_declining"
    for tier in label.TIERS:
        for pattern in ("steady", "seasonal", "growing", "declining", "intermittent", "lumpy", "volatile", "variable"):
            assert label.split_label(label.compose(tier, pattern)) == (tier, pattern)
    with pytest.raises(ValueError, match="is not"):
        label.split_label("cluster_3")


# -- evaluation ----------------------------------------------------------------------------------------------------
def test_score_on_a_hand_built_frame():
    truth = pd.DataFrame(
        {
            "dfu_id": [f"d{i}" for i in range(12)],
            "pattern": ["steady"] * 4 + ["seasonal"] * 4 + ["lumpy"] * 4,
            "volume_tier": ["high"] * 8 + ["low"] * 4,
        }
    )
    # steady split over clusters 0 and 1 (both labelled steady), seasonal in 2, lumpy in 3: every pattern named
    clusters = [0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    names = {0: "high_volume_steady", 1: "high_volume_steady", 2: "seasonal_high_volume", 3: "lumpy_low_volume"}
    labelled = pd.DataFrame({"dfu_id": truth["dfu_id"], "cluster_id": clusters, "label": [names[c] for c in clusters]})
    r = evaluate.score(labelled, truth)
    assert r["ari_pattern"] == 1.0 and r["ari_label"] == 1.0 and r["ari_cluster"] < 1.0 and r["passed"]
    steady = r["per_pattern"][2]
    assert steady == {"pattern": "steady", "dfus": 4, "majority_cluster": 0, "label": "high_volume_steady",
                      "share": 0.75, "names_pattern": True, "labelled_as_pattern": 1.0}  # fmt: skip

    # the seasonal cluster labelled steady: its majority label does not name it, and the ARI drops
    names[2] = "high_volume_steady"
    wrong = labelled.assign(label=[names[c] for c in clusters])
    r = evaluate.score(wrong, truth)
    seasonal = next(p for p in r["per_pattern"] if p["pattern"] == "seasonal")
    assert not seasonal["names_pattern"] and not r["passed"] and r["ari_pattern"] < 0.7
    # DFUs with truth but no cluster are counted, not scored
    assert evaluate.score(labelled.iloc[2:], truth)["dfus_with_truth_not_clustered"] == 2
