"""Label the DFU clusters for planners: a composite business label per cluster from its volume tier and demand
pattern (thresholds in ``clustering.labeling``), written to cluster_labels.csv and cluster_profiles.json.

    python -m jobs.dfu.label [--config C] [--centroids F] [--assignments F] [--metadata F] [--output DIR]

A cluster is described by the MEDIANS of its member DFUs' features (read from the training matrix named in the
metadata's ``input``): a mean is pulled by a few extreme DFUs (one lumpy DFU's CV^2 of 6 among steady ones), the
median is what a typical member looks like. Without the matrix the centroids' means are used, and the profiles say
so.

Volume tier: the cluster's median ``mean_demand`` against the percentiles ``volume_thresholds.low`` / ``.high`` of
all clustered DFUs' ``mean_demand`` (at or above high: high; at or below low: low; else medium).

Pattern, first rule that holds (every threshold is a config key, every label states the rule that gave it):

1. ``zero_demand_pct > zero_demand_threshold``: demand is sporadic; ``lumpy`` when ``cv2_nonzero >
   intermittency.cv2`` (sizes vary too), else ``intermittent``;
2. ``seasonality_strength > seasonality_threshold``: ``seasonal``;
3. ``|growth_rate| > trend_threshold`` (CAGR): ``growing`` / ``declining``;
4. ``cv_demand > cv_thresholds.volatile``: ``volatile``; ``cv_demand <= cv_thresholds.steady``: ``steady``;
   between the two: ``variable``.

Sporadic demand comes first because its zeros inflate every other measure (a month-to-month CV of 1.5, a
"seasonality" of whichever months happened to sell); seasonality before trend because a cycle starting at its
trough reads as growth over a short window. Composite labels follow the note: seasonal, intermittent and lumpy
are prefixes (``seasonal_high_volume``, ``intermittent_low_volume``), the others suffixes
(``high_volume_steady``, ``low_volume_declining``). The profiles carry the intermittency measures a planner expects:
ADI (average demand interval), CV^2 of non-zero demand, and the Syntetos-Boylan class (smooth, erratic,
intermittent, lumpy; cut-offs ``intermittency.adi`` / ``.cv2``).

When the training run is in MLflow (metadata ``mlflow_run_id``), the two files are logged to it under ``labels/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.dfu.config import ClusteringConfig, Labeling, load_clustering_config

PREFIX_PATTERNS = ("seasonal", "intermittent", "lumpy")
TIERS = ("high", "medium", "low")
PROFILE_FEATURES = (
    "mean_demand",
    "median_demand",
    "total_demand",
    "cv_demand",
    "demand_stability",
    "zero_demand_pct",
    "sparsity_score",
    "adi",
    "cv2_nonzero",
    "outlier_count",
    "seasonality_strength",
    "seasonal_index_std",
    "year_over_year_correlation",
    "growth_rate",
    "trend_slope",
    "trend_pct_change",
    "acceleration",
    "recent_vs_historical",
)
RULE_FEATURES = ("mean_demand", "cv_demand", "zero_demand_pct", "cv2_nonzero", "seasonality_strength", "growth_rate")
TOP_LEVELS = 3


# -- rules (pure) ----------------------------------------------------------------------------------------------
def pattern_of(p: dict, labeling: Labeling) -> tuple[str, str]:
    """(pattern, the rule that gave it) from a cluster's profile (zero_demand_pct, cv2_nonzero,
    seasonality_strength, growth_rate, cv_demand)."""
    zero, cv2 = p["zero_demand_pct"], p["cv2_nonzero"]
    if zero > labeling.zero_demand_threshold:
        head = f"zero_demand_pct {zero:.3g} > {labeling.zero_demand_threshold}"
        if cv2 > labeling.intermittency.cv2:
            return "lumpy", f"{head}, cv2_nonzero {cv2:.3g} > {labeling.intermittency.cv2}"
        return "intermittent", f"{head}, cv2_nonzero {cv2:.3g} <= {labeling.intermittency.cv2}"
    seas = p["seasonality_strength"]
    if seas > labeling.seasonality_threshold:
        return "seasonal", f"seasonality_strength {seas:.3g} > {labeling.seasonality_threshold}"
    growth = p["growth_rate"]
    if abs(growth) > labeling.trend_threshold:
        return ("growing" if growth > 0 else "declining"), f"|growth_rate {growth:.3g}| > {labeling.trend_threshold}"
    cv, th = p["cv_demand"], labeling.cv_thresholds
    if cv > th.volatile:
        return "volatile", f"cv_demand {cv:.3g} > {th.volatile}"
    if cv <= th.steady:
        return "steady", f"cv_demand {cv:.3g} <= {th.steady}"
    return "variable", f"{th.steady} < cv_demand {cv:.3g} <= {th.volatile}"


def volume_cuts(mean_demand: pd.Series, labeling: Labeling) -> dict:
    """The low / high percentiles of all DFUs' mean demand."""
    t = labeling.volume_thresholds
    return {
        "low_percentile": t.low,
        "high_percentile": t.high,
        "low": float(mean_demand.quantile(t.low)),
        "high": float(mean_demand.quantile(t.high)),
    }


def volume_tier(median_mean_demand: float, cuts: dict) -> str:
    if median_mean_demand >= cuts["high"]:
        return "high"
    if median_mean_demand <= cuts["low"]:
        return "low"
    return "medium"


def compose(tier: str, pattern: str) -> str:
    """The note's composite label: ``seasonal_high_volume``, ``high_volume_steady``."""
    return f"{pattern}_{tier}_volume" if pattern in PREFIX_PATTERNS else f"{tier}_volume_{pattern}"


def split_label(label: str) -> tuple[str, str]:
    """(tier, pattern) of a composite label."""
    for tier in TIERS:
        volume = f"{tier}_volume"
        if label.startswith(volume + "_"):
            return tier, label[len(volume) + 1 :]
        if label.endswith("_" + volume):
            return tier, label[: -len(volume) - 1]
    raise ValueError(f"label {label!r} is not <tier>_volume_<pattern> or <pattern>_<tier>_volume")


def syntetos_boylan(adi: float, cv2: float, labeling: Labeling) -> str:
    """smooth / erratic / intermittent / lumpy (Syntetos, Boylan & Croston 2005 cut-offs from the config)."""
    sporadic, varied = adi > labeling.intermittency.adi, cv2 > labeling.intermittency.cv2
    return {(False, False): "smooth", (False, True): "erratic", (True, False): "intermittent"}.get(
        (sporadic, varied), "lumpy"
    )


def _r(v) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 6)


def top_categories(members: pd.DataFrame) -> dict:
    """Per categorical attribute (``item__<col>=<level>`` one-hot columns) its most common levels and their share."""
    out: dict[str, list] = {}
    onehot = [c for c in members.columns if "=" in c]
    for col in sorted({c.split("=", 1)[0] for c in onehot}):
        shares = members[[c for c in onehot if c.split("=", 1)[0] == col]].mean()
        ranked = sorted(((-s, c.split("=", 1)[1]) for c, s in shares.items() if s > 0))[:TOP_LEVELS]
        out[col] = [{"level": lvl, "share": _r(-s)} for s, lvl in ranked]
    return out


def profile_clusters(members: pd.DataFrame, labeling: Labeling, statistic: str = "median") -> tuple[list[dict], dict]:
    """Per cluster profile and label from per-DFU rows (cluster_id + features; one row per DFU, or one per cluster
    of centroid means with ``statistic='mean'``), and the volume cuts used."""
    missing = [c for c in RULE_FEATURES if c not in members.columns]
    if missing:
        raise ValueError(f"labelling needs the features {missing}, absent from the input")
    if statistic == "median":
        cuts = volume_cuts(members["mean_demand"], labeling)
    else:  # centroids: the cluster means weighted by size approximate the DFU distribution
        cuts = volume_cuts(members["mean_demand"].repeat(members["size"].astype(int)), labeling)
    feats = [c for c in PROFILE_FEATURES if c in members.columns]
    profiles = []
    for cid, g in members.groupby("cluster_id", sort=True):
        med = g[feats].median() if statistic == "median" else g[feats].iloc[0]
        mean = g[feats].mean()
        pattern, rule = pattern_of(med.to_dict(), labeling)
        tier = volume_tier(float(med["mean_demand"]), cuts)
        size = len(g) if statistic == "median" else int(g["size"].iloc[0])
        prof = {
            "cluster_id": int(cid),
            "label": compose(tier, pattern),
            "tier": tier,
            "pattern": pattern,
            "rule": rule,
            "size": size,
            "statistic": statistic,
            "sb_class": syntetos_boylan(float(med.get("adi", np.nan)), float(med["cv2_nonzero"]), labeling),
            "median" if statistic == "median" else "mean": {c: _r(med[c]) for c in feats},
        }
        if statistic == "median":
            prof["mean"] = {c: _r(mean[c]) for c in feats}
        if "peak_month" in g.columns:
            counts = g["peak_month"].round().astype(int).value_counts()
            prof["peak_month"] = int(min(counts[counts == counts.max()].index))
        prof["top_categories"] = top_categories(g)
        profiles.append(prof)
    total = sum(p["size"] for p in profiles)
    for p in profiles:
        p["size_pct"] = round(p["size"] / total * 100, 4)
    return profiles, {k: _r(v) if isinstance(v, float) else v for k, v in cuts.items()}


def labels_frame(profiles: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"cluster_id": p["cluster_id"], "label": p["label"], "volume_tier": p["tier"], "pattern": p["pattern"],
             "size": p["size"]}
            for p in profiles
        ],
        columns=["cluster_id", "label", "volume_tier", "pattern", "size"],
    )  # fmt: skip


# -- job ---------------------------------------------------------------------------------------------------------
def read_members(centroids: Path, assignments: Path, metadata: dict) -> tuple[pd.DataFrame, str]:
    """Per-DFU features with their cluster_id (statistic 'median'), or the centroids (statistic 'mean') when the
    training matrix named by the metadata is gone."""
    for f in (centroids, assignments):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (run `python -m jobs.dfu.train`)")
    matrix = Path(metadata.get("input") or "")
    if matrix.is_file():
        feats = pd.read_csv(matrix, dtype={"dfu_id": str, "as_of_month": str})
        assign = pd.read_csv(assignments, dtype={"dfu_id": str})
        members = assign[["dfu_id", "cluster_id"]].merge(feats, on="dfu_id", how="left", validate="one_to_one")
        lost = members["mean_demand"].isna().sum() if "mean_demand" in members else len(members)
        if lost:
            raise ValueError(f"{assignments}: {lost} assigned DFUs are not in the training matrix {matrix}")
        return members, "median"
    print(f"cluster-label: WARNING training matrix {str(matrix)!r} not found: labelling from the centroids' means")
    return pd.read_csv(centroids), "mean"


def run(
    cfg: ClusteringConfig,
    centroids: str | os.PathLike | None = None,
    assignments: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    *,
    track: bool = True,
) -> dict:
    base = Path(cfg.output_dir)
    centroids = Path(centroids or base / "cluster_centroids.csv")
    assignments = Path(assignments or base / "cluster_assignments.csv")
    metadata = Path(metadata or base / "cluster_metadata.json")
    out = Path(output or base)
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata}: missing (run `python -m jobs.dfu.train`)")
    md = json.loads(metadata.read_text())
    members, statistic = read_members(centroids, assignments, md)
    labeling = cfg.clustering.labeling
    profiles, cuts = profile_clusters(members, labeling, statistic)
    out.mkdir(parents=True, exist_ok=True)
    labels_path, profiles_path = out / "cluster_labels.csv", out / "cluster_profiles.json"
    labels_frame(profiles).to_csv(labels_path, index=False)
    doc = {
        "as_of_month": md.get("as_of_month"),
        "chosen_k": md.get("chosen_k"),
        "statistic": statistic,
        "volume_cuts": cuts,
        "labeling": labeling.model_dump(mode="json"),
        "clusters": profiles,
    }
    profiles_path.write_text(json.dumps(doc, indent=2) + "\n")
    logged = log_to_run(cfg, md.get("mlflow_run_id"), [labels_path, profiles_path]) if track else False
    return {
        "clusters": len(profiles),
        "labels": {p["cluster_id"]: p["label"] for p in profiles},
        "statistic": statistic,
        "mlflow_logged": logged,
        "output": str(out),
    }


def log_to_run(cfg: ClusteringConfig, run_id: str | None, files: list[Path]) -> bool:
    """Log the label files to the training run (same files, same artifact paths: re-running overwrites them)."""
    if not run_id:
        return False
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        print(f"cluster-label: WARNING MLflow run {run_id} not in {cfg.mlflow.tracking_uri}: labels not logged")
        return False
    for f in files:
        client.log_artifact(run_id, str(f), artifact_path="labels")
    return True


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", help="clustering config (default: $DFU_CLUSTERING_CONFIG or conf/clustering_config.yaml)"
    )
    p.add_argument("--centroids", help="cluster_centroids.csv (default: in output_dir)")
    p.add_argument("--assignments", help="cluster_assignments.csv (default: in output_dir)")
    p.add_argument("--metadata", help="cluster_metadata.json (default: in output_dir)")
    p.add_argument("--output", help="directory for cluster_labels.csv and cluster_profiles.json (default: output_dir)")
    a = p.parse_args(argv)
    cfg = load_clustering_config(a.config)
    try:
        result = run(cfg, a.centroids, a.assignments, a.metadata, a.output)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"cluster-label: {e}")
    print(f"cluster-label: {json.dumps(result)}")


if __name__ == "__main__":
    main()
