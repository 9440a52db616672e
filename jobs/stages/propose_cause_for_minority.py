"""Attribution stage: why each minority report happened (MRPAL).

For every MRCL snapshot written in the run's interval [start, end), evidence is gathered from three places:

- ``all_campaign_data``: campaigns and promotions whose scope (retailer, category, SKU) covers the report and
  whose time overlaps it, stronger for a narrow scope and a recent launch;
- ``contextual_data``: signals (social trends, competitor stockouts, store and feed incidents) covering the
  report's store, region, category or SKU while it runs;
- the data itself, from the report's feature vector: revenue per unit far from usual, rows re-sent in another
  batch, sales at zero, how widely the store, the region's category or the retailer's SKU moved at once, and
  the matched library cluster.

Each piece of evidence has a strength in [0, 1] and supports one detection type; a type's score is its prior
plus the weighted strengths (``attribution.weights``), and a softmax over the five types gives the confidence.
The top three types become the ranked causes (``_2``/``_3``), each with a narrative naming its evidence. With a
feed missing at the tick (``ingest_audit_log.feeds_missing``), attribution runs on what is left, the row is
degraded and its confidence scaled by ``attribution.degraded_factor``.

Causal: a snapshot at tick t uses records that started at or before t, and its own MRCL row.

    spark-submit jobs/stages/propose_cause_for_minority.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import DETECTION_TYPES, Attribution, Config
from jobs.lib.features import FEATURES
from jobs.lib.tables import TABLES, Lakehouse
from jobs.lib.ticks import dates_between, dates_of, naive_utc
from jobs.stages.cluster_minority_report import library_frame
from schemas.mrs import REPORT_COLUMNS

WRITES = ("minority_reports_proposed_attribution_log",)
FEEDS = ("contextual_data", "all_campaign_data")
# Which way a cause moves sales: campaigns, trends and a competitor's stockout raise them; a store incident
# lowers them; a data error can do either.
RAISES = {"Marketing Misattribution", "Competitor Stockout", "Social/Viral Event"}
LOWERS = {"Operational/Store Issue"}
_F = {name: i for i, name in enumerate(FEATURES)}
CAUSE_FIELDS = ("proposed_cause", "proposed_cause_category", "impact_vector", "confidence_score")


@dataclass(frozen=True)
class Evidence:
    kind: str  # a key of attribution.weights
    category: str  # the detection type it supports
    strength: float  # [0, 1]
    source: str  # the table it comes from
    ref: str  # the row (record id) or measure it rests on
    text: str  # how the narrative names it


def _fits(category: str, direction: str) -> bool:
    return not ((category in RAISES and direction != "spike") or (category in LOWERS and direction != "drop"))


def _covers(rec, snap, cols: tuple[str, ...]) -> bool:
    """A record's scope covers the report: every scope column it sets equals the report's."""
    return all(pd.isna(getattr(rec, c)) or getattr(rec, c) == getattr(snap, c) for c in cols)


def _overlaps(rec, start: pd.Timestamp, tick: pd.Timestamp) -> bool:
    """Known by the tick (started at or before it) and still running after the report began."""
    return naive_utc(rec.start) <= tick and naive_utc(rec.end) > start


def campaign_evidence(snap, campaigns: pd.DataFrame, a: Attribution) -> list[Evidence]:
    start, tick = naive_utc(snap.window_start), naive_utc(snap.written_at)
    lead = pd.Timedelta(days=a.campaign_lead_days)
    out = []
    for c in campaigns.itertuples(index=False):
        if not (_overlaps(c, start, tick) and _covers(c, snap, ("retailer_id", "category", "sku"))):
            continue
        scope = 1.0 if not pd.isna(c.sku) else 0.6 if not pd.isna(c.category) else 0.3
        fresh = 1.0 if naive_utc(c.start) >= start - lead else 0.3
        kind = 1.0 if c.campaign_type == "in_store_promo" else 0.8
        what = (c.campaign_type or "campaign").replace("_", " ")
        on = c.sku if not pd.isna(c.sku) else c.category if not pd.isna(c.category) else "all products"
        out.append(
            Evidence(
                "campaign",
                "Marketing Misattribution",
                scope * fresh * kind,
                "all_campaign_data",
                c.campaign_id,
                f"{what} {c.campaign_id} on {on} since {naive_utc(c.start):%Y-%m-%d %H:%M}",
            )
        )
    return out


def context_evidence(snap, context: pd.DataFrame, a: Attribution) -> list[Evidence]:
    start, tick = naive_utc(snap.window_start), naive_utc(snap.written_at)
    out = []
    for r in context.itertuples(index=False):
        category = a.signal_categories.get(r.signal_type)
        if category is None or not _overlaps(r, start, tick):
            continue
        if not _covers(r, snap, ("store_id", "region", "category", "sku")):
            continue
        narrow = not pd.isna(r.store_id) or not pd.isna(r.sku)
        broad = not pd.isna(r.region) or not pd.isna(r.category)
        scope = 1.0 if narrow else 0.8 if broad else 0.4
        intensity = 1.0 if pd.isna(r.intensity) else float(np.clip(r.intensity, 0.0, 1.0))
        detail = r.detail if not pd.isna(r.detail) else r.signal_type
        src = f" ({r.source})" if not pd.isna(r.source) else ""
        out.append(Evidence("context", category, scope * intensity, "contextual_data", r.record_id, f"{detail}{src}"))
    return out


def intrinsic_evidence(snap, cluster_type: str | None) -> list[Evidence]:
    v = snap.feature_vector
    if v is None or len(v) != len(FEATURES):
        return []
    f = {name: float(v[i]) for name, i in _F.items()}
    out = []
    mr = "minority_reports_clustered_log"
    shift = f["unit_price_shift"]
    if abs(shift) >= np.log(1.5):
        out.append(
            Evidence(
                "unit_price_shift",
                "Data Error",
                min(1.0, abs(shift) / np.log(3.0)),
                mr,
                f"unit_price_shift={shift:.2f}",
                f"revenue per unit at {np.exp(shift):.2f}x its usual level",
            )
        )
    if f["duplicate_share"] >= 0.25:
        out.append(
            Evidence(
                "duplicate_rows",
                "Data Error",
                f["duplicate_share"],
                mr,
                f"duplicate_share={f['duplicate_share']:.2f}",
                f"{f['duplicate_share']:.0%} of its ticks arrived in more than one batch",
            )
        )
    if snap.direction == "drop" and f["zero_share"] >= 0.5:
        out.append(
            Evidence(
                "drop_to_zero",
                "Operational/Store Issue",
                f["zero_share"],
                mr,
                f"zero_share={f['zero_share']:.2f}",
                f"no sales in {f['zero_share']:.0%} of ticks that expected some",
            )
        )
    wide = [
        ("store_wide", "breadth_store", "Operational/Store Issue", "drop", "of the store's other series fell too"),
        (
            "region_category_wide",
            "breadth_category_region",
            "Competitor Stockout",
            "spike",
            f"of {snap.category} in {snap.region} rose too",
        ),
        (
            "retailer_sku_wide",
            "breadth_sku_retailer",
            "Marketing Misattribution",
            "spike",
            f"of {snap.sku} at {snap.retailer_id}'s other stores rose too",
        ),
    ]
    for kind, feat, category, direction, text in wide:
        if snap.direction == direction and f[feat] >= 0.3:
            out.append(Evidence(kind, category, f[feat], mr, f"{feat}={f[feat]:.2f}", f"{f[feat]:.0%} {text}"))
    if cluster_type and snap.similarity_score is not None and not pd.isna(snap.similarity_score):
        strength = float(snap.similarity_score) * (0.5 + 0.5 * float(snap.cluster_match_confidence))
        out.append(
            Evidence(
                "cluster",
                cluster_type,
                strength,
                mr,
                f"cluster={snap.cluster_id}",
                f"shaped like {snap.cluster_name} (similarity {snap.similarity_score:.2f})",
            )
        )
    return out


def rank(evidence: list[Evidence], direction: str, a: Attribution) -> list[tuple[str, float, list]]:
    """Detection types ranked by probability, each with its evidence (contribution-ordered)."""
    scores = dict(a.prior)
    used: dict[str, list] = {c: [] for c in DETECTION_TYPES}
    # Several rows of one kind for one type combine as independent chances (noisy-OR), so ten campaigns do
    # not outweigh one incident report.
    combined: dict[tuple[str, str], float] = {}
    for e in evidence:
        if e.strength <= 0 or not _fits(e.category, direction):
            continue
        key = (e.kind, e.category)
        combined[key] = 1.0 - (1.0 - combined.get(key, 0.0)) * (1.0 - min(1.0, e.strength))
        used[e.category].append((a.weights.get(e.kind, 0.0) * e.strength, e))
    for (kind, category), s in combined.items():
        scores[category] += a.weights.get(kind, 0.0) * s
    cats = sorted(DETECTION_TYPES)
    z = np.array([scores[c] for c in cats]) / a.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = sorted(range(len(cats)), key=lambda i: (-p[i], cats[i]))
    return [(cats[i], float(p[i]), sorted(used[cats[i]], key=lambda t: (-t[0], t[1].source, t[1].ref))) for i in order]


def narrative(category: str, items: list, snap) -> str:
    ratio = (snap.attributed_sales_total + 1.0) / (snap.baseline_sales_total + 1.0)
    move = f"sales at {ratio:.1f}x baseline" if snap.direction == "spike" else f"sales at {ratio:.0%} of baseline"
    if not items:
        return f"{category}: no direct evidence ({move})"
    return f"{category}: " + "; ".join(e.text for _, e in items[:3]) + f" ({move})"


def tier(score: float, a: Attribution) -> str:
    return "High" if score >= a.tier_high else "Medium" if score >= a.tier_medium else "Low"


def attribute(
    snaps: DataFrame, campaigns: pd.DataFrame, context: pd.DataFrame, cluster_types: dict, a: Attribution, run_id: str
) -> DataFrame:
    """MRCL snapshots (with ``feeds_missing``, ``attributed_sales_total``, ``baseline_sales_total``) -> MRPAL.

    A snapshot may carry ``rejected_categories`` (the rereview's): those types are never proposed, at any rank.
    The others keep their own confidence (nothing is renormalised) and the evidence list stays whole.
    """
    schema = TABLES["minority_reports_proposed_attribution_log"].schema
    names = [f.name for f in schema.fields]
    carried = [
        *REPORT_COLUMNS,
        "cluster_id",
        "cluster_name",
        "report_status",
        "written_at",
        "date",
    ]

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            rows = []
            for snap in pdf.itertuples(index=False):
                missing = sorted(snap.feeds_missing) if snap.feeds_missing is not None else ["ingest_audit_log"]
                ev = intrinsic_evidence(snap, cluster_types.get((snap.library_version, snap.cluster_id)))
                if "all_campaign_data" not in missing:
                    ev += campaign_evidence(snap, campaigns, a)
                if "contextual_data" not in missing:
                    ev += context_evidence(snap, context, a)
                ranked = rank(ev, snap.direction, a)
                rejected = getattr(snap, "rejected_categories", None)
                rejected = set() if rejected is None else set(rejected)
                proposed = [r for r in ranked if r[0] not in rejected]
                factor = a.degraded_factor if missing else 1.0
                row = {c: getattr(snap, c) for c in carried}
                row.update(run_id=run_id, model_version=a.model_version, evidence_sources_missing=missing)
                row["is_degraded"] = bool(snap.is_degraded) or bool(missing)
                for k in range(len(proposed), 3):  # fewer than three types left to propose
                    sfx = "" if k == 0 else f"_{k + 1}"
                    row.update({f"{c}{sfx}": None for c in CAUSE_FIELDS})
                for k, (category, p, items) in enumerate(proposed[:3]):
                    sfx = "" if k == 0 else f"_{k + 1}"
                    row[f"proposed_cause{sfx}"] = narrative(category, items, snap)
                    row[f"proposed_cause_category{sfx}"] = category
                    row[f"impact_vector{sfx}"] = a.impact_vectors[category]
                    row[f"confidence_score{sfx}"] = round(p * factor, 6)
                # Every type rejected: nothing left to propose, so no tier either.
                row["confidence_tier"] = tier(row["confidence_score"], a) if proposed else None
                used = [t for _, _, items in ranked for t in items]
                row["supporting_evidence"] = [
                    f"{e.source}:{e.ref} -> {e.category} +{w:.2f}"
                    for w, e in sorted(used, key=lambda t: (-t[0], t[1].source, t[1].ref))
                ]
                rows.append(row)
            yield pd.DataFrame(rows, columns=names)

    return snaps.mapInPandas(fn, ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields))


def cluster_types(lake: Lakehouse, cfg: Config) -> dict:
    """(library_version, cluster_id) -> detection type, over the Delta table and the shipped library file."""
    rows = lake.read("cluster_library").select("library_version", "cluster_id", "detection_type").toPandas()
    if cfg.clustering.library_file.is_file():
        rows = pd.concat([rows, library_frame(cfg.clustering.library_file)[list(rows.columns)]])
    return {(r.library_version, r.cluster_id): r.detection_type for r in rows.itertuples(index=False)}


def read_inputs(lake: Lakehouse, run_id: str, start: datetime, end: datetime):
    """The interval's MRCL snapshots with their report totals and feed status, and the feed records that
    overlap the reports (reference data: small, collected to the driver)."""
    in_range = (F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))
    mrcl = lake.read("minority_reports_clustered_log", run_id).where(dates_between(start, end)).where(in_range)
    lo = mrcl.agg(F.min("window_start")).first()[0]
    if lo is None:
        return None
    totals = (
        lake.read("minority_reports_detected_log", run_id)
        .where(dates_between(start, end))
        .where(in_range)
        .select("report_id", "written_at", "attributed_sales_total", "baseline_sales_total")
    )
    audit = (
        lake.read("ingest_audit_log", run_id)
        .where(dates_between(start, end))
        .select(F.col("tick_ts").alias("written_at"), "feeds_missing")
    )
    snaps = mrcl.join(totals, ["report_id", "written_at"], "left").join(audit, "written_at", "left")
    snaps = snaps.fillna(0.0, ["attributed_sales_total", "baseline_sales_total"])

    def records(name: str) -> pd.DataFrame:
        df = lake.read(name, run_id).where((F.col("start") < F.lit(end)) & (F.col("end") > F.lit(lo)))
        return df.toPandas().sort_values("record_id").reset_index(drop=True)

    return snaps, records("all_campaign_data"), records("contextual_data")


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    inputs = read_inputs(lake, run_id, start, end)
    if inputs is None:
        return {"minority_reports_proposed_attribution_log": 0}
    snaps, campaigns, context = inputs
    mrpal = attribute(snaps, campaigns, context, cluster_types(lake, cfg), cfg.attribution, run_id)
    written = lake.append_new("minority_reports_proposed_attribution_log", mrpal, dates_of(start, end))
    return {"minority_reports_proposed_attribution_log": written}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "propose_cause_for_minority", run, argv)


if __name__ == "__main__":
    main()
