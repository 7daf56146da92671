"""Daily data: what a weekday is, and how the year moves.

:func:`weekday_baseline` is the default detector's expectation for daily counts and rates:
weekday shares of the week times the recent level. :func:`yearly_move` anticipates the yearly
shape from the last years. Both use buckets before t only.
"""
from __future__ import annotations

import numpy as np

from .base import SeriesBatch
from .seasonal import _nanmedian0, _online_quantile, _shift, _trailing_sum, _window_sum


def weekday_baseline(y: np.ndarray, batch: SeriesBatch, rows: np.ndarray, weeks: int, level_days: int,
                     min_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """``(expected, ready)`` for rows ``rows`` of a daily batch: each weekday's share of its own
    week (the day over the mean of the week centred on it), the median over the last ``weeks``
    weeks, times the level of the last ``level_days`` days with each day taken out of its
    weekday's share (two or four times longer when named days fill them: Thanksgiving week).
    Unlike a median of raw days, weeks of a December ramp and of a January lull then agree on
    what a Tuesday is. Named days (holidays, retail days) are left out: they have their own
    effect."""
    if batch.holiday is not None:
        y = np.where(np.broadcast_to(batch.holiday, batch.value.shape)[rows], np.nan, y)

    def mean7(a: np.ndarray) -> np.ndarray:  # the mean of the 7 days ending at each day (>= 4 of them)
        ok = np.isfinite(a)
        n = _window_sum(ok * 1.0, 7)
        return np.where(n >= 4, _window_sum(np.where(ok, a, 0.0), 7) / np.maximum(n, 1), np.nan)

    centred = np.full_like(y, np.nan)
    centred[:, :-3] = mean7(y)[:, 3:]  # read only from a week on: 3 days ahead is still the past
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(centred > 0, y / centred, np.nan)
    lags = np.stack([_shift(share, 7 * k) for k in range(1, weeks + 1)])
    n_ok = np.isfinite(lags).sum(axis=0)
    weekday = _nanmedian0(lags, n_ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        plain = np.where(weekday > 0, y / weekday, np.nan)
    ok = np.isfinite(plain)
    level = np.full_like(y, np.nan)
    for w in (level_days, 2 * level_days, 4 * level_days):  # more when named days fill it
        n = _window_sum(ok * 1.0, w)
        mean = _window_sum(np.where(ok, plain, 0.0), w) / np.maximum(n, 1)
        level = np.where(np.isfinite(level) | (n < 4), level, mean)
    return _shift(level, 1) * weekday, n_ok >= min_weeks


def yearly_move(history: np.ndarray, seasonal: np.ndarray, batch: SeriesBatch, level_days: int,
                gain: float) -> np.ndarray:
    """Daily data with a year of history: anticipate the yearly shape (a December ramp, a
    summer lull, a quarter's step) by how the level moved a year ago (52 weeks, the same
    weekdays; averaged over the last two years when there are two) from the days the
    current level is measured on (its last ``level_days``) to the week around this day,
    where that has forecast the series better so far (by more than ``gain`` of its error: an
    online backtest)."""
    T = history.shape[1]
    if T <= 375:
        return seasonal
    usable = np.isfinite(history)  # holidays have their own effect: leave them out here
    if batch.holiday is not None:
        usable &= ~np.broadcast_to(batch.holiday, usable.shape)
    span = level_days  # the level's window (see :func:`weekday_baseline`)
    n7, n_span = _window_sum(usable * 1.0, 7), _window_sum(usable * 1.0, span)
    mean7 = _window_sum(np.where(usable, history, 0.0), 7) / np.maximum(n7, 1)
    mean_span = _window_sum(np.where(usable, history, 0.0), span) / np.maximum(n_span, 1)
    moves = []
    for year in (364, 728):
        with np.errstate(invalid="ignore", divide="ignore"):
            # the week centred on this day a year ago, over the two weeks before that day
            ok = (_shift(n7, year - 3) >= 3) & (_shift(n_span, year + 1) >= span // 2)
            moves.append(np.where(ok, np.log(_shift(mean7, year - 3) / _shift(mean_span, year + 1)), np.nan))
    stacked = np.stack(moves)
    known = np.isfinite(stacked).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN where no year is known
        ratio = np.exp(np.clip(np.nansum(stacked, axis=0) / np.where(known > 0, known, np.nan), -0.7, 0.7))
    # shrink last year's move by how it compares with its usual noise (a Wiener-like factor):
    # an ordinary week moves a few percent by chance, a December rush by far more
    move = np.log(np.clip(ratio, 0.5, 2.0))
    noise = 1.4826 * _online_quantile(np.abs(move), 0.5, start=0.05, step=0.005)
    move = move * move**2 / (move**2 + noise**2)
    with_year = np.where(np.isfinite(move), seasonal * np.exp(move), seasonal)
    # judged over all the history so far: a yearly pattern shows only a few weeks a year
    both = np.isfinite(ratio) & np.isfinite(history) & np.isfinite(seasonal)
    won = _trailing_sum(np.where(both, np.abs(history - seasonal) - np.abs(history - with_year), 0.0), T)
    loss = _trailing_sum(np.where(both, np.abs(history - seasonal), 0.0), T)
    better = won > gain * loss
    return np.where(better, with_year, seasonal)
