"""Detection robustness over families of series a retailer meets, and over the real NAB series.

Each family is a set of generated series (seeded) with labelled anomalies:

- ``poisson_low``: a few units a day (Poisson); spikes and drops;
- ``intermittent``: sales in a tenth of the open ticks, in lumps; bursts of buying;
- ``heavy_tailed``: bursty volume (log-normal level noise and short unlabelled bursts) around larger spikes;
- ``level_shift``: a slow drift (unlabelled), then a lasting shift of the level (labelled at its first day);
- ``irregular``: readings off the tick mark, 8% of them lost and 5% late into the next tick;
- ``short_history``: series that start three to six days before their anomaly;
- ``weekly``: a strong weekly cycle (weekends busy, Mondays quiet);
- ``holiday``: one-day surges of the whole day's sales.

Every series is detected by the stage's own per-series model (``detect_anomalies.detect_series``, the code its
Spark UDF runs) over its whole range in one call, with the shipped ``detection.*`` settings; readings go to ticks as
ingest puts them there (floored to the tick and summed). Per family: recall over labelled anomalies, false reports
per 100 series-days, the median delay from the onset to the first report and the onset error (``window_start``
against the labelled onset) in ticks, the longest unscored stretch, and the NAB-style score: each series scored as a
NAB file (a window of 10% of its ticks around each labelled onset, the standard profile), pooled over the family,
and over all families and the real series together with the one shipped threshold.

    python -m jobs.quality.evaluate_families [--config conf/mrs.yaml] [--seeds 11 12 13] [--json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.lib.config import Config, load_config
from jobs.quality import evaluate_nab
from jobs.stages import detect_anomalies as det

FAMILIES = (
    "poisson_low",
    "intermittent",
    "heavy_tailed",
    "level_shift",
    "irregular",
    "short_history",
    "weekly",
    "holiday",
)
DEFAULT_SEEDS = (11, 12, 13)
SERIES_PER_FAMILY = 16
DAYS = 21
TICK_MINUTES = 15
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MIN_EXCESS = 6.0  # a labelled spike or drop moves the window's sales by at least this many noise deviations
NAB_FILES = ("Twitter_volume_AAPL.csv", "nyc_taxi.csv")


@dataclass
class Labelled:
    """One series: its raw readings (``timestamp``, ``units``) and its labelled anomalies as [start, end) ticks."""

    key: str
    family: str
    readings: pd.DataFrame
    anomalies: list[tuple[pd.Timestamp, pd.Timestamp]]
    tick_minutes: int = TICK_MINUTES
    nab_windows: list[tuple[pd.Timestamp, pd.Timestamp]] | None = None  # real series: NAB's own labels


# -- generation (pure, seeded) --------------------------------------------------------------------------
def _daily_curve(tpd: int, rng: np.random.Generator) -> np.ndarray:
    """A store's day: closed at night, open 07:00-22:00 (+-1 h) with a lunch and an evening peak."""
    hours = (np.arange(tpd) + 0.5) * 24.0 / tpd
    opens, closes = 7.0 + rng.uniform(-1, 1), 22.0 + rng.uniform(-1, 1)
    lunch, evening = rng.uniform(11.5, 13.5), rng.uniform(17.0, 19.0)
    curve = 0.6 + 0.6 * np.exp(-(((hours - lunch) / 1.5) ** 2)) + 0.8 * np.exp(-(((hours - evening) / 2.0) ** 2))
    return np.where((hours >= opens) & (hours < closes), curve, 0.0)


def _place(rng: np.random.Generator, tpd: int, first_day: int, last_day: int, length: int) -> int:
    """A start tick inside opening hours (09:00-16:00) on a day in [first_day, last_day)."""
    day = int(rng.integers(first_day, last_day))
    return day * tpd + int(rng.uniform(9.0, 16.0) * tpd / 24.0)


def _series(family: str, i: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Expected units per tick for one series of ``family`` (anomalies applied; NaN before it starts) and the
    labelled [start, end) ticks."""
    tpd, days = 1440 // TICK_MINUTES, DAYS
    n = days * tpd
    curve = np.tile(_daily_curve(tpd, rng), days)
    weekly = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.35, 1.2])
    dow = np.array([(START + timedelta(days=d)).weekday() for d in range(days)])
    level = float(np.exp(rng.normal(np.log(4.0), 0.5)))  # units per open tick at the curve's mean
    first_day, lo_day = 0, 8
    if family == "poisson_low":
        level = float(rng.uniform(0.3, 0.8))
    elif family == "intermittent":
        level = float(rng.uniform(0.06, 0.15))  # chance of a sale event per open tick (lumps come later)
    elif family == "weekly":
        weekly = np.array([0.5, 0.8, 0.9, 1.0, 1.3, 2.6, 2.2])
    elif family == "short_history":
        first_day = int(rng.integers(0, days - 7))
        lo_day = first_day + 3
    mu = level * curve * np.repeat(weekly[dow], tpd)
    if family == "heavy_tailed":
        # Bursty volume: the level wanders (AR(1) in logs) and short bursts come a few times a week.
        eps = rng.normal(0.0, 0.15, n)
        ar = np.zeros(n)
        for t in range(1, n):
            ar[t] = 0.9 * ar[t - 1] + eps[t]
        mu = mu * np.exp(ar - 0.5 * 0.15**2 / (1 - 0.81))
        for s in rng.integers(0, n - 2, size=3 * days // 7 * 3):
            mu[s : s + int(rng.integers(1, 3))] *= rng.uniform(1.5, 2.5)
    if family == "level_shift":
        mu = mu * np.linspace(1.0, rng.uniform(0.75, 1.3), n)  # a slow drift: not an anomaly
    mu[: first_day * tpd] = np.nan

    truth: list[tuple[int, int]] = []
    kind = "drop" if i % 3 == 2 and family not in ("intermittent", "holiday") else "spike"
    if family == "holiday":
        day = int(rng.integers(lo_day, days - 1))
        s, e = day * tpd, (day + 1) * tpd
        mu[s:e] *= rng.uniform(2.0, 3.0)
        opened = np.flatnonzero(curve[s:e] > 0)
        truth.append((s + int(opened[0]), s + int(opened[-1]) + 1))
    elif family == "level_shift":
        s = _place(rng, tpd, lo_day, days - 3, 0)
        mu[s:] *= rng.uniform(0.35, 0.5) if kind == "drop" else rng.uniform(1.8, 2.5)
        truth.append((s, s + tpd))  # the shift is news for a day; after that it is the new level
    else:
        length = int(rng.integers(8, 25)) if kind == "drop" else int(rng.integers(4, 17))
        s = _place(rng, tpd, lo_day, days - 1, length)
        e = min(s + length, n)
        if kind == "drop":
            # A drop must lose enough sales to be news: it lasts until MIN_EXCESS noise deviations are lost.
            while e < min(s + 48, n) and np.nansum(mu[s:e]) < MIN_EXCESS**2 / 2:
                e += 1
            mu[s:e] = 0.0
        else:
            m = rng.uniform(3.0, 5.0) if family in ("poisson_low", "intermittent") else rng.uniform(2.0, 3.5)
            mu[s:e] *= max(m, _detectable(family, mu[s:e]))
            if family == "intermittent":
                mu[s:e] = np.minimum(mu[s:e], 0.9)  # a chance of a sale per tick
        truth.append((s, e))
    return mu, truth


def _detectable(family: str, mu: np.ndarray) -> float:
    """The multiplier at which a spike over ``mu`` adds MIN_EXCESS standard deviations of the family's own noise
    (a labelled anomaly must be one a detector could find at a false-alarm budget of a report in 200 series-days)."""
    base = float(np.nansum(mu))
    if base <= 0:
        return 1.0
    if family == "intermittent":  # lumps of 3 units on average (variance of a lump's size 6: E[X^2] = 15)
        return 1.0 + MIN_EXCESS * np.sqrt(15.0 * base) / (3.0 * base)
    k = 2.0 if family == "heavy_tailed" else 5.0
    sd = np.sqrt(base + float(np.nansum(mu**2)) / k)
    return 1.0 + MIN_EXCESS * sd / base


def _draw(family: str, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Units sold per tick given the expected ``mu`` (NaN before the series starts)."""
    m = np.nan_to_num(mu)
    if family == "intermittent":
        events = rng.random(len(m)) < np.minimum(m, 1.0)
        units = np.where(events, rng.geometric(1.0 / 3.0, len(m)), 0).astype(float)
    elif family == "poisson_low":
        units = rng.poisson(m).astype(float)
    else:  # gamma-Poisson: overdispersed counts
        k = 5.0 if family != "heavy_tailed" else 2.0
        units = rng.poisson(rng.gamma(k, np.maximum(m, 1e-12) / k)).astype(float)
    return np.where(np.isnan(mu), np.nan, units)


def family_series(family: str, seed: int, n_series: int = SERIES_PER_FAMILY) -> list[Labelled]:
    """The labelled series of one family for one seed (the same seed and family: the same series)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    tick = pd.Timedelta(minutes=TICK_MINUTES)
    grid = pd.date_range(START.replace(tzinfo=None), periods=DAYS * 1440 // TICK_MINUTES, freq=tick)
    out = []
    for i in range(n_series):
        mu, truth = _series(family, i, rng)
        units = _draw(family, mu, rng)
        keep = ~np.isnan(units)
        ts = grid[keep]
        u = units[keep]
        if family == "irregular":
            # A few readings a day late into the next tick, a few lost, and the rest off the tick mark.
            offset = rng.uniform(0, 0.9, len(ts))
            late = rng.random(len(ts)) < 0.05
            lost = rng.random(len(ts)) < 0.08
            ts = ts + pd.to_timedelta((offset + late) * TICK_MINUTES, unit="min")
            ts, u = ts[~lost], u[~lost]
        frame = pd.DataFrame({"timestamp": ts, "units": u})
        anomalies = [(grid[s], grid[e - 1] + tick) for s, e in truth]
        out.append(Labelled(f"{family}-{seed}-{i:02d}", family, frame, anomalies))
    return out


def real_series(nab_dir: Path) -> list[Labelled]:
    """The NAB files of ``NAB_FILES`` found in ``nab_dir``, with NAB's own labelled windows."""
    labels = evaluate_nab.load_windows(nab_dir)
    out = []
    for name in NAB_FILES:
        frame = evaluate_nab.load_series(nab_dir / name).rename(columns={"value": "units"})
        minutes = evaluate_nab.tick_minutes_of(frame["timestamp"])
        out.append(Labelled(Path(name).stem, "real", frame, [], minutes, labels[name]))
    return out


# -- detection through the stage's model ----------------------------------------------------------------
def to_ticks(readings: pd.DataFrame, tick_minutes: int) -> pd.DataFrame:
    """Readings -> units per tick, as ingest makes them (each reading floored to its tick, a tick's summed)."""
    ts = readings["timestamp"].dt.floor(f"{tick_minutes}min")
    return readings.groupby(ts)["units"].sum().rename_axis("ts").reset_index()


def detect(series: list[Labelled], cfg: Config, overrides: dict | None = None) -> dict[str, pd.DataFrame]:
    """Detection rows per series key, each series' whole range in one call of ``detect_series`` (series of one
    tick length together: the model is vectorised over series, and each series' rows are those it gets alone)."""
    out: dict[str, pd.DataFrame] = {}
    for minutes in sorted({s.tick_minutes for s in series}):
        group = [s for s in series if s.tick_minutes == minutes]
        frames = []
        for s in group:
            f = to_ticks(s.readings, minutes)
            frames.append(f.assign(series_key=s.key, store_id="BENCH", sku=s.key, retailer_id="R", region="X"))
        pdf = pd.concat(frames, ignore_index=True).assign(category="bench")
        step = pd.Timedelta(minutes=minutes)
        first = pdf["ts"].min().floor("D")
        end = pdf["ts"].max() + step
        p = det.Params.from_config(
            cfg, first.to_pydatetime().replace(tzinfo=UTC), end.to_pydatetime().replace(tzinfo=UTC)
        )
        p = replace(p, tick_seconds=minutes * 60, **(overrides or {}))
        rows = det.detect_series(pdf[[*det.SERIES_COLS, "ts", "units"]], pd.DataFrame(columns=det.OPEN_COLS), p)
        for key, g in rows.groupby("series_key", sort=False):
            out[key] = g.reset_index(drop=True)
    return out


# -- scoring --------------------------------------------------------------------------------------------
def reports_of(rows: pd.DataFrame, tick: pd.Timedelta) -> pd.DataFrame:
    """One row per report: first detection tick, window_start (the onset it estimates) and window_end."""
    r = rows[rows["report_status"] != "none"]
    if r.empty:
        return pd.DataFrame(columns=["report_id", "detected", "window_start", "window_end"])
    g = r.groupby("report_id")
    out = pd.DataFrame(
        {
            "detected": g["ts"].min(),
            "window_start": g["window_start"].min(),
            "window_end": g["ts"].max() + tick,
        }
    )
    return out.reset_index().sort_values("detected", ignore_index=True)


def nab_windows(ticks: pd.DatetimeIndex, onsets: list[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """NAB's labelling convention: windows of 10% of the series' length in total, each centred on an onset."""
    if not onsets:
        return []
    half = max(1, int(0.1 * len(ticks) / len(onsets)) // 2)
    out = []
    for onset in onsets:
        i = int(ticks.searchsorted(onset))
        out.append((ticks[max(0, i - half)], ticks[min(len(ticks) - 1, i + half)]))
    return out


def score_series(s: Labelled, rows: pd.DataFrame) -> dict:
    tick = pd.Timedelta(minutes=s.tick_minutes)
    reps = reports_of(rows, tick)
    ticks = pd.DatetimeIndex(rows["ts"])
    scored = rows["anomaly_score"].notna().to_numpy()
    # The longest stretch of readings without a score (a tick without a reading has nothing to score).
    has_data = rows["actual_units"].notna().to_numpy()
    read_ts, blind = ticks[has_data], ~scored[has_data]
    edges = np.diff(np.concatenate([[0], blind.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    spans = [(read_ts[b] - read_ts[a]) / tick + 1 for a, b in zip(starts, stops, strict=True)]
    longest = int(max(spans, default=0))
    found, delays, onset_err, matched = 0, [], [], np.zeros(len(reps), dtype=bool)
    for a0, a1 in s.anomalies:
        hit = (reps["window_start"] < a1) & (reps["window_end"] > a0)
        matched |= hit.to_numpy()
        if hit.any():
            found += 1
            first = reps[hit].iloc[0]
            delays.append(max(0.0, (first["detected"] - a0) / tick))
            onset_err.append(abs((first["window_start"] - a0) / tick))
    first_day = ticks[np.flatnonzero(has_data)[0]].floor("D") if has_data.any() else ticks[0]
    series_days = (ticks[-1] + tick - first_day) / pd.Timedelta(days=1)
    windows = s.nab_windows if s.nab_windows is not None else nab_windows(ticks, [a for a, _ in s.anomalies])
    if s.nab_windows is not None:  # a real file: detections at the file's rows, as evaluate_nab places them
        mask = evaluate_nab.detection_mask(s.readings["timestamp"], reps["detected"], s.tick_minutes)
        nab = evaluate_nab.nab_score(s.readings["timestamp"], mask, windows)
    else:
        nab = evaluate_nab.nab_score(ticks, ticks.isin(pd.DatetimeIndex(reps["detected"])), windows)
    return {
        "key": s.key,
        "family": s.family,
        "anomalies": len(s.anomalies),
        "found": found,
        "reports": len(reps),
        "false": int((~matched).sum()) if s.anomalies else None,
        "series_days": series_days,
        "delays": delays,
        "onset_errors": onset_err,
        "longest_unscored_ticks": longest,
        "unscored_days": longest * s.tick_minutes / 1440,
        "nab": {k: nab[k] for k in ("raw", "null", "perfect", "normalised", "tp", "fp", "fn", "windows")},
    }


def summarise(name: str, results: list[dict]) -> dict:
    labelled = [r for r in results if r["anomalies"]]
    n_anom = sum(r["anomalies"] for r in labelled)
    delays = [d for r in results for d in r["delays"]]
    onset = [d for r in results for d in r["onset_errors"]]
    days = sum(r["series_days"] for r in labelled)
    return {
        "family": name,
        "series": len(results),
        "anomalies": n_anom,
        "recall": sum(r["found"] for r in labelled) / n_anom if n_anom else None,
        "reports": sum(r["reports"] for r in results),
        "false_per_100": 100.0 * sum(r["false"] for r in labelled) / days if days else None,
        "delay_p50": float(np.median(delays)) if delays else None,
        "onset_within_1": float(np.mean(np.asarray(onset) <= 1.0)) if onset else None,
        "onset_p50": float(np.median(onset)) if onset else None,
        "max_unscored_days": max(r["unscored_days"] for r in results),
        "nab": evaluate_nab.pooled([r["nab"] for r in results]),
    }


def run(
    cfg: Config,
    seeds=DEFAULT_SEEDS,
    nab_dir: Path | None = evaluate_nab.DEFAULT_NAB_DIR,
    overrides: dict | None = None,
    n_series: int = SERIES_PER_FAMILY,
) -> dict:
    """Per-series results and the family table (one row per family, the real series, and the pool)."""
    series = [s for f in FAMILIES for seed in seeds for s in family_series(f, seed, n_series)]
    if nab_dir is not None and nab_dir.is_dir():
        series += real_series(nab_dir)
    rows = detect(series, cfg, overrides)
    results = [score_series(s, rows[s.key]) for s in series]
    groups = {f: [r for r in results if r["family"] == f] for f in [*FAMILIES, "real"]}
    table = [summarise(f, group) for f, group in groups.items() if group]
    table.append(summarise("pooled", results))
    real = [r for r in results if r["family"] == "real"]
    return {"seeds": list(seeds), "table": table, "real": real, "series": results}


def report(result: dict) -> str:
    head = (
        f"{'family':<15}{'series':>7}{'recall':>8}{'false/100d':>11}{'delay p50':>10}{'onset<=1':>9}"
        f"{'unscored d':>11}{'NAB':>7}"
    )
    lines = [head]
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    for t in result["table"]:
        lines.append(
            f"{t['family']:<15}{t['series']:>7}{fmt(t['recall'], '.1%'):>8}{fmt(t['false_per_100'], '.2f'):>11}"
            f"{fmt(t['delay_p50'], '.1f'):>10}{fmt(t['onset_within_1'], '.0%'):>9}"
            f"{t['max_unscored_days']:>11.2f}{fmt(t['nab'], '.1f'):>7}"
        )
    for r in result["real"]:
        lines.append(f"  {r['key']}: NAB {fmt(r['nab']['normalised'], '.1f')}, {r['reports']} reports")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    result = run(load_config(a.config), a.seeds)
    print(json.dumps(result, indent=1, default=str) if a.json else report(result))


if __name__ == "__main__":
    main()
