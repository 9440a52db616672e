"""Generate the DFU clustering source tables with known demand patterns: items x locations, monthly demand.

Every DFU (an item at a location) gets one pattern from ``generator.patterns`` (spread evenly over the DFUs) and a
volume tier (high ~500-3000, medium ~40-200, low ~4-20 units a month, log-uniform; intermittent and lumpy DFUs are
only low or medium, as in real life). The patterns are built to be recoverable by the labelling thresholds of
conf/clustering_config.yaml over the last 24 months, with realistic noise:

- steady: a flat level, 6-14% multiplicative noise (cv well below 0.3);
- seasonal: a yearly cycle of amplitude 35-65% (seasonal indices span > 0.7), peaking in summer for beer, RTD and
  rose, at the holidays for spirits, sparkling and liqueurs;
- growing / declining: compound growth of +35..+90% / -30..-55% a year (|CAGR| > 0.2);
- intermittent: demand in 30-55% of the months (zero share > 0.2, average demand interval > 1.32), sizes with
  CV^2 ~0.1-0.2 (< 0.49);
- lumpy: demand in 25-50% of the months, log-normal sizes with CV^2 ~4-17 (well above 0.49; the few months of a
  window show less).

A share ``short_history_pct`` of DFUs launches fewer than ``min_months_history`` months before ``end_month`` (the
features step excludes them) and about a tenth launch part-way through; there is no demand before a launch. Months
without demand have no row in ``fact_sales_monthly`` (a sparse fact, as the forecasting platform stores it).
Attributes (beverage distributor: spirits, wine, beer, RTD, mixers) are independent of the pattern, except that a
seasonal DFU's peak month follows its category and ``abc_vol`` follows the volume tier; a few are NULL.

Writes ``fact_sales_monthly``, ``dim_item``, ``dim_dfu`` (``cluster_assignment`` NULL) and ``dfu_pattern_truth``,
each replaced whole (the generator defines the demo's source data). Same seed, same tables.

    python -m jobs.dfu.generate [--config conf/clustering_config.yaml] [--seed N]
"""

from __future__ import annotations

import argparse
from datetime import date

import numpy as np
import pandas as pd

from jobs.dfu.config import Generator, load_clustering_config
from schemas import dfu as S

WRITES = ("fact_sales_monthly", "dim_item", "dim_dfu", "dfu_pattern_truth")

TIER_RANGES = {"low": (4.0, 20.0), "medium": (40.0, 200.0), "high": (500.0, 3000.0)}
# Tiers of the continuous patterns cycle through this list (3/8 high, 3/8 medium, 2/8 low): with intermittent and
# lumpy only low or medium, about a quarter of all DFUs is high volume, matching the labelling's 75th percentile.
CONTINUOUS_TIERS = ("high", "medium", "low", "high", "medium", "high", "medium", "low")
SPARSE_TIERS = ("medium", "low")
SPARSE = {"intermittent", "lumpy"}

# category, class, sub-classes, countries, proof range, case price range, pack options (bottle_pack, pack_case),
# case weight range (lbs), sales division
CLASSES = [
    ("Spirits", "Whiskey", ["Bourbon", "Scotch", "Irish", "Rye", "Canadian"],
     ["United States", "United Kingdom", "Ireland", "Canada"], (80, 114), (180, 520), [(1, 12), (1, 6)], (30, 40),
     "Spirits Division"),
    ("Spirits", "Vodka", ["Unflavored", "Flavored"], ["United States", "Poland", "Sweden", "France"], (70, 100),
     (120, 380), [(1, 12), (1, 6)], (30, 40), "Spirits Division"),
    ("Spirits", "Tequila", ["Blanco", "Reposado", "Anejo"], ["Mexico"], (80, 100), (220, 600), [(1, 12), (1, 6)],
     (30, 40), "Spirits Division"),
    ("Spirits", "Rum", ["White", "Spiced", "Dark"], ["Puerto Rico", "Jamaica", "Barbados"], (70, 120), (120, 300),
     [(1, 12)], (30, 40), "Spirits Division"),
    ("Spirits", "Gin", ["London Dry", "Contemporary"], ["United Kingdom", "United States"], (80, 94), (150, 360),
     [(1, 12), (1, 6)], (30, 40), "Spirits Division"),
    ("Spirits", "Liqueur", ["Cream", "Herbal", "Fruit"], ["Ireland", "Italy", "France"], (30, 80), (140, 320),
     [(1, 12)], (28, 38), "Spirits Division"),
    ("Wine", "Red", ["Cabernet Sauvignon", "Pinot Noir", "Merlot", "Malbec"],
     ["United States", "France", "Argentina", "Chile", "Italy"], (26, 30), (90, 360), [(1, 12)], (34, 40),
     "Wine Division"),
    ("Wine", "White", ["Chardonnay", "Sauvignon Blanc", "Pinot Grigio", "Riesling"],
     ["United States", "France", "New Zealand", "Italy", "Germany"], (22, 28), (80, 300), [(1, 12)], (34, 40),
     "Wine Division"),
    ("Wine", "Sparkling", ["Champagne", "Prosecco", "Cava"], ["France", "Italy", "Spain"], (22, 25), (110, 600),
     [(1, 12), (1, 6)], (36, 42), "Wine Division"),
    ("Wine", "Rose", ["Provence", "Still Rose"], ["France", "United States", "Spain"], (22, 26), (90, 240), [(1, 12)],
     (34, 40), "Wine Division"),
    ("Beer", "Lager", ["Pilsner", "Light Lager", "Mexican Lager"], ["United States", "Mexico", "Germany"], (8, 11),
     (22, 38), [(6, 4), (12, 2), (24, 1)], (22, 38), "Beer & RTD Division"),
    ("Beer", "Ale", ["IPA", "Pale Ale", "Stout", "Wheat"], ["United States", "Ireland", "Belgium"], (9, 16),
     (28, 52), [(6, 4), (4, 6)], (22, 36), "Beer & RTD Division"),
    ("RTD", "Hard Seltzer", ["Variety Pack", "Single Flavor"], ["United States"], (8, 10), (26, 40),
     [(12, 2), (6, 4)], (20, 28), "Beer & RTD Division"),
    ("RTD", "Canned Cocktail", ["Margarita", "Vodka Soda", "Gin and Tonic"], ["United States", "Mexico"], (10, 20),
     (30, 60), [(4, 6), (8, 3)], (18, 26), "Beer & RTD Division"),
    ("Non-Alcoholic", "Mixers", ["Tonic", "Ginger Beer", "Bitters", "Sour Mix"], ["United States", "United Kingdom"],
     (0, 0), (18, 36), [(4, 6), (1, 12)], (18, 30), "Non-Alcoholic Division"),
]  # fmt: skip
# Where a seasonal DFU of each category peaks: beer, RTD and rose in summer, spirits and bubbles at the holidays.
SUMMER_CLASSES = {"Lager", "Ale", "Hard Seltzer", "Canned Cocktail", "Rose", "Mixers"}
SUMMER_PEAKS, HOLIDAY_PEAKS = (6, 7, 8), (11, 12, 12)
BRAND_STEMS = [
    "Old Cask", "Copper Still", "Blue Ridge", "Harbor Light", "Silver Fox", "Red Barn", "Golden Mesa", "Iron Gate",
    "North Star", "Stone Bridge", "Wild Oak", "Crescent Bay", "High Plains", "Black Pine", "Maple Hollow",
    "Sun Valley", "Twin Peaks", "Cedar Creek", "Lone Heron", "Rolling Hills", "Kings Row", "Salt Marsh",
    "Velvet Fig", "Tall Timber", "Rio Verde", "Glen Arbor", "Sea Glass", "Foxtail", "Amber Field", "Quarry Lane",
]  # fmt: skip
NATIONAL_SERVICE_MODELS = (
    ["Warehouse", "Direct Store Delivery", "Cross-Dock", "Special Order"],
    [0.55, 0.2, 0.15, 0.1],
)
SUPERGROUPS = (["Core", "Premium", "Value", "Craft & Import"], [0.4, 0.25, 0.2, 0.15])
# Distribution centres: region and state; control states sell spirits through the state's own plan.
LOCATIONS = [
    ("Northeast", "NJ"), ("Southeast", "FL"), ("Midwest", "IL"), ("Southwest", "TX"), ("West", "CA"),
    ("Northeast", "PA"), ("Southeast", "GA"), ("Midwest", "OH"), ("Southwest", "AZ"), ("West", "WA"),
]  # fmt: skip
CONTROL_STATES = {"PA", "OH"}
ABC_BY_TIER = {"high": "A", "medium": "B", "low": "C"}
SERVICE_BY_ABC = {"A": "SL-98", "B": "SL-95", "C": "SL-90"}
NULL_SHARE = 0.02  # attributes left empty, as in any real master data


def months_back(end: date, n: int) -> list[date]:
    """The ``n`` first-of-month dates ending at ``end`` (inclusive), oldest first."""
    out = []
    y, m = end.year, end.month
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _assign(rng: np.random.Generator, gen: Generator, n: int) -> tuple[list[str], list[str]]:
    """Patterns spread evenly over ``n`` DFUs (counts differ by at most one), and a tier per DFU."""
    patterns = [gen.patterns[i % len(gen.patterns)] for i in range(n)]
    patterns = [patterns[i] for i in rng.permutation(n)]
    tiers, seen = [], dict.fromkeys(gen.patterns, 0)
    for p in patterns:
        cycle = SPARSE_TIERS if p in SPARSE else CONTINUOUS_TIERS
        tiers.append(cycle[seen[p] % len(cycle)])
        seen[p] += 1
    return patterns, tiers


def demand_series(
    rng: np.random.Generator, pattern: str, tier: str, calendar: list[int], launch: int, summer: bool
) -> np.ndarray:
    """Monthly units (integers, >= 0) over ``calendar`` (month numbers, oldest first), zero before ``launch``.

    The tier's level is the demand level at the centre of the last 24 months, so that a trending DFU's mean over
    the features' window is still in its tier.
    """
    n = len(calendar)
    t = np.arange(n, dtype=float)
    cal = np.array(calendar, dtype=float)
    level = _log_uniform(rng, *TIER_RANGES[tier])
    if pattern in SPARSE:
        p_demand = rng.uniform(0.30, 0.55) if pattern == "intermittent" else rng.uniform(0.25, 0.50)
        occurs = rng.random(n) < p_demand
        if pattern == "intermittent":
            shape = rng.uniform(6.0, 12.0)  # CV^2 of the sizes = 1 / shape
            sizes = level * rng.gamma(shape, 1.0 / shape, n)
        else:
            sigma = rng.uniform(1.3, 1.7)  # CV^2 of the sizes = exp(sigma^2) - 1
            sizes = level * rng.lognormal(-(sigma**2) / 2, sigma, n)
        qty = np.where(occurs, np.maximum(1.0, np.round(sizes)), 0.0)
    else:
        growth = {"growing": (0.35, 0.90), "declining": (-0.55, -0.30)}.get(pattern, (-0.04, 0.04))
        amplitude = rng.uniform(0.35, 0.65) if pattern == "seasonal" else rng.uniform(0.0, 0.05)
        peaks = SUMMER_PEAKS if summer else HOLIDAY_PEAKS
        peak = peaks[rng.integers(len(peaks))] if pattern == "seasonal" else int(rng.integers(1, 13))
        noise = rng.uniform(0.06, 0.14 if pattern == "steady" else 0.15)
        trend = (1.0 + rng.uniform(*growth)) ** ((t - (n - 12.5)) / 12.0)
        season = 1.0 + amplitude * np.cos(2 * np.pi * (cal - peak) / 12.0)
        qty = np.round(np.maximum(0.0, level * trend * season * (1.0 + noise * rng.standard_normal(n))))
    qty[:launch] = 0.0
    return qty


def _pick(rng: np.random.Generator, options: list, weights: list[float] | None = None):
    return options[int(rng.choice(len(options), p=weights))]


def _nullable(rng: np.random.Generator, value):
    return None if rng.random() < NULL_SHARE else value


def _items(rng: np.random.Generator, n: int) -> pd.DataFrame:
    rows = []
    brands: dict[str, str] = {}  # brand -> class: a brand makes one kind of drink
    for i in range(n):
        cat, cls, subs, countries, proof, _price, packs, weight, _div = CLASSES[int(rng.integers(len(CLASSES)))]
        stems = [b for b in BRAND_STEMS if brands.get(b, cls) == cls]
        brand = stems[int(rng.integers(len(stems)))] if stems else f"{cls} House"
        brands[brand] = cls
        sub = subs[int(rng.integers(len(subs)))]
        bottle_pack, pack_case = packs[int(rng.integers(len(packs)))]
        item_proof = float(round(rng.uniform(*proof))) if proof[1] else 0.0
        rows.append(
            {
                "item_id": f"ITM{i + 1:05d}",
                "item_desc": f"{brand} {sub} {bottle_pack * pack_case}pk",
                "category": cat,
                "class": cls,
                "sub_class": _nullable(rng, sub),
                "brand_name": brand,
                "country": _nullable(rng, countries[int(rng.integers(len(countries)))]),
                "national_service_model": _pick(rng, *NATIONAL_SERVICE_MODELS),
                "case_weight": _nullable(rng, round(float(rng.uniform(*weight)), 1)),
                "item_proof": item_proof,
                "bpc": float(bottle_pack * pack_case),
                "bottle_pack": float(bottle_pack),
                "pack_case": float(pack_case),
            }
        )
    return pd.DataFrame(rows, columns=[f.name for f in S.DIM_ITEM.fields])


def generate(gen: Generator, min_months: int = 12) -> dict[str, pd.DataFrame]:
    """The four source tables as pandas frames (columns in schema order), drawn from one generator seeded with
    ``gen.seed``: the same config gives identical frames. ``min_months`` is the history below which a DFU counts
    as a recent launch (the clustering's ``min_months_history``)."""
    rng = np.random.default_rng(gen.seed)
    months = months_back(gen.end_month, gen.months)
    calendar = [m.month for m in months]
    items = _items(rng, gen.items)
    by_class = {c[1]: c for c in CLASSES}
    item_rows = items.to_dict("records")
    prices = {r["item_id"]: rng.uniform(*by_class[r["class"]][5]) for r in item_rows}
    locations = []
    for j in range(gen.locations):
        region, state = LOCATIONS[j % len(LOCATIONS)]
        plan = "CONTROL" if state in CONTROL_STATES else "LICENSE"
        locations.append((f"DC-{state}{j // len(LOCATIONS) + 1:02d}", region, f"{state}-{plan}"))

    n = gen.items * gen.locations
    patterns, tiers = _assign(rng, gen, n)
    n_short = round(gen.short_history_pct * n)
    short = set(rng.choice(n, size=n_short, replace=False).tolist()) if n_short else set()
    short_lo = max(2, min_months // 3)
    facts, dims, truth = [], [], []
    for k, (item, (loc, region, state_plan)) in enumerate((i, loc) for i in item_rows for loc in locations):
        cls = item["class"]
        if k in short:
            launch = gen.months - int(rng.integers(short_lo, max(short_lo, min_months - 1) + 1))
        elif rng.random() < 0.1 and gen.months > min_months + 6:
            launch = gen.months - int(rng.integers(min_months + 6, gen.months + 1))
        else:
            launch = 0
        launch = max(0, launch)
        qty = demand_series(rng, patterns[k], tiers[k], calendar, launch, cls in SUMMER_CLASSES)
        dfu_id = f"{item['item_id']}@{loc}"
        price = prices[item["item_id"]]
        discounts = rng.uniform(0.92, 1.0, len(months))
        for m, q, d in zip(months, qty, discounts, strict=True):
            if q > 0:
                facts.append((item["item_id"], loc, m, float(q), round(float(q * price * d), 2)))
        abc = ABC_BY_TIER[tiers[k]] if rng.random() < 0.85 else "ABC"[int(rng.integers(3))]
        imported = item["country"] not in (None, "United States")
        dims.append(
            {
                "dfu_id": dfu_id,
                "item_id": item["item_id"],
                "location_id": loc,
                "brand": _nullable(rng, item["brand_name"].upper()),
                "region": region,
                "state_plan": state_plan,
                "sales_div": by_class[cls][8],
                "prod_cat_desc": f"{item['category'].upper()} - {cls.upper()}",
                "abc_vol": abc,
                "service_lvl_grp": _nullable(rng, SERVICE_BY_ABC[abc]),
                "supergroup": _nullable(rng, _pick(rng, *SUPERGROUPS)),
                "execution_lag": float(rng.integers(0, 3)),
                "total_lt": _nullable(rng, float(rng.integers(35, 76) if imported else rng.integers(5, 22))),
                "alcoh_pct": _nullable(rng, item["item_proof"] / 2.0),
                "proof": item["item_proof"],
                "cluster_assignment": None,
            }
        )
        truth.append((dfu_id, patterns[k], tiers[k], months[launch], gen.seed))
    return {
        "fact_sales_monthly": pd.DataFrame(facts, columns=[f.name for f in S.FACT_SALES_MONTHLY.fields]),
        "dim_item": items,
        "dim_dfu": pd.DataFrame(dims, columns=[f.name for f in S.DIM_DFU.fields]),
        "dfu_pattern_truth": pd.DataFrame(truth, columns=[f.name for f in S.DFU_PATTERN_TRUTH.fields]),
    }


def to_spark(spark, pdf: pd.DataFrame, schema):
    """A pandas frame as a Spark frame of ``schema``, NaN and None both as NULL."""
    rows = pdf.astype(object).where(pdf.notna(), None).itertuples(index=False, name=None)
    return spark.createDataFrame(list(rows), schema)


def write(spark, cfg, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Replace each table whole with its generated rows; returns the row count per table."""
    from jobs.lib.tables import TABLES, Lakehouse

    lake = Lakehouse(spark, cfg)
    return {
        name: lake.replace_where(name, to_spark(spark, frames[name], TABLES[name].schema), "true") for name in WRITES
    }


def main(argv: list[str] | None = None) -> None:
    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="clustering config YAML (default: $DFU_CLUSTERING_CONFIG or the repo's)")
    p.add_argument("--seed", type=int, help="random seed (default: generator.seed of the config)")
    a = p.parse_args(argv)
    ccfg = load_clustering_config(a.config)
    gen = ccfg.generator if a.seed is None else ccfg.generator.model_copy(update={"seed": a.seed})
    frames = generate(gen, ccfg.clustering.min_months_history)
    cfg = load_config()
    spark = build_spark(cfg, "dfu-generate")
    counts = write(spark, cfg, frames)
    spark.stop()
    truth = frames["dfu_pattern_truth"]
    print(f"dfu-generate seed={gen.seed}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    by = truth.groupby(["pattern", "volume_tier"]).size().unstack(fill_value=0)
    print(by.reindex([p for p in gen.patterns if p in by.index]).to_string())
    short = int((truth["first_month"] > months_back(gen.end_month, ccfg.clustering.min_months_history)[0]).sum())
    print(f"recent launches (history < {ccfg.clustering.min_months_history} months): {short}")


if __name__ == "__main__":
    main()
