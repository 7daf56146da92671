"""Calendar context: public holidays (``holidays`` package), the retail days it lacks, and a
user's own recurring events, each by local date in the configured time zone.

A bucket gets at most one name, by priority: the user's own event, then a retail day, then a
public holiday (a retail day is the more specific name for a shop: Christmas Eve rather than
"Christmas Day (observed)"). The names are keys: a detector learns each one's effect from its
earlier occurrences (:func:`holiday_reference`), so a name must be the same every year.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from dateutil.easter import easter

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
            "fifth": 5, "5th": 5, "last": -1}


def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The ``n``-th ``weekday`` (0 = Monday) of a month; ``n = -1`` is the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def thanksgiving(year: int) -> dt.date:
    """US Thanksgiving: the fourth Thursday of November (Black Friday is the day after)."""
    return nth_weekday(year, 11, THU, 4)


def _fixed(month: int, day: int) -> Callable[[int], dt.date]:
    return lambda y: dt.date(y, month, day)


#: retail days the ``holidays`` package lacks (or has only as "unofficial"), by rule: each moves
#: with its rule every year, and its effect is learned from the previous year's occurrence
RETAIL_DAYS: dict[str, Callable[[int], dt.date]] = {
    "Valentine's Day": _fixed(2, 14),
    "Easter Sunday": lambda y: easter(y),
    "Easter Monday": lambda y: easter(y) + dt.timedelta(days=1),
    "Mother's Day": lambda y: nth_weekday(y, 5, SUN, 2),
    "Father's Day": lambda y: nth_weekday(y, 6, SUN, 3),
    "Halloween": _fixed(10, 31),
    "Singles' Day": _fixed(11, 11),
    "Black Friday": lambda y: thanksgiving(y) + dt.timedelta(days=1),
    "Black Friday Saturday": lambda y: thanksgiving(y) + dt.timedelta(days=2),
    "Black Friday Sunday": lambda y: thanksgiving(y) + dt.timedelta(days=3),
    "Cyber Monday": lambda y: thanksgiving(y) + dt.timedelta(days=4),
    "Green Monday": lambda y: nth_weekday(y, 12, MON, 2),
    "Super Saturday": lambda y: dt.date(y, 12, 24) - dt.timedelta(days=(dt.date(y, 12, 24).weekday() - SAT) % 7 or 7),
    "Christmas Eve": _fixed(12, 24),
    "Boxing Day": _fixed(12, 26),
    "New Year's Eve": _fixed(12, 31),
}


@dataclass(frozen=True)
class Event:
    """A recurring event of the user's (``calendar:`` in sleuth.yaml): explicit first days, or a
    rule; ``days`` long; for some properties only (``None``: all)."""

    name: str
    dates: tuple[dt.date, ...] = ()
    rule: str | None = None
    days: int | None = None
    properties: tuple[str, ...] | None = None

    @property
    def length(self) -> int:
        return self.days or (7 if self.rule and parse_rule(self.rule)[0] == "isoweek" else 1)

    def first_days(self, years: Iterable[int]) -> list[dt.date]:
        """The first day of each occurrence in ``years`` (explicit dates: all of them)."""
        if not self.rule:
            return list(self.dates)
        return [d for y in years if (d := rule_date(self.rule, y)) is not None]

    def applies_to(self, prop: str | None) -> bool:
        return self.properties is None or prop is None or prop in self.properties


_RULE_NTH = re.compile(r"^(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last)\s+(\w+)\s+(?:of|in)\s+(\w+)$")
_RULE_ISO = re.compile(r"^iso\s*week\s+(\d{1,2})$")
_RULE_FIXED = re.compile(r"^(\w+)\s+(\d{1,2})$")
_RULE_EASTER = re.compile(r"^easter(?:\s*([+-])\s*(\d{1,2}))?$")
RULE_HELP = ("use 'second Tuesday of July', 'last Friday of November', 'ISO week 27', 'July 4' or "
             "'Easter+1'")


def parse_rule(rule: str) -> tuple:
    """A rule as a tuple (``("nth", n, weekday, month)``, ``("isoweek", week)``, ``("fixed",
    month, day)``, ``("easter", offset)``); ValueError naming the accepted forms otherwise."""
    text = " ".join(rule.strip().lower().split())
    if m := _RULE_NTH.match(text):
        n, wd, mon = m.groups()
        if wd.rstrip("s") in WEEKDAYS and mon in MONTHS:
            return ("nth", ORDINALS[n], WEEKDAYS.index(wd.rstrip("s")), MONTHS.index(mon) + 1)
    if m := _RULE_ISO.match(text):
        week = int(m.group(1))
        if 1 <= week <= 53:
            return ("isoweek", week)
    if m := _RULE_FIXED.match(text):
        mon, day = m.groups()
        if mon in MONTHS:
            try:
                dt.date(2024, MONTHS.index(mon) + 1, int(day))  # a leap year: February 29 is a date
                return ("fixed", MONTHS.index(mon) + 1, int(day))
            except ValueError:
                pass
    if m := _RULE_EASTER.match(text):
        sign, k = m.groups()
        return ("easter", (-1 if sign == "-" else 1) * int(k or 0))
    raise ValueError(f"cannot read the rule {rule!r}; {RULE_HELP}")


def rule_date(rule: str, year: int) -> dt.date | None:
    """The first day of ``rule`` in ``year`` (None when the year has none: ISO week 53,
    February 29, a fifth weekday)."""
    kind, *args = parse_rule(rule)
    try:
        if kind == "nth":
            n, weekday, month = args
            d = nth_weekday(year, month, weekday, n)
            return d if d.month == month else None
        if kind == "isoweek":
            return dt.date.fromisocalendar(year, args[0], 1)
        if kind == "fixed":
            return dt.date(year, args[0], args[1])
        return easter(year) + dt.timedelta(days=args[0])
    except ValueError:
        return None


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
    names = {}
    for d in sorted(set(dates.date)):
        names[d] = next((f"{cal.get(d)} ({c})" for c, cal in zip(countries, cals) if d in cal), None)
    return [names[d] for d in dates.date]


def retail_day_names(dates: Sequence[dt.date]) -> dict[dt.date, str]:
    """The retail day of each date that is one (see :data:`RETAIL_DAYS`)."""
    years = sorted({d.year for d in dates})
    table = {rule(y): name for y in years for name, rule in RETAIL_DAYS.items()}
    return {d: table[d] for d in dates if d in table}


def event_day_names(events: Sequence[Event], years: Iterable[int], prop: str | None = None) -> dict[dt.date, str]:
    """The user's events by date: the first day carries the event's name, later days ``name
    (day k)``, so each day of a multi-day event learns its own effect."""
    years = list(years)
    out: dict[dt.date, str] = {}
    for ev in events:
        if not ev.applies_to(prop):
            continue
        for first in ev.first_days(years):
            for k in range(ev.length):
                out.setdefault(first + dt.timedelta(days=k), ev.name if k == 0 else f"{ev.name} (day {k + 1})")
    return out


def calendar_names(buckets: pd.DatetimeIndex, countries: list[str], timezone: str = "UTC", retail: bool = True,
                   events: Sequence[Event] = (), prop: str | None = None) -> list[str | None]:
    """Each bucket's calendar name (the user's event, else a retail day, else a public holiday),
    or None. ``prop`` picks the events that apply to one property."""
    if len(buckets) == 0:
        return []
    dates = local_dates(buckets, timezone)
    days = sorted(set(dates.date))
    public = dict(zip(days, holiday_names(pd.DatetimeIndex(days), countries))) if countries else {}
    shop = retail_day_names(days) if retail else {}
    own = event_day_names(events, sorted({d.year for d in days}), prop) if events else {}
    named = {d: own.get(d) or shop.get(d) or public.get(d) for d in days}
    return [named[d] for d in dates.date]


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
