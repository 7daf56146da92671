"""The time span sleuth works on: the bulk of the data, never a stray timestamp's.

Every series is a dense ``[series, bucket]`` grid from the first bucket to the last, so one event
dated 2036 in a month of 2026 data would allocate ten years of hours for every series. The span
kept is the longest stretch of days in which no two consecutive days with events lie more than
``max_gap_days`` apart (the stretch holding the most events); events outside it are counted,
named in one warning and left out. Data dated in the future, or a revenue column with nothing in
it, is kept and warned about.
"""
from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pandas as pd

#: data ending more than this after the present is called future-dated (time zones differ by < 1 day)
FUTURE_SLACK = pd.Timedelta(days=2)


def _utc_literal(ts: pd.Timestamp) -> ibis.Value:
    return ibis.literal(ts.tz_localize("UTC").to_pydatetime())


def _naive(values) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


def kept_days(days: np.ndarray, counts: np.ndarray, max_gap_days: int) -> tuple[int, int]:
    """Indices ``[a, b]`` into the sorted ``days`` (numpy datetime64[D]) of the stretch kept: the
    one with the most events among the runs of days no more than ``max_gap_days`` apart (the
    latest on a tie)."""
    gaps = np.diff(days).astype("timedelta64[D]").astype(int)
    cuts = np.flatnonzero(gaps > max_gap_days) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(days)] - 1
    totals = np.add.reduceat(counts, starts)
    best = len(totals) - 1 - int(np.argmax(totals[::-1]))
    return int(starts[best]), int(ends[best])


def bounded_span(table: ibis.Table, source: str, max_gap_days: int,
                 now: pd.Timestamp | None = None) -> tuple[ibis.Table, list[str]]:
    """``table`` without the events far from the bulk of the data, and the warnings to show."""
    per_day = table.group_by(day=table.timestamp.truncate("D")).aggregate(n=table.count()).execute()
    per_day["day"] = _naive(per_day["day"])
    per_day = per_day.sort_values("day")
    days = per_day["day"].to_numpy().astype("datetime64[D]")
    counts = per_day["n"].to_numpy().astype(np.int64)
    a, b = kept_days(days, counts, max_gap_days)
    notes = []
    lo, hi = pd.Timestamp(days[a]), pd.Timestamp(days[b]) + pd.Timedelta(days=1)
    dropped = int(counts[:a].sum() + counts[b + 1:].sum())
    if dropped:
        outside = np.r_[days[:a], days[b + 1:]]
        first, last = pd.Timestamp(outside.min()), pd.Timestamp(outside.max())
        when = f"on {first:%Y-%m-%d}" if first == last else f"between {first:%Y-%m-%d} and {last:%Y-%m-%d}"
        noun = "event" if dropped == 1 else "events"
        notes.append(
            f"warning: {source}: left out {dropped:,} {noun} dated {when}, more than {max_gap_days} days away from "
            f"the rest of the data ({lo:%Y-%m-%d} to {hi - pd.Timedelta(days=1):%Y-%m-%d}); check their timestamps, "
            "or raise max_gap_days in sleuth.yaml to keep them")
        table = table.filter((table.timestamp >= _utc_literal(lo)) & (table.timestamp < _utc_literal(hi)))
    today = now if now is not None else pd.Timestamp(dt.datetime.now(dt.timezone.utc)).tz_localize(None)
    if hi - pd.Timedelta(days=1) > today + FUTURE_SLACK:
        ahead = (hi - pd.Timedelta(days=1) - today).days
        notes.append(
            f"warning: {source}: the data runs until {hi - pd.Timedelta(days=1):%Y-%m-%d}, {ahead:,} days after today "
            f"({today:%Y-%m-%d}); incidents are dated as the data is: check the timestamp column's unit and time zone")
    return table, notes


def empty_measures(table: ibis.Table, mapping: dict[str, str | None]) -> list[str]:
    """A warning when the revenue column is there but holds no number in any row."""
    col = mapping.get("revenue")
    if not col:
        return []
    if int(table.revenue.count().execute()) == 0:
        return [f"warning: column {col!r} (revenue) is empty in every row: revenue, average order value and every "
                "sum over it are 0; check the export or map another column with columns: {revenue: …}"]
    return []
