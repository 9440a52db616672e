"""Score the DFU cluster labels against the generator's known patterns (``dfu_pattern_truth``): adjusted Rand
indices and, per true pattern, its majority cluster and whether that cluster's label names the pattern.

    python -m jobs.dfu.evaluate [--config C] [--input DIR] [--check] [--json]

The bars (issue 6): ARI(pattern of each DFU's label, true pattern) >= 0.7, and the label of every true pattern's
majority cluster names that pattern. ``--check`` exits 1 when one fails. Also printed: ARI(cluster_id, true pattern)
(how well the clusters alone separate the patterns: over-splitting lowers it, labelling merges the splits back) and
ARI(composite label, true pattern + tier). DFUs the features step excluded (short history) have truth but no
cluster: they are counted, not scored. The platform config (MRS_CONFIG or conf/mrs.yaml) says where the lakehouse is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from jobs.dfu.config import ClusteringConfig, load_clustering_config
from jobs.dfu.label import split_label

ARI_BAR = 0.7


def score(labelled: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Figures from the labelled DFUs (dfu_id, cluster_id, label[, pattern, volume_tier]) and the truth (dfu_id,
    pattern, volume_tier)."""
    labelled = labelled.copy()
    if "pattern" not in labelled or "volume_tier" not in labelled:
        parts = labelled["label"].map(split_label)
        labelled["volume_tier"], labelled["pattern"] = parts.str[0], parts.str[1]
    truth = truth[["dfu_id", "pattern", "volume_tier"]].rename(
        columns={"pattern": "true_pattern", "volume_tier": "true_tier"}
    )
    both = labelled.merge(truth, on="dfu_id", how="inner").sort_values("dfu_id", kind="stable")
    if both.empty:
        raise ValueError("no labelled DFU has a true pattern: are the labels and dfu_pattern_truth from one data set?")
    ari_pattern = adjusted_rand_score(both["true_pattern"], both["pattern"])
    ari_cluster = adjusted_rand_score(both["true_pattern"], both["cluster_id"])
    ari_label = adjusted_rand_score(both["true_pattern"] + "/" + both["true_tier"], both["label"])
    label_of = both.groupby("cluster_id")["label"].first()
    pattern_of = both.groupby("cluster_id")["pattern"].first()
    per = []
    for pattern, g in both.groupby("true_pattern", sort=True):
        counts = g["cluster_id"].value_counts()
        top = int(min(counts[counts == counts.max()].index))  # ties: the lowest cluster id
        per.append(
            {
                "pattern": pattern,
                "dfus": len(g),
                "majority_cluster": top,
                "label": label_of[top],
                "share": round(float(counts[top] / len(g)), 4),
                "names_pattern": bool(pattern_of[top] == pattern),
                "labelled_as_pattern": round(float((g["pattern"] == pattern).mean()), 4),
            }
        )
    passed = ari_pattern >= ARI_BAR and all(p["names_pattern"] for p in per)
    return {
        "dfus_scored": len(both),
        "dfus_labelled_without_truth": int(len(labelled) - len(both)),
        "dfus_with_truth_not_clustered": int(len(truth) - len(both)),
        "clusters": int(both["cluster_id"].nunique()),
        "ari_pattern": round(float(ari_pattern), 4),
        "ari_cluster": round(float(ari_cluster), 4),
        "ari_label": round(float(ari_label), 4),
        "per_pattern": per,
        "ari_bar": ARI_BAR,
        "passed": bool(passed),
    }


def read_labelled(input_dir: Path) -> pd.DataFrame:
    """cluster_assignments.csv joined to cluster_labels.csv."""
    files = [input_dir / "cluster_assignments.csv", input_dir / "cluster_labels.csv"]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (run `python -m jobs.dfu.train` and `python -m jobs.dfu.label`)")
    assign = pd.read_csv(files[0], dtype={"dfu_id": str})
    labels = pd.read_csv(files[1])
    out = assign.merge(labels[["cluster_id", "label", "volume_tier", "pattern"]], on="cluster_id", how="left")
    if out["label"].isna().any():
        raise ValueError(
            f"{files[1]}: no label for clusters {sorted(out.loc[out['label'].isna(), 'cluster_id'].unique())}"
        )
    return out


def read_truth() -> pd.DataFrame:
    """dfu_pattern_truth from the platform's lakehouse (a small table)."""
    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark, quiet_logs
    from jobs.lib.tables import Lakehouse

    platform = load_config()
    spark = build_spark(platform, "dfu_evaluate")
    quiet_logs(spark)
    try:
        truth = Lakehouse(spark, platform).read("dfu_pattern_truth").select("dfu_id", "pattern", "volume_tier")
        truth = truth.toPandas()
    finally:
        spark.stop()
    if truth.empty:
        raise ValueError(f"dfu_pattern_truth is empty in {platform.paths.lakehouse}: run `python -m jobs.dfu.generate`")
    return truth


def run(cfg: ClusteringConfig, input_dir: str | Path | None = None, truth: pd.DataFrame | None = None) -> dict:
    input_dir = Path(input_dir or cfg.output_dir)
    labelled = read_labelled(input_dir)
    result = score(labelled, read_truth() if truth is None else truth)
    result["input"] = str(input_dir)
    return result


def report(r: dict) -> str:
    lines = [
        f"DFU cluster labels vs the generator's patterns ({r['input']}): {r['dfus_scored']} DFUs in {r['clusters']}"
        f" clusters ({r['dfus_with_truth_not_clustered']} generated DFUs not clustered: excluded by the features step)",
        f"  ARI(label pattern, true pattern)        {r['ari_pattern']:.3f}   (bar >= {r['ari_bar']})",
        f"  ARI(cluster_id, true pattern)           {r['ari_cluster']:.3f}",
        f"  ARI(composite label, pattern + tier)    {r['ari_label']:.3f}",
        f"  {'true pattern':<13} {'DFUs':>5}  {'majority cluster':>16}  {'its label':<28} {'share':>6}  names it"
        "  labelled as it",
    ]
    for p in r["per_pattern"]:
        lines.append(
            f"  {p['pattern']:<13} {p['dfus']:>5}  {p['majority_cluster']:>16}  {p['label']:<28} {p['share']:>6.1%}"
            f"  {'yes' if p['names_pattern'] else 'NO':<8}  {p['labelled_as_pattern']:.1%}"
        )
    lines.append(f"  {'PASS' if r['passed'] else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", help="clustering config (default: $DFU_CLUSTERING_CONFIG or conf/clustering_config.yaml)"
    )
    p.add_argument("--input", help="directory of cluster_assignments.csv and cluster_labels.csv (default: output_dir)")
    p.add_argument("--check", action="store_true", help="exit 1 when a bar is not met")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    cfg = load_clustering_config(a.config)
    try:
        result = run(cfg, a.input)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"cluster-evaluate: {e}")
    print(json.dumps(result, indent=2) if a.json else report(result))
    if a.check and not result["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
