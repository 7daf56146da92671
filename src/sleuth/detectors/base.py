"""The detector contract and the registry of detectors by name.

A detector scores a batch of series ``[series, bucket]`` causally: everything it reports for
bucket ``t`` (expected value, band, z, anomaly score) depends only on buckets ``<= t``, and the
expected value and noise scale only on buckets ``< t`` (score first, then learn).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import pandas as pd

from ..errors import ConfigError


@dataclass
class SeriesBatch:
    """What a detector sees: values plus how noisy each bucket can be."""

    value: np.ndarray        # [S, T], NaN = no data
    weight: np.ndarray       # [S, T] ratio denominators (volume behind each value); NaN for counts
    kind: np.ndarray         # [S] "count" (counts, sums: Poisson-like), "ratio" (binomial-like), "real"
    season: int              # buckets per week (168 hourly, 7 daily)
    day: int                 # buckets per day (24 hourly, 1 daily)
    holiday: np.ndarray | None = None  # [T] or [S, T] bool: holiday buckets (bands widen there)
    parent: np.ndarray | None = None   # [S] int: row of the series this one is a segment of, or -1
    # [T] int: each bucket's local clock offset from UTC in buckets (hourly data in a time zone
    # with daylight saving), so "the same hour last week" means the same wall-clock hour
    clock: np.ndarray | None = None
    # [T] int: for a holiday bucket, the same bucket of that holiday's previous occurrence
    # (-1 if none), so its effect can be learned from last year instead of widening the band
    holiday_ref: np.ndarray | None = None
    # [S, T] int: for a bucket at the same hours as a window people labelled expected (in a
    # later week), that window's bucket (-1 elsewhere): the change is expected to recur
    expected_ref: np.ndarray | None = None
    # [S] float: each series' own sensitivity, as a factor on the detector's threshold (a metric's
    # ``threshold`` over the default); its whole band, calibration included, scales with it
    threshold_factor: np.ndarray | None = None
    # [T] or [S, T] object: each bucket's calendar name (holiday, retail day, the user's event) or
    # None; what ``holiday`` and ``holiday_ref`` were made from (Prophet takes them as its holidays)
    event_names: np.ndarray | None = None
    # [S] int: each series' market, the same metric and segment in its peer properties (-1: none);
    # a series is also judged against its market's concurrent move (see ``detectors.market``)
    peer_group: np.ndarray | None = None
    # [T] the local wall-clock time of each bucket (Prophet needs dates); None when unknown
    time: pd.DatetimeIndex | None = None


@dataclass
class Scores:
    expected: np.ndarray     # [S, T]
    lower: np.ndarray
    upper: np.ndarray
    z: np.ndarray            # signed evidence (robust standard deviations)
    anomaly_score: np.ndarray  # 0..1, calibrated so that 0.5 is the alarm threshold
    is_anomaly: np.ndarray   # bool
    ready: np.ndarray        # bool [S, T]: enough history to alert
    # [S] int: the bucket of each series' first data (-1 when it has none), so a surface can tell
    # how much history a series had at any bucket (``maturity(t - first[s], season, day)``)
    first: np.ndarray


@dataclass(frozen=True)
class Maturity:
    """How much a series' detector knows after some history, in words a surface can show.

    ``stage``: ``"first day"`` (less than two days: nothing is scored before its first full day,
    then it is scored against that day's hour-of-day profile), ``"learning"`` (scored with wider
    bands that tighten as its own noise is learned; from two weeks against its weekly pattern)
    or ``"mature"`` (three weeks: its weekly pattern and its own noise calibration). ``days`` is
    the history it has, ``full_days`` the history at which it is mature; ``catches`` and
    ``misses`` say, in one sentence each, what it can and cannot catch yet."""

    stage: str
    days: float
    full_days: float
    catches: str
    misses: str

    @property
    def learning(self) -> bool:
        return self.stage != "mature"


#: weeks of history at which a series is mature (see :class:`Maturity`)
MATURE_WEEKS = 3


def maturity(history_buckets: int, season: int, day: int) -> Maturity:
    """What a series with ``history_buckets`` of history can catch (``season``: buckets per
    week, ``day``: buckets per day; 168 and 24 hourly, 7 and 1 daily)."""
    day = max(int(day), 1)
    h = max(int(history_buckets), 0)
    full = MATURE_WEEKS * season
    days, full_days = round(h / day, 2), round(full / day, 2)
    profile = "its hour-of-day profile" if day > 1 else "its last days"
    if h < day:
        return Maturity("first day", days, full_days, "nothing yet: a metric is scored from the end of its first full day",
                        f"everything until it has a full day of data ({day} bucket{'s' * (day > 1)})")
    if h < season:
        stage = "first day" if h < 2 * day else "learning"
        return Maturity(stage, days, full_days,
                        f"large spikes and drops (about 3x, or a fall to near zero) against {profile}",
                        "cannot tell a normal weekend from a drop, nor catch small or slow changes, "
                        "until it has seen 2 weeks")
    if h < 2 * season:
        return Maturity("learning", days, full_days, "large spikes and drops against the same time a week ago",
                        f"small and sustained changes until it has {full_days:g} days; its bands are still wide")
    if h < full:
        return Maturity("learning", days, full_days, "spikes, drops and shifts against its weekly pattern",
                        f"small sustained shifts until it has {full_days:g} days; its bands are still wider than usual")
    misses = ("a small shift inside its usual noise; a holiday or yearly event it has not seen yet widens the band "
              "instead of being expected")
    if day == 1 and h < 365:
        misses = ("the yearly shape and yearly events (Black Friday, Christmas) until it has seen a year: "
                  "their first occurrence widens the band instead of being expected")
    return Maturity("mature", days, full_days,
                    "spikes, drops and sustained shifts of a few percent against its weekly pattern", misses)


def first_data(batch: SeriesBatch) -> np.ndarray:
    """[S] the bucket of each series' first data, -1 when it has none. A count's empty buckets
    are 0 (the cube fills them), so its first data is its first non-zero bucket."""
    v = batch.value
    has = np.isfinite(v) & ((v != 0) | (batch.kind != "count")[:, None])
    return np.where(has.any(axis=1), has.argmax(axis=1), -1) if v.shape[1] else np.full(v.shape[0], -1)


def recurring_effect(batch: SeriesBatch, expected: np.ndarray, start: int = 0,
                     holidays: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Changes seen before and known to recur, for buckets ``start`` onwards: expect such a bucket
    to move the series as much as its reference bucket did (actual over the expectation then,
    from the raw values, so a reference counts even though it was flagged). References: the
    same holiday's last occurrence (``holiday_ref``, every series), and the same hours of a
    window people labelled expected (``expected_ref``, per series); both lie in the past, so
    this stays causal. Returns the adjusted expectation and where an effect was learned.
    ``holidays=False`` leaves the holidays to the caller (the default detector learns their
    effects from every earlier occurrence, :mod:`sleuth.detectors.events`)."""
    S, T = expected.shape
    learned = np.zeros((S, T), bool)
    refs = np.full((S, T - start), -1)
    if holidays and batch.holiday_ref is not None:
        refs[:] = np.broadcast_to(batch.holiday_ref, (S, T))[:, start:T]
    if batch.expected_ref is not None:
        refs = np.where(batch.expected_ref[:, start:T] >= 0, batch.expected_ref[:, start:T], refs)
    rows, t = np.nonzero(refs >= 0)
    if not len(t):
        return expected, learned
    ref, t = refs[rows, t], t + start
    base = expected[rows, ref]
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = batch.value[rows, ref] / base
    ok = np.isfinite(effect) & (base > 0)
    out = expected.copy()
    out[rows, t] = np.where(ok, expected[rows, t] * np.clip(effect, 0.05, 20.0), expected[rows, t])
    learned[rows, t] = ok
    return out, learned


class Detector(Protocol):
    name: str

    def score_batch(self, batch: SeriesBatch) -> Scores: ...


_REGISTRY: dict[str, str] = {
    # name -> "module:Class"; imported lazily so optional extras are only needed when chosen
    "seasonal": "sleuth.detectors.seasonal:RobustSeasonal",
    "mstl": "sleuth.detectors.forecast:MSTLDetector",       # needs sleuth[forecast]
    "autoets": "sleuth.detectors.forecast:AutoETSDetector",  # needs sleuth[forecast]
    "auto": "sleuth.detectors.auto:AutoDetector",            # seasonal or mstl per series; sleuth[forecast]
    "prophet": "sleuth.detectors.forecast:ProphetDetector",  # needs sleuth[forecast]; slow
}


def register(name: str, target: str) -> None:
    """Register a detector by ``"module:Class"`` (plugins call this the same way built-ins do)."""
    _REGISTRY[name] = target


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_detector(name: str, **params) -> Detector:
    if name not in _REGISTRY:
        raise ConfigError(f"detector: unknown detector {name!r}; available: {', '.join(available())}")
    module, _, cls = _REGISTRY[name].partition(":")
    try:
        factory: Callable[..., Detector] = getattr(importlib.import_module(module), cls)
    except ImportError as err:
        raise ConfigError(f"detector {name!r} needs an optional dependency ({err.name}); install sleuth[forecast]") from None
    return factory(**params)
