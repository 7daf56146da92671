"""The "auto" detector: per series and week, the default seasonal detector or MSTL, whichever
forecast this series better over the previous weeks (a causal backtest).

Rule: the buckets are cut into weeks on a grid fixed from the first bucket. For the week starting
at bucket ``b``, each detector's error is the median absolute difference between the actual value
and its expected value over the ``lookback_weeks`` weeks before ``b`` (buckets where both had an
expectation; the median ignores incidents). MSTL is chosen when its error is below ``margin``
times the seasonal detector's, and there were at least half a week of buckets to compare;
otherwise, including ties, the default stays. Both detectors are causal and the choice for a week
uses only buckets before it, so the combination is causal too.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .base import Scores, SeriesBatch
from .forecast import MSTLDetector
from .seasonal import RobustSeasonal

FIELDS = tuple(f.name for f in dataclasses.fields(Scores) if f.name != "first")


class AutoDetector:
    """Seasonal or MSTL per series, re-chosen every week by backtest (see the module docstring)."""

    name = "auto"

    def __init__(self, threshold: float = 4.0, lookback_weeks: int = 2, margin: float = 0.8):
        self.candidates = {"seasonal": RobustSeasonal(threshold=threshold), "mstl": MSTLDetector(threshold=threshold)}
        self.lookback_weeks = lookback_weeks
        self.margin = margin
        #: after ``score_batch``: [S] the detector chosen for each series' latest week
        self.chosen: np.ndarray = np.array([], dtype=object)
        #: after ``score_batch``: [S, T] True where MSTL's scores were used
        self.uses_mstl: np.ndarray = np.zeros((0, 0), dtype=bool)

    def min_history(self, season: int) -> int:
        return self.candidates["seasonal"].min_history(season)

    def choose(self, batch: SeriesBatch, seasonal: Scores, mstl: Scores) -> np.ndarray:
        """[S, T] True where MSTL is used: per week, from the errors of the weeks before it."""
        y = batch.value.astype(float)
        S, T = y.shape
        week = batch.season
        err_s, err_m = np.abs(y - seasonal.expected), np.abs(y - mstl.expected)
        both = np.isfinite(err_s) & np.isfinite(err_m)
        use = np.zeros((S, T), dtype=bool)
        for b in range(week, T, week):
            lo = max(0, b - self.lookback_weeks * week)
            ok = both[:, lo:b]
            enough = ok.sum(axis=1) >= week // 2
            with warnings.catch_warnings():  # all-NaN rows: no comparison, the default stays
                warnings.simplefilter("ignore", RuntimeWarning)
                med_s = np.nanmedian(np.where(ok, err_s[:, lo:b], np.nan), axis=1)
                med_m = np.nanmedian(np.where(ok, err_m[:, lo:b], np.nan), axis=1)
            use[:, b:b + week] = (enough & (med_m < self.margin * med_s))[:, None]
        return use

    def score_batch(self, batch: SeriesBatch) -> Scores:
        seasonal = self.candidates["seasonal"].score_batch(batch)
        mstl = self.candidates["mstl"].score_batch(batch)
        use = self.choose(batch, seasonal, mstl)
        self.uses_mstl = use
        last = use[:, -1] if use.shape[1] else np.zeros(use.shape[0], dtype=bool)
        self.chosen = np.where(last, "mstl", "seasonal").astype(object)
        return Scores(**{f: np.where(use, getattr(mstl, f), getattr(seasonal, f)) for f in FIELDS}, first=seasonal.first)
