"""A fast robust seasonal detector, vectorised over all series at once.

Expected value: the median of the same bucket in the last ``weeks`` weeks (robust to an old
incident in one of them), scaled by the recent level (the ratio of actual to seasonal expectation
over the previous week), which follows trends and adapts after a lasting step change.

Noise: counts and sums are Poisson-like (variance grows with the level), ratios binomial-like
(variance shrinks with the denominator), each times a robust scale learned from the series' own
past residuals. Evidence: the single-bucket z score, plus z scores of the sums over the last 3, 6
and 12 buckets, which accumulate sustained small shifts. Everything at bucket t uses only buckets before t.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .base import Scores, SeriesBatch


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    """``out[:, t] = a[:, t-k]`` (NaN where t < k)."""
    out = np.full_like(a, np.nan)
    if k < a.shape[1]:
        out[:, k:] = a[:, : a.shape[1] - k]
    return out


def _anscombe(x: np.ndarray) -> np.ndarray:
    """Variance-stabilising transform for Poisson-like counts: noise ~ N(0, 1) at any level."""
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def _anscombe_inv(t: np.ndarray) -> np.ndarray:
    return np.maximum(t, np.sqrt(0.375) * 2) ** 2 / 4.0 - 0.375


def _window_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Sum of the last ``w`` buckets including the current one."""
    c = np.cumsum(a, axis=1)
    out = c.copy()
    out[:, w:] = c[:, w:] - c[:, :-w]
    return out


def _trailing_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Sum of the previous ``w`` buckets, excluding the current one (NaN counts as 0)."""
    c = np.cumsum(np.nan_to_num(a), axis=1)
    c = np.concatenate([np.zeros((a.shape[0], 1)), c], axis=1)
    t = np.arange(a.shape[1])
    lo = np.maximum(t - w, 0)
    return c[:, t] - c[:, lo]


class RobustSeasonal:
    """Seasonal median baseline with level correction, robust noise scale and CUSUM."""

    name = "seasonal"

    def __init__(self, threshold: float = 4.0, weeks: int = 4, min_weeks: int = 2,
                 windows: tuple[int, ...] = (3, 6, 12), tail_factor: float = 1.7,
                 min_rel_change: float = 0.1, holiday_widen: float = 1.5):
        self.threshold = threshold
        self.weeks = weeks
        self.min_weeks = min_weeks
        self.windows = tuple(windows)
        self.holiday_widen = holiday_widen
        self.tail_factor = tail_factor
        self.min_rel_change = min_rel_change

    def min_history(self, season: int) -> int:
        """Buckets of history a series needs before it can alert: lags, then a season of scores."""
        return (self.min_weeks + 1) * season

    def _baseline(self, y: np.ndarray, season: int) -> tuple[np.ndarray, np.ndarray]:
        lags = np.stack([_shift(y, k * season) for k in range(1, self.weeks + 1)])
        n_ok = np.sum(np.isfinite(lags), axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            seasonal = np.nanmedian(lags, axis=0)
        ready = n_ok >= self.min_weeks
        return seasonal, ready

    def _level(self, y: np.ndarray, seasonal: np.ndarray, season: int) -> np.ndarray:
        both = np.isfinite(y) & np.isfinite(seasonal)
        sy = _trailing_sum(np.where(both, y, 0.0), season)
        se = _trailing_sum(np.where(both, seasonal, 0.0), season)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(se > 0, sy / se, 1.0)
        return np.clip(f, 0.2, 5.0)

    def score_batch(self, batch: SeriesBatch) -> Scores:
        """Two passes: the second learns from a history where the first pass's anomalies are
        replaced by their expected values, so an old incident neither shifts the baseline nor
        widens the band. Both passes are causal, so the result is too."""
        y = batch.value.astype(float)
        first = self._score(batch, y, None)
        cleaned = np.where(first.is_anomaly, first.expected, y)
        return self._score(batch, cleaned, first.is_anomaly)

    def _score(self, batch: SeriesBatch, history: np.ndarray, exclude: np.ndarray | None) -> Scores:
        y = batch.value.astype(float)
        seasonal, ready = self._baseline(history, batch.season)
        expected = seasonal * self._level(history, seasonal, batch.season)

        # variance model, as a transform to a scale where noise is even:
        #   counts and sums: Anscombe square root (Poisson-like: variance grows with the level)
        #   ratios: binomial-like, variance shrinks with the denominator
        #   real values (any sign): as they are
        ratio = (batch.kind == "ratio")[:, None]
        count = (batch.kind == "count")[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(ratio, 1.0 / np.sqrt(np.where(batch.weight > 0, batch.weight, np.nan)), 1.0)
        ty, te = np.where(count, _anscombe(y), y), np.where(count, _anscombe(expected), expected)
        r = (ty - te) / unit
        if exclude is not None:  # the scale is learned from normal buckets only
            r = np.where(exclude, np.nan, r)
        # robust scale from the previous two weeks of residuals (shifted: excludes bucket t)
        window = 2 * batch.season
        roll = pd.DataFrame(np.abs(r).T).rolling(window, min_periods=max(batch.season // 2, 3))
        med = roll.median().shift(1).to_numpy().T
        mean = roll.mean().shift(1).to_numpy().T
        # the median collapses on sparse series (mostly zeros): the mean absolute residual floors it
        scale = np.fmax(1.4826 * med, 0.7 * 1.2533 * mean)
        # a rate in [0, 1] is at least as noisy as a binomial proportion
        p = np.clip(np.nan_to_num(expected), 0.01, 0.99)
        binomial = np.where(ratio & (expected >= 0) & (expected <= 1), 0.5 * np.sqrt(p * (1 - p)), 0.0)
        floor = np.fmax(binomial, np.where(count, 0.5, 1e-9))
        scale = np.where(np.isfinite(scale), np.fmax(scale, floor), np.nan)  # NaN until learned
        learned = np.isfinite(scale)
        sigma = scale * unit
        z = np.where(ready, (ty - te) / sigma, np.nan)
        # alert only once the calibration below has a week of this series' own scores
        seen = pd.DataFrame(ready.T.astype(float)).rolling(batch.season, min_periods=1).sum().shift(1).to_numpy().T
        ready = ready & learned & (np.nan_to_num(seen) >= batch.season)

        # calibrate: heavy-tailed series (revenue) alert past their own usual extremes, not just 4 sigma
        z_hist = z if exclude is None else np.where(exclude, np.nan, z)
        thr = self._calibrated(z_hist, batch.season)
        if batch.holiday is not None:  # no yearly history to learn holiday effects: widen the band
            thr = np.where(np.broadcast_to(batch.holiday, thr.shape), thr * self.holiday_widen, thr)
        # sustained shifts: evidence summed over the last few buckets (a scan statistic, CUSUM-like)
        d = np.where(np.isfinite(z), ty - te, 0.0)
        v = np.where(np.isfinite(z), sigma**2, 0.0)
        evidence = np.abs(z) / thr
        for w in self.windows:
            with np.errstate(invalid="ignore", divide="ignore"):
                zw = _window_sum(d, w) / np.sqrt(_window_sum(v, w))
            zw = np.where(ready & np.isfinite(z), zw, np.nan)
            same_way = (np.sign(zw) == np.sign(z)) & (np.abs(z) >= 1.0)
            thr_w = self._calibrated(zw if exclude is None else np.where(exclude, np.nan, zw), batch.season)
            if batch.holiday is not None:
                thr_w = np.where(np.broadcast_to(batch.holiday, thr_w.shape), thr_w * self.holiday_widen, thr_w)
            evidence = np.fmax(evidence, np.where(same_way, np.abs(zw) / thr_w, 0.0))
        lower = np.where(count, _anscombe_inv(te - thr * sigma), expected - thr * sigma)
        upper = np.where(count, _anscombe_inv(te + thr * sigma), expected + thr * sigma)
        rel = np.abs(y - expected) / np.maximum(np.abs(expected), 1e-9)
        a = np.where(np.isfinite(evidence) & ready & np.isfinite(sigma), evidence, 0.0)
        anomaly_score = a**2 / (1.0 + a**2)
        is_anomaly = (a >= 1.0) & (rel >= self.min_rel_change)
        return Scores(expected=expected, lower=lower, upper=upper, z=z,
                      anomaly_score=anomaly_score, is_anomaly=is_anomaly, ready=ready)

    def _calibrated(self, z: np.ndarray, season: int) -> np.ndarray:
        """Per-series threshold: at least ``threshold``, more for series whose past is heavy-tailed."""
        tail = pd.DataFrame(np.abs(z).T).rolling(4 * season, min_periods=max(season // 2, 3)).quantile(0.98)
        tail = tail.shift(1).to_numpy().T
        return np.fmax(self.threshold, self.tail_factor * np.nan_to_num(tail))
