"""Clustering and attribution transforms on hand-made frames (chispa), and the library table's guard rails."""

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

from jobs.lib.features import FEATURES
from jobs.lib.tables import TABLES, Lakehouse
from jobs.library import build_cluster_library
from jobs.stages import cluster_minority_report, propose_cause_for_minority
from tests.conftest import make_config

T = datetime(2025, 8, 12, 12, 0)


def test_breadth_is_the_share_of_a_neighbourhoods_other_series_anomalous_at_once(spark):
    sales = spark.createDataFrame(
        [
            # series_key, store, sku, retailer, region, category
            ("S1|A", "S1", "A", "R1", "North", "CAT_A"),
            ("S1|B", "S1", "B", "R1", "North", "CAT_A"),
            ("S1|C", "S1", "C", "R1", "North", "CAT_B"),
            ("S2|A", "S2", "A", "R1", "North", "CAT_A"),
            ("S3|A", "S3", "A", "R2", "North", "CAT_A"),
        ],
        "series_key string, store_id string, sku string, retailer_id string, region string, category string",
    ).selectExpr("*", f"timestamp'{T:%Y-%m-%d %H:%M:%S}' AS ts", "5.0 AS revenue", "1L AS source_rows")
    active = spark.createDataFrame([("S1|B", T), ("S2|A", T)], "series_key string, ts timestamp")
    got = cluster_minority_report.breadth(sales, active).drop("revenue", "source_rows")
    expected = spark.createDataFrame(
        [
            # store, sku x region, category x region, sku x retailer
            ("S1|A", T, 1 / 2, 1 / 2, 2 / 3, 1.0),  # S1|B in its store; S2|A shares its SKU, category, retailer
            ("S1|B", T, 0.0, 0.0, 1 / 3, 0.0),  # no other B anywhere: the SKU neighbourhoods are empty
            ("S1|C", T, 1 / 2, 0.0, 0.0, 0.0),
            ("S2|A", T, 0.0, 0.0, 1 / 3, 0.0),
            ("S3|A", T, 0.0, 1 / 2, 2 / 3, 0.0),
        ],
        "series_key string, ts timestamp, breadth_store double, breadth_sku_region double, "
        "breadth_category_region double, breadth_sku_retailer double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, allow_nan_equality=True)


def test_breadth_at_given_ticks_keeps_their_columns_and_is_null_where_nothing_sold(spark):
    sales = spark.createDataFrame(
        [("S1|A", "S1", "A", "R1", "North", "CAT_A"), ("S1|B", "S1", "B", "R1", "North", "CAT_A")],
        "series_key string, store_id string, sku string, retailer_id string, region string, category string",
    ).selectExpr("*", f"timestamp'{T:%Y-%m-%d %H:%M:%S}' AS ts", "5.0D AS revenue", "1L AS source_rows")
    active = spark.createDataFrame([("S1|B", T)], "series_key string, ts timestamp")
    later = T.replace(hour=13)
    at = spark.createDataFrame(
        [("r1", "S1|A", T), ("r1", "S1|A", later)], "report_id string, series_key string, ts timestamp"
    )
    got = cluster_minority_report.breadth(sales, active, at=at)
    expected = spark.createDataFrame(
        [("r1", "S1|A", T, 5.0, 1, 1.0, 0.0, 1.0, 0.0), ("r1", "S1|A", later, None, None, None, None, None, None)],
        "report_id string, series_key string, ts timestamp, revenue double, source_rows long, breadth_store double, "
        "breadth_sku_region double, breadth_category_region double, breadth_sku_retailer double",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


# -- attribution -----------------------------------------------------------------------------------------
def _vector(**values) -> list[float]:
    return [float(values.get(f, 0.0)) for f in FEATURES]


def _snapshot(report_id, direction, vector, feeds_missing=(), cluster=None, sku="SKU_1", totals=(60.0, 20.0)):
    return {
        "report_id": report_id,
        "run_id": "t",
        "series_key": f"S1|{sku}",
        "store_id": "S1",
        "sku": sku,
        "retailer_id": "R1",
        "region": "North",
        "category": "CAT_A",
        "window_start": datetime(2025, 8, 12, 10, 0),
        "window_end": None,
        "direction": direction,
        "feature_vector": vector,
        "feature_names": list(FEATURES),
        "slice_ticks": 8,
        "library_version": "t",
        "cluster_id": cluster[0] if cluster else None,
        "cluster_name": cluster[1] if cluster else None,
        "similarity_score": 0.9 if cluster else None,
        "cluster_match_confidence": 0.6 if cluster else None,
        "second_cluster_name": None,
        "report_status": "active",
        "written_at": T,
        "is_degraded": False,
        "date": date(2025, 8, 12),
        "feeds_missing": list(feeds_missing),
        "attributed_sales_total": totals[0],
        "baseline_sales_total": totals[1],
    }


CAMPAIGNS = pd.DataFrame(
    [
        ("PROMO-1", "in_store_promo", "in_store", "R1", None, "SKU_1", "2025-08-12 09:00", "2025-08-12 18:00"),
        ("CMP-ALWAYS", "paid_search", "Google", "R1", "CAT_A", None, "2025-08-01 00:00", "2025-09-01 00:00"),
        ("CMP-OTHER", "paid_social", "Facebook", "R2", None, "SKU_1", "2025-08-12 00:00", "2025-08-13 00:00"),
    ],
    columns=["campaign_id", "campaign_type", "channel", "retailer_id", "category", "sku", "start", "end"],
).assign(
    record_id=lambda d: d["campaign_id"],
    start=lambda d: pd.to_datetime(d["start"]),
    end=lambda d: pd.to_datetime(d["end"]),
)
CONTEXT = pd.DataFrame(
    [
        ("ctx-1", "store_incident", "S1", None, None, None, "store-ops", "power outage", None, "2025-08-12 10:00"),
        ("ctx-2", "store_incident", "S9", None, None, None, "store-ops", "flooding", None, "2025-08-12 10:00"),
        ("ctx-3", "social_trend", None, "North", None, "SKU_1", "TikTok", "trend", 4.0, "2025-08-12 13:00"),
    ],
    columns=[
        "record_id",
        "signal_type",
        "store_id",
        "region",
        "category",
        "sku",
        "source",
        "detail",
        "intensity",
        "start",
    ],
).assign(start=lambda d: pd.to_datetime(d["start"]), end=lambda d: d["start"] + pd.Timedelta(hours=6))


def test_attribution_ranks_the_cause_the_evidence_names(spark, small_cfg):
    extra = [
        StructField("feeds_missing", ArrayType(StringType())),
        StructField("attributed_sales_total", DoubleType()),
        StructField("baseline_sales_total", DoubleType()),
    ]
    schema = StructType(TABLES["minority_reports_clustered_log"].schema.fields + extra)
    outage = _vector(zero_share=1.0, breadth_store=1.0, uplift=-2.5)
    rows = [
        _snapshot("MR-promo", "spike", _vector(uplift=1.0, breadth_sku_retailer=1.0)),
        _snapshot("MR-outage", "drop", outage, totals=(0.0, 30.0)),
        _snapshot("MR-outage-no-context", "drop", outage, feeds_missing=["contextual_data"], totals=(0.0, 30.0)),
        _snapshot("MR-glitch", "spike", _vector(uplift=2.4, unit_price_shift=-2.48), cluster=("C08", "Unit Glitch")),
    ]
    snaps = spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
    got = propose_cause_for_minority.attribute(
        snaps, CAMPAIGNS, CONTEXT, {("t", "C08"): "Data Error"}, small_cfg.attribution, "t"
    )
    cols = ["report_id", "proposed_cause_category", "confidence_tier", "is_degraded", "evidence_sources_missing"]
    expected = spark.createDataFrame(
        [
            ("MR-glitch", "Data Error", "High", False, []),
            ("MR-outage", "Operational/Store Issue", "High", False, []),
            ("MR-outage-no-context", "Operational/Store Issue", "Medium", True, ["contextual_data"]),
            ("MR-promo", "Marketing Misattribution", "High", False, []),
        ],
        "report_id string, proposed_cause_category string, confidence_tier string, is_degraded boolean, "
        "evidence_sources_missing array<string>",
    )
    assert_df_equality(got.select(cols), expected, ignore_row_order=True, ignore_nullable=True)

    out = {r["report_id"]: r for r in got.collect()}
    promo = out["MR-promo"]
    assert "PROMO-1" in promo["proposed_cause"] and "CMP-OTHER" not in " ".join(promo["supporting_evidence"])
    assert promo["impact_vector"] == "attribution error"
    assert promo["supporting_evidence"][0].startswith("all_campaign_data:PROMO-1 -> Marketing Misattribution")
    # The S1 incident counts, the S9 one does not; the trend starting after the tick is not known yet.
    evidence = " ".join(out["MR-outage"]["supporting_evidence"])
    assert "contextual_data:ctx-1" in evidence and "ctx-2" not in evidence and "ctx-3" not in evidence
    assert out["MR-outage-no-context"]["confidence_score"] < out["MR-outage"]["confidence_score"]
    assert "ctx-1" not in " ".join(out["MR-outage-no-context"]["supporting_evidence"])
    assert "Unit Glitch" in out["MR-glitch"]["proposed_cause"]


def test_campaigns_do_not_explain_drops(small_cfg):
    ev = [propose_cause_for_minority.Evidence("campaign", "Marketing Misattribution", 1.0, "c", "x", "promo")]
    attribution = small_cfg.attribution
    ranked = propose_cause_for_minority.rank(ev, "drop", attribution)
    assert all(not items for category, _, items in ranked if category == "Marketing Misattribution")
    ranked = propose_cause_for_minority.rank(ev, "spike", attribution)
    assert ranked[0][0] == "Marketing Misattribution"
    assert sum(p for _, p, _ in ranked) == pytest.approx(1.0)


# -- the library table -----------------------------------------------------------------------------------
def test_installing_the_shipped_library_is_idempotent_and_a_changed_version_is_refused(spark, tmp_path):
    cfg = make_config(tmp_path)
    rows = cluster_minority_report.library_frame(cfg.clustering.library_file)
    assert build_cluster_library.install(spark, cfg, rows) == len(rows)
    assert build_cluster_library.install(spark, cfg, rows) == 0
    lib = cluster_minority_report.load_library(Lakehouse(spark, cfg), cfg)
    assert lib.version == cfg.clustering.library_version and len(lib.names) == len(rows)
    changed = rows.copy()
    changed["centroid"] = [list(np.asarray(c) + 1.0) for c in changed["centroid"]]
    with pytest.raises(ValueError, match=r"choose a new clustering\.library_version"):
        build_cluster_library.install(spark, cfg, changed)


def test_an_unknown_library_version_is_a_clear_error(spark, tmp_path):
    cfg = make_config(tmp_path, **{"clustering.library_version": "nope"})
    with pytest.raises(ValueError, match=r"clustering\.library_version: .* no library version nope"):
        cluster_minority_report.load_library(Lakehouse(spark, cfg), cfg)
