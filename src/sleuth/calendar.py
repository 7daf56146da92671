"""Calendar context: public holidays (``holidays`` package) in the configured time zone."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _local_dates(buckets: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(buckets)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert(timezone).tz_localize(None).normalize()


def holiday_names(buckets: pd.DatetimeIndex, countries: list[str], timezone: str = "UTC") -> list[str | None]:
    """The holiday name of each bucket's local date (first country that has one), else None."""
    if not countries or len(buckets) == 0:
        return [None] * len(buckets)
    import holidays as hol

    dates = _local_dates(buckets, timezone)
    years = sorted(set(dates.year))
    cals = [hol.country_holidays(c, years=years) for c in countries]
    out: list[str | None] = []
    for d in dates.date:
        out.append(next((f"{cal.get(d)} ({c})" for c, cal in zip(countries, cals) if d in cal), None))
    return out


def holiday_mask(buckets: pd.DatetimeIndex, countries: list[str], timezone: str = "UTC") -> np.ndarray:
    return np.array([n is not None for n in holiday_names(buckets, countries, timezone)], dtype=bool)
