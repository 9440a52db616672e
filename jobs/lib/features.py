"""The anomaly shape model shared by clustering, the cluster library and the t-SNE job (numpy only).

A report's *slice* is its ticks from ``window_start`` to the snapshot's tick: actual and baseline units, revenue,
how many input rows made each tick, and how much of the report's neighbourhood was anomalous at that tick.
``slice_features`` turns it into a fixed-length, scale-independent vector (``FEATURES`` is its order);
``Library`` matches vectors to named centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURES = (
    "uplift",  # mean log-ratio ln((actual + 1) / (baseline + 1)) over the slice
    "peak",  # the signed log-ratio of largest magnitude
    "rise_slope",  # log-ratio gained per hour from the baseline to the peak
    "decay_slope",  # log-ratio change per hour from the peak to the latest tick
    "volatility",  # standard deviation of tick-to-tick log-ratio changes
    "skewness",  # temporal skew of the deviation: > 0 when it rises fast and fades slowly
    "kurtosis",  # temporal excess kurtosis of the deviation: > 0 when it is peaked, < 0 for a plateau
    "duration",  # ln(1 + hours in the slice)
    "peak_position",  # where the peak sits in the slice, 0 (start) to 1 (latest tick)
    "tod_sin",  # time of day of window_start on the unit circle
    "tod_cos",
    "dow_sin",  # day of week of window_start on the unit circle
    "dow_cos",
    "breadth_store",  # most, over the slice, of the share of the store's other series anomalous at once
    "breadth_sku_region",  # ... of the same SKU's series in the region's other stores
    "breadth_category_region",  # ... of the category's other series in the region
    "breadth_sku_retailer",  # ... of the same SKU's series in the retailer's other stores
    "zero_share",  # share of ticks selling nothing where the baseline expected some
    "unit_price_shift",  # ln(revenue per unit in the slice / in the week before): units misreported
    "duplicate_share",  # share of ticks made from more than one input row for the same key (re-sent batches)
)
BREADTH = FEATURES[13:17]
_CLIP = 10.0  # slopes and moments: one very short slice must not dominate a distance


def slice_features(
    hours: np.ndarray,
    actual: np.ndarray,
    baseline: np.ndarray,
    revenue: np.ndarray,
    source_rows: np.ndarray,
    breadth: np.ndarray,
    ref_price: float,
    window_start: pd.Timestamp,
    tick_hours: float,
) -> tuple[np.ndarray | None, int, bool]:
    """The feature vector of one slice, its count of usable ticks, and whether any tick was unusable.

    ``hours`` are tick times in hours since window_start; ``breadth`` is (ticks x 4) in ``BREADTH`` order.
    Ticks without actual or baseline units are left out (the vector is then degraded); with none left the
    vector is None.
    """
    ok = ~(np.isnan(actual) | np.isnan(baseline))
    degraded = bool((~ok).any())
    n = int(ok.sum())
    if n == 0:
        return None, 0, True
    a, b, t = actual[ok], baseline[ok], hours[ok]
    r = np.log((a + 1.0) / (b + 1.0))
    i = int(np.argmax(np.abs(r)))
    span = float(t[-1] - t[0]) + tick_hours
    rise = r[i] / (t[i] - t[0] + tick_hours)
    decay = (r[-1] - r[i]) / (t[-1] - t[i]) if t[-1] > t[i] else 0.0
    volatility = float(np.std(np.diff(r))) if n > 1 else 0.0
    skew, kurt = _temporal_moments(t, np.abs(r))
    tod = 2 * np.pi * (window_start.hour + window_start.minute / 60.0) / 24.0
    dow = 2 * np.pi * window_start.dayofweek / 7.0
    spread = np.nan_to_num(np.nanmax(breadth, axis=0)) if len(breadth) else np.zeros(len(BREADTH))
    expected = b > 0.5
    zero_share = float(np.mean(a[expected] == 0)) if expected.any() else 0.0
    sold = ok & (actual > 0) & ~np.isnan(revenue)
    price_shift = 0.0
    if sold.any() and ref_price and ref_price > 0 and np.sum(actual[sold]) > 0:
        price_shift = float(np.log(np.sum(revenue[sold]) / np.sum(actual[sold]) / ref_price))
    dup = float(np.mean(source_rows[~np.isnan(source_rows)] > 1)) if (~np.isnan(source_rows)).any() else 0.0
    vec = np.array(
        [
            float(np.mean(r)),
            float(r[i]),
            float(rise),
            float(decay),
            volatility,
            skew,
            kurt,
            float(np.log1p(span)),
            float((t[i] - t[0]) / (t[-1] - t[0])) if n > 1 and t[-1] > t[0] else 0.0,
            float(np.sin(tod)),
            float(np.cos(tod)),
            float(np.sin(dow)),
            float(np.cos(dow)),
            *map(float, spread),
            zero_share,
            float(np.clip(price_shift, -5.0, 5.0)),
            dup,
        ]
    )
    return np.clip(vec, -_CLIP, _CLIP), n, degraded


def _temporal_moments(t: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Skew and excess kurtosis of time weighted by the size of the deviation (0, 0 when undefined)."""
    if len(t) < 3 or w.sum() <= 0:
        return 0.0, 0.0
    p = w / w.sum()
    mu = float(np.sum(p * t))
    var = float(np.sum(p * (t - mu) ** 2))
    if var <= 1e-12:
        return 0.0, 0.0
    sd = np.sqrt(var)
    return float(np.sum(p * ((t - mu) / sd) ** 3)), float(np.sum(p * ((t - mu) / sd) ** 4) - 3.0)


@dataclass(frozen=True)
class Library:
    """Named centroids of one library version, and the scaling they were learned in."""

    version: str
    cluster_ids: list[str]
    names: list[str]
    detection_types: list[str | None]
    centroids: np.ndarray  # clusters x features, scaled and weighted
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    metric: str
    distance_scale: float

    @classmethod
    def from_rows(cls, rows: pd.DataFrame) -> Library:
        rows = rows.sort_values("cluster_id")
        first = rows.iloc[0]
        if tuple(first["feature_names"]) != FEATURES:
            raise ValueError(
                f"cluster library {first['library_version']} was built for features {list(first['feature_names'])}, "
                f"this code computes {list(FEATURES)}: rebuild it (make cluster-library)"
            )
        return cls(
            version=str(first["library_version"]),
            cluster_ids=list(rows["cluster_id"]),
            names=list(rows["cluster_name"]),
            detection_types=[None if pd.isna(v) else v for v in rows["detection_type"]],
            centroids=np.vstack([np.asarray(c, dtype=float) for c in rows["centroid"]]),
            mean=np.asarray(first["feature_mean"], dtype=float),
            scale=np.asarray(first["feature_scale"], dtype=float),
            weights=np.asarray(first["feature_weights"], dtype=float),
            metric=str(first["distance_metric"]),
            distance_scale=float(first["distance_scale"]),
        )

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(x) - self.mean) / self.scale * self.weights

    def distances(self, z: np.ndarray) -> np.ndarray:
        return pairwise_distances(z, self.centroids, self.metric)

    def match(self, x: np.ndarray) -> tuple[int, float, float, int | None]:
        """Nearest centroid of one vector: its index, similarity, match confidence and the runner-up's index.

        similarity = 2^-(d / 2s)^2 with s the library's typical member distance (0.84 for a typical member,
        0.5 at twice that distance); confidence = 1 - d_best / d_second, which falls to 0 as the runner-up
        is as close as the best.
        """
        d = self.distances(self.transform(x))[0]
        order = np.argsort(d, kind="stable")
        best = int(order[0])
        sim = float(2.0 ** (-((d[best] / (2.0 * self.distance_scale)) ** 2)))
        if len(order) == 1:
            return best, sim, 1.0, None
        second = int(order[1])
        conf = 1.0 - d[best] / d[second] if d[second] > 0 else 0.0
        return best, sim, float(np.clip(conf, 0.0, 1.0)), second


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Euclidean or cosine (1 - cos) distances between the rows of ``a`` and of ``b``."""
    if metric == "cosine":
        na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return np.clip(1.0 - na @ nb.T, 0.0, 2.0)
    return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2), 0.0))
