"""Labelled anomaly windows (the generator's ground truth, or an analyst's CSV of ``series_key,start,end,
anomaly_type``) and how reports are matched to them: the cluster library learns from them, evaluation scores
against them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# The cluster name each labelled anomaly type teaches the library.
NAMES = {
    "social_viral": "TikTok Viral",
    "competitor_stockout": "Competitor Stockout",
    "promo_with_campaign": "Promo Uplift",
    "store_incident": "Store Outage",
    "feed_duplication": "Feed Duplication",
    "unit_glitch": "Unit Glitch",
}
UNEXPLAINED = "Unexplained Fluctuation"


def label_reports(
    reports: pd.DataFrame, truth: pd.DataFrame, tick_seconds: int, column: str = "anomaly_type"
) -> list[str | None]:
    """For each report, ``column`` of the labelled window on its series it overlaps most (None if none)."""
    tick = pd.Timedelta(seconds=tick_seconds)
    labels = []
    by_series = {k: g for k, g in truth.groupby("series_key")}
    for r in reports.itertuples(index=False):
        g = by_series.get(r.series_key)
        label = None
        if g is not None:
            start = pd.Timestamp(r.window_start)
            end = pd.Timestamp(r.window_end) if not pd.isna(r.window_end) else pd.Timestamp(r.written_at) + tick
            overlap = (g["end"].clip(upper=end) - g["start"].clip(lower=start)).dt.total_seconds().to_numpy()
            if (overlap > 0).any():
                label = g[column].iloc[int(np.argmax(overlap))]
        labels.append(label)
    return labels


def read_truth(path: Path) -> pd.DataFrame:
    truth = pd.read_csv(path)
    missing = {"series_key", "start", "end", "anomaly_type"} - set(truth.columns)
    if missing:
        raise ValueError(f"--labels {path}: lacks column(s) {sorted(missing)}")
    for c in ("start", "end"):
        truth[c] = pd.to_datetime(truth[c], utc=True).dt.tz_localize(None)
    return truth
