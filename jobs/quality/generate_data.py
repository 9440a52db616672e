"""Generate realistic retail sales with injected anomalies of every taxonomy type.

Writes, under ``paths.landing`` (or ``--out``):

- ``unified_sales_data/sales_YYYY-MM-DD.csv``: one row per store, SKU and tick (zeros included), in the input
  format ``timestamp,batch_id,store_id,retailer_id,region,sku,category,units,revenue``, plus a few bad rows
- ``contextual_data/contextual_data.csv``: social trends, competitor stockout notices, store and feed incidents
- ``all_campaign_data/all_campaign_data.csv``: paid campaigns and in-store promotions
- ``ground_truth/ground_truth.csv`` (beside the landing zone's inputs, never read by the pipeline): every
  injected anomaly per affected series with its start, end (exclusive) and type

Sales follow a daily curve (store hours 07:00-22:00, lunch and evening peaks), a weekly cycle and
gamma-Poisson (count-like, overdispersed) noise; everything is drawn from one seeded generator.

    python -m jobs.quality.generate_data --config conf/mrs.yaml [--seed N] [--days D] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.lib.config import Config, load_config

DETECTION_TYPE = {
    "social_viral": "Social/Viral Event",
    "competitor_stockout": "Competitor Stockout",
    "promo_with_campaign": "Marketing Misattribution",
    "store_incident": "Operational/Store Issue",
    "feed_duplication": "Data Error",
    "unit_glitch": "Data Error",
}
WEEKLY = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.35, 1.2])  # Monday first
REGION_NAMES = ["North", "South", "East", "West", "Central", "Coast", "Highlands", "Metro"]
GT_COLUMNS = ["anomaly_id", "anomaly_type", "detection_type", "series_key", "store_id", "sku", "start", "end"]


@dataclass
class World:
    stores: pd.DataFrame  # store_id, retailer_id, region
    skus: pd.DataFrame  # sku, category, price
    series: pd.DataFrame  # series_key, store_id, sku, ... (store-major order)
    tick_minutes: int
    start: datetime
    days: int
    ticks_per_day: int = field(init=False)

    def __post_init__(self):
        self.ticks_per_day = 1440 // self.tick_minutes

    @property
    def n_ticks(self) -> int:
        return self.days * self.ticks_per_day

    def tick_ts(self, i: int) -> datetime:
        return self.start + timedelta(minutes=self.tick_minutes * int(i))


def build_world(cfg: Config, days: int | None = None) -> World:
    g = cfg.generator
    rng = np.random.default_rng(g.seed)
    regions = [
        REGION_NAMES[i % len(REGION_NAMES)] + ("" if i < len(REGION_NAMES) else str(i)) for i in range(g.regions)
    ]
    stores = []
    for r in range(g.retailers):
        for s in range(g.stores_per_retailer):
            n = r * g.stores_per_retailer + s
            stores.append((f"STORE_{n + 1:03d}", f"RET_{r + 1:02d}", regions[n % g.regions]))
    stores = pd.DataFrame(stores, columns=["store_id", "retailer_id", "region"])
    stores["size"] = rng.lognormal(0.0, 0.35, len(stores))
    skus = pd.DataFrame(
        {
            "sku": [f"SKU_{i + 1:03d}" for i in range(g.skus)],
            "category": [f"CAT_{chr(65 + i % g.categories)}" for i in range(g.skus)],
            "price": np.round(rng.uniform(2.0, 20.0, g.skus), 2),
            "popularity": rng.lognormal(0.0, 0.5, g.skus),
        }
    )
    series = stores.merge(skus, how="cross")
    series["series_key"] = series["store_id"] + "|" + series["sku"]
    start = datetime.combine(g.start, datetime.min.time(), tzinfo=UTC)
    return World(stores, skus, series.reset_index(drop=True), cfg.pipeline.tick_minutes, start, days or g.days)


def expected_units(world: World) -> np.ndarray:
    """Mean units per series (rows) and tick (columns) before anomalies and noise."""
    tpd, tm = world.ticks_per_day, world.tick_minutes
    hours = (np.arange(tpd) + 0.5) * tm / 60.0
    curve = 0.6 + 0.5 * np.exp(-(((hours - 12.5) / 1.5) ** 2)) + 0.7 * np.exp(-(((hours - 18.0) / 2.0) ** 2))
    curve = np.where((hours >= 7.0) & (hours < 22.0), curve, 0.0)
    dows = np.array([(world.start + timedelta(days=d)).weekday() for d in range(world.days)])
    day_factor = WEEKLY[dows] * (1.0 + 0.05 * np.linspace(-1, 1, world.days))
    profile = (day_factor[:, None] * curve[None, :]).reshape(-1)  # (n_ticks,)
    level = 5.0 * world.series["size"].to_numpy() * world.series["popularity"].to_numpy() * (tm / 15.0)
    return level[:, None] * profile[None, :]


class _Injector:
    """Places anomalies on free stretches of the series and records the ground truth."""

    def __init__(self, world: World, rng: np.random.Generator, first_day: int):
        self.w, self.rng, self.first_day = world, rng, first_day
        self.busy = np.zeros((len(world.series), world.n_ticks), dtype=bool)
        self.truth: list[dict] = []
        self.context: list[dict] = []
        self.campaigns: list[dict] = []
        self.mult = np.ones((len(world.series), world.n_ticks))
        self.duplicate = np.zeros_like(self.busy)  # rows re-sent under another batch id
        self.unit_factor = np.ones_like(self.mult)  # units misreported, revenue unchanged

    def _hours(self, h: float) -> int:
        return max(1, round(h * 60 / self.w.tick_minutes))

    def _place(self, rows: np.ndarray, length: int, tries: int = 200) -> int | None:
        tpd = self.w.ticks_per_day
        margin = self._hours(6)
        for _ in range(tries):
            day = int(self.rng.integers(self.first_day, self.w.days))
            hour = float(self.rng.uniform(9.0, 16.0))
            s = day * tpd + int(hour * 60 / self.w.tick_minutes)
            e = s + length
            if e >= self.w.n_ticks:
                continue
            lo, hi = max(0, s - margin), min(self.w.n_ticks, e + margin)
            if not self.busy[np.ix_(rows, np.arange(lo, hi))].any():
                self.busy[np.ix_(rows, np.arange(s, e))] = True
                return s
        return None

    def _record(self, kind: str, rows: np.ndarray, s: int, e: int) -> str:
        aid = f"GT-{len({t['anomaly_id'] for t in self.truth}) + 1:03d}-{kind}"
        for r in rows:
            sr = self.w.series.iloc[r]
            self.truth.append(
                {
                    "anomaly_id": aid,
                    "anomaly_type": kind,
                    "detection_type": DETECTION_TYPE[kind],
                    "series_key": sr.series_key,
                    "store_id": sr.store_id,
                    "sku": sr.sku,
                    "start": self.w.tick_ts(s),
                    "end": self.w.tick_ts(e),
                }
            )
        return aid

    def _ctx(self, kind: str, s: int, e: int, **scope) -> None:
        self.context.append({"signal_type": kind, "start": self.w.tick_ts(s), "end": self.w.tick_ts(e), **scope})

    def social_viral(self) -> None:
        sr = self.w.series
        region = self.rng.choice(sorted(sr.region.unique()))
        sku = self.rng.choice(sorted(sr.sku.unique()))
        stores = sorted(sr[sr.region == region].store_id.unique())
        chosen = self.rng.choice(stores, size=min(len(stores), int(self.rng.integers(1, 4))), replace=False)
        rows = sr.index[(sr.sku == sku) & sr.store_id.isin(chosen)].to_numpy()
        peak, ramp, hold = (
            self.rng.uniform(3.0, 6.0),
            self._hours(0.5),
            self._hours(self.rng.uniform(0.75, 1.5)),
        )
        half_life = self._hours(0.75)
        decay = int(np.ceil(half_life * np.log2((peak - 1) / 0.15)))
        shape = np.concatenate(
            [
                1 + (peak - 1) * np.arange(1, ramp + 1) / ramp,
                np.full(hold, peak),
                1 + (peak - 1) * 0.5 ** (np.arange(1, decay + 1) / half_life),
            ]
        )
        s = self._place(rows, len(shape))
        if s is None:
            return
        self.mult[np.ix_(rows, np.arange(s, s + len(shape)))] *= shape
        self._record("social_viral", rows, s, s + len(shape))
        self._ctx(
            "social_trend",
            s,
            s + len(shape),
            region=region,
            sku=sku,
            source="TikTok",
            detail=f"#{sku.lower()} trending in {region}",
            intensity=round(float(peak), 2),
        )

    def competitor_stockout(self) -> None:
        sr = self.w.series
        region = self.rng.choice(sorted(sr.region.unique()))
        category = self.rng.choice(sorted(sr.category.unique()))
        rows = sr.index[(sr.region == region) & (sr.category == category)].to_numpy()
        length = self._hours(self.rng.uniform(4.0, 9.0))
        s = self._place(rows, length)
        if s is None:
            return
        self.mult[np.ix_(rows, np.arange(s, s + length))] *= self.rng.uniform(2.0, 2.6)
        self._record("competitor_stockout", rows, s, s + length)
        self._ctx(
            "competitor_stockout",
            s,
            s + length,
            region=region,
            category=category,
            source="market-intel",
            detail=f"competitor out of stock in {category} across {region}",
        )

    def promo_with_campaign(self) -> None:
        sr = self.w.series
        retailer = self.rng.choice(sorted(sr.retailer_id.unique()))
        sku = self.rng.choice(sorted(sr.sku.unique()))
        rows = sr.index[(sr.retailer_id == retailer) & (sr.sku == sku)].to_numpy()
        length = self._hours(self.rng.uniform(5.0, 9.0))
        s = self._place(rows, length)
        if s is None:
            return
        self.mult[np.ix_(rows, np.arange(s, s + length))] *= self.rng.uniform(2.2, 3.0)
        aid = self._record("promo_with_campaign", rows, s, s + length)
        day = self.w.ticks_per_day
        self.campaigns += [
            {
                "campaign_id": f"CMP-{aid}",
                "campaign_type": "paid_social",
                "channel": "Facebook",
                "retailer_id": retailer,
                "sku": sku,
                "category": None,
                "start": self.w.tick_ts(max(0, s - day)),
                "end": self.w.tick_ts(min(self.w.n_ticks, s + 2 * day)),
                "daily_spend": round(float(self.rng.uniform(500, 3000)), 2),
            },
            {
                "campaign_id": f"PROMO-{aid}",
                "campaign_type": "in_store_promo",
                "channel": "in_store",
                "retailer_id": retailer,
                "sku": sku,
                "category": None,
                "start": self.w.tick_ts(s),
                "end": self.w.tick_ts(s + length),
                "daily_spend": 0.0,
            },
        ]

    def store_incident(self) -> None:
        sr = self.w.series
        store = self.rng.choice(sorted(sr.store_id.unique()))
        rows = sr.index[sr.store_id == store].to_numpy()
        length = self._hours(self.rng.uniform(2.5, 6.0))
        s = self._place(rows, length)
        if s is None:
            return
        self.mult[np.ix_(rows, np.arange(s, s + length))] = 0.0
        self._record("store_incident", rows, s, s + length)
        if self.rng.random() < 0.7:
            self._ctx(
                "store_incident",
                s,
                s + length,
                store_id=store,
                source="store-ops",
                detail=self.rng.choice(["power outage", "till system down", "flooding", "closed by police"]),
            )

    def feed_duplication(self) -> None:
        sr = self.w.series
        store = self.rng.choice(sorted(sr.store_id.unique()))
        rows = sr.index[sr.store_id == store].to_numpy()
        length = self._hours(self.rng.uniform(2.5, 5.0))
        s = self._place(rows, length)
        if s is None:
            return
        self.duplicate[np.ix_(rows, np.arange(s, s + length))] = True
        self._record("feed_duplication", rows, s, s + length)
        if self.rng.random() < 0.5:
            self._ctx(
                "feed_incident",
                s,
                s + length,
                store_id=store,
                source="data-platform",
                detail="POS batch re-sent by the feed",
            )

    def unit_glitch(self) -> None:
        sr = self.w.series
        r = int(self.rng.integers(0, len(sr)))
        length = self._hours(self.rng.uniform(3.0, 7.0))
        s = self._place(np.array([r]), length)
        if s is None:
            return
        self.unit_factor[r, s : s + length] = 12.0  # cases of 12 reported as units
        self._record("unit_glitch", np.array([r]), s, s + length)


def generate(cfg: Config, out: Path, days: int | None = None) -> dict[str, int]:
    """Write a complete landing zone to ``out``; returns row counts by output."""
    g = cfg.generator
    rng = np.random.default_rng(g.seed)
    world = build_world(cfg, days)
    mu = expected_units(world)
    inj = _Injector(world, rng, g.first_anomaly_day)
    for kind, count in g.anomalies.model_dump().items():
        for _ in range(count):
            getattr(inj, kind)()
    k = 8.0  # gamma-Poisson shape: variance = mu + mu^2 / k
    rate = rng.gamma(k, np.maximum(mu * inj.mult, 1e-12) / k)
    units = rng.poisson(rate).astype(float) * inj.unit_factor

    for sub in ("unified_sales_data", "contextual_data", "all_campaign_data", "ground_truth"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)

    sr = world.series
    price = sr["price"].to_numpy()
    missing = {
        pd.Timestamp(h).tz_convert("UTC") if pd.Timestamp(h).tzinfo else pd.Timestamp(h, tz="UTC")
        for h in g.missing_input_hours
    }
    tpd = world.ticks_per_day
    rows_written = 0
    for d in range(world.days):
        day = world.start + timedelta(days=d)
        cols = np.arange(d * tpd, (d + 1) * tpd)
        ts = pd.DatetimeIndex([world.tick_ts(i) for i in cols])
        u = units[:, cols]
        true_units = u / inj.unit_factor[:, cols]
        frame = pd.DataFrame(
            {
                "timestamp": np.tile(ts.strftime("%Y-%m-%dT%H:%M:%SZ"), len(sr)),
                "batch_id": np.repeat((f"B{day:%Y%m%d}-" + sr.store_id).to_numpy(), tpd),
                "store_id": np.repeat(sr.store_id.to_numpy(), tpd),
                "retailer_id": np.repeat(sr.retailer_id.to_numpy(), tpd),
                "region": np.repeat(sr.region.to_numpy(), tpd),
                "sku": np.repeat(sr.sku.to_numpy(), tpd),
                "category": np.repeat(sr.category.to_numpy(), tpd),
                "units": u.reshape(-1),
                "revenue": np.round((true_units * price[:, None]).reshape(-1), 2),
            }
        )
        dup = frame[inj.duplicate[:, cols].reshape(-1)].copy()
        dup["batch_id"] = dup["batch_id"] + "-RESEND"
        frame = pd.concat([frame, dup], ignore_index=True)
        hour_start = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("h")
        frame = frame[~hour_start.isin(missing)]
        frame = pd.concat([frame, _bad_rows(frame, rng, g.bad_rows_per_file, day)], ignore_index=True)
        frame["units"] = frame["units"].map(_fmt_units)
        frame.to_csv(out / "unified_sales_data" / f"sales_{day:%Y-%m-%d}.csv", index=False)
        rows_written += len(frame)

    _write_context(world, inj, rng, out)
    truth = pd.DataFrame(inj.truth, columns=GT_COLUMNS)
    for c in ("start", "end"):
        truth[c] = pd.to_datetime(truth[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    truth.to_csv(out / "ground_truth" / "ground_truth.csv", index=False)
    return {"sales_rows": rows_written, "anomalies": truth["anomaly_id"].nunique(), "series": len(sr)}


def _fmt_units(v) -> str:
    if v is None or isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _bad_rows(frame: pd.DataFrame, rng: np.random.Generator, n: int, day: datetime) -> pd.DataFrame:
    """Rows a real feed sends: null keys, non-numeric or negative units, bad timestamps, re-sent rows."""
    if n == 0 or frame.empty:
        return frame.iloc[0:0]
    night = frame[frame["timestamp"].str.slice(11, 13) == "02"]  # closed hours: no anomaly is touched
    picks = night.iloc[rng.choice(len(night), size=n, replace=len(night) < n)].copy().reset_index(drop=True)
    picks["units"] = picks["units"].astype(object)
    kinds = ["null_store", "non_numeric", "negative", "bad_timestamp", "duplicate", "null_units"]
    for i in range(len(picks)):
        kind = kinds[i % len(kinds)]
        if kind == "null_store":
            picks.loc[i, "store_id"] = None
        elif kind == "non_numeric":
            picks.loc[i, "units"] = "n/a"
            picks.loc[i, "batch_id"] += "-X"
        elif kind == "negative":
            picks.loc[i, "units"] = -float(rng.integers(1, 5))
            picks.loc[i, "batch_id"] += "-X"
        elif kind == "bad_timestamp":
            picks.loc[i, "timestamp"] = f"{day:%d/%m/%Y} 2am"
        elif kind == "null_units":
            picks.loc[i, "units"] = None
            picks.loc[i, "batch_id"] += "-X"
        # "duplicate": the row is re-sent unchanged
    return picks


def _write_context(world: World, inj: _Injector, rng: np.random.Generator, out: Path) -> None:
    sr = world.series
    # Signals and campaigns with no effect on sales, as a real feed has plenty of.
    for _ in range(3):
        s = int(rng.integers(0, world.n_ticks - 8))
        inj._ctx(
            "social_trend",
            s,
            s + 8,
            region=str(rng.choice(sorted(sr.region.unique()))),
            sku=str(rng.choice(sorted(sr.sku.unique()))),
            source="TikTok",
            detail="minor mention",
            intensity=round(float(rng.uniform(0.1, 0.5)), 2),
        )
    for i, retailer in enumerate(sorted(sr.retailer_id.unique())):
        inj.campaigns.append(
            {
                "campaign_id": f"CMP-ALWAYS-ON-{i + 1}",
                "campaign_type": "paid_search",
                "channel": "Google",
                "retailer_id": retailer,
                "sku": None,
                "category": str(rng.choice(sorted(sr.category.unique()))),
                "start": world.tick_ts(0),
                "end": world.tick_ts(world.n_ticks),
                "daily_spend": round(float(rng.uniform(200, 800)), 2),
            }
        )
    ctx_cols = [
        "signal_type",
        "start",
        "end",
        "store_id",
        "region",
        "category",
        "sku",
        "source",
        "detail",
        "intensity",
    ]
    cmp_cols = [
        "campaign_id",
        "campaign_type",
        "channel",
        "retailer_id",
        "category",
        "sku",
        "start",
        "end",
        "daily_spend",
    ]
    for name, rows, cols in (
        ("contextual_data", inj.context, ctx_cols),
        ("all_campaign_data", inj.campaigns, cmp_cols),
    ):
        df = pd.DataFrame(rows).reindex(columns=cols)
        for c in ("start", "end"):
            df[c] = pd.to_datetime(df[c], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        df.sort_values(["start", *cols[:2]]).to_csv(out / name / f"{name}.csv", index=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--seed", type=int, help="override generator.seed")
    p.add_argument("--days", type=int, help="override generator.days")
    p.add_argument("--out", type=Path, help="landing folder (default: paths.landing)")
    a = p.parse_args(argv)
    overrides = {"generator.seed": a.seed} if a.seed is not None else {}
    cfg = load_config(a.config, overrides)
    out = a.out or cfg.paths.landing
    counts = generate(cfg, out, a.days)
    print(
        f"generated {counts['sales_rows']:,} sales rows for {counts['series']} series, "
        f"{counts['anomalies']} injected anomalies -> {out}"
    )


if __name__ == "__main__":
    main()
