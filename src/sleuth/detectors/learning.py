"""Alerts from the first day: a young series is scored with what it has.

Until the default detector's weekly expectation is ready (two weeks of the same hour), a
business series (a count or a rate) is expected to repeat its **hour-of-day profile**: the
same hour over the days it has (up to a week, a trimmed mean; daily data: the last few days).
Its noise is not known yet either, so the band starts from an honest prior (its hour-to-hour
roughness, at least Poisson for counts and binomial for rates, plus :data:`PRIOR_SPREAD` of its
level for the day-to-day changes one day cannot show) and moves to the series' own residuals
as they come in (a weighted blend, the prior counting as a
day of residuals). From its second week the same hour a week earlier replaces the profile, so
weekdays and weekends start to tell apart. The threshold is :data:`LEARNING_FACTOR` times the usual one until
two weeks and eases to the usual one at maturity (three weeks). What the series can and cannot catch at each
stage is :func:`sleuth.detectors.base.maturity`.

Everything at bucket t uses buckets before t only; a series is scored from the end of its
first full day of data.
"""
from __future__ import annotations

import numpy as np

from .base import SeriesBatch

#: the relative day-to-day spread a young series' band adds to its roughness before it has its own residuals
PRIOR_SPREAD = 0.15
#: how much wider than usual a young series' threshold is during its first week
LEARNING_FACTOR = 1.5
#: days of the same hour the profile takes the median of
PROFILE_DAYS = 7


def _gather_lag(a: np.ndarray, k: int, clock: np.ndarray | None, cols: np.ndarray) -> np.ndarray:
    """``a`` at ``k`` buckets of wall-clock time before each of ``cols`` (NaN where none)."""
    T = a.shape[1]
    src = cols - k
    if clock is not None:
        src = src + clock[cols] - clock[np.clip(src, 0, T - 1)]
    ok = (src >= 0) & (src < cols)
    out = a[:, np.clip(src, 0, T - 1)]
    out[:, ~ok] = np.nan
    return out


def profile(history: np.ndarray, batch: SeriesBatch, cols: np.ndarray) -> np.ndarray:
    """``[S, len(cols)]``: the typical value of the same hour over up to :data:`PROFILE_DAYS`
    earlier days (daily data: of the last days), NaN where no earlier day has a value. A rate pools
    those days' numerators and denominators (with half an event and one unit more), so a rate
    over a handful of sessions is not expected to be 0 because most of its days had none."""
    lag = lambda a: np.stack([_gather_lag(a, k * batch.day, batch.clock, cols)  # noqa: E731
                              for k in range(1, PROFILE_DAYS + 1)])
    lags = lag(history)
    # a trimmed mean (the highest and lowest day left out from three on): robust to one odd day
    # either way, and far cheaper than a median
    n = np.isfinite(lags).sum(axis=0)
    total = np.nansum(lags, axis=0)
    lo, hi = np.fmin.reduce(lags, axis=0), np.fmax.reduce(lags, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n >= 3, (total - lo - hi) / np.maximum(n - 2, 1), np.where(n > 0, total / np.maximum(n, 1), np.nan))
    rows = np.flatnonzero(batch.kind == "ratio")
    if len(rows):
        w = np.where(np.isfinite(history[rows]), np.nan_to_num(batch.weight[rows]), 0.0)
        num, den = lag(np.nan_to_num(history[rows]) * w).sum(axis=0), lag(w).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(den > 0, (num + 0.5) / (den + 1.0), np.nan)
    return out


def young_scale(r: np.ndarray, u: np.ndarray, expected: np.ndarray, kind: np.ndarray, weight: np.ndarray,
                window: int, n_prior: int) -> np.ndarray:
    """A young series' noise scale (rows of the batch, in the detector's scale units): its own
    residuals so far (``r``), blended with a prior worth ``n_prior`` of them. The prior is the
    series' hour-to-hour roughness (second differences of ``u``, the series in scale units; a
    revenue of a few large orders is rough, a count of sessions is not) plus
    :data:`PRIOR_SPREAD` of its level for the day-to-day changes a single day cannot show;
    before it has a dozen hours, counts at least Poisson and rates at least binomial plus three
    times that spread."""
    from .seasonal import _online_scale

    _, early, seen = _online_scale(r, window=window, min_count=n_prior, seen=True)
    d2 = np.full_like(u, np.nan)
    d2[:, 2:] = u[:, 1:-1] - 0.5 * (u[:, :-2] + u[:, 2:])  # at t: centred on t-1 (uses t; read before t)
    rough = _online_scale(d2, window=window, min_count=12) / np.sqrt(1.5)
    e = np.nan_to_num(expected)
    count, ratio = (kind == "count")[:, None], (kind == "ratio")[:, None]
    w = np.where(ratio, np.nan_to_num(weight), 1.0)
    level = np.where(count, np.sqrt(np.maximum(e, 0.0)), np.abs(e) * np.sqrt(w))  # a relative change, in scale units
    p = np.clip((e * w + 0.5) / (w + 1.0), 0.0, 1.0)  # half an event more: never certain
    least = np.where(count, 1.0, np.where(ratio, np.sqrt(p * (1 - p)), 0.0))
    fallback = np.sqrt(least**2 + (3 * PRIOR_SPREAD * level) ** 2)
    prior = np.where(np.isfinite(rough), np.sqrt(np.fmax(rough, least) ** 2 + (PRIOR_SPREAD * level) ** 2), fallback)
    return np.sqrt((n_prior * prior**2 + seen * np.nan_to_num(early) ** 2) / (n_prior + seen))


def learning_factor(history_buckets: np.ndarray, batch: SeriesBatch, mature: int) -> np.ndarray:
    """The threshold's factor for a series with ``history_buckets`` of history:
    :data:`LEARNING_FACTOR` until it has two weeks (its weekly expectation from a single week
    is no better than the profile), easing to 1 over the last week before ``mature``."""
    start = max(mature - batch.season, 0)
    frac = np.clip((history_buckets - start) / max(mature - start, 1), 0.0, 1.0)
    return LEARNING_FACTOR - (LEARNING_FACTOR - 1.0) * frac
