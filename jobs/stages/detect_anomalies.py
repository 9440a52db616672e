"""Detection stage: baseline model, anomaly classifier and minority reports (MRDL).

For every series, over the run's data interval [start, end):

1. **Baseline** (``baseline_profile_log``, ``baseline_sales_model_prediction_log``). Expected units for each tick
   from the series' own trailing ``lookback_days`` of history, strictly before the tick's day: a trimmed mean over
   those days of the same time-of-day slot and its two neighbours (keeping a sparse series' typical daily volume),
   per weekday once it has ``weekly_min_days`` of them, else times the weekday's median ratio. Its noise: variance
   = dispersion * mean + overdispersion * mean^2, fitted on the same days. A series is scored from its second day
   on; below ``min_history_days`` the baseline is a fallback and its rows are degraded.
2. **Classifier** (``anomaly_classifier_model_prediction_log``). For each trailing window of ``windows`` ticks,
   the signed z of its units under the noise model (a negative binomial's tail); a window longer than a few ticks
   counts only while the last ticks deviate its way. Each z is calibrated to the series' own recent behaviour
   (``calibrate``: its recent windows' 90% and 98% quantiles against the normal's, from the day samples kept in
   ``baseline_profile_log``), so that one threshold means about the same false-alarm rate on every series. The
   tick's p is the normal tail of the best calibrated z times the number of windows; ``anomaly_score`` =
   min(1, -log10(p) / 10). A report opens when the score reaches the one the ``false_alarm_budget`` (reports per
   100 series-days) sets (``Params.score_on``) and closes after ``off_ticks`` ticks in a row below ``score_off``.
3. **Reports** (``minority_reports_detected_log``). One snapshot per active report per tick, and a closing
   snapshot with ``window_end`` at the tick the report ends. ``window_start`` is the estimated onset (the first
   deviating tick of the window that opened it), and the totals run from there. ``report_id`` follows spec
   decision 2 (from ``first_detected_from``, the opening tick).

Causal and replayable: a tick's rows use only data at or before the tick; the state carried between runs is
the previous tick's open reports, read back from the MRDL, and each day's baseline and calibration, kept once per
day, so one run over a range writes exactly the rows that tick-by-tick runs write.

    spark-submit jobs/stages/detect_anomalies.py --config conf/mrs.yaml --start ... --end ...
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lib.cli import stage_main
from jobs.lib.config import Config, opening_score
from jobs.lib.tables import Lakehouse
from jobs.lib.ticks import fmt_ts, naive_utc

SERIES_COLS = ["series_key", "store_id", "sku", "retailer_id", "region", "category"]
OPEN_COLS = [
    "series_key",
    "report_id",
    "first_detected_from",
    "window_start",
    "attributed_sales_total",
    "baseline_sales_total",
    "peak_anomaly_score",
    "ticks_active",
]
OUTPUT_SCHEMA = (
    "series_key string, store_id string, sku string, retailer_id string, region string, category string, "
    "ts timestamp, actual_units double, baseline_units double, history_days int, z_score double, "
    "z_window int, anomaly_score double, direction string, is_anomalous boolean, report_id string, "
    "report_status string, is_degraded boolean, unscored_reason string, first_detected_from timestamp, "
    "window_start timestamp, window_end timestamp, "
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
    false_alarm_budget: float
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
            **{**d, "windows": tuple(d["windows"])},
        )

    @property
    def score_on(self) -> float:
        """The score a report opens at, from the false-alarm budget."""
        return opening_score(self.false_alarm_budget, self.tick_seconds)

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
        """The first day of sales a run reads to compute its baselines and their calibration from scratch."""
        return self.first_day - timedelta(days=2 * self.lookback_days)


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
    spans = np.unique(np.stack([k.ravel(), n.ravel()], axis=1), axis=0)
    for kk, nn in spans[spans[:, 1] > 0]:
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
    prof = np.nan_to_num(_trimmed_mean(samples, trim))
    # An intermittent series (most ticks without a sale) trims to almost nothing: the profile keeps the typical
    # day's volume, the part the trimming lost spread over the slots as their plain means spread it.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: series or slots without history
        typical = np.nan_to_num(np.nanmedian(np.nanmean(hist, axis=2), axis=1) * slots)
        mean = np.nan_to_num(np.nanmean(samples, axis=2))
    total = mean.sum(axis=1)
    missing = np.maximum(typical - prof.sum(axis=1), 0.0)
    return prof + np.where(total > 0, missing / np.where(total > 0, total, 1.0), 0.0)[:, None] * mean


def baseline_matrix(
    y: np.ndarray, day0: pd.Timestamp, first_day: int, p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Baseline for days ``first_day..`` of ``y`` (series x days x slots; NaN = no data), each day's count of
    history days, its overdispersion and dispersion (variance = dispersion * mean + overdispersion * mean^2,
    fitted on the history).
    A series is fitted from its first day with data on (below ``min_history_days`` it is a degraded fallback).
    Vectorised over series; each series' values are those it gets alone."""
    n_series, n_days, slots = y.shape
    covered = np.mean(~np.isnan(y), axis=2) >= p.min_day_coverage
    dow = np.array([(day0 + pd.Timedelta(days=int(d))).dayofweek for d in range(n_days)])
    out_days = n_days - first_day
    base = np.full((n_series, out_days, slots), np.nan)
    kappa = np.full((n_series, out_days), np.nan)
    disp = np.full((n_series, out_days), np.nan)
    hist_days = np.zeros((n_series, out_days), dtype=np.int32)
    for i, d in enumerate(range(first_day, n_days)):
        lo = max(0, d - p.lookback_days)
        hist, ok, hdow = y[:, lo:d], covered[:, lo:d], dow[lo:d]
        hist_days[:, i] = ok.sum(axis=1)
        fit = hist_days[:, i] >= 1
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
            # Only the target weekday gets its own profile computed: the others serve the noise fit below, where
            # the shared profile scaled does as well (and a profile is most of a day's cost).
            own = (count >= p.weekly_min_days) & (w == target)
            prof_w = profile * factor[:, None]
            if own.any():
                prof_w[own] = _profile(hist[own], days_w[own], p.trim)
            fitted[:, hdow == w] = prof_w[:, None, :]
            if w == target:
                chosen = np.where((count > 0)[:, None], prof_w, chosen)
        base[fit, i] = chosen
        # The noise: variance = dispersion * mean + overdispersion * mean^2, fitted on the history's own residuals
        # (squared residual / mean regressed on the mean), their largest 2% left out (past anomalies). Lumpy
        # sales (a few units at a time) have dispersion above 1; a level that wanders, overdispersion above 0.
        kap, phi = np.zeros(m), np.ones(m)
        busy = (fitted > 0.1) & ok[:, :, None] & ~np.isnan(hist)
        for s in np.flatnonzero(busy.sum(axis=(1, 2)) >= 10):
            f = fitted[s][busy[s]]
            x = (hist[s][busy[s]] - f) ** 2 / f
            keep = x <= np.quantile(x, 0.98)
            phi[s], kap[s] = _dispersion(x[keep], f[keep])
        kappa[fit, i] = kap
        disp[fit, i] = phi
    return base, hist_days, kappa, disp


def _dispersion(x: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Least squares of x (squared residual / mean) on 1 and f (the mean): (dispersion, overdispersion), within
    [1, MAX_DISPERSION] and [0, MAX_OVERDISPERSION]."""
    n, sf, sff, sx, sxf = len(f), f.sum(), (f * f).sum(), x.sum(), (x * f).sum()
    det = n * sff - sf * sf
    phi, kap = (sx / n, 0.0) if det <= 1e-12 else ((sx * sff - sf * sxf) / det, (n * sxf - sf * sx) / det)
    if kap < 0:
        phi, kap = sx / n, 0.0
    if phi < 1:
        phi, kap = 1.0, max(0.0, float(((x - 1.0) * f).sum() / sff)) if sff > 0 else 0.0
    return float(np.clip(phi, 1.0, MAX_DISPERSION)), float(np.clip(kap, 0.0, MAX_OVERDISPERSION))


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


# The score's scale: -log10 of the tail probability over this many decades; 1 at p = 1e-10 and beyond (as
# ``config.opening_score`` reads it).
SCORE_DECADES = 10.0
RECENT_TICKS = 4  # a window longer than this counts while the trailing RECENT_TICKS deviate its way (lumpy sales)
# Calibration: a window's z under the series' noise model is divided by how much noisier the series has been than
# the model says: the (1 - TAIL_Q) quantile of its recent busy windows' z over the normal one, Z_REF.
TAIL_LEVELS = (0.1, 0.02)
Z_REFS = (1.2815515655446004, 2.053748910631823)  # the normal's 90% and 98% quantiles
SCALE_RANGE = (0.8, 6.0)
BUSY_UNITS = 2.0  # a window expecting fewer units has a z too discrete to calibrate on
SAMPLE_SHARE = 0.15  # a day keeps its top 15% of each window's z per direction: calibration reads the top 10%
PRIOR_WINDOWS = 200.0  # the scale leans on 1 until this many busy windows stand behind it
LEARNING_SCALE = 2.0  # z divided by up to 1 + this while a series is learnt
MAX_DISPERSION, MAX_OVERDISPERSION = 20.0, 2.0


def tail_z(actual: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Signed z of a count under a negative binomial with this mean and variance (its tail, not a normal's:
    a run of zeros where 40 units were expected is far less likely than a Gaussian says)."""
    # Imported where it runs, in the Python workers: scipy.stats costs every client that imports this module
    # ~1.5 s, and an Airflow task is one such client.
    from scipy import stats

    var = np.maximum(var, mean * 1.0001)
    r = mean**2 / (var - mean)
    prob = r / (r + mean)
    hi = actual >= mean
    tail = np.empty(np.shape(actual))  # each count's tail its own way: half the work of both tails everywhere
    tail[hi] = stats.nbinom.sf(np.ceil(actual[hi]) - 1, r[hi], prob[hi])  # P(S >= actual)
    tail[~hi] = stats.nbinom.cdf(np.floor(actual[~hi]), r[~hi], prob[~hi])  # P(S <= actual)
    z = stats.norm.isf(np.clip(tail, 1e-300, 0.5))
    return np.where(hi, z, -z)


def scan(
    y: np.ndarray, b: np.ndarray, kappa: np.ndarray, phi: np.ndarray, p: Params, need: np.ndarray | None = None
) -> dict:
    """Per tick (the last axis): ``z[w]``, the signed z of the trailing window of each length w of ``windows``
    (NaN where the tick has no reading or the window has ticks without a baseline), ``recent[w]``, the sign a
    window longer than one tick may speak for (the z of the last ``RECENT_TICKS`` beyond +-0.5, else 0: so a
    report ends with its anomaly, and an intermittent series' quiet ticks inside a burst do not end it), and
    ``z1``, the tick's own z. With ``need`` (a boolean per position of the last axis), the windows' z only where
    it is True (the tail probabilities are the cost; ``z1`` everywhere)."""
    valid = ~np.isnan(y)
    yv = np.where(valid, y, 0.0)  # a tick without a reading adds nothing to a window (nor to its expectation)
    bv = np.where(valid, b, 0.0) + np.where(valid, p.floor_rate, 0.0)  # one sale at night is not a miracle
    tick_var = np.nan_to_num(phi, nan=1.0) * bv + np.nan_to_num(kappa) * bv**2
    b_missing = (np.isnan(b) & valid).astype(float)
    rel2 = p.baseline_rel_error**2
    z, expected = {}, {}
    for w in sorted(set(p.windows) | {1, RECENT_TICKS}):
        ys, bs, vs = _window_sum(yv, w), _window_sum(bv, w), _window_sum(tick_var, w)
        bad = np.isnan(ys) | (_window_sum(b_missing, w) > 0) | ~valid
        if need is not None and w != 1:
            bad = bad | ~need
        zw = np.full(y.shape, np.nan)
        zw[~bad] = tail_z(ys[~bad], bs[~bad], vs[~bad] + rel2 * bs[~bad] ** 2)
        z[w], expected[w] = zw, bs
    recent = {w: np.sign(z[min(w, RECENT_TICKS)]) * (np.abs(z[min(w, RECENT_TICKS)]) > 0.5) for w in p.windows}
    return {"z": {w: z[w] for w in p.windows}, "expected": expected, "recent": recent, "z1": z[1]}


def sample_size(p: Params) -> int:
    """Values a day keeps per window and direction: its top ``SAMPLE_SHARE`` of ticks."""
    return int(np.ceil(SAMPLE_SHARE * 86400 / p.tick_seconds))


def day_stats(
    y: np.ndarray, b: np.ndarray, kappa: np.ndarray, phi: np.ndarray, p: Params
) -> tuple[np.ndarray, np.ndarray]:
    """A day's calibration sample (``y``, ``b``: series x slots, the day's baseline as it was scored): per series
    and window (``windows``), the number of the day's windows that expected at least ``BUSY_UNITS`` (where a
    count's z is not lumpy with discreteness), then per direction (spike, drop) the largest ``sample_size`` of
    their signed z, descending and NaN-padded; flattened. And the ticks the day scored."""
    st = scan(y, b, kappa[:, None], phi[:, None], p)
    k = sample_size(p)
    out = np.full((len(y), len(p.windows), 1 + 2 * k), np.nan)
    for i, w in enumerate(p.windows):
        busy = (st["expected"][w] >= BUSY_UNITS) & ~np.isnan(st["z"][w])
        out[:, i, 0] = busy.sum(axis=1)
        for d, sign in enumerate((1.0, -1.0)):
            x = np.where(busy, sign * st["z"][w], -np.inf)
            top = -np.sort(-x, axis=1)[:, :k]
            out[:, i, 1 + d * k : 1 + d * k + top.shape[1]] = np.where(np.isfinite(top), top, np.nan)
    return out.reshape(len(y), -1), np.sum(~np.isnan(st["z1"]), axis=1)


def calibrate(samples: np.ndarray, counts: np.ndarray, p: Params, history_days: np.ndarray) -> np.ndarray:
    """Per series, window and direction, the factor its z is divided by (flattened), from the day samples of its
    recent days (``samples``: series x days x flattened ``day_stats``; ``counts``: series x days, 0 where a day has
    none): the (1 - TAIL_Q) quantile of those days' busy windows' z over the normal one, within ``SCALE_RANGE``
    (a series noisier than its noise model says gets z divided by more), its most extreme day left out. Blended
    with 1 by the windows behind it; ``LEARNING_SCALE`` while a series is learnt (its fallback baseline is less
    sure of itself)."""
    k = sample_size(p)
    n_series, n_days = counts.shape
    s = np.where((counts > 0)[:, :, None], samples, np.nan).reshape(n_series, n_days, len(p.windows), 1 + 2 * k)
    scale = np.ones((n_series, len(p.windows), 2, 2))
    # Per window and direction, the day with the largest z is left out once there are two days: a promo or a viral
    # afternoon fills a long window's top quantiles on its own (a 32-tick window stays up for 8 hours after it),
    # and would deafen the series to the next anomaly for the whole lookback.
    n_drop = ((counts > 0).sum(axis=1) >= 2).astype(int)[:, None, None]
    for d in range(2):
        top = np.nan_to_num(s[..., 1 + d * k], nan=-np.inf).transpose(0, 2, 1)  # series x windows x days
        rank = np.argsort(np.argsort(-top, axis=-1, kind="stable"), axis=-1, kind="stable")
        keep = (rank >= n_drop).transpose(0, 2, 1)  # series x days x windows
        sd = np.where(keep[..., None], s, np.nan)
        n = np.nansum(sd[..., 0], axis=1)  # series x windows: busy windows behind the sample
        wgt = n / (n + PRIOR_WINDOWS)
        v = sd[..., 1 + d * k : 1 + (d + 1) * k].transpose(0, 2, 1, 3).reshape(n_series, len(p.windows), -1)
        v = -np.sort(-np.nan_to_num(v, nan=-np.inf), axis=-1)
        for j, (level, ref) in enumerate(zip(TAIL_LEVELS, Z_REFS, strict=True)):
            r = np.minimum(np.floor(level * n).astype(int), v.shape[-1] - 1)
            q = np.take_along_axis(v, r[..., None], axis=-1)[..., 0]
            have = np.isfinite(q) & (n >= 1)
            raw = np.clip(np.where(have, q, ref) / ref, *SCALE_RANGE)
            scale[..., d, j] = np.where(have, wgt * raw + (1 - wgt), 1.0)
    # A series being learnt is scored by a fallback baseline (one day of history, no weekly cycle yet): its z
    # are divided by more, the less it knows.
    short = np.clip((p.min_history_days - history_days) / p.min_history_days, 0.0, 1.0)
    scale = np.maximum(scale, (1.0 + LEARNING_SCALE * short)[:, None, None, None])
    return scale.reshape(n_series, -1)


def calibrated(z: np.ndarray, s_lo: np.ndarray, s_hi: np.ndarray) -> np.ndarray:
    """A series' z (under its noise model) on the normal scale: piecewise linear through (0, 0) and its recent
    (1 - TAIL_LEVELS) quantiles (z_ref * s) -> z_ref, and on beyond the last one with the last segment's slope (a
    tail heavier than the model's keeps growing slower)."""
    (r_lo, r_hi), q_lo, q_hi = Z_REFS, Z_REFS[0] * s_lo, Z_REFS[1] * s_hi
    slope = np.where(q_hi > q_lo, (r_hi - r_lo) / np.where(q_hi > q_lo, q_hi - q_lo, 1.0), 1.0 / s_lo)
    slope = np.minimum(slope, 1.0 / s_lo)  # never lighter beyond than below: the top is where anomalies live
    return np.where(z <= q_lo, z / s_lo, r_lo + (z - q_lo) * slope)


def scores(
    y: np.ndarray,
    b: np.ndarray,
    kappa: np.ndarray,
    phi: np.ndarray,
    tails: np.ndarray,
    p: Params,
    need: np.ndarray | None = None,
) -> dict:
    """Per tick: the scan (``scan``), and over its windows and both directions the one with the smallest calibrated
    tail probability (``tails``: series x ticks x the flattened ``calibrate`` output; the normal tail of z / scale),
    times len(windows) (Bonferroni: the smallest of those is no probability itself; a tick deviates one way): its signed
    z and length (``z``, ``w``), the probability ``p`` and the ``score`` = min(1, -log10(p) / SCORE_DECADES)."""
    from scipy import stats  # see tail_z

    st = scan(y, b, kappa, phi, p, need)
    cols = np.arange(y.shape[-1]) if need is None else np.flatnonzero(need)  # the ticks scored (NaN elsewhere)
    scale = tails[:, cols].reshape(len(y), len(cols), len(p.windows), 2, 2)
    best_x = np.full((len(y), len(cols)), np.nan)
    best_z = np.full(best_x.shape, np.nan)
    best_w = np.zeros(best_x.shape, dtype=np.int32)
    for i, w in enumerate(p.windows):
        zw = st["z"][w][:, cols]
        for d, sign in enumerate((1.0, -1.0)):
            x = calibrated(sign * zw, scale[:, :, i, d, 0], scale[:, :, i, d, 1])
            if w > 1:
                x = np.where(st["recent"][w][:, cols] == sign, x, np.nan)
            # ties go to the shorter window and to spikes: the order of the loops
            better = ~np.isnan(x) & (np.isnan(best_x) | (x > best_x))
            best_x = np.where(better, x, best_x)
            best_z = np.where(better, zw, best_z)
            best_w = np.where(better, w, best_w)
    prob = np.minimum(1.0, stats.norm.sf(best_x) * len(p.windows))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(
            np.isnan(best_x), np.nan, np.clip(-np.log10(np.maximum(prob, 1e-300)) / SCORE_DECADES, 0.0, 1.0)
        )
    for key, part, empty in (("z", best_z, np.nan), ("w", best_w, 0), ("p", prob, np.nan), ("score", score, np.nan)):
        st[key] = np.full(y.shape, empty, dtype=part.dtype)
        st[key][:, cols] = part
    return st


def onset_index(st: dict, s: int, j: int, longest: int) -> int:
    """The estimated onset of the deviation that opens a report at tick ``j`` of series ``s`` (indices into the
    scored arrays): the first tick of the deciding window that deviates the report's way (its own z beyond 0.5),
    moved back over the deviating ticks just before the window, at most to the start of the ``longest`` window."""
    sign = 1.0 if st["z"][s, j] >= 0 else -1.0
    k = j - int(st["w"][s, j]) + 1
    while k < j and not sign * st["z1"][s, k] > 0.5:
        k += 1
    while k > j - longest + 1 and sign * st["z1"][s, k - 1] > 0.5:
        k -= 1
    return k


def _grid(pdf: pd.DataFrame, rows: pd.Index, day0: pd.Timestamp, n_days: int, tick: pd.Timedelta) -> np.ndarray:
    """Units per tick from ``day0`` on of the series ``rows`` names, series x ``n_days`` x slots (NaN: no row)."""
    slots = int(pd.Timedelta(days=1) // tick)
    grid = np.full((len(rows), n_days * slots), np.nan)
    si = rows.get_indexer(pdf["series_key"])
    ti = ((pd.to_datetime(pdf["ts"]) - day0) // tick).to_numpy()
    keep = (si >= 0) & (ti >= 0) & (ti < grid.shape[1])
    grid[si[keep], ti[keep]] = pdf["units"].to_numpy(dtype=float)[keep]
    return grid.reshape(len(rows), n_days, slots)


def series_profiles(
    pdf: pd.DataFrame, p: Params, days: list[date], earlier: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The series' baselines for each of ``days`` from their history (``pdf``: series columns, ts, units): per
    series and day, ``baseline`` (units per slot, from the ``lookback_days`` before it; None without a day of
    history), ``history_days``, ``overdispersion``, the previous day's calibration sample as that day was scored
    (``calibration_sample``, ``scored_ticks``: see ``day_stats``) and the day's ``calibration`` (see
    ``calibrate``: from the samples of the ``lookback_days`` before it). A day's row uses only earlier days.

    ``earlier``: the kept rows (``SAMPLE_COLS``) of the days before ``days[0]``; ``pdf`` then needs the history
    from ``days[0] - 1 - lookback_days``. Without it the samples of those days are computed here too, from twice
    the lookback of history (``Params.history_start``), with the same result."""
    meta = pdf.sort_values("ts")[SERIES_COLS].drop_duplicates("series_key", keep="last").sort_values("series_key")
    if meta.empty or not days:
        return pd.DataFrame(columns=[*SERIES_COLS, *PROFILE_COLS])
    tick = pd.Timedelta(seconds=p.tick_seconds)
    lb = p.lookback_days
    first, last = pd.Timestamp(min(days)), pd.Timestamp(max(days))
    # Samples are needed for the lookback_days before `first` and after; each from its previous day's baseline.
    sampled_from = first - pd.Timedelta(days=lb - 1) if earlier is None else first
    base_from = sampled_from - pd.Timedelta(days=1)
    day0 = base_from - pd.Timedelta(days=lb)
    n_days = (last - day0).days + 1
    keys = pd.Index(meta["series_key"])
    grid = _grid(pdf, keys, day0, n_days, tick)
    base, hist_days, kappa, disp = baseline_matrix(grid, day0, lb, p)  # days base_from..last
    nb = base.shape[1]
    width = len(p.windows) * (1 + 2 * sample_size(p))
    # Day j's sample (within the baseline days): day j - 1's ticks against day j - 1's baseline. A day scored by
    # the fallback (under min_history_days) says how wrong a model was while it learnt the series, not how the
    # seasonal model errs: it is no sample.
    samples = np.full((len(keys), nb, width), np.nan)
    counts = np.zeros((len(keys), nb), dtype=np.int64)
    for j in range(1, nb):
        samples[:, j], counts[:, j] = day_stats(grid[:, lb + j - 1], base[:, j - 1], kappa[:, j - 1], disp[:, j - 1], p)
        counts[hist_days[:, j - 1] < p.min_history_days, j] = 0
    # The kept samples of the days before (only when given), on a grid of their own days.
    pre = lb - 1 if earlier is not None else 0
    pre_s = np.full((len(keys), pre, width), np.nan)
    pre_n = np.zeros((len(keys), pre), dtype=np.int64)
    if earlier is not None and len(earlier):
        di = np.array([(pd.Timestamp(d) - (first - pd.Timedelta(days=pre))).days for d in earlier["date"]], dtype=int)
        si = keys.get_indexer(earlier["series_key"])
        n_kept = pd.to_numeric(earlier["scored_ticks"]).fillna(0).to_numpy(dtype=np.int64)
        ok = (si >= 0) & (di >= 0) & (di < pre) & (n_kept > 0)
        for row in np.flatnonzero(ok):
            pre_s[si[row], di[row]] = np.asarray(earlier["calibration_sample"].iat[row], dtype=float)
            pre_n[si[row], di[row]] = n_kept[row]
    all_s = np.concatenate([pre_s, samples], axis=1)
    all_n = np.concatenate([pre_n, counts], axis=1)
    out_from = (first - base_from).days  # index of `first` among the baseline days
    cal = []
    for j in range(out_from, nb):
        jj, lo = j + pre, max(0, j + pre - lb + 1)
        cal.append(calibrate(all_s[:, lo : jj + 1], all_n[:, lo : jj + 1], p, hist_days[:, j]))
    cal = np.stack(cal, axis=1)  # series x output days x flattened tails
    out_n = nb - out_from
    dates = [(first + pd.Timedelta(days=i)).date() for i in range(out_n)]
    pick = lambda a: a[:, out_from:].reshape(len(keys) * out_n, *a.shape[2:])  # noqa: E731
    out = pd.DataFrame(
        {
            **{c: np.repeat(meta[c].to_numpy(dtype=object), out_n) for c in SERIES_COLS},
            "date": dates * len(meta),
            "baseline": [None if np.isnan(b).all() else b.tolist() for b in pick(base)],
            "history_days": pick(hist_days),
            "overdispersion": pick(kappa),
            "dispersion": pick(disp),
            "calibration_sample": [None if np.isnan(v).all() else v.tolist() for v in pick(samples)],
            "scored_ticks": pick(counts),
            "calibration": [t.tolist() for t in cal.reshape(len(keys) * out_n, -1)],
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
    f_all = np.full((n_series, n_days), np.nan)
    t_all = np.full((n_series, n_days, len(p.windows) * 4), np.nan)
    di = np.array([(pd.Timestamp(d) - day0).days for d in profiles["date"]], dtype=int)
    ps = row_of.get_indexer(profiles["series_key"])
    inside = (di >= 0) & (di < n_days)
    hd_all[ps[inside], di[inside]] = profiles["history_days"].to_numpy()[inside]
    k_all[ps[inside], di[inside]] = pd.to_numeric(profiles["overdispersion"]).to_numpy(dtype=float)[inside]
    f_all[ps[inside], di[inside]] = pd.to_numeric(profiles["dispersion"]).to_numpy(dtype=float)[inside]
    fitted = inside & profiles["baseline"].map(lambda b: isinstance(b, list | np.ndarray)).to_numpy(dtype=bool)
    if fitted.any():
        b_all[ps[fitted], di[fitted]] = np.stack([np.asarray(b, dtype=float) for b in profiles["baseline"][fitted]])
        cal = profiles["calibration"][fitted]
        t_all[ps[fitted], di[fitted]] = np.stack([np.asarray(t, dtype=float) for t in cal])
    b_all = b_all.reshape(n_series, -1)
    hd_all = np.repeat(hd_all, slots, axis=1)
    k_all = np.repeat(k_all, slots, axis=1)
    f_all = np.repeat(f_all, slots, axis=1)
    t_all = np.repeat(t_all, slots, axis=1)

    i0 = int((start - day0) // tick)  # index of `start` within the day grid
    n = int((end - start) // tick)
    sl = slice(i0, i0 + n)
    # Scored from the context on, not from midnight: a tick at 21:00 scored the day's 85 ticks to keep one.
    # Window sums and tail probabilities are element by element, so each tick's score is unchanged.
    c0 = i0 - p.context_ticks
    span = slice(c0, i0 + n)
    # Scores are needed for the run's ticks and the closing streak before them; z1 (onsets) further back.
    need = np.arange(p.context_ticks + n) >= p.context_ticks - (p.off_ticks - 1)
    st = scores(grid[:, span], b_all[:, span], k_all[:, span], f_all[:, span], t_all[:, span], p, need)
    z, zw, score = st["z"], st["w"], st["score"]
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
            "is_degraded": np.isnan(flat(yr)) | np.isnan(flat(br)) | (flat(hd_all[:, sl]) < p.min_history_days),
            "unscored_reason": np.where(
                np.isnan(flat(yr)),
                "no_reading",
                np.where(np.isnan(flat(br)), "no_history", np.where(np.isnan(flat(sr)), "no_baseline_in_window", None)),
            ),
        }
    )

    # Walk each flagged series' ticks in order, carrying its open report's running totals tick by tick (the
    # same additions, in the same order, as a sequence of single-tick runs). A report opens with the ticks from
    # its onset on: the start of the window that decided, less its leading ticks that did not deviate its way.
    y_ctx, b_ctx = grid[:, span], b_all[:, span]
    inc_a_ctx = np.nan_to_num(y_ctx)
    inc_b_ctx = np.where(np.isnan(y_ctx), 0.0, np.nan_to_num(b_ctx))
    inc_a, inc_b = inc_a_ctx[:, ss], inc_b_ctx[:, ss]
    report = np.full(len(out), None, dtype=object)
    status = np.full(len(out), "none", dtype=object)
    first_from = np.full(len(out), pd.NaT, dtype=object)
    onset_at = np.full(len(out), pd.NaT, dtype=object)
    window_end = np.full(len(out), pd.NaT, dtype=object)
    totals = np.full((len(out), 3), np.nan)  # attributed, baseline, peak score
    ticks_active = np.zeros(len(out), dtype=np.int32)
    for s in np.flatnonzero((state | prev).any(axis=1)):
        cur = None
        if carried[s]:
            o = open_rows.loc[meta["series_key"].iat[s]]
            sums = [float(o[c]) for c in ("attributed_sales_total", "baseline_sales_total", "peak_anomaly_score")]
            first = naive_utc(o["first_detected_from"])
            onset = first if pd.isna(o.get("window_start")) else naive_utc(o["window_start"])
            cur = [o["report_id"], first, *sums, int(o["ticks_active"]), onset]
        for r in np.flatnonzero(state[s] | prev[s]):
            i = s * n + r
            if state[s, r]:
                if not prev[s, r]:
                    j = p.context_ticks + r  # the tick within the scored arrays
                    k = onset_index(st, s, j, max(p.windows))
                    cur = [report_id(meta["series_key"].iat[s], times[r]), times[r], 0.0, 0.0, 0.0, 0, times[r]]
                    cur[6] = times[r] - tick * (j - k)
                    for q in range(k, j):  # the onset's ticks before the opening one, in order
                        cur[2] += float(inc_a_ctx[s, q])
                        cur[3] += float(inc_b_ctx[s, q])
                cur[2] += float(inc_a[s, r])
                cur[3] += float(inc_b[s, r])
                cur[4] = max(cur[4], 0.0 if np.isnan(sr[s, r]) else float(sr[s, r]))
                cur[5] += 1
                status[i] = "active"
            else:  # the tick a report closes on
                status[i], window_end[i] = "ended", times[r]
            report[i], first_from[i], totals[i], ticks_active[i], onset_at[i] = cur[0], cur[1], cur[2:5], cur[5], cur[6]
            if not state[s, r]:
                cur = None
    a, b = totals[:, 0], totals[:, 1]
    has = report != None  # noqa: E711  (element-wise)
    out["report_id"] = report
    out["report_status"] = status
    out["first_detected_from"] = pd.to_datetime(first_from)
    out["window_start"] = pd.to_datetime(onset_at)
    out["window_end"] = pd.to_datetime(window_end)
    out["report_direction"] = np.where(has, np.where(a >= b, "spike", "drop"), None)
    out["severity"] = np.where(has, 1.0 - np.exp(-np.abs(np.log((a + 1.0) / (b + 1.0))) / p.severity_scale), np.nan)
    out["peak_anomaly_score"] = totals[:, 2]
    out["attributed_sales_total"] = a
    out["baseline_sales_total"] = b
    out["ticks_active"] = ticks_active
    return out


# -- Spark transform ------------------------------------------------------------------------------------
PROFILE_COLS = [
    "date",
    "baseline",
    "history_days",
    "overdispersion",
    "dispersion",
    "calibration_sample",
    "scored_ticks",
    "calibration",
]
SAMPLE_COLS = ["series_key", "date", "calibration_sample", "scored_ticks"]
PROFILE_SCHEMA = (
    "series_key string, store_id string, sku string, retailer_id string, region string, category string, "
    "date date, baseline array<double>, history_days int, overdispersion double, dispersion double, "
    "calibration_sample array<double>, scored_ticks int, calibration array<double>"
)


def batch_of(series_key: str = "series_key", batches: int = 64) -> Column:
    """The pandas call a series goes to: a fixed hash, so a series' rows always meet in one call."""
    return F.pmod(F.xxhash64(series_key), F.lit(batches))


def profiles(history: DataFrame, earlier: DataFrame, p: Params, days: list[date]) -> DataFrame:
    """Sales history (from ``days[0] - 1 - lookback_days``) and the kept calibration samples of the days before
    (``SAMPLE_COLS``) -> one baseline row per series and day of ``days``."""
    params = asdict(p)

    def fn(_key, pdf: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
        return series_profiles(pdf, Params(**params), days, kept)

    batch = batch_of(batches=p.series_batches).alias("_batch")
    return history.groupBy(batch).cogroup(earlier.groupBy(batch)).applyInPandas(fn, PROFILE_SCHEMA)


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
    mrdl = rows.where(F.col("report_status") != "none").withColumn("direction", F.col("report_direction"))
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
    history = read_sales(lake, run_id, first - timedelta(days=p.lookback_days + 1), last)
    # The calibration samples kept with the days before (each day's row holds the day before's sample).
    before = [missing[0] - timedelta(days=i) for i in range(1, p.lookback_days)]
    earlier = lake.read("baseline_profile_log", run_id).where(F.col("date").isin(before)).select(*SAMPLE_COLS)
    rows = profiles(history, earlier, p, missing).select(
        F.lit(run_id).alias("run_id"),
        "*",
        F.lit(model_version).alias("model_version"),
        F.when(F.col("baseline").isNull(), "insufficient_history")
        .when(F.col("history_days") < p.min_history_days, "short_history")
        .otherwise("ok")
        .alias("report_status"),
        F.col("date").cast("timestamp").alias("written_at"),
        (F.col("baseline").isNull() | (F.col("history_days") < p.min_history_days)).alias("is_degraded"),
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
