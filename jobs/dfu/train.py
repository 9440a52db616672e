"""Train the DFU clustering: KMeans over a K range on the feature matrix, K chosen by elbow, silhouette, gap
statistic and the minimum-cluster-size constraint; writes assignments, centroids, metadata and plots, tracked in
MLflow.

    python -m jobs.dfu.train [--config C] [--input CSV] [--k-range 3 12] [--min-cluster-size-pct P]
                             [--use-pca | --no-use-pca] [--output-dir DIR]

Preparation, in this order (every step configured in ``clustering`` of conf/clustering_config.yaml):

1. ``exclude_features`` are left out of the model (still reported in the centroids);
2. ``log_features`` get ``sign(x) * log1p(|x|)`` (= log1p for the non-negative demand volumes) so that a few
   very large DFUs do not stretch the volume axis;
3. low-variance removal: ``VarianceThreshold(low_variance_threshold)`` on the features min-max scaled to [0, 1]
   (the note's "< 0.01"). After standard scaling every variance is 1, and on raw units a threshold means nothing
   across features; on [0, 1] it removes constants, near-constants and one-hot levels held by about 1% of DFUs;
4. ``feature_scaling`` (standard | robust | minmax);
5. group weights: a group's columns are multiplied by ``w / sqrt(n_columns)``, so every group contributes
   ``w**2`` to the squared distance (with standard scaling) however many columns it has. Groups are
   ``schemas.dfu.FEATURE_GROUPS`` and the ``item__`` / ``dfu__`` prefixes; a group weighted 0 is left out;
6. with ``use_pca``, PCA keeping ``pca_variance`` of the variance.

K selection, for every K of ``k_range`` (KMeans, ``n_init`` 10, ``random_state`` from the config):

- elbow: the K farthest from the chord joining the ends of the WCSS curve, both axes normalised to [0, 1];
- silhouette: the highest silhouette score (on a seeded sample of ``silhouette_sample_size`` above that many DFUs);
- gap statistic (Tibshirani, Walther & Hastie 2001): ``gap_references`` seeded uniform reference sets over the
  data's bounding box in its principal-component frame (the paper's option b; one-hot and other discrete columns
  are permuted instead, see ``reference_sets``); the smallest K with
  ``gap(K) >= gap(K+1) - s(K+1)``, else the K of the largest gap;
- business constraint: only Ks whose smallest cluster holds at least ``min_cluster_size_pct`` of the DFUs are
  candidates (when no K does, all are, and the metadata carries a warning).

``k_selection: vote`` takes the K at least two methods agree on, else the silhouette's. Clusters are numbered by
size, largest first (ties: the cluster holding the smallest dfu_id), so outputs are the same bytes on a re-run.

Idempotent: the run's fingerprint (sha256 of the input file's bytes and the effective parameters) is an MLflow
tag; when a FINISHED run with the same fingerprint exists it is reused and nothing new is logged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_selection import VarianceThreshold
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
from threadpoolctl import threadpool_limits

from jobs.dfu.config import Clustering, ClusteringConfig, load_clustering_config
from schemas.dfu import FEATURE_GROUPS

ID_COLUMNS = ("dfu_id", "as_of_month")
PREFIX_GROUPS = {"item__": "item", "dfu__": "dfu"}
N_INIT = 10
DISCRETE_LEVELS = 3  # gap references: a column with at most this many values is drawn from its own values
# Bump when a change of this module changes its outputs for the same input and parameters: the fingerprint
# then differs and a new MLflow run is made instead of reusing the old one.
TRAIN_VERSION = 1
SCALERS = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
PLOTS = ("elbow", "silhouette", "gap", "clusters_2d")
_GROUP_OF = {c: g for g, cols in FEATURE_GROUPS.items() for c in cols}


# -- reading -------------------------------------------------------------------------------------------------
def feature_group(column: str) -> str:
    """The weight group of a matrix column: its FEATURE_GROUPS name, or item / dfu by prefix."""
    if column in _GROUP_OF:
        return _GROUP_OF[column]
    for prefix, group in PREFIX_GROUPS.items():
        if column.startswith(prefix):
            return group
    raise ValueError(f"column {column!r} is neither a time-series feature nor an item__/dfu__ attribute")


def read_matrix(path: str | os.PathLike) -> pd.DataFrame:
    """The training matrix (contract column naming), checked: sorted by dfu_id, every feature numeric and finite."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the feature matrix does not exist (run `python -m jobs.dfu.features`)")
    frame = pd.read_csv(path, dtype={"dfu_id": str, "as_of_month": str})
    return check_matrix(frame, str(path))


def check_matrix(frame: pd.DataFrame, name: str = "matrix") -> pd.DataFrame:
    """The frame sorted by dfu_id, or a ValueError naming what is wrong (``name``: the file, for the message)."""
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}")
    if frame.empty:
        raise ValueError(f"{name}: no rows")
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    unknown = []
    for c in features:
        try:
            feature_group(c)
        except ValueError:
            unknown.append(c)
    if unknown:
        raise ValueError(
            f"{name}: columns of no feature group {unknown} (expected FEATURE_GROUPS names, item__*, dfu__*)"
        )
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"{name}: non-numeric feature columns {non_numeric}")
    values = frame[features].to_numpy(dtype=float)
    bad = [c for c, ok in zip(features, np.isfinite(values).all(axis=0), strict=True) if not ok]
    if bad:
        raise ValueError(f"{name}: null or infinite values in {bad}")
    dupes = frame["dfu_id"][frame["dfu_id"].duplicated()].unique().tolist()
    if dupes:
        raise ValueError(f"{name}: duplicate dfu_id {dupes[:5]}")
    if frame["as_of_month"].nunique() != 1:
        raise ValueError(f"{name}: expected one as_of_month, got {sorted(frame['as_of_month'].unique())}")
    return frame.sort_values("dfu_id", kind="stable").reset_index(drop=True)


# -- preparation (pure) -----------------------------------------------------------------------------------------
@dataclass
class Prepared:
    x: np.ndarray  # model space: rows = DFUs
    columns: list[str]  # features used (before PCA)
    dropped: list[str]  # low variance
    excluded: list[str]  # exclude_features and zero-weight groups
    weights: dict[str, float]  # column -> multiplier applied after scaling
    pca_components: int | None = None


def group_weights(columns: list[str], feature_weights: dict[str, float]) -> dict[str, float]:
    """Per column ``w / sqrt(n)``: each group weighs ``w`` whatever its width."""
    groups = [feature_group(c) for c in columns]
    sizes = pd.Series(groups).value_counts().to_dict()
    return {c: feature_weights.get(g, 1.0) / np.sqrt(sizes[g]) for c, g in zip(columns, groups, strict=True)}


def prepare(frame: pd.DataFrame, clustering: Clustering) -> Prepared:
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    zero = [c for c in features if clustering.feature_weights.get(feature_group(c), 1.0) == 0]
    excluded = [c for c in features if c in clustering.exclude_features or c in zero]
    cols = [c for c in features if c not in excluded]
    if not cols:
        raise ValueError("no feature left to cluster on after exclude_features and zero weights")
    x = frame[cols].to_numpy(dtype=float)
    logged = [i for i, c in enumerate(cols) if c in clustering.log_features]
    x[:, logged] = np.sign(x[:, logged]) * np.log1p(np.abs(x[:, logged]))
    vt = VarianceThreshold(clustering.low_variance_threshold).fit(MinMaxScaler().fit_transform(x))
    keep = vt.get_support()
    if not keep.any():
        raise ValueError(f"every feature has variance <= low_variance_threshold {clustering.low_variance_threshold}")
    dropped = [c for c, k in zip(cols, keep, strict=True) if not k]
    cols = [c for c, k in zip(cols, keep, strict=True) if k]
    x = SCALERS[clustering.feature_scaling]().fit_transform(x[:, keep])
    weights = group_weights(cols, clustering.feature_weights)
    x = x * np.array([weights[c] for c in cols])
    prepared = Prepared(x, cols, dropped, excluded, weights)
    if clustering.use_pca:
        pca = PCA(n_components=clustering.pca_variance, svd_solver="full", random_state=clustering.random_state)
        prepared.x = pca.fit_transform(x)
        prepared.pca_components = int(pca.n_components_)
    return prepared


# -- K selection (pure) -----------------------------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, random_state: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=N_INIT, random_state=random_state).fit(x)


def elbow_distances(ks: list[int], wcss: list[float]) -> np.ndarray:
    """Distance of each point of the normalised WCSS curve from the chord joining its ends."""
    k, w = np.asarray(ks, float), np.asarray(wcss, float)
    if len(k) < 3 or w.max() == w.min():
        return np.zeros(len(k))
    kn = (k - k[0]) / (k[-1] - k[0])
    wn = (w - w.min()) / (w.max() - w.min())
    # chord from (0, wn[0]) to (1, wn[-1]); perpendicular distance of every point
    dx, dy = 1.0, wn[-1] - wn[0]
    return np.abs(dy * kn - dx * (wn - wn[0])) / np.hypot(dx, dy)


def reference_sets(x: np.ndarray, references: int, random_state: int) -> list[np.ndarray]:
    """Data sets without cluster structure, shaped like ``x``: continuous columns uniform over the data's bounding
    box in its principal-component frame (Tibshirani et al.'s option b), discrete columns (at most
    ``DISCRETE_LEVELS`` values: one-hot attributes, trend_direction) each a seeded permutation of its own values."""
    rng = np.random.default_rng(random_state)
    discrete = np.array([len(np.unique(x[:, j])) <= DISCRETE_LEVELS for j in range(x.shape[1])], dtype=bool)
    cont = x[:, ~discrete]
    centred = cont - cont.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    z = centred @ vt.T
    lo, hi = z.min(axis=0), z.max(axis=0)
    refs = []
    for _ in range(references):
        r = np.empty_like(x)
        r[:, ~discrete] = rng.uniform(lo, hi, size=z.shape) @ vt
        for j in np.flatnonzero(discrete):
            r[:, j] = rng.permutation(x[:, j])
        refs.append(r)
    return refs


def gap_statistic(
    x: np.ndarray, ks: list[int], wcss: list[float], references: int, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gap(k) = E*[log W*_k] - log W_k and s_k = sd_k * sqrt(1 + 1/B) (Tibshirani et al. 2001, eq. 3 and step 3)
    over ``reference_sets``.

    Why not the plain box of the columns (the paper's option a): on standardised blobs it chose 7-10 for 3-5 true
    clusters in 20 dimensions, and a 0/1 column, perfectly "clustered" in its own dimension, drew it to the top of
    the K range (test blobs plus one one-hot column: right K in 9 of 20 cases, 19 of 20 with these references)."""
    refs = reference_sets(x, references, random_state)
    log_ref = np.array([[np.log(kmeans(r, k, random_state).inertia_) for r in refs] for k in ks])
    gap = log_ref.mean(axis=1) - np.log(np.maximum(np.asarray(wcss, float), 1e-300))
    s = log_ref.std(axis=1) * np.sqrt(1 + 1 / references)
    return gap, s


def gap_choice(ks: list[int], gap: list[float], s: list[float], candidates: list[int]) -> int:
    """The smallest candidate k with gap(k) >= gap(k+1) - s(k+1); else the candidate of the largest gap."""
    at = {k: i for i, k in enumerate(ks)}
    for k in candidates:
        if k + 1 in at and gap[at[k]] >= gap[at[k + 1]] - s[at[k + 1]]:
            return k
    return max(candidates, key=lambda k: (gap[at[k]], -k))


def choose_k(scores: list[dict], k_selection: str) -> tuple[int, dict, dict, list[str]]:
    """(chosen K, each method's K among the Ks meeting the size constraint, each method's K over all Ks,
    warnings) from the per-K scores (k, wcss, silhouette, gap, gap_sd, meets_min_size)."""
    ks = [s["k"] for s in scores]
    warnings = []
    candidates = [s["k"] for s in scores if s["meets_min_size"]]
    if not candidates:
        candidates = ks
        warnings.append("no K meets min_cluster_size_pct: chose among all Ks")
    at = {k: i for i, k in enumerate(ks)}
    dist = elbow_distances(ks, [s["wcss"] for s in scores])
    sil = [s["silhouette"] for s in scores]
    gap, sd = [s["gap"] for s in scores], [s["gap_sd"] for s in scores]

    def by_method(cands: list[int]) -> dict:
        return {
            "elbow": max(cands, key=lambda k: (dist[at[k]], -k)),
            "silhouette": max(cands, key=lambda k: (sil[at[k]], -k)),
            "gap": gap_choice(ks, gap, sd, cands),
        }

    constrained, unconstrained = by_method(candidates), by_method(ks)
    top = ks[-1]
    if constrained["gap"] == top:
        # only reachable by the fallback (the top K has no K+1 to compare with): no K met the rule
        warnings.append(f"gap statistic still rising at K={top}, the top of k_range: the data may hold more clusters")
    if k_selection == "vote":
        votes = pd.Series(list(constrained.values())).value_counts()
        chosen = int(votes.index[0]) if votes.iloc[0] >= 2 else constrained["silhouette"]
    else:
        chosen = constrained[k_selection]
    return chosen, constrained, unconstrained, warnings


def sweep(x: np.ndarray, clustering: Clustering, k_range: tuple[int, int]) -> tuple[list[dict], dict[int, KMeans]]:
    """KMeans for every K of the range with its WCSS, silhouette, gap, s_k and smallest cluster share."""
    n = len(x)
    lo, hi = k_range
    hi = min(hi, n - 1)
    if hi < lo:
        raise ValueError(f"k_range {list(k_range)}: needs more than {lo} DFUs, got {n}")
    ks = list(range(lo, hi + 1))
    models = {k: kmeans(x, k, clustering.random_state) for k in ks}
    sample = clustering.silhouette_sample_size if n > clustering.silhouette_sample_size else None
    wcss = [float(models[k].inertia_) for k in ks]
    gap, sd = gap_statistic(x, ks, wcss, clustering.gap_references, clustering.random_state)
    scores = []
    for i, k in enumerate(ks):
        labels = models[k].labels_
        smallest = float(np.bincount(labels, minlength=k).min() / n * 100)
        sil = (
            float(silhouette_score(x, labels, sample_size=sample, random_state=clustering.random_state))
            if len(set(labels)) > 1
            else -1.0
        )
        scores.append(
            {
                "k": k,
                "wcss": wcss[i],
                "silhouette": sil,
                "gap": float(gap[i]),
                "gap_sd": float(sd[i]),
                "smallest_cluster_pct": smallest,
                "meets_min_size": smallest >= clustering.min_cluster_size_pct,
            }
        )
    return scores, models


def renumber(labels: np.ndarray, dfu_ids: list[str]) -> np.ndarray:
    """Cluster ids by size descending, ties by the smallest dfu_id of the cluster."""
    df = pd.DataFrame({"c": labels, "id": dfu_ids})
    order = (
        df.groupby("c").agg(n=("id", "size"), first=("id", "min")).sort_values(["n", "first"], ascending=[False, True])
    )
    mapping = {old: new for new, old in enumerate(order.index)}
    return np.array([mapping[c] for c in labels])


# -- training (pure) ---------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    assignments: pd.DataFrame
    centroids: pd.DataFrame
    metadata: dict
    x: np.ndarray
    scores: list[dict]
    warnings: list[str] = field(default_factory=list)


def _r(v: float) -> float:
    return round(float(v), 6)


def train(frame: pd.DataFrame, clustering: Clustering, input_path: str = "") -> TrainResult:
    """Prepare, sweep K, choose, and describe the clusters (no files, no MLflow)."""
    # One thread: on these small matrices OpenMP/BLAS threads cost far more than they give (measured 15x slower
    # with 2 threads on a busy 2-core machine), and one thread gives the same floats on every machine.
    with threadpool_limits(limits=1):
        return _train(frame, clustering, input_path)


def _train(frame: pd.DataFrame, clustering: Clustering, input_path: str) -> TrainResult:
    frame = check_matrix(frame, input_path or "matrix")
    prep = prepare(frame, clustering)
    scores, models = sweep(prep.x, clustering, tuple(clustering.k_range))
    chosen, by_method, unconstrained, warnings = choose_k(scores, clustering.k_selection)
    if scores[-1]["k"] < clustering.k_range[1]:
        warnings.append(f"k_range capped at {scores[-1]['k']}: only {len(frame)} DFUs")
    model = models[chosen]
    ids = frame["dfu_id"].tolist()
    labels = renumber(model.labels_, ids)
    centers = np.vstack([prep.x[labels == c].mean(axis=0) for c in range(chosen)])
    dist = np.linalg.norm(prep.x - centers[labels], axis=1)
    assignments = pd.DataFrame({"dfu_id": ids, "cluster_id": labels, "distance_to_centroid": np.round(dist, 6)})
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    means = frame[features].groupby(labels).mean().round(6)
    sizes = np.bincount(labels, minlength=chosen)
    centroids = pd.concat(
        [
            pd.DataFrame(
                {"cluster_id": range(chosen), "size": sizes, "size_pct": np.round(sizes / len(frame) * 100, 4)}
            ),
            means.reset_index(drop=True),
        ],
        axis=1,
    )
    rounded = [
        {k: (_r(v) if isinstance(v, float) else v) for k, v in s.items()}
        | {"meets_min_size": bool(s["meets_min_size"])}
        for s in scores
    ]
    chosen_score = next(s for s in rounded if s["k"] == chosen)
    if not chosen_score["meets_min_size"]:
        warnings.append(
            f"chosen K={chosen} has a cluster of {chosen_score['smallest_cluster_pct']}% of DFUs "
            f"< min_cluster_size_pct {clustering.min_cluster_size_pct}"
        )
    metadata = {
        "input": input_path,
        "as_of_month": str(frame["as_of_month"].iloc[0]),
        "n_dfus": len(frame),
        "features_used": prep.columns,
        "features_dropped": prep.dropped,
        "features_excluded": prep.excluded,
        "log_features": [c for c in prep.columns if c in clustering.log_features],
        "feature_weights": dict(clustering.feature_weights),
        "column_weights": {c: _r(w) for c, w in prep.weights.items()},
        "scaling": clustering.feature_scaling,
        "low_variance_threshold": clustering.low_variance_threshold,
        "use_pca": clustering.use_pca,
        "pca_components": prep.pca_components,
        "k_range": list(clustering.k_range),
        "min_cluster_size_pct": clustering.min_cluster_size_pct,
        "k_scores": rounded,
        "k_by_method": by_method,
        "k_by_method_unconstrained": unconstrained,
        "k_selection": clustering.k_selection,
        "chosen_k": chosen,
        "silhouette": chosen_score["silhouette"],
        "cluster_sizes": sizes.tolist(),
        "random_state": clustering.random_state,
        "n_init": N_INIT,
        "gap_references": clustering.gap_references,
        "silhouette_sample_size": clustering.silhouette_sample_size,
        "warnings": warnings,
        "fingerprint": None,
        "mlflow_run_id": None,
    }
    return TrainResult(assignments, centroids, metadata, prep.x, rounded, warnings)


# -- outputs -------------------------------------------------------------------------------------------------------
def effective_params(clustering: Clustering) -> dict:
    """Everything that changes the outputs for a given input file."""
    return {
        "train_version": TRAIN_VERSION,
        "n_init": N_INIT,
        **clustering.model_dump(mode="json", exclude={"labeling"}),
    }


def fingerprint(input_bytes: bytes, params: dict) -> str:
    h = hashlib.sha256(input_bytes)
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def _savefig(fig, path: Path) -> None:
    # no Software/date metadata: the same data gives the same PNG bytes
    fig.savefig(path, dpi=100, metadata={"Software": None})


def write_plots(result: TrainResult, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    md, scores = result.metadata, result.scores
    ks = [s["k"] for s in scores]
    chosen, by = md["chosen_k"], md["k_by_method"]
    bad = [s["k"] for s in scores if not s["meets_min_size"]]

    def curve(name: str, values: list[float], ylabel: str, mark: int, yerr=None) -> Path:
        fig, ax = plt.subplots(figsize=(6, 4))
        if yerr is None:
            ax.plot(ks, values, "o-")
        else:
            ax.errorbar(ks, values, yerr=yerr, fmt="o-", capsize=3)
        ax.axvline(mark, color="tab:orange", ls="--", label=f"{name} K={mark}")
        if chosen != mark:
            ax.axvline(chosen, color="tab:green", ls=":", label=f"chosen K={chosen}")
        for k in bad:
            ax.axvspan(k - 0.5, k + 0.5, color="0.9", zorder=0)
        ax.set_xlabel("K (grey: a cluster below min_cluster_size_pct)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(ks)
        ax.legend()
        fig.tight_layout()
        path = plots / f"{name}.png"
        _savefig(fig, path)
        plt.close(fig)
        return path

    paths = [
        curve("elbow", [s["wcss"] for s in scores], "WCSS (inertia)", by["elbow"]),
        curve("silhouette", [s["silhouette"] for s in scores], "silhouette", by["silhouette"]),
        curve("gap", [s["gap"] for s in scores], "gap statistic (bars: s_k)", by["gap"], [s["gap_sd"] for s in scores]),
    ]
    labels = result.assignments["cluster_id"].to_numpy()
    xy = (
        PCA(n_components=2, random_state=md["random_state"]).fit_transform(result.x)
        if result.x.shape[1] > 1
        else (np.column_stack([result.x[:, 0], np.zeros(len(result.x))]))
    )
    fig, ax = plt.subplots(figsize=(7, 5))
    cmap = plt.get_cmap("tab20" if chosen > 10 else "tab10")
    for c in range(chosen):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=10, color=cmap(c % cmap.N), label=f"{c} ({m.sum()})")
    ax.set_xlabel("PC 1 of the model space")
    ax.set_ylabel("PC 2")
    ax.set_title(f"DFU clusters, K={chosen}")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    fig.tight_layout()
    path = plots / "clusters_2d.png"
    _savefig(fig, path)
    plt.close(fig)
    return [*paths, path]


def write_outputs(result: TrainResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "cluster_assignments.csv", out_dir / "cluster_centroids.csv", out_dir / "cluster_metadata.json"]
    result.assignments.to_csv(files[0], index=False)
    result.centroids.to_csv(files[1], index=False)
    files[2].write_text(json.dumps(result.metadata, indent=2) + "\n")
    return files + write_plots(result, out_dir)


# -- MLflow --------------------------------------------------------------------------------------------------------
def mlflow_client(cfg: ClusteringConfig):
    """The tracking client and the experiment id (created with the configured artifact location if missing)."""
    from mlflow.tracking import MlflowClient

    uri = cfg.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None:
        artifacts = Path(cfg.mlflow.artifact_location)
        artifacts.mkdir(parents=True, exist_ok=True)
        return client, client.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts.as_uri())
    return client, exp.experiment_id


def find_run(client, experiment_id: str, fp: str) -> str | None:
    """The oldest FINISHED run tagged with this fingerprint, if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.fingerprint = '{fp}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_run(client, run_id: str, result: TrainResult, files: list[Path]) -> None:
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    md = result.metadata
    params = {
        "input": md["input"],
        "as_of_month": md["as_of_month"],
        "n_dfus": md["n_dfus"],
        "n_features": len(md["features_used"]),
        "k_min": md["k_range"][0],
        "k_max": md["k_range"][1],
        "min_cluster_size_pct": md["min_cluster_size_pct"],
        "feature_scaling": md["scaling"],
        "low_variance_threshold": md["low_variance_threshold"],
        "use_pca": md["use_pca"],
        "pca_components": md["pca_components"],
        "k_selection": md["k_selection"],
        "random_state": md["random_state"],
        "n_init": md["n_init"],
        "gap_references": md["gap_references"],
        "silhouette_sample_size": md["silhouette_sample_size"],
        "feature_weights": json.dumps(md["feature_weights"], sort_keys=True),
        "log_features": json.dumps(md["log_features"]),
        "features_dropped": json.dumps(md["features_dropped"])[:6000],
    }
    now = get_current_time_millis()
    metrics = [
        Metric(name, float(s[name]), now, s["k"])
        for s in result.scores
        for name in ("wcss", "silhouette", "gap", "gap_sd", "smallest_cluster_pct")
    ]
    metrics += [
        Metric("chosen_k", float(md["chosen_k"]), now, 0),
        Metric("silhouette_chosen", md["silhouette"], now, 0),
    ]
    metrics += [Metric(f"k_{m}", float(k), now, 0) for m, k in md["k_by_method"].items()]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()])
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path="plots" if f.parent.name == "plots" else None)


# -- job -----------------------------------------------------------------------------------------------------------
def effective_clustering(cfg: ClusteringConfig, **overrides) -> Clustering:
    """The config's clustering block with the CLI's overrides (None: keep), validated again."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Clustering.model_validate({**cfg.clustering.model_dump(), **given})


def run(
    cfg: ClusteringConfig,
    input_path: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    track: bool = True,
    **overrides,
) -> dict:
    """Train on ``input_path`` (default ``<output_dir>/clustering_features.csv``), write the outputs to
    ``output_dir`` and track the run; returns a summary."""
    out_dir = Path(output_dir or cfg.output_dir).resolve()
    input_path = Path(input_path or Path(cfg.output_dir) / "clustering_features.csv").resolve()
    clustering = effective_clustering(cfg, **overrides)
    frame = read_matrix(input_path)
    result = train(frame, clustering, str(input_path))
    fp = fingerprint(input_path.read_bytes(), effective_params(clustering))
    result.metadata["fingerprint"] = fp
    reused = False
    run_id = None
    if track:
        client, exp_id = mlflow_client(cfg)
        run_id = find_run(client, exp_id, fp)
        reused = run_id is not None
        if not reused:
            mlrun = client.create_run(
                exp_id,
                tags={"fingerprint": fp, "as_of_month": result.metadata["as_of_month"]},
                run_name=f"dfu-clustering-{result.metadata['as_of_month']}-k{result.metadata['chosen_k']}",
            )
            run_id = mlrun.info.run_id
    result.metadata["mlflow_run_id"] = run_id
    try:
        files = write_outputs(result, out_dir)
        if track and not reused:
            log_run(client, run_id, result, files)
            client.set_terminated(run_id, "FINISHED")
    except BaseException:
        if track and not reused:
            client.set_terminated(run_id, "FAILED")
        raise
    md = result.metadata
    return {
        "n_dfus": md["n_dfus"],
        "features_used": len(md["features_used"]),
        "features_dropped": md["features_dropped"],
        "k_by_method": md["k_by_method"],
        "chosen_k": md["chosen_k"],
        "silhouette": md["silhouette"],
        "cluster_sizes": md["cluster_sizes"],
        "mlflow_run_id": run_id,
        "mlflow_run_reused": reused,
        "warnings": md["warnings"],
        "output_dir": str(out_dir),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", help="clustering config (default: $DFU_CLUSTERING_CONFIG or conf/clustering_config.yaml)"
    )
    p.add_argument("--input", help="feature matrix CSV (default: <output_dir>/clustering_features.csv)")
    p.add_argument("--k-range", nargs=2, type=int, metavar=("LOW", "HIGH"), help="K range, inclusive")
    p.add_argument("--min-cluster-size-pct", type=float, help="smallest cluster share (%%) a K must give")
    p.add_argument("--use-pca", action=argparse.BooleanOptionalAction, default=None, help="PCA before KMeans")
    p.add_argument("--output-dir", help="where the outputs go (default: output_dir of the config)")
    a = p.parse_args(argv)
    cfg = load_clustering_config(a.config)
    try:
        result = run(
            cfg,
            a.input,
            a.output_dir,
            k_range=tuple(a.k_range) if a.k_range else None,
            min_cluster_size_pct=a.min_cluster_size_pct,
            use_pca=a.use_pca,
        )
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"cluster-train: {e}")
    if result["mlflow_run_reused"]:
        print(
            f"cluster-train: same input and parameters as MLflow run {result['mlflow_run_id']}: reused, nothing logged"
        )
    for w in result["warnings"]:
        print(f"cluster-train: WARNING {w}")
    print(f"cluster-train: {json.dumps(result)}")


if __name__ == "__main__":
    main()
