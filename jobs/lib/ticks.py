"""Tick arithmetic. Everything is UTC; a tick is labelled by its start."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F


def parse_ts(value: str | datetime, name: str = "timestamp") -> datetime:
    """Parse an ISO-8601 timestamp (``Z``, offset or naive-as-UTC) into an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not an ISO-8601 timestamp") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def fmt_ts(dt: datetime) -> str:
    """The spec's identity format: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return parse_ts(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_interval(start: datetime, end: datetime, tick_seconds: int) -> None:
    """Raise with a clear message unless [start, end) is a non-empty range of whole ticks."""
    if end <= start:
        raise ValueError(f"--end ({fmt_ts(end)}) must be after --start ({fmt_ts(start)})")
    for name, dt in (("--start", start), ("--end", end)):
        if int(dt.timestamp()) % tick_seconds:
            raise ValueError(f"{name} ({fmt_ts(dt)}) is not on the {tick_seconds // 60}-minute tick grid")


def ticks(start: datetime, end: datetime, tick_seconds: int) -> list[datetime]:
    step = timedelta(seconds=tick_seconds)
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return out


def dates_of(start: datetime, end: datetime) -> list[date]:
    """UTC dates touched by the ticks of [start, end)."""
    last = (end - timedelta(microseconds=1)).date()
    return [start.date() + timedelta(days=i) for i in range((last - start.date()).days + 1)]


def naive_utc(value) -> pd.Timestamp:
    """A timestamp as pandas hands it to UDFs: naive, in UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def dates_between(lo: datetime, end: datetime) -> Column:
    """A ``date`` partition filter for the ticks of [lo, end): lets Delta skip every other partition."""
    return F.col("date").between(F.lit(lo.date()), F.lit((end - timedelta(microseconds=1)).date()))
