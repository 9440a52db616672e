"""Detection stage: baseline model, anomaly classifier and minority reports (MRDL).

For every series, over the run's data interval [start, end):

1. **Baseline** (``baseline_sales_model_prediction_log``). Expected units for each tick from the series' own
   trailing ``lookback_days`` of history, strictly before the tick's day: the median over those days of the
   same time-of-day slot and its two neighbours, times a day-of-week factor (the median ratio of same-weekday
   totals to the profile's total). Medians keep the anomalies it must find out of the baseline.
2. **Classifier** (``anomaly_classifier_model_prediction_log``). For each residual window of ``windows`` ticks
   ending at the tick, z = (actual - baseline) / sqrt(dispersion * baseline + (rel_error * baseline)^2 + 1);
   s = the largest |z| / threshold (a long window counts only while the current tick deviates the same way);
   ``anomaly_score`` = s^2 / (1 + s^2) in [0, 1]. Decision with hysteresis: a report opens when the score
   reaches ``score_on`` and closes after ``off_ticks`` ticks in a row below ``score_off``.
3. **Reports** (``minority_reports_detected_log``). One snapshot per active report per tick, and a closing
   snapshot with ``window_end`` at the tick the report ends. ``report_id`` follows spec decision 2.

Causal and replayable: a tick's rows use only data at or before the tick; the state carried between runs is
the previous tick's open reports, read back from the MRDL, so one run over a range writes exactly the rows
that tick-by-tick runs write.

    spark-submit jobs/stages/detect_anomalies.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import fmt_ts, naive_utc

SERIES_COLS = ["series_key", "store_id", "sku", "retailer_id", "region", "category"]
OPEN_COLS = [
    "series_key",
    "report_id",
    "first_detected_from",
    "attributed_sales_total",
    "baseline_sales_total",
    "peak_anomaly_score",
    "ticks_active",
]
OUTPUT_SCHEMA = (
    "series_key string, store_id string, sku string, retailer_id string, region string, category string, "
    "ts timestamp, actual_units double, baseline_units double, history_days int, z_score double, "
    "z_window int, anomaly_score double, direction string, is_anomalous boolean, report_id string, "
    "report_status string, is_degraded boolean, first_detected_from timestamp, window_end timestamp, "
    "report_direction string, severity double, peak_anomaly_score double, attributed_sales_total double, "
    "baseline_sales_total double, ticks_active int"
)

# The tables this job appends to: each table has exactly one writer task in the DAG.
WRITES = (
    "baseline_profile_log",
    "baseline_sales_model_prediction_log",
    "anomaly_classifier_model_prediction_log",
    "minority_reports_detected_log",
)


@dataclass(frozen=True)
class Params:
    start: datetime
    end: datetime
    tick_seconds: int
    lookback_days: int
    min_history_days: int
    min_day_coverage: float
    trim: float
    weekly_min_days: int
    floor_rate: float
    baseline_rel_error: float
    windows: tuple[int, ...]
    thresholds: tuple[float, ...]
    score_on: float
    score_off: float
    off_ticks: int
    severity_scale: float
    series_batches: int

    @classmethod
    def from_config(cls, cfg: Config, start: datetime, end: datetime) -> Params:
        d = cfg.detection.model_dump(exclude={"model_version"})
        return cls(
            start=start,
            end=end,
            tick_seconds=cfg.tick_seconds,
            **{**d, "windows": tuple(d["windows"]), "thresholds": tuple(d["thresholds"])},
        )

    @property
    def context_ticks(self) -> int:
        """Ticks before ``start`` whose scores a run needs: the longest window and the closing streak."""
        return max(self.windows) - 1 + self.off_ticks

    @property
    def context_start(self) -> datetime:
        """The first tick whose sales a run reads, given the days' baselines (``context_ticks`` before ``start``)."""
        return self.start - timedelta(seconds=self.tick_seconds * self.context_ticks)

    @property
    def first_day(self) -> datetime:
        """Midnight of ``context_start``: the first day whose baseline a run needs."""
        first = self.context_start
        return datetime.combine(first.date(), datetime.min.time(), tzinfo=first.tzinfo)

    @property
    def days(self) -> list[date]:
        """The days whose baselines a run needs: from ``first_day`` to the day of its last tick."""
        last = (self.end - timedelta(seconds=self.tick_seconds)).date()
        return [self.first_day.date() + timedelta(days=i) for i in range((last - self.first_day.date()).days + 1)]

    @property
    def history_start(self) -> datetime:
        return self.first_day - timedelta(days=self.lookback_days)


def report_id(series_key: str, first_detected_from) -> str:
    """Spec decision 2: MR- + sha256(series_key | first_detected_from as YYYY-MM-DDTHH:MM:SSZ)."""
    return "MR-" + hashlib.sha256(f"{series_key}|{fmt_ts(pd.Timestamp(first_detected_from))}".encode()).hexdigest()


# -- the per-series model (numpy) -----------------------------------------------------------------------
def _trimmed_mean(m: np.ndarray, trim: float) -> np.ndarray:
    """Mean along the last axis of the values left after dropping ``trim`` of each end (NaNs ignored)."""
    srt = np.sort(m, axis=-1)  # NaNs sort last
    n = np.sum(~np.isnan(m), axis=-1)
    k = np.floor(trim * n).astype(int)
    out = np.full(n.shape, np.nan)
    # Rows that keep the same span are averaged together: the same sums, in the same order, as one by one.
    for kk, nn in {(int(a), int(b)) for a, b in zip(k.ravel(), n.ravel(), strict=True) if b}:
        rows = (k == kk) & (n == nn)
        out[rows] = srt[rows][:, kk : nn - kk].mean(axis=1)
    return out


def _profile(hist: np.ndarray, used: np.ndarray, trim: float) -> np.ndarray:
    """Expected units per time-of-day slot (series x slots): a trimmed mean, per series, over its history days
    (``hist``: series x days x slots) that ``used`` (series x days) marks."""
    hist = np.where(used[:, :, None], hist, np.nan)
    n_series, _, slots = hist.shape
    if slots >= 3:  # pool each slot with its neighbours: steadier for low counts
        pad = np.full((*hist.shape[:2], 1), np.nan)
        left, right = np.concatenate([pad, hist[:, :, :-1]], axis=2), np.concatenate([hist[:, :, 1:], pad], axis=2)
        # ... but not across opening or closing time (a closed neighbour drags an open slot down). A slot
        # is open when it sold something on at least a fifth of the history days, or when both its
        # neighbours are (a lone quiet slot in the middle of the day is chance, not closing time).
        days = np.maximum(used.sum(axis=1), 1)[:, None]
        sold = np.sum(hist > 0, axis=1) / days >= 0.2
        no = np.zeros((n_series, 1), dtype=bool)
        is_open = sold | (np.concatenate([no, sold[:, :-1]], axis=1) & np.concatenate([sold[:, 1:], no], axis=1))
        edge_l = np.concatenate([~no, is_open[:, :-1] != is_open[:, 1:]], axis=1)
        edge_r = np.concatenate([is_open[:, 1:] != is_open[:, :-1], ~no], axis=1)
        left = np.where(edge_l[:, None, :], np.nan, left)
        right = np.where(edge_r[:, None, :], np.nan, right)
        samples = np.stack([left, hist, right], axis=3).transpose(0, 2, 1, 3).reshape(n_series, slots, -1)
    else:
        samples = hist.transpose(0, 2, 1)
    return np.nan_to_num(_trimmed_mean(samples, trim))


def baseline_matrix(
    y: np.ndarray, day0: pd.Timestamp, first_day: int, p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline for days ``first_day..`` of ``y`` (series x days x slots; NaN = no data), each day's count of
    history days, and each day's overdispersion (variance = mean + overdispersion * mean^2, fitted on the
    history). Vectorised over series; each series' values are those it gets alone."""
    n_series, n_days, slots = y.shape
    covered = np.mean(~np.isnan(y), axis=2) >= p.min_day_coverage
    dow = np.array([(day0 + pd.Timedelta(days=int(d))).dayofweek for d in range(n_days)])
    out_days = n_days - first_day
    base = np.full((n_series, out_days, slots), np.nan)
    kappa = np.full((n_series, out_days), np.nan)
    hist_days = np.zeros((n_series, out_days), dtype=np.int32)
    for i, d in enumerate(range(first_day, n_days)):
        lo = max(0, d - p.lookback_days)
        hist, ok, hdow = y[:, lo:d], covered[:, lo:d], dow[lo:d]
        hist_days[:, i] = ok.sum(axis=1)
        fit = hist_days[:, i] >= p.min_history_days
        if not fit.any():
            continue
        hist, ok = hist[fit], ok[fit]
        profile = _profile(hist, ok, p.trim)
        # A day's level relative to the profile (``ratio``), each slot capped so that a few anomalous hours
        # cannot carry into next week's baseline (a plain ratio of daily totals would).
        expected = profile.sum(axis=1)
        capped = np.minimum(hist, 2.0 * profile[:, None, :] + 2.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(expected[:, None] > 0, np.nansum(capped, axis=2) / expected[:, None], 1.0)
        # With enough weeks of history, a weekday gets a profile of its own: weekend nights are not weekday
        # nights scaled up. Otherwise the shared profile times the weekday's median ratio.
        m = len(hist)
        target = dow[d]
        chosen = profile.copy()
        fitted = np.zeros_like(hist)
        for w in np.unique(hdow):
            days_w = ok & (hdow == w)[None, :]
            count = days_w.sum(axis=1)
            factor = np.full(m, np.nan)
            for c in np.unique(count[count > 0]):
                rows = count == c
                r = ratio[rows][days_w[rows]].reshape(-1, c)
                factor[rows] = np.median(r, axis=1)
            own = count >= p.weekly_min_days
            prof_w = profile * factor[:, None]
            if own.any():
                prof_w[own] = _profile(hist[own], days_w[own], p.trim)
            fitted[:, hdow == w] = prof_w[:, None, :]
            if w == target:
                chosen = np.where((count > 0)[:, None], prof_w, chosen)
        base[fit, i] = chosen
        # Overdispersion from the history's own residuals, its largest 2% left out (past anomalies).
        kap = np.zeros(m)
        busy = (fitted > 0.5) & ok[:, :, None]
        excess = (hist - fitted) ** 2 - fitted
        for s in np.flatnonzero(busy.sum(axis=(1, 2)) >= 10):
            e, f = excess[s][busy[s]], fitted[s][busy[s]]
            keep = e <= np.quantile(e, 0.98)
            with np.errstate(invalid="ignore", divide="ignore"):
                kap[s] = float(np.clip(e[keep].sum() / (f[keep] ** 2).sum(), 0.0, 2.0))
        kappa[fit, i] = kap
    return base, hist_days, kappa


def _window_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Trailing sums over w ticks (the last axis), each summed element by element so results do not depend on
    offsets."""
    out = np.full(a.shape, np.nan)
    if a.shape[-1] >= w:
        view = np.lib.stride_tricks.sliding_window_view(a, w, axis=-1)
        acc = view[..., 0].copy()
        for k in range(1, w):
            acc = acc + view[..., k]
        out[..., w - 1 :] = acc
    return out


def tail_z(actual: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Signed z of a count under a negative binomial with this mean and variance (its tail, not a normal's:
    a run of zeros where 40 units were expected is far less likely than a Gaussian says)."""
    # Imported where it runs, in the Python workers: scipy.stats costs every client that imports this module
    # ~1.5 s, and an Airflow task is one such client.
    from scipy import stats

    var = np.maximum(var, mean * 1.0001)
    r = mean**2 / (var - mean)
    prob = r / (r + mean)
    up = stats.nbinom.sf(np.ceil(actual) - 1, r, prob)  # P(S >= actual)
    down = stats.nbinom.cdf(np.floor(actual), r, prob)  # P(S <= actual)
    tiny = 1e-300
    z_up = stats.norm.isf(np.clip(up, tiny, 0.5))
    z_down = -stats.norm.isf(np.clip(down, tiny, 0.5))
    return np.where(actual >= mean, z_up, z_down)


def scores(y: np.ndarray, b: np.ndarray, kappa: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tick (the last axis): signed z of the deciding window, that window's length, and the anomaly score."""
    valid = ~np.isnan(y)
    yv = np.where(valid, y, 0.0)
    bv = np.where(valid, b, 0.0) + p.floor_rate  # a small floor: one sale at night is not a miracle
    tick_var = bv + np.nan_to_num(kappa) * bv**2
    z1 = tail_z(yv, bv, tick_var + (p.baseline_rel_error * bv) ** 2)
    best_s = np.full(y.shape, np.nan)
    best_z = np.full(y.shape, np.nan)
    best_w = np.zeros(y.shape, dtype=np.int32)
    b_missing = (np.isnan(b) & valid).astype(float)
    for w, thr in zip(p.windows, p.thresholds, strict=True):
        ys, bs, vs = _window_sum(yv, w), _window_sum(bv, w), _window_sum(tick_var, w)
        bad = np.isnan(ys) | (_window_sum(b_missing, w) > 0)
        z = np.full(y.shape, np.nan)
        z[~bad] = tail_z(ys[~bad], bs[~bad], vs[~bad] + (p.baseline_rel_error * bs[~bad]) ** 2)
        s = np.abs(z) / thr
        if w > 1:  # a long window speaks only while the current tick still deviates its way
            s = np.where(np.sign(z) * z1 > 0.5, s, 0.0)
        s = np.where(bad | ~valid, np.nan, s)
        better = ~np.isnan(s) & (np.isnan(best_s) | (s > best_s))
        best_s = np.where(better, s, best_s)
        best_z = np.where(better, z, best_z)
        best_w = np.where(better, w, best_w)
    score = best_s**2 / (1.0 + best_s**2)
    return best_z, best_w, score


def _grid(pdf: pd.DataFrame, rows: pd.Index, day0: pd.Timestamp, n_days: int, tick: pd.Timedelta) -> np.ndarray:
    """Units per tick from ``day0`` on of the series ``rows`` names, series x ``n_days`` x slots (NaN: no row)."""
    slots = int(pd.Timedelta(days=1) // tick)
    grid = np.full((len(rows), n_days * slots), np.nan)
    si = rows.get_indexer(pdf["series_key"])
    ti = ((pd.to_datetime(pdf["ts"]) - day0) // tick).to_numpy()
    keep = (si >= 0) & (ti >= 0) & (ti < grid.shape[1])
    grid[si[keep], ti[keep]] = pdf["units"].to_numpy(dtype=float)[keep]
    return grid.reshape(len(rows), n_days, slots)


def series_profiles(pdf: pd.DataFrame, p: Params, days: list[date]) -> pd.DataFrame:
    """The series' baselines for each of ``days`` from their history (``pdf``: series columns, ts, units) in
    the ``lookback_days`` before each: ``baseline`` (units per slot; None below ``min_history_days``),
    ``history_days``, ``overdispersion``. A day's baseline uses only earlier days: computed once and kept."""
    meta = pdf.sort_values("ts")[SERIES_COLS].drop_duplicates("series_key", keep="last").sort_values("series_key")
    if meta.empty or not days:
        return pd.DataFrame(columns=[*SERIES_COLS, *PROFILE_COLS])
    tick = pd.Timedelta(seconds=p.tick_seconds)
    first, last = pd.Timestamp(min(days)), pd.Timestamp(max(days))
    day0 = first - pd.Timedelta(days=p.lookback_days)
    n_days = (last - day0).days + 1
    grid = _grid(pdf, pd.Index(meta["series_key"]), day0, n_days, tick)
    base, hist_days, kappa = baseline_matrix(grid, day0, p.lookback_days, p)
    dates = [(first + pd.Timedelta(days=i)).date() for i in range(base.shape[1])]
    out = pd.DataFrame(
        {
            **{c: np.repeat(meta[c].to_numpy(dtype=object), len(dates)) for c in SERIES_COLS},
            "date": dates * len(meta),
            "baseline": [None if np.isnan(b).all() else b.tolist() for b in base.reshape(-1, base.shape[2])],
            "history_days": hist_days.reshape(-1),
            "overdispersion": kappa.reshape(-1),
        }
    )
    return out[out["date"].isin(set(days))].reset_index(drop=True)


def detect_series(
    pdf: pd.DataFrame, open_pdf: pd.DataFrame, p: Params, profiles: pd.DataFrame | None = None
) -> pd.DataFrame:
    """All detection rows of the series in ``pdf`` for the ticks in [p.start, p.end), from their sales (``pdf``:
    from ``p.context_start`` on; with no ``profiles``, from ``p.history_start`` on, and the profiles computed here).

    Vectorised over series (an array of series x ticks): the per-series Python cost, not the arithmetic, was a
    tick's cost at 10,000 series. Each series' rows are those it would get alone."""
    tick = pd.Timedelta(seconds=p.tick_seconds)
    slots = 86400 // p.tick_seconds
    if profiles is None:
        profiles = series_profiles(pdf, p, p.days)
    day0 = naive_utc(p.first_day)
    start, end = naive_utc(p.start), naive_utc(p.end)
    n_days = len(p.days)

    # Series in a fixed order; each one's attributes from its latest sales row, else its latest baseline row.
    meta = pd.concat(
        [profiles.sort_values("date")[SERIES_COLS], pdf.sort_values("ts")[SERIES_COLS]], ignore_index=True
    ).drop_duplicates("series_key", keep="last")
    meta = meta.sort_values("series_key").reset_index(drop=True)
    if meta.empty:
        return pd.DataFrame(columns=[c.split()[0] for c in OUTPUT_SCHEMA.split(", ")])
    row_of = pd.Index(meta["series_key"])
    n_series = len(meta)

    grid = _grid(pdf, row_of, day0, n_days, tick).reshape(n_series, -1)

    b_all = np.full((n_series, n_days, slots), np.nan)
    hd_all = np.zeros((n_series, n_days), dtype=np.int32)
    k_all = np.full((n_series, n_days), np.nan)
    di = np.array([(pd.Timestamp(d) - day0).days for d in profiles["date"]], dtype=int)
    ps = row_of.get_indexer(profiles["series_key"])
    inside = (di >= 0) & (di < n_days)
    hd_all[ps[inside], di[inside]] = profiles["history_days"].to_numpy()[inside]
    k_all[ps[inside], di[inside]] = pd.to_numeric(profiles["overdispersion"]).to_numpy(dtype=float)[inside]
    fitted = inside & profiles["baseline"].map(lambda b: isinstance(b, list | np.ndarray)).to_numpy(dtype=bool)
    if fitted.any():
        b_all[ps[fitted], di[fitted]] = np.stack([np.asarray(b, dtype=float) for b in profiles["baseline"][fitted]])
    b_all = b_all.reshape(n_series, -1)
    hd_all = np.repeat(hd_all, slots, axis=1)
    k_all = np.repeat(k_all, slots, axis=1)

    i0 = int((start - day0) // tick)  # index of `start` within the day grid
    n = int((end - start) // tick)
    sl = slice(i0, i0 + n)
    # Scored from the context on, not from midnight: a tick at 21:00 scored the day's 85 ticks to keep one.
    # Window sums and tail probabilities are element by element, so each tick's score is unchanged.
    c0 = i0 - p.context_ticks
    z, zw, score = scores(grid[:, c0 : i0 + n], b_all[:, c0 : i0 + n], k_all[:, c0 : i0 + n], p)
    ss = slice(p.context_ticks, p.context_ticks + n)  # the interval within the scored arrays
    yr, br, sr, zr = grid[:, sl], b_all[:, sl], score[:, ss], z[:, ss]

    # Hysteresis as "the latest opening event is more recent than the latest closing event".
    below = np.where(np.isnan(score), 0.0, (score < p.score_off).astype(float))
    closing = _window_sum(below, p.off_ticks) >= p.off_ticks
    opening = ~np.isnan(score) & (score >= p.score_on)
    open_rows = open_pdf.drop_duplicates("series_key").set_index("series_key") if len(open_pdf) else None
    carried = row_of.isin(open_rows.index) if open_rows is not None else np.zeros(n_series, dtype=bool)
    pos = np.arange(n)
    last_open = np.maximum.accumulate(np.where(opening[:, ss], pos, -2), axis=1)
    last_close = np.maximum.accumulate(np.where(closing[:, ss], pos, -2), axis=1)
    last_open = np.where(last_open == -2, np.where(carried, -1, -2)[:, None], last_open)
    state = last_open > last_close
    prev = np.concatenate([carried[:, None], state[:, :-1]], axis=1)

    times = start + tick * pos
    flat = lambda a: a.reshape(-1)  # noqa: E731  (series-major: a series' ticks in order)
    out = pd.DataFrame(
        {
            **{c: np.repeat(meta[c].to_numpy(dtype=object), n) for c in SERIES_COLS},
            "ts": np.tile(times, n_series),
            "actual_units": flat(yr),
            "baseline_units": flat(br),
            "history_days": flat(hd_all[:, sl]),
            "z_score": flat(zr),
            "z_window": np.where(np.isnan(flat(zr)), np.nan, flat(zw[:, ss])),
            "anomaly_score": flat(sr),
            "direction": np.where(np.isnan(flat(zr)), None, np.where(flat(zr) >= 0, "spike", "drop")),
            "is_anomalous": flat(state),
            "is_degraded": np.isnan(flat(yr)) | np.isnan(flat(br)),
        }
    )

    # Walk each flagged series' ticks in order, carrying its open report's running totals tick by tick (the
    # same additions, in the same order, as a sequence of single-tick runs).
    inc_a = np.nan_to_num(yr)
    inc_b = np.where(np.isnan(yr), 0.0, np.nan_to_num(br))
    report = np.full(len(out), None, dtype=object)
    status = np.full(len(out), "none", dtype=object)
    first_from = np.full(len(out), pd.NaT, dtype=object)
    window_end = np.full(len(out), pd.NaT, dtype=object)
    totals = np.full((len(out), 3), np.nan)  # attributed, baseline, peak score
    ticks_active = np.zeros(len(out), dtype=np.int32)
    for s in np.flatnonzero((state | prev).any(axis=1)):
        cur = None
        if carried[s]:
            o = open_rows.loc[meta["series_key"].iat[s]]
            sums = [float(o[c]) for c in ("attributed_sales_total", "baseline_sales_total", "peak_anomaly_score")]
            cur = [o["report_id"], naive_utc(o["first_detected_from"]), *sums, int(o["ticks_active"])]
        for r in np.flatnonzero(state[s] | prev[s]):
            i = s * n + r
            if state[s, r]:
                if not prev[s, r]:
                    cur = [report_id(meta["series_key"].iat[s], times[r]), times[r], 0.0, 0.0, 0.0, 0]
                cur[2] += float(inc_a[s, r])
                cur[3] += float(inc_b[s, r])
                cur[4] = max(cur[4], 0.0 if np.isnan(sr[s, r]) else float(sr[s, r]))
                cur[5] += 1
                status[i] = "active"
            else:  # the tick a report closes on
                status[i], window_end[i] = "ended", times[r]
            report[i], first_from[i], totals[i], ticks_active[i] = cur[0], cur[1], cur[2:5], cur[5]
            if not state[s, r]:
                cur = None
    a, b = totals[:, 0], totals[:, 1]
    has = report != None  # noqa: E711  (element-wise)
    out["report_id"] = report
    out["report_status"] = status
    out["first_detected_from"] = pd.to_datetime(first_from)
    out["window_end"] = pd.to_datetime(window_end)
    out["report_direction"] = np.where(has, np.where(a >= b, "spike", "drop"), None)
    out["severity"] = np.where(has, 1.0 - np.exp(-np.abs(np.log((a + 1.0) / (b + 1.0))) / p.severity_scale), np.nan)
    out["peak_anomaly_score"] = totals[:, 2]
    out["attributed_sales_total"] = a
    out["baseline_sales_total"] = b
    out["ticks_active"] = ticks_active
    return out


# -- Spark transform ------------------------------------------------------------------------------------
PROFILE_COLS = ["date", "baseline", "history_days", "overdispersion"]
PROFILE_SCHEMA = (
    "series_key string, store_id string, sku string, retailer_id string, region string, category string, "
    "date date, baseline array<double>, history_days int, overdispersion double"
)


def batch_of(series_key: str = "series_key", batches: int = 64) -> Column:
    """The pandas call a series goes to: a fixed hash, so a series' rows always meet in one call."""
    return F.pmod(F.xxhash64(series_key), F.lit(batches))


def profiles(history: DataFrame, p: Params, days: list[date]) -> DataFrame:
    """Sales history (from ``days[0] - lookback_days``) -> one baseline row per series and day of ``days``."""
    params = asdict(p)

    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        return series_profiles(pdf, Params(**params), days)

    return history.groupBy(batch_of(batches=p.series_batches).alias("_batch")).applyInPandas(fn, PROFILE_SCHEMA)


def detect(series: DataFrame, open_reports: DataFrame, p: Params, baselines: DataFrame | None = None) -> DataFrame:
    """Sales time series (+ the previous tick's open reports) -> one detection row per series and tick.

    With ``baselines`` (per series and day of ``p.days``, as ``profiles`` makes them) ``series`` needs rows
    from ``p.context_start`` only; without, from ``p.history_start``, and the baselines are computed on the way.
    Series go to pandas in ``series_batches`` batches (``detect_series`` is vectorised over a batch)."""
    params = asdict(p)
    given = baselines is not None
    # What a run knows from before, the days' baselines and the open reports, travels apart from the sales:
    # an array column on the sales rows, even NULL, cost Arrow more than the model itself (115 s at scale M).
    state = open_reports
    if given:
        state = baselines.select(*SERIES_COLS, *PROFILE_COLS).unionByName(open_reports, allowMissingColumns=True)
    sales = series.select(*SERIES_COLS, "ts", F.col("units").cast("double").alias("units"))

    def fn(_key, pdf: pd.DataFrame, state_pdf: pd.DataFrame) -> pd.DataFrame:
        prm = Params(**params)
        if not given:
            return detect_series(pdf, state_pdf, prm)
        is_open = state_pdf["report_id"].notna()
        return detect_series(
            pdf, state_pdf[is_open][OPEN_COLS], prm, state_pdf[~is_open][[*SERIES_COLS, *PROFILE_COLS]]
        )

    batch = batch_of(batches=p.series_batches).alias("_batch")
    return sales.groupBy(batch).cogroup(state.groupBy(batch)).applyInPandas(fn, OUTPUT_SCHEMA)


def to_logs(rows: DataFrame, run_id: str, model_version: str) -> dict[str, DataFrame]:
    common = [
        F.lit(run_id).alias("run_id"),
        F.lit(model_version).alias("model_version"),
        F.col("ts").alias("written_at"),
        F.to_date("ts").alias("date"),
    ]
    rows = rows.select("*", *common)
    # In the MRDL, direction is the report's (its totals so far), not the current tick's.
    mrdl = (
        rows.where(F.col("report_status") != "none")
        .withColumn("window_start", F.col("first_detected_from"))
        .withColumn("direction", F.col("report_direction"))
    )
    return {
        "baseline_sales_model_prediction_log": rows,
        "anomaly_classifier_model_prediction_log": rows,
        "minority_reports_detected_log": mrdl,
    }


def read_sales(lake: Lakehouse, run_id: str, start: datetime, end: datetime) -> DataFrame:
    return lake.read_ticks("sales_timeseries_data", run_id, start, end).select(*SERIES_COLS, "ts", "units")


def read_open_reports(lake: Lakehouse, p: Params, run_id: str) -> DataFrame:
    """The previous tick's open reports: the state detection carries from one run to the next."""
    prev_tick = p.start - timedelta(seconds=p.tick_seconds)
    return (
        lake.read("minority_reports_detected_log", run_id)
        .where((F.col("date") == F.lit(prev_tick.date())) & (F.col("written_at") == F.lit(prev_tick)))
        .where(F.col("report_status") == "active")
        .select(*OPEN_COLS)
    )


def ensure_baselines(lake: Lakehouse, p: Params, run_id: str, model_version: str) -> int:
    """Compute and keep the baselines of the days the run needs that have none yet; how many rows were added.

    A day's baseline depends only on earlier days, so the day's first tick computes it from the lookback and
    every later tick reads it back: a tick's cost does not grow with the history (once per day, it reads the
    ``lookback_days`` it needs). Range runs compute all their days at once, with the same result."""
    kept = lake.read("baseline_profile_log", run_id).where(F.col("date").isin(p.days)).select("date").distinct()
    missing = sorted(set(p.days) - {r["date"] for r in kept.collect()})  # at most the run's days
    if not missing:
        return 0
    first = datetime.combine(missing[0], datetime.min.time(), tzinfo=p.start.tzinfo)
    last = datetime.combine(missing[-1], datetime.min.time(), tzinfo=p.start.tzinfo)
    history = read_sales(lake, run_id, first - timedelta(days=p.lookback_days), last)
    rows = profiles(history, p, missing).select(
        F.lit(run_id).alias("run_id"),
        "*",
        F.lit(model_version).alias("model_version"),
        F.when(F.col("baseline").isNull(), "insufficient_history").otherwise("ok").alias("report_status"),
        F.col("date").cast("timestamp").alias("written_at"),
        F.col("baseline").isNull().alias("is_degraded"),
    )
    return lake.append_new("baseline_profile_log", rows, missing)


def run(spark: SparkSession, cfg: Config, start: datetime, end: datetime, run_id: str | None = None) -> dict:
    lake = Lakehouse(spark, cfg)
    run_id = run_id or lake.active_run_id()
    p = Params.from_config(cfg, start, end)
    written = {"baseline_profile_log": ensure_baselines(lake, p, run_id, cfg.detection.model_version)}
    baselines = lake.read("baseline_profile_log", run_id).where(F.col("date").isin(p.days))
    series = read_sales(lake, run_id, p.context_start, end)
    rows = detect(series, read_open_reports(lake, p, run_id), p, baselines).persist()
    for name, df in to_logs(rows, run_id, cfg.detection.model_version).items():
        # Most ticks open no report: the MRDL's share of the persisted rows is then empty (the other two logs
        # hold a row per series and tick, so testing them would be a query for nothing).
        mrdl = name == "minority_reports_detected_log"
        written[name] = lake.append_new(name, df, within=(start, end), skip_if_empty=mrdl)
    rows.unpersist()
    return written


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, "detect_anomalies", run, argv)


if __name__ == "__main__":
    main()
