"""Cohorting stage: minority reports -> Minority Events (MRCH, MELOG, minority_event_ended_log).

At every tick t, the reports known at t (each at its latest snapshot at or before t, joined from MRDL, MRCL
and MRPAL) are linked two ways (spec decision 4) and each connected group is one Minority Event:

- **temporal adjacency**: two reports of one store whose windows overlap or whose gap is at most
  ``cohorting.gap_minutes``: always for one series, and for two series of the store when they move the same
  way with the same primary cause (an outage empties every shelf; a viral SKU beside it is another event);
- **shared cause**: reports of different stores of one retailer or region (``cohorting.shared_cause_scope``)
  whose windows overlap, that move the same way and share the primary cause category, and either cite the same
  feed record for it (one competitor notice, one campaign: whatever shape each report matched) or, citing none
  in common, match the same named cluster for the same product (SKU; category at store grain). Records for
  the cause with none in common: two events.

The event's id is spec decision 3's ``report_group_id`` (its earliest report anchors it), so it survives the
event ending and **reopening** when an adjacent report arrives later, and two events that merge keep the
earlier one's id. An event is *active* while one of its reports is, *ended* once all have.

Stateless: each tick is recomputed from the logs over a bounded window (reports that ended within
``2 x lookback_hours``; events ended longer than ``lookback_hours`` ago are final), and what changed is found by
computing the tick before as well. So a run over a range writes exactly what tick-by-tick runs write.

- MRCH: a row per report and tick while its event is active, and at the tick its event or status changes;
- MELOG: a row when an event is created, reopened, ends, merges into another or changes membership;
- ``minority_event_ended_log``: a row each time an event ends, with its authoritative ``window_end``.

    spark-submit jobs/stages/build_minority_report_cohorts.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Cohorting, Config
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import dates_between, dates_of, fmt_ts, naive_utc
from schemas.mrs import REPORT_COLUMNS

WRITES = ("minority_reports_cohorted_log", "minority_event_log", "minority_event_ended_log")
# An evidence item of MRPAL that names a feed record: "<table>:<record id> -> <category> +<weight>".
FEED_EVIDENCE = re.compile(r"^(contextual_data|all_campaign_data):(\S+) -> (.+) \+[0-9.]+$")

# What the per-tick function adds to each report's state: its event, as one row per report and tick.
EVENT_SCHEMA = (
    "t timestamp, report_id string, report_group_id string, event_status string, cohort_id string, "
    "cohort_name string, cohort_cause_category string, cohort_confidence double, cohort_reason string, "
    "cohort_size int, cohort_store_count int, event_window_start timestamp, event_window_end timestamp, "
    "anchor_report_id string, anchor_status string, event_store_id string, event_degraded boolean"
)


def event_id(anchor_report_id: str, window_start) -> str:
    """Spec decision 3: ME- + sha256(anchor report_id | its window_start as YYYY-MM-DDTHH:MM:SSZ)."""
    return "ME-" + hashlib.sha256(f"{anchor_report_id}|{fmt_ts(pd.Timestamp(window_start))}".encode()).hexdigest()


def cluster_family(name) -> str | None:
    """A library cluster's name without its numeral ("Promo Uplift 2" -> "Promo Uplift")."""
    return None if name is None or pd.isna(name) else re.sub(r" \d+$", "", str(name))


def feed_refs(evidence, category) -> frozenset:
    """The feed records a report's evidence cites for ``category``."""
    if evidence is None or category is None or (isinstance(category, float) and np.isnan(category)):
        return frozenset()
    out = set()
    for item in evidence:
        m = FEED_EVIDENCE.match(item)
        if m and m.group(3) == category:
            out.add(f"{m.group(1)}:{m.group(2)}")
    return frozenset(out)


# -- one tick (pure pandas) ------------------------------------------------------------------------------
def _pairs(groups: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of rows sharing a group value (NULL groups pair with nothing)."""
    ii, jj = [], []
    for idx in groups.dropna().groupby(groups.dropna()).indices.values():
        if len(idx) > 1:
            a, b = np.triu_indices(len(idx), k=1)
            ii.append(idx[a])
            jj.append(idx[b])
    if not ii:
        return np.array([], dtype=int), np.array([], dtype=int)
    return np.concatenate(ii), np.concatenate(jj)


def link(s: pd.DataFrame, t: pd.Timestamp, c: Cohorting) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (i, j, kind) between the reports of one tick; kind 0 = temporal adjacency, 1 = shared cause."""
    start = s["window_start"].to_numpy(dtype="datetime64[ns]")
    end = s["window_end"].fillna(t).to_numpy(dtype="datetime64[ns]")  # an active report runs up to now
    gap_limit = np.timedelta64(c.gap_minutes, "m")
    cause = s["proposed_cause_category"].to_numpy(dtype=object)
    direction = s["direction"].to_numpy(dtype=object)

    def gap(i, j):  # <= 0 when the windows overlap
        return np.maximum(start[i] - end[j], start[j] - end[i])

    def same_cause(i, j):
        return pd.notna(cause[i]) & (cause[i] == cause[j]) & (direction[i] == direction[j])

    edges = []
    i, j = _pairs(s["store_id"].reset_index(drop=True))
    if len(i):
        same_series = s["series_key"].to_numpy(dtype=object)
        ok = (gap(i, j) <= gap_limit) & ((same_series[i] == same_series[j]) | same_cause(i, j))
        edges.append((i[ok], j[ok], np.zeros(ok.sum(), dtype=int)))
    family = s["cluster_family"].to_numpy(dtype=object)
    sku, category = s["sku"].to_numpy(dtype=object), s["category"].to_numpy(dtype=object)
    refs = s["feed_refs"].to_numpy(dtype=object)
    store = s["store_id"].to_numpy(dtype=object)
    for scope in c.shared_cause_scope:
        i, j = _pairs(s[scope].reset_index(drop=True))
        if not len(i):
            continue
        ok = (store[i] != store[j]) & (gap(i, j) <= np.timedelta64(0, "m")) & same_cause(i, j)
        # The same feed record (one notice, one campaign) links them whatever shape each matched; without
        # one, the named cluster and the product (SKU, or category at store grain) must agree; records for
        # the cause with none in common: two events.
        shared = np.array([bool(refs[a] & refs[b]) for a, b in zip(i, j, strict=True)], dtype=bool)
        apart = np.array([bool(refs[a]) and bool(refs[b]) for a, b in zip(i, j, strict=True)], dtype=bool) & ~shared
        both_sku = pd.notna(sku[i]) & pd.notna(sku[j])
        product = np.where(both_sku, sku[i] == sku[j], pd.notna(category[i]) & (category[i] == category[j]))
        alike = pd.notna(family[i]) & (family[i] == family[j]) & product.astype(bool)
        ok &= shared | (alike & ~apart)
        edges.append((i[ok], j[ok], np.ones(ok.sum(), dtype=int)))
    if not edges:
        return np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=int)
    return tuple(np.concatenate(parts) for parts in zip(*edges, strict=True))


def _name(m: pd.DataFrame, cause: str | None) -> str:
    skus, cats = m["sku"].dropna().unique(), m["category"].dropna().unique()
    what = skus[0] if len(skus) == 1 else cats[0] if len(cats) == 1 else f"{len(skus) or len(m)} products"
    stores = m["store_id"].unique()
    if len(stores) == 1:
        where = stores[0]
    else:
        regions, retailers = m["region"].dropna().unique(), m["retailer_id"].dropna().unique()
        scope = f" in {regions[0]}" if len(regions) == 1 else f" of {retailers[0]}" if len(retailers) == 1 else ""
        where = f"{len(stores)} stores{scope}"
    return f"{cause or 'Unattributed'}: {what} at {where}"


def cohort_tick(s: pd.DataFrame, t: pd.Timestamp, c: Cohorting) -> pd.DataFrame:
    """The events at tick ``t``: one row per report known then (``s``: each report's state as of ``t``).

    Events that ended more than ``c.lookback_hours`` before ``t`` are final and left out.
    """
    cols = [x.split()[0] for x in EVENT_SCHEMA.split(", ")]
    if s.empty:
        return pd.DataFrame(columns=cols)
    s = s.sort_values(["window_start", "report_id"]).reset_index(drop=True)
    s["cluster_family"] = s["cluster_name"].map(cluster_family)
    s["feed_refs"] = [
        feed_refs(e, k) for e, k in zip(s["supporting_evidence"], s["proposed_cause_category"], strict=True)
    ]
    # Imported where it runs, in the Python workers, not in every client of this module (~1 s at import).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j, kind = link(s, t, c)
    n = len(s)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    has_adj = np.zeros(n, dtype=bool)
    has_shared = np.zeros(n, dtype=bool)
    np.logical_or.at(has_adj, comp[i[kind == 0]], True)
    np.logical_or.at(has_shared, comp[i[kind == 1]], True)

    horizon = t - pd.Timedelta(hours=c.lookback_hours)
    rows = []
    for k, m in s.groupby(comp, sort=False):
        ended = m["window_end"].notna().all()
        if ended and m["window_end"].max() < horizon:
            continue  # final long ago
        anchor = m.iloc[0]  # sorted by window_start, then report_id
        conf = m.groupby("proposed_cause_category")["confidence_score"].sum()
        cause = None if conf.empty else sorted(conf.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        agreeing = m["confidence_score"].where(m["proposed_cause_category"] == cause, 0.0).fillna(0.0)
        reason = (
            "single report"
            if len(m) == 1
            else "temporal adjacency + shared cause"
            if has_adj[k] and has_shared[k]
            else "shared cause"
            if has_shared[k]
            else "temporal adjacency"
        )
        event = {
            "t": t,
            "report_group_id": event_id(anchor["report_id"], anchor["window_start"]),
            "event_status": "ended" if ended else "active",
            "cohort_id": "MC-" + hashlib.sha256("|".join(sorted(m["report_id"])).encode()).hexdigest(),
            "cohort_name": _name(m, cause),
            "cohort_cause_category": cause,
            "cohort_confidence": float(np.clip(agreeing.mean(), 0.0, 1.0)),
            "cohort_reason": reason,
            "cohort_size": len(m),
            "cohort_store_count": int(m["store_id"].nunique()),
            "event_window_start": anchor["window_start"],
            "event_window_end": m["window_end"].max() if ended else pd.NaT,
            "anchor_report_id": anchor["report_id"],
            "anchor_status": anchor["report_status"],
            "event_store_id": anchor["store_id"],
            "event_degraded": bool(m["is_degraded"].any()),
        }
        rows += [{**event, "report_id": r} for r in m["report_id"]]
    return pd.DataFrame(rows, columns=cols)


# -- the stage in Spark ----------------------------------------------------------------------------------
def snapshots(mrdl: DataFrame, mrcl: DataFrame, mrpal: DataFrame) -> DataFrame:
    """Every report snapshot with its detection, cluster and cause (missing ones leave the row degraded)."""
    keys = ["report_id", "written_at"]
    cl = mrcl.select(
        *keys, "feature_vector", "cluster_id", "cluster_name", "similarity_score", "cluster_match_confidence"
    )
    pal = mrpal.select(
        *keys,
        "proposed_cause",
        "proposed_cause_category",
        "confidence_score",
        "supporting_evidence",
        F.col("is_degraded").alias("_pal_degraded"),
    )
    return (
        mrdl.select(
            *REPORT_COLUMNS,
            "written_at",
            "severity",
            "attributed_sales_total",
            "baseline_sales_total",
            "report_status",
            "is_degraded",
        )
        .join(cl, keys, "left")
        .join(pal, keys, "left")
        .withColumn(
            "is_degraded",
            F.col("is_degraded") | F.coalesce(F.col("_pal_degraded"), F.lit(True)) | F.col("cluster_id").isNull(),
        )
        .drop("_pal_degraded")
    )


def states(snaps: DataFrame, first: datetime, end: datetime, c: Cohorting, tick_seconds: int) -> DataFrame:
    """Each report's state at every tick t in [first, end) it matters for: its snapshot at min(t, window_end),
    from its window_start until 2 x lookback after it ended."""
    step = F.expr(f"INTERVAL {tick_seconds} SECONDS")
    last = end - timedelta(seconds=tick_seconds)
    keep = F.expr(f"INTERVAL {2 * c.lookback_hours} HOURS")
    bounds = snaps.groupBy("report_id").agg(
        F.min("window_start").alias("ws"), F.max("window_end").alias("we")
    )  # window_end is set on the ended snapshot only
    lo = F.greatest(F.col("ws"), F.lit(first))
    hi = F.least(F.lit(last), F.coalesce(F.col("we") + keep, F.lit(last)))
    spine = (
        bounds.where(lo <= hi)
        .select("report_id", "we", F.explode(F.sequence(lo, hi, step)).alias("t"))
        .withColumn("written_at", F.least(F.col("t"), F.coalesce(F.col("we"), F.col("t"))))
        .drop("we")
    )
    return spine.join(snaps, ["report_id", "written_at"])


def events(states_df: DataFrame, c: Cohorting) -> DataFrame:
    """Per tick, every known report's event (``cohort_tick`` on each tick's states)."""
    cols = [
        "t",
        *REPORT_COLUMNS,
        "report_status",
        "cluster_name",
        "proposed_cause_category",
        "confidence_score",
        "supporting_evidence",
        "is_degraded",
    ]

    def fn(key, pdf):  # no type hints: Spark would try to infer the UDF kind from them
        return cohort_tick(pdf, naive_utc(key[0]), c)

    return states_df.select(*cols).groupBy("t").applyInPandas(fn, EVENT_SCHEMA)


def cohort_logs(
    states_df: DataFrame, ev: DataFrame, embedding: DataFrame, start: datetime, tick_seconds: int, run_id: str
) -> dict[str, DataFrame]:
    """States and events of the ticks [start - 1 tick, end) -> the rows of the three logs for [start, end)."""
    step = F.expr(f"INTERVAL {tick_seconds} SECONDS")
    prev = ev.select(
        (F.col("t") + step).alias("t"),
        "report_id",
        F.col("report_group_id").alias("prev_group"),
        F.col("event_status").alias("prev_status"),
    )
    cur = ev.where(F.col("t") >= F.lit(start))
    rep = cur.join(prev, ["t", "report_id"], "left")
    changed = (
        (F.col("event_status") == "active")
        | F.col("prev_group").isNull()
        | (F.col("prev_group") != F.col("report_group_id"))
        | (F.col("prev_status") != F.col("event_status"))
    )
    st = states_df.drop("written_at")
    mrch = (
        rep.where(changed)
        .drop("prev_group", "prev_status")
        .join(st, ["t", "report_id"])
        .withColumn("written_at", F.col("t"))
        .transform(lambda df: with_tsne(df, embedding))
        .select(
            "*",
            F.col("severity").alias("severity_score"),
            (F.col("attributed_sales_total") - F.col("baseline_sales_total")).alias("impact_estimate"),
            (F.floor((F.unix_timestamp("t") - F.unix_timestamp("window_start")) / tick_seconds) + 1)
            .cast("int")
            .alias("version"),
            F.array_join("supporting_evidence", "; ").alias("supporting_evidence_text"),
            F.to_date("t").alias("date"),
        )
        .drop("supporting_evidence")
        .withColumnRenamed("supporting_evidence_text", "supporting_evidence")
        .withColumn("run_id", F.lit(run_id))
    )

    event_cols = [
        "t",
        F.col("report_group_id").alias("event_id"),
        "event_status",
        F.col("event_store_id").alias("store_id"),
        F.col("cohort_store_count").alias("store_count"),
        F.col("cohort_size").alias("report_count"),
        F.col("event_window_start").alias("window_start"),
        F.col("event_window_end").alias("window_end"),
        F.col("anchor_report_id").alias("report_id"),
        F.col("anchor_status").alias("report_status"),
        F.col("event_degraded").alias("is_degraded"),
    ]
    evs = ev.select(*event_cols).dropDuplicates(["t", "event_id"])
    before = evs.select(
        (F.col("t") + step).alias("t"),
        "event_id",
        *[F.col(x).alias(f"p_{x}") for x in ("event_status", "store_count", "report_count", "window_start")],
        F.col("window_end").alias("p_window_end"),
        F.col("report_id").alias("p_anchor"),
    )
    now = evs.where(F.col("t") >= F.lit(start)).join(before, ["t", "event_id"], "left")
    change = (
        F.when(F.col("p_event_status").isNull(), "created")
        .when((F.col("p_event_status") == "ended") & (F.col("event_status") == "active"), "reopened")
        .when((F.col("p_event_status") == "active") & (F.col("event_status") == "ended"), "ended")
        .when(
            (F.col("p_report_count") != F.col("report_count"))
            | (F.col("p_store_count") != F.col("store_count"))
            | (F.col("p_window_start") != F.col("window_start"))
            | ~F.col("p_window_end").eqNullSafe(F.col("window_end")),
            "membership",
        )
    )
    kept = now.withColumn("change", change).where(F.col("change").isNotNull())
    kept = kept.select(
        *[c for c in evs.columns],
        "change",
        F.lit(None).cast("string").alias("merged_into"),
    )
    # An event of the tick before that is gone now: merged into the event that holds its anchor report
    # (an event that merely aged out of the lookback has no anchor left and writes nothing).
    gone = (
        evs.select((F.col("t") + step).alias("t"), *[c for c in evs.columns if c != "t"])
        .where(F.col("t") >= F.lit(start))
        .join(evs.select("t", "event_id"), ["t", "event_id"], "left_anti")
    )
    into = cur.select("t", F.col("report_id"), F.col("report_group_id").alias("merged_into"))
    merged = (
        gone.join(into, ["t", "report_id"])
        .withColumn("event_status", F.lit("merged"))
        .withColumn("change", F.lit("merged"))
        .select(*evs.columns, "change", "merged_into")
    )
    melog = (
        kept.unionByName(merged)
        .withColumn("created_at", F.col("window_start"))
        .withColumn("finalized_at", F.when(F.col("event_status") == "ended", F.col("window_end")))
        .withColumn("written_at", F.col("t"))
        .withColumn("date", F.to_date("t"))
        .withColumn("run_id", F.lit(run_id))
    )
    ended = melog.where((F.col("event_status") == "ended") & (F.col("change") != "merged"))
    return {
        "minority_reports_cohorted_log": mrch,
        "minority_event_log": melog,
        "minority_event_ended_log": ended,
    }


def with_tsne(df: DataFrame, embedding: DataFrame) -> DataFrame:
    """Each row's report coordinates from the latest t-SNE map written at or before its tick."""
    pts = embedding.where(F.col("point_type") == "report").select(
        F.col("point_id").alias("report_id"), F.col("written_at").alias("_emb_at"), "embedding_id", "tsne_x", "tsne_y"
    )
    w = Window.partitionBy("report_id", "t").orderBy(F.col("_emb_at").desc(), F.col("embedding_id").desc())
    best = (
        df.select("report_id", "t")
        .join(pts, "report_id")
        .where(F.col("_emb_at") <= F.col("t"))
        .withColumn("_rn", F.row_number().over(w))
        .where("_rn = 1")
        .select("report_id", "t", "tsne_x", "tsne_y")
    )
    return df.join(best, ["report_id", "t"], "left")


def read_inputs(lake: Lakehouse, cfg: Config, run_id: str, start: datetime, end: datetime):
    """Report snapshots from ``2 x lookback`` before the tick before ``start`` up to ``end``, and the t-SNE maps."""
    first = start - timedelta(seconds=cfg.tick_seconds)
    lo = first - timedelta(hours=2 * cfg.cohorting.lookback_hours)

    def log(name: str) -> DataFrame:
        df = lake.read(name, run_id).where(dates_between(lo, end))
        return df.where((F.col("written_at") >= F.lit(lo)) & (F.col("written_at") < F.lit(end)))

    snaps = snapshots(
        log("minority_reports_detected_log"),
        log("minority_reports_clustered_log"),
        log("minority_reports_proposed_attribution_log"),
    )
    embedding = lake.read("minority_report_embedding", run_id).where(F.col("written_at") < F.lit(end))
    return snaps, embedding


def cohort(
    snaps: DataFrame, embedding: DataFrame, start: datetime, end: datetime, cfg: Config, run_id: str
) -> dict[str, DataFrame]:
    """The stage as one transform: report snapshots (+ t-SNE maps) -> MRCH, MELOG and the ended log for
    [start, end). ``run`` persists the states and events in between, as the three logs share them."""
    st = states(snaps, start - timedelta(seconds=cfg.tick_seconds), end, cfg.cohorting, cfg.tick_seconds)
    return cohort_logs(st, events(st, cfg.cohorting), embedding, start, cfg.tick_seconds, run_id)


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    snaps, embedding = read_inputs(lake, cfg, run_id, start, end)
    st = states(snaps, start - timedelta(seconds=cfg.tick_seconds), end, cfg.cohorting, cfg.tick_seconds).persist()
    ev = events(st, cfg.cohorting).persist()  # each tick's components: computed once for the three logs
    out = cohort_logs(st, ev, embedding, start, cfg.tick_seconds, run_id)
    days = dates_of(start, end)
    written = {name: lake.append_new(name, df, days) for name, df in out.items()}
    st.unpersist()
    ev.unpersist()
    return written


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "build_minority_report_cohorts", run, argv)


if __name__ == "__main__":
    main()
