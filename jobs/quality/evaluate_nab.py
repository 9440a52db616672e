"""Detection on real series: each Numenta Anomaly Benchmark file as one store's sales, scored with NAB's standard
profile.

Where ``../shared/data/nab/`` exists (beside the repository), every CSV there (``timestamp,value``) that
``combined_windows.json`` labels is written as the sales of one store (store ``NAB``, SKU = the file's stem) to a
scratch landing zone, with the tick set to the file's own sampling interval. Ingest and detection run over the
file's whole range in one call each, in a scratch lakehouse under ``<lakehouse>/../eval-nab/<stem>``. The tick at
which each report was first written is a detection, placed at the file row that tick covers; the detections are
scored as NAB v1.1 scores them (``nab/sweeper.py`` and the runner's normalisation): an early detection in a
labelled window earns up to +1, a detection outside every window costs up to 0.11, a missed window costs 1, and
the total is normalised so that a detector that never fires scores 0 and a perfect one 100. Where the folder is
absent, it says so and exits 0.

Detection runs with ``NAB_DETECTION`` over the configured ``detection.*`` settings (``--detection KEY=VALUE`` to
change them, e.g. ``--detection lookback_days=14`` for the shipped settings).

    python -m jobs.quality.evaluate_nab [--config conf/mrs.yaml] [--nab-dir ../shared/data/nab] \\
        [--detection K=V] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.lib.config import REPO_ROOT, Config, ConfigError, derive_config, load_config
from jobs.lib.spark import build_spark, quiet_logs
from jobs.lib.tables import Lakehouse
from jobs.runtime import pipeline
from jobs.stages import detect_anomalies, ingest

# Writes only to its own scratch lakehouses (through ingest and detection), never to the configured one.
WRITES: tuple[str, ...] = ()

DEFAULT_NAB_DIR = REPO_ROOT.parent / "shared" / "data" / "nab"
LABELS_FILE = "combined_windows.json"
STORE_ID = "NAB"


@dataclass(frozen=True)
class Weights:
    """A NAB application profile's cost matrix (``config/profiles.json``)."""

    tp: float
    fp: float
    fn: float


STANDARD = Weights(tp=1.0, fp=0.11, fn=1.0)
PROBATION = 0.15  # NAB's probationaryPercent: the start of a file where detectors are still learning
PROBATION_CAP_ROWS = 5000  # ... computed on at most this many rows (nab/sweeper.py _getProbationaryLength)

# Detection settings for these series over the configured ones: none, the shipped settings are what is measured.
NAB_DETECTION: dict = {}

# From the data folder's README: NAB's published scoreboard, standard profile, over NAB's whole corpus.
PUBLISHED = (("ARTime", 74.9), ("Numenta HTM", 70.0), ("CAD OSE", 69.9), ("Twitter ADVec", 47.1))


# -- NAB scoring (pure) ---------------------------------------------------------------------------------
def scaled_sigmoid(position) -> np.ndarray:
    """NAB's weight of a detection at ``position``: -1 at 3 window lengths or more past a window, else
    2 / (1 + exp(5x)) - 1 (0.987 at a window's left edge, 0 at its right edge, negative past it)."""
    x = np.asarray(position, dtype=float)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0)


def probation_rows(n_rows: int, probation: float = PROBATION) -> int:
    """How many leading rows NAB leaves unscored: ``probation`` of the file, computed on at most 5000 rows."""
    return math.ceil(min(math.floor(probation * n_rows), probation * PROBATION_CAP_ROWS))


def window_rows(timestamps: pd.DatetimeIndex, windows: Sequence[tuple]) -> list[tuple[int, int]]:
    """Each labelled (start, end) window as its first and last row index (inclusive); windows that cover no
    row of the series (a slice of a file) are dropped, partly covered ones clipped to it."""
    out = []
    for start, end in windows:
        lo = int(timestamps.searchsorted(pd.Timestamp(start), side="left"))
        hi = int(timestamps.searchsorted(pd.Timestamp(end), side="right")) - 1
        if lo <= hi:
            out.append((lo, hi))
    for (_, r0), (l1, _) in itertools.pairwise(out):
        if l1 <= r0:
            raise ValueError(f"labelled windows overlap or are not in time order (rows {r0} and {l1})")
    return out


def nab_score(
    timestamps,
    detected,
    windows: Sequence[tuple],
    probation: float = PROBATION,
    weights: Weights = STANDARD,
) -> dict:
    """Score one file's detections (a boolean per row) against its labelled windows as NAB v1.1 does.

    Per detection after the probationary rows: inside a window only the window's first detection counts, scoring
    ``tp * scaledSigmoid(-(right - i + 1) / width) / scaledSigmoid(-1)`` (+tp at the left edge, about 0 at the
    right); outside every window ``fp * scaledSigmoid(|i - right| / (width - 1))`` of the window before it
    (-fp before any window, and from 3 window lengths past one). A window without a detection scores -fn.
    Normalised as NAB's runner does: 100 * (raw - null) / (perfect - null), with null = -fn and perfect = +tp
    per window (the never-firing and the perfect detector's raw scores).
    """
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    det = np.asarray(detected, dtype=bool)
    if len(det) != len(ts):
        raise ValueError(f"detected has {len(det)} values for {len(ts)} timestamps")
    if not ts.is_monotonic_increasing:
        raise ValueError("timestamps must be in ascending order")
    n = len(ts)
    skip = probation_rows(n, probation)
    bounds = window_rows(ts, windows)
    # A window entirely inside the probationary rows is not scored at all (NAB names those rows "probationary").
    scored = [(lo, hi) for lo, hi in bounds if hi >= skip]
    hits = np.flatnonzero(det)
    hits = hits[hits >= skip]
    max_tp = float(scaled_sigmoid(-1.0))

    owner = np.full(n, -1)
    for k, (lo, hi) in enumerate(bounds):
        owner[lo : hi + 1] = k
    rights = np.array([hi for _, hi in bounds], dtype=int)
    widths = np.array([hi - lo + 1 for lo, hi in bounds], dtype=float)

    outside = hits[owner[hits] < 0]
    if bounds:
        prev = np.searchsorted(rights, outside, side="left") - 1  # the last window ending before the detection
        k = np.maximum(prev, 0)
        past = np.abs(outside - rights[k]) / np.maximum(widths[k] - 1.0, 1.0)
        position = np.where(prev >= 0, past, 3.0)
    else:
        position = np.full(len(outside), 3.0)
    fp_scores = weights.fp * scaled_sigmoid(position)

    tp_score, fn, delays, inside = 0.0, 0, [], 0
    for lo, hi in scored:
        mine = hits[(hits >= lo) & (hits <= hi)]
        inside += len(mine)
        if len(mine):
            first = int(mine[0])
            tp_score += weights.tp * float(scaled_sigmoid(-(hi - first + 1) / (hi - lo + 1))) / max_tp
            delays.append(first - lo)
        else:
            fn += 1
            delays.append(None)
    raw = tp_score - weights.fn * fn + float(np.sum(fp_scores))
    null, perfect = -weights.fn * len(scored), weights.tp * len(scored)
    return {
        "rows": n,
        "probation_rows": skip,
        "windows": len(scored),
        "detections": len(hits),
        "tp": len(scored) - fn,
        "fp": len(outside),
        "fn": fn,
        "redundant": inside - (len(scored) - fn),  # later detections in an already detected window: NAB ignores them
        "tp_score": tp_score,
        "fp_score": float(np.sum(fp_scores)),
        "raw": raw,
        "null": null,
        "perfect": perfect,
        "normalised": 100.0 * (raw - null) / (perfect - null) if perfect > null else None,
        "delays_rows": delays,
    }


def pooled(results: list[dict]) -> float | None:
    """NAB's corpus figure: the summed raw scores normalised by the summed null and perfect scores."""
    raw, null, perfect = (sum(r[k] for r in results) for k in ("raw", "null", "perfect"))
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else None


# -- NAB files ------------------------------------------------------------------------------------------
def load_windows(nab_dir: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """The labelled windows by file name (NAB keys them by ``<category>/<file>.csv``)."""
    path = nab_dir / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: labelled windows not found")
    try:
        raw = json.loads(path.read_text())
        return {
            Path(key).name: [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in windows] for key, windows in raw.items()
        }
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: expected {{file: [[start, end], ...]}}: {e}") from None


def load_series(path: Path) -> pd.DataFrame:
    """A NAB data file as ``timestamp`` (naive, read as UTC) and ``value``, checked to be usable as sales."""
    frame = pd.read_csv(path)
    if list(frame.columns[:2]) != ["timestamp", "value"]:
        raise ValueError(f"{path}: expected columns timestamp,value, found {list(frame.columns)}")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["value"] = pd.to_numeric(frame["value"], errors="raise")
    if frame.empty or not frame["timestamp"].is_monotonic_increasing:
        raise ValueError(f"{path}: no rows, or timestamps not in ascending order")
    if (frame["value"] < 0).any():
        raise ValueError(f"{path}: negative values cannot be read as units sold")
    return frame[["timestamp", "value"]]


def tick_minutes_of(timestamps: pd.Series) -> int:
    """The file's sampling interval in minutes (its most common step), which must be a valid pipeline tick."""
    step = pd.Series(timestamps).diff().dropna().mode()
    minutes = step.iloc[0].total_seconds() / 60 if len(step) else 0
    if minutes < 1 or not float(minutes).is_integer() or 1440 % int(minutes):
        raise ValueError(f"sampling interval {minutes} min is not a whole number of minutes dividing a day")
    return int(minutes)


def write_landing(frame: pd.DataFrame, landing: Path, stem: str) -> Path:
    """The series as one sales file of store ``NAB``, SKU ``stem``. One undated file (ingest reads those in
    every run) rather than the generator's file per day: a whole-range ingest then reads one file, not 200."""
    folder = landing / "unified_sales_data"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"nab_{stem}.csv"
    pd.DataFrame(
        {
            "timestamp": frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "store_id": STORE_ID,
            "sku": stem,
            "units": frame["value"],
        }
    ).to_csv(out, index=False)
    return out


def first_report_ticks(spark: SparkSession, cfg: Config, run_id: str) -> pd.Series:
    """The tick at which each report was first written (one row per report reaches the driver)."""
    mrdl = Lakehouse(spark, cfg).read("minority_reports_detected_log", run_id)
    rows = mrdl.groupBy("report_id").agg(F.min("written_at").alias("first")).collect()
    return pd.Series(sorted(pd.Timestamp(r["first"]) for r in rows), dtype="datetime64[ns]")


def detection_mask(timestamps: pd.Series, ticks: pd.Series, tick_minutes: int) -> np.ndarray:
    """A boolean per file row: True where a report was first written at the tick the row falls in."""
    floors = pd.DatetimeIndex(pd.Series(timestamps).dt.floor(f"{tick_minutes}min"))
    idx = floors.searchsorted(pd.DatetimeIndex(ticks), side="left")
    mask = np.zeros(len(floors), dtype=bool)
    mask[idx[idx < len(floors)]] = True
    return mask


def evaluate_series(
    spark: SparkSession,
    cfg: Config,
    stem: str,
    frame: pd.DataFrame,
    windows: Sequence[tuple],
    detection: dict | None = None,
) -> dict:
    """Ingest and detect over one NAB series (``frame``: timestamp, value) in a fresh scratch lakehouse, and
    score the detections. ``detection`` overrides ``detection.*`` keys of the scratch config."""
    started = time.perf_counter()
    tick = tick_minutes_of(frame["timestamp"])
    root = cfg.paths.lakehouse.parent / "eval-nab" / stem
    for sub in ("landing", "lakehouse", "metastore", "artifacts"):
        shutil.rmtree(root / sub, ignore_errors=True)  # a previous evaluation's rows would be kept by append_new
    overrides = {
        **{f"paths.{p}": str(root / p) for p in ("landing", "lakehouse", "metastore", "artifacts")},
        "pipeline.tick_minutes": tick,
        **{f"detection.{k}": v for k, v in (detection or {}).items()},
    }
    scfg = derive_config(root, overrides, cfg.source)
    write_landing(frame, scfg.paths.landing, stem)
    step = pd.Timedelta(minutes=tick)
    first, last = frame["timestamp"].iloc[0].floor(step), frame["timestamp"].iloc[-1].floor(step)
    start, end = first.to_pydatetime().replace(tzinfo=UTC), (last + step).to_pydatetime().replace(tzinfo=UTC)
    run_id = f"nab-{stem}"
    written = pipeline.run_range(spark, scfg, start, end, run_id, (ingest, detect_anomalies))
    ticks = first_report_ticks(spark, scfg, run_id)
    mask = detection_mask(frame["timestamp"], ticks, tick)
    scored = nab_score(frame["timestamp"], mask, windows)
    return {
        "file": stem,
        "tick_minutes": tick,
        "detection": {
            k: getattr(scfg.detection, k) for k in ("lookback_days", "windows", "false_alarm_budget", "off_ticks")
        },
        "reports": len(ticks),
        **scored,
        "delays_hours": [None if d is None else round(d * tick / 60, 2) for d in scored["delays_rows"]],
        "rows_ingested": written["ingest"].get("sales_timeseries_data"),
        "scratch": str(root),
        "seconds": round(time.perf_counter() - started, 1),
    }


def run(spark: SparkSession, cfg: Config, nab_dir: Path, detection: dict | None = None) -> list[dict]:
    """One result per labelled file of ``nab_dir``, then a summary: the mean normalised score over the files and
    NAB's pooled corpus figure over them. ``detection`` overrides ``detection.*`` (default ``NAB_DETECTION``)."""
    detection = NAB_DETECTION if detection is None else detection
    labels = load_windows(nab_dir)
    files = [p for p in sorted(nab_dir.glob("*.csv")) if p.name in labels]
    if not files:
        raise FileNotFoundError(f"{nab_dir}: no CSV file that {LABELS_FILE} labels")
    results = [evaluate_series(spark, cfg, p.stem, load_series(p), labels[p.name], detection) for p in files]
    normalised = [r["normalised"] for r in results if r["normalised"] is not None]
    summary = {
        "file": "(all)",
        "normalised_mean": float(np.mean(normalised)) if normalised else None,
        "normalised_pooled": pooled(results),
        **{k: sum(r[k] for r in results) for k in ("windows", "reports", "tp", "fp", "fn", "seconds")},
    }
    return [*results, summary]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def report(results: list[dict]) -> str:
    """The results as a text table, with the published scoreboard for context."""
    files, summary = [r for r in results if r["file"] != "(all)"], [r for r in results if r["file"] == "(all)"]
    w = STANDARD
    lines = [
        f"NAB standard profile (tp {w.tp}, fp {w.fp}, fn {w.fn}; first {PROBATION:.0%} of rows, at most "
        f"{probation_rows(10**9)}, unscored); normalised: never firing = 0, perfect = 100",
        f"  {'file':<22}{'tick':>5}{'rows':>7}{'reports':>9}{'TP':>4}{'FP':>5}{'FN':>4}{'raw':>9}{'score':>9}"
        f"{'secs':>7}  first-detection delay per window (hours)",
    ]
    if files:
        settings = ", ".join(f"{k} {v}" for k, v in files[0]["detection"].items())
        lines.insert(1, f"  detection settings: {settings} (windows and off_ticks in ticks)")
    for r in files:
        score = _fmt(r["normalised"])
        delays = ", ".join("missed" if d is None else f"{d:g}" for d in r["delays_hours"])
        lines.append(
            f"  {r['file']:<22}{r['tick_minutes']:>4}m{r['rows']:>7}{r['reports']:>9}{r['tp']:>4}{r['fp']:>5}"
            f"{r['fn']:>4}{r['raw']:>9.3f}{score:>9}{r['seconds']:>7.0f}  {delays}"
        )
    for s in summary:
        lines.append(
            f"  mean normalised score {_fmt(s['normalised_mean'])}; pooled over these files as NAB pools its "
            f"corpus {_fmt(s['normalised_pooled'])}"
        )
    lines.append(
        "  published NAB scoreboard (standard profile, whole corpus, each detector's threshold tuned on the labels): "
        + ", ".join(f"{name} {score:g}" for name, score in PUBLISHED)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config YAML (default: $MRS_CONFIG or conf/mrs.yaml)")
    p.add_argument("--nab-dir", type=Path, default=DEFAULT_NAB_DIR, help="NAB data files and combined_windows.json")
    p.add_argument(
        "--detection",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a detection.* setting for the NAB series (YAML value; repeatable); default {NAB_DETECTION}",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args(argv)
    detection = dict(NAB_DETECTION)
    for item in a.detection:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            p.error(f"--detection {item!r}: expected KEY=VALUE, e.g. lookback_days=14")
        detection[key.strip().removeprefix("detection.")] = yaml.safe_load(value)
    nab_dir = a.nab_dir.resolve()
    if not nab_dir.is_dir():
        print(f"skipped: {os.path.relpath(nab_dir, REPO_ROOT)} not found ({nab_dir})")
        return
    try:
        cfg = load_config(a.config)
        load_config(a.config, {f"detection.{k}": v for k, v in detection.items()})  # fail before Spark starts
    except ConfigError as e:
        p.error(str(e))
    spark = build_spark(cfg, "evaluate_nab")
    quiet_logs(spark)
    try:
        results = run(spark, cfg, nab_dir, detection)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"evaluate_nab: {e}") from None
    finally:
        spark.stop()
    print(json.dumps(results, indent=2, default=str) if a.json else report(results))


if __name__ == "__main__":
    main()
