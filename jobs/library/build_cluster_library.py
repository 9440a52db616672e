"""Cluster library: named centroids learned from labelled historical reports (the only writer of ``cluster_library``).

Each report's final snapshot is described by the clustering stage's feature vector; the vectors are scaled
(z-scores times ``clustering.feature_weights``), KMeans runs for every K in ``k_min..k_max`` and the K with the
best silhouette wins. A cluster is named after the most common label among its members ("TikTok Viral",
"Competitor Stockout", ...; reports matching no label make "Unexplained Fluctuation").

    python -m jobs.library.build_cluster_library --mode install        # load the shipped library file into Delta
    python -m jobs.library.build_cluster_library --mode generate --seed 101 --export conf/cluster_library.json
    python -m jobs.library.build_cluster_library --mode from-run --run-id demo-001 --labels truth.csv --version my-v2

``generate`` is how the shipped library is made: it generates a labelled history with the data generator
(seed given, more anomalies than the demo), runs ingest and detection on it in a scratch lakehouse, and
learns from those reports. ``from-run`` learns from a run already in the lakehouse, labelled by a CSV of
``series_key,start,end,anomaly_type`` rows (the generator's ground truth has that form).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from jobs.lib.config import Clustering, Config, load_config
from jobs.lib.features import FEATURES, pairwise_distances
from jobs.lib.labels import NAMES, UNEXPLAINED, label_reports, read_truth
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import TABLES, Lakehouse, latest
from jobs.quality.generate_data import DETECTION_TYPE, generate
from jobs.stages import cluster_minority_report as clustering
from jobs.stages import detect_anomalies, ingest

WRITES = ("cluster_library",)
# The labelled history --generate builds: every type well represented, single-series types more often.
HISTORY = {
    "generator.days": 28,
    "generator.anomalies": {
        "social_viral": 12,
        "competitor_stockout": 4,
        "promo_with_campaign": 5,
        "store_incident": 5,
        "feed_duplication": 5,
        "unit_glitch": 12,
    },
}


# -- learning (pure) -------------------------------------------------------------------------------------
def train(x: np.ndarray, labels: list[str | None], settings: Clustering) -> dict:
    """Centroids, names and scaling from feature vectors (rows) and their labels (None: unlabelled)."""
    weights = np.array([settings.feature_weights.get(f, 1.0) for f in FEATURES])
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    scale = np.where(std < 1e-6, 1.0, std)
    z = (x - mean) / scale * weights
    fit_z = _unit(z) if settings.distance == "cosine" else z
    best = None
    for k in range(settings.k_min, min(settings.k_max, len(x) - 1) + 1):
        km = KMeans(n_clusters=k, n_init=10, random_state=settings.seed).fit(fit_z)
        if len(set(km.labels_)) < 2:
            continue
        sil = float(silhouette_score(z, km.labels_, metric=settings.distance))
        if best is None or sil > best[0] + 1e-9:
            best = (sil, k, km)
    if best is None:
        raise ValueError(f"too few distinct reports ({len(x)}) to learn a library with k_min={settings.k_min}")
    sil, k, km = best
    members = km.labels_
    centroids = np.vstack([z[members == c].mean(axis=0) for c in range(k)])
    if settings.distance == "cosine":
        centroids = _unit(centroids)
    own = pairwise_distances(z, centroids, settings.distance)[np.arange(len(z)), members]
    clusters = []
    for c in range(k):
        votes = Counter(labels[i] for i in np.flatnonzero(members == c))
        label, _ = max(votes.items(), key=lambda kv: (kv[1], kv[0] is not None, str(kv[0])))
        clusters.append((NAMES.get(label, UNEXPLAINED), label, c, int((members == c).sum())))
    # Stable ids and names: ordered by name, then size; a repeated name gets a numeral.
    clusters.sort(key=lambda t: (t[0], -t[3]))
    seen: Counter = Counter()
    out = []
    for i, (name, label, c, size) in enumerate(clusters):
        seen[name] += 1
        out.append(
            {
                "cluster_id": f"C{i + 1:02d}",
                "cluster_name": name if seen[name] == 1 else f"{name} {seen[name]}",
                "detection_type": DETECTION_TYPE.get(label),
                "centroid": [float(v) for v in centroids[c]],
                "member_count": size,
            }
        )
    return {
        "clusters": out,
        "feature_names": list(FEATURES),
        "feature_mean": [float(v) for v in mean],
        "feature_scale": [float(v) for v in scale],
        "feature_weights": [float(v) for v in weights],
        "distance_metric": settings.distance,
        "distance_scale": float(max(np.median(own), 1e-6)),
        "k": int(k),
        "silhouette": round(sil, 6),
    }


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def library_rows(model: dict, version: str, trained_on: str, run_id: str, written_at: datetime) -> pd.DataFrame:
    """A trained model as rows of ``cluster_library``."""
    shared = {k: v for k, v in model.items() if k != "clusters"}
    rows = [
        {
            "library_version": version,
            **c,
            **shared,
            "trained_on": trained_on,
            "run_id": run_id,
            "written_at": pd.Timestamp(written_at),
        }
        for c in model["clusters"]
    ]
    return pd.DataFrame(rows, columns=[f.name for f in TABLES["cluster_library"].schema.fields])


# -- training data ---------------------------------------------------------------------------------------
def learn_from_run(spark: SparkSession, cfg: Config, run_id: str, truth: pd.DataFrame) -> tuple[dict, dict]:
    """Train on a run's reports; returns the model and its provenance."""
    lake = Lakehouse(spark, cfg)
    snaps = latest(lake.read("minority_reports_detected_log", run_id))  # each report's whole shape
    inputs = clustering.read_inputs(lake, cfg, run_id, None, _far_future(), snaps=snaps)
    if inputs is None:
        raise ValueError(f"run {run_id} has no minority reports to learn from")
    prices, _ = clustering.report_prices(lake, cfg, run_id, snaps)
    vectors = clustering.cluster(*inputs, prices, None, cfg, run_id).where(F.col("feature_vector").isNotNull())
    pdf = vectors.select("report_id", "series_key", "window_start", "window_end", "written_at", "feature_vector")
    pdf = pdf.toPandas().sort_values("report_id").reset_index(drop=True)
    for c in ("window_start", "window_end", "written_at"):
        pdf[c] = pd.to_datetime(pdf[c])
    labels = label_reports(pdf, truth, cfg.tick_seconds)
    model = train(np.vstack(pdf["feature_vector"].to_list()), labels, cfg.clustering)
    counts = Counter(NAMES.get(lbl, UNEXPLAINED) for lbl in labels)
    provenance = {"reports": len(pdf), "labels": dict(sorted(counts.items())), "written_at": pdf["written_at"].max()}
    return model, provenance


def _far_future() -> datetime:
    return datetime(9999, 1, 1, tzinfo=UTC)


def generate_history(spark: SparkSession, cfg: Config, seed: int, scratch: Path) -> tuple[Config, pd.DataFrame]:
    """A labelled history in a scratch lakehouse: generated data run through ingest and detection."""
    shutil.rmtree(scratch, ignore_errors=True)
    hist_cfg = load_config(
        cfg.source,
        {
            **HISTORY,
            "generator.seed": seed,
            "generator.missing_input_hours": [],
            "paths.landing": str(scratch / "landing"),
            "paths.lakehouse": str(scratch / "lakehouse"),
        },
    )
    generate(hist_cfg, hist_cfg.paths.landing)
    start = datetime.combine(hist_cfg.generator.start, datetime.min.time(), tzinfo=UTC)
    end = start + pd.Timedelta(days=hist_cfg.generator.days).to_pytimedelta()
    run_id = f"library-seed-{seed}"
    ingest.run(spark, hist_cfg, start, end, run_id)
    detect_anomalies.run(spark, hist_cfg, start, end, run_id)
    return hist_cfg, read_truth(hist_cfg.paths.landing / "ground_truth" / "ground_truth.csv")


# -- writing ---------------------------------------------------------------------------------------------
def install(spark: SparkSession, cfg: Config, rows: pd.DataFrame) -> int:
    """Append a library version to ``cluster_library``; a version already there with other content is refused."""
    lake = Lakehouse(spark, cfg)
    version = rows["library_version"].iloc[0]
    have = lake.read("cluster_library").where(F.col("library_version") == version).toPandas()
    if not have.empty:
        a = have.sort_values("cluster_id")[["cluster_id", "cluster_name", "centroid"]].to_json()
        b = rows.sort_values("cluster_id")[["cluster_id", "cluster_name", "centroid"]].to_json()
        if a != b:
            raise ValueError(
                f"cluster_library already holds a different library version {version}: "
                "choose a new clustering.library_version (or --version)"
            )
        return 0
    schema = TABLES["cluster_library"].schema
    return lake.append_new("cluster_library", spark.createDataFrame(rows, schema))


def export(rows: pd.DataFrame, path: Path) -> None:
    out = rows.copy()
    out["written_at"] = pd.to_datetime(out["written_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"library_version": out["library_version"].iloc[0], "clusters": out.to_dict(orient="records")}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument(
        "--mode",
        required=True,
        choices=["install", "generate", "from-run"],
        help="install: load clustering.library_file into the table; generate: learn from a generated, labelled "
        "history; from-run: learn from a run's reports in this lakehouse",
    )
    p.add_argument("--seed", type=int, default=101, help="generate: the history's generator seed")
    p.add_argument("--run-id", help="from-run: the run whose reports to learn from")
    p.add_argument("--labels", help="from-run: CSV of series_key,start,end,anomaly_type")
    p.add_argument("--version", help="library version to write (default: clustering.library_version)")
    p.add_argument("--export", type=Path, help="also write the library as JSON (the file a fresh install ships)")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    if a.mode == "from-run" and not (a.run_id and a.labels):
        p.error("--mode from-run needs --run-id and --labels")
    version = a.version or cfg.clustering.library_version
    spark = build_spark(cfg, "build_cluster_library")
    quiet_logs(spark)
    if a.mode == "install":
        rows = clustering.library_frame(cfg.clustering.library_file)
        rows = rows[rows["library_version"] == version]
        if rows.empty:
            p.error(f"{cfg.clustering.library_file} holds no library version {version}")
    else:
        if a.mode == "generate":
            scratch = cfg.paths.lakehouse.parent / "library-history"
            hist_cfg, truth = generate_history(spark, cfg, a.seed, scratch)
            run_id = f"library-seed-{a.seed}"
            model, prov = learn_from_run(spark, hist_cfg, run_id, truth)
            source = f"generated history: seed {a.seed}, {hist_cfg.generator.days} days"
        else:
            run_id = a.run_id
            model, prov = learn_from_run(spark, cfg, run_id, read_truth(Path(a.labels)))
            source = f"run {run_id}, labels {Path(a.labels).name}"
        trained_on = f"{source}; {prov['reports']} reports {prov['labels']}"
        rows = library_rows(model, version, trained_on, run_id, prov["written_at"].to_pydatetime())
    written = install(spark, cfg, rows)
    if a.export:
        export(rows, a.export)
    spark.stop()
    r = rows.iloc[0]
    print(f"cluster library {r['library_version']}: K={r['k']}, silhouette {r['silhouette']:.3f}; {r['trained_on']}")
    for c in rows.itertuples(index=False):
        print(f"  {c.cluster_id} {c.cluster_name:<26} {c.member_count:>4} reports  ({c.detection_type})")
    print(f"cluster_library rows written: {written}" + (f"; exported {a.export}" if a.export else ""))


if __name__ == "__main__":
    main()
