"""t-SNE map of the minority reports and the cluster library, for display (offline, on demand).

Embeds each report's latest feature vector in the active run, together with the centroids of the library
version it was matched against, into two dimensions (scikit-learn's t-SNE, fixed seed, PCA start), appends
the coordinates to ``minority_report_embedding`` and draws a PNG scatter plot coloured by cluster.

An embedding is identified by a hash of its inputs (each report's latest snapshot time, the library version)
and settings: running it again on the same reports adds no rows and redraws the same picture.

    python -m jobs.library.embed_reports --config conf/mrs.yaml [--run-id RUN] [--png PATH]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.manifold import TSNE

from jobs.lib.config import Config, load_config
from jobs.lib.features import Library
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import TABLES, Lakehouse, latest
from jobs.stages.cluster_minority_report import load_library

WRITES = ("minority_report_embedding",)


def embed(reports: pd.DataFrame, library: Library, perplexity: float, seed: int) -> pd.DataFrame:
    """Reports (report_id, cluster_id, cluster_name, feature_vector) and centroids -> 2-D coordinates."""
    z_reports = library.transform(np.vstack(reports["feature_vector"].to_list())) if len(reports) else np.empty((0, 0))
    points = np.vstack([library.centroids, z_reports]) if len(reports) else library.centroids
    n = len(points)
    # t-SNE needs perplexity below the number of points; tiny runs get a proportionally small one.
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    xy = TSNE(
        n_components=2,
        perplexity=perp,
        init="pca",
        random_state=seed,
        metric="cosine" if library.metric == "cosine" else "euclidean",
    ).fit_transform(points)
    centroids = pd.DataFrame(
        {
            "point_type": "centroid",
            "point_id": library.cluster_ids,
            "cluster_id": library.cluster_ids,
            "cluster_name": library.names,
        }
    )
    rep = pd.DataFrame(
        {
            "point_type": "report",
            "point_id": reports["report_id"].to_numpy(),
            "cluster_id": reports["cluster_id"].to_numpy(),
            "cluster_name": reports["cluster_name"].to_numpy(),
        }
    )
    out = pd.concat([centroids, rep], ignore_index=True)
    out["tsne_x"], out["tsne_y"] = xy[:, 0].astype(float), xy[:, 1].astype(float)
    out["perplexity"] = perp
    out["seed"] = seed
    return out


def embedding_id(reports: pd.DataFrame, library_version: str, perplexity: float, seed: int) -> str:
    pairs = zip(reports["report_id"], reports["written_at"], strict=True)
    key = "|".join(f"{r}@{w:%Y-%m-%dT%H:%M:%SZ}" for r, w in pairs)
    return "EMB-" + hashlib.sha256(f"{library_version}|{perplexity}|{seed}|{key}".encode()).hexdigest()[:32]


def plot(points: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a scheduler or a laptop's CI
    import matplotlib.pyplot as plt

    names = sorted(points["cluster_name"].dropna().unique())
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    for i, name in enumerate(names):
        rep = points[(points["point_type"] == "report") & (points["cluster_name"] == name)]
        ax.scatter(rep["tsne_x"], rep["tsne_y"], s=14, alpha=0.75, color=cmap(i), label=f"{name} ({len(rep)})")
        cen = points[(points["point_type"] == "centroid") & (points["cluster_name"] == name)]
        ax.scatter(cen["tsne_x"], cen["tsne_y"], s=160, marker="X", color=cmap(i), edgecolors="black")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best", title="cluster (reports); X = centroid")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def run(spark: SparkSession, cfg: Config, run_id: str | None = None, png: Path | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    library = load_library(lake, cfg)
    reports = (
        latest(lake.read("minority_reports_clustered_log", run_id).where(F.col("library_version") == library.version))
        .where("feature_vector IS NOT NULL")
        .select("report_id", "cluster_id", "cluster_name", "feature_vector", "written_at", "is_degraded")
        .toPandas()
        .sort_values("report_id")
        .reset_index(drop=True)
    )
    reports["written_at"] = pd.to_datetime(reports["written_at"])
    s = cfg.clustering
    points = embed(reports, library, s.tsne_perplexity, s.seed)
    points["run_id"] = run_id
    points["embedding_id"] = embedding_id(reports, library.version, s.tsne_perplexity, s.seed)
    points["library_version"] = library.version
    # The newest snapshot embedded stands for the embedding's time: a replay writes the same value.
    points["written_at"] = reports["written_at"].max() if len(reports) else pd.Timestamp("1970-01-01")
    points["is_degraded"] = bool(reports["is_degraded"].any()) if len(reports) else False
    schema = TABLES["minority_report_embedding"].schema
    written = lake.append_new("minority_report_embedding", spark.createDataFrame(points[schema.names], schema))
    png = png or cfg.paths.artifacts / f"tsne_{run_id}.png"
    plot(points, png, f"Minority reports, run {run_id}: t-SNE of feature vectors (library {library.version})")
    return {"minority_report_embedding": written, "reports": len(reports), "png": str(png)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--run-id", help="run to embed (default: the active one)")
    p.add_argument("--png", type=Path, help="where to draw the plot (default: <artifacts>/tsne_<run_id>.png)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    spark = build_spark(cfg, "embed_reports")
    quiet_logs(spark)
    result = run(spark, cfg, a.run_id, a.png)
    spark.stop()
    print(f"embed_reports: {result}")


if __name__ == "__main__":
    main()
