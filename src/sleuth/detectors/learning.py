"""Alerts from the first day: a young series is scored with what it has.

Until the default detector's weekly expectation is ready (two weeks of the same hour), a
business series (a count or a rate) is expected to repeat its **hour-of-day profile**: the
median of the same hour over the days it has (up to a week; daily data: the last few days).
Its noise is not known yet either, so the band starts from an honest prior (counts at least
Poisson plus :data:`PRIOR_SPREAD` of their level; rates at least binomial plus that share) and
moves to the series' own residuals as they come in (a weighted blend, the prior counting as a
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

#: the relative day-to-day spread a young series' band assumes before it has its own residuals
PRIOR_SPREAD = 0.5
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
    """``[S, len(cols)]``: the median of the same hour over up to :data:`PROFILE_DAYS` earlier
    days (daily data: of the last days), NaN where no earlier day has a value. A rate pools
    those days' numerators and denominators (with half an event and one unit more), so a rate
    over a handful of sessions is not expected to be 0 because most of its days had none."""
    from .seasonal import _nanmedian0

    lag = lambda a: np.stack([_gather_lag(a, k * batch.day, batch.clock, cols)  # noqa: E731
                              for k in range(1, PROFILE_DAYS + 1)])
    lags = lag(history)
    out = _nanmedian0(lags, np.isfinite(lags).sum(axis=0))
    rows = np.flatnonzero(batch.kind == "ratio")
    if len(rows):
        w = np.where(np.isfinite(history[rows]), np.nan_to_num(batch.weight[rows]), 0.0)
        num, den = lag(np.nan_to_num(history[rows]) * w).sum(axis=0), lag(w).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[rows] = np.where(den > 0, (num + 0.5) / (den + 1.0), np.nan)
    return out


def prior_sigma(expected: np.ndarray, batch: SeriesBatch, rows_c: np.ndarray, rows_r: np.ndarray) -> np.ndarray:
    """A young series' prior noise scale, in the detector's scale units (per row kind): counts on
    the Anscombe scale ``sqrt(1 + s^2 e)``; rates ``sqrt(p (1 - p) + s^2 e^2 w)`` (times ``1/sqrt(w)``
    it is the binomial noise plus ``s`` of the rate); real values ``s |e|``."""
    s2 = PRIOR_SPREAD**2
    e = np.nan_to_num(expected)
    out = np.sqrt(s2) * np.abs(e)
    out[rows_c] = np.sqrt(1.0 + s2 * np.maximum(e[rows_c], 0.0))
    w = np.nan_to_num(batch.weight[rows_r])
    p = np.clip((e[rows_r] * w + 0.5) / (w + 1.0), 0.0, 1.0)  # half an event more: never certain
    out[rows_r] = np.sqrt(p * (1 - p) + s2 * e[rows_r] ** 2 * w)
    return out


def learning_factor(history_buckets: np.ndarray, batch: SeriesBatch, mature: int) -> np.ndarray:
    """The threshold's factor for a series with ``history_buckets`` of history:
    :data:`LEARNING_FACTOR` until it has two weeks (its weekly expectation from a single week
    is no better than the profile), easing to 1 over the last week before ``mature``."""
    start = max(mature - batch.season, 0)
    frac = np.clip((history_buckets - start) / max(mature - start, 1), 0.0, 1.0)
    return LEARNING_FACTOR - (LEARNING_FACTOR - 1.0) * frac
