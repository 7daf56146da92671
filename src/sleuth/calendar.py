"""Calendar context: public holidays (``holidays`` package) in the configured time zone."""
from __future__ import annotations

import numpy as np
import pandas as pd


def local_times(buckets: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """Wall-clock times in ``timezone`` of UTC times (naive means UTC)."""
    idx = pd.DatetimeIndex(buckets)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert(timezone).tz_localize(None)


def local_time(ts: pd.Timestamp, timezone: str) -> pd.Timestamp:
    """One UTC time's wall-clock time in ``timezone``."""
    return local_times(pd.DatetimeIndex([ts]), timezone)[0]


def local_dates(buckets: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """The local date (midnight) of each UTC time in ``timezone``."""
    return local_times(buckets, timezone).normalize()


def holiday_names(buckets: pd.DatetimeIndex, countries: list[str], timezone: str = "UTC") -> list[str | None]:
    """The holiday name of each bucket's local date (first country that has one), else None."""
    if not countries or len(buckets) == 0:
        return [None] * len(buckets)
    import holidays as hol

    dates = local_dates(buckets, timezone)
    years = sorted(set(dates.year))
    cals = [hol.country_holidays(c, years=years) for c in countries]
    out: list[str | None] = []
    for d in dates.date:
        out.append(next((f"{cal.get(d)} ({c})" for c, cal in zip(countries, cals) if d in cal), None))
    return out


def holiday_reference(buckets: pd.DatetimeIndex, names: list[str | None]) -> np.ndarray:
    """For each holiday bucket, the bucket at the same time of day on the same holiday's most
    recent earlier occurrence in ``buckets`` (-1 when there is none, or for ordinary days), so
    a detector can learn a holiday's effect from last year (Easter and Thanksgiving move)."""
    idx = pd.DatetimeIndex(buckets)
    ref = np.full(len(idx), -1)
    latest: dict[tuple[str, object], int] = {}  # (holiday, time of day) -> its latest bucket
    for i, (ts, name) in enumerate(zip(idx, names)):
        if name is not None:
            ref[i] = latest.get((name, ts.time()), -1)
            latest[(name, ts.time())] = i
    return ref


def holiday_mask(buckets: pd.DatetimeIndex, countries: list[str], timezone: str = "UTC") -> np.ndarray:
    return np.array([n is not None for n in holiday_names(buckets, countries, timezone)], dtype=bool)


def local_clock(buckets: pd.DatetimeIndex, timezone: str, step: pd.Timedelta = pd.Timedelta(hours=1)) -> np.ndarray | None:
    """Each bucket's local offset from UTC in buckets, or None when it never changes (UTC, or a
    zone without daylight saving in this range): detectors then compare plain lags."""
    idx = pd.DatetimeIndex(buckets)
    if timezone == "UTC" or len(idx) == 0:
        return None
    local = (idx.tz_localize("UTC") if idx.tz is None else idx).tz_convert(timezone)
    offsets = np.asarray([o.total_seconds() for o in local.map(lambda ts: ts.utcoffset())])
    clock = np.round(offsets / step.total_seconds()).astype(int)
    return None if (clock == clock[0]).all() else clock
