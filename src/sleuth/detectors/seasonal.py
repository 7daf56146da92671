"""A fast robust seasonal detector, vectorised over all series at once.

Expected value: the median of the same bucket in the last ``weeks`` weeks (robust to an old
incident in one of them), scaled by the recent level (the ratio of actual to seasonal expectation
over the previous week), which follows trends and adapts after a lasting step change. Daily
counts and rates use weekday shares of the week times the level of the last two weeks, and the
yearly move of the last years (:mod:`sleuth.detectors.daily`). Named days (holidays, retail
days, the user's events) carry their effect learned from earlier occurrences
(:mod:`sleuth.detectors.events`).

The recent level (median of the last few buckets) competes with it by online backtest, so a
series without rhythm, or without enough history for one, is judged against its recent level.
A segment borrows its parent's shape times its own share at that hour of day. A young business
series is scored from its first full day against its hour-of-day profile, with wider bands
(:mod:`sleuth.detectors.learning`).

Noise: counts and sums are Poisson-like (variance grows with the level), ratios binomial-like
(variance shrinks with the denominator), each times a robust scale learned online from the
series' own past residuals. Evidence: the single-bucket z score, plus z scores of the sums over the
last 3, 6 and 12 buckets, which accumulate sustained small shifts. Calibration: each series alerts
past its own usual extremes (a running 98th percentile; for series of unknown nature also their
recent maximum). Two passes: the second learns from a history with the first pass's anomalies
replaced by the seasonal median. Then, for series with a market, the evidence of departing from
it (:mod:`sleuth.detectors.market`). Everything at bucket t uses only buckets before t.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import Scores, SeriesBatch, first_data, recurring_effect
from .events import learned_effects, log_ratio
from .learning import learning_factor, profile, young_scale


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    """``out[:, t] = a[:, t-k]`` (NaN where t < k)."""
    out = np.full_like(a, np.nan)
    if k < a.shape[1]:
        out[:, k:] = a[:, : a.shape[1] - k]
    return out


def _lag(a: np.ndarray, k: int, clock: np.ndarray | None) -> np.ndarray:
    """``a`` at the bucket ``k`` buckets of wall-clock time earlier (NaN where there is none).

    Without a clock this is a plain shift. With one (local offsets from UTC, in buckets), the
    lag follows the local clock across daylight-saving changes: after clocks go forward an
    hour, the same local hour a week ago is 167 buckets back, not 168.
    """
    if clock is None:
        return _shift(a, k)
    T = a.shape[1]
    t = np.arange(T)
    src = t - k
    src = src + clock - clock[np.clip(src, 0, T - 1)]
    ok = (src >= 0) & (src < t)
    out = a[:, np.clip(src, 0, T - 1)]
    out[:, ~ok] = np.nan
    return out


def _subset(batch: SeriesBatch, rows: np.ndarray) -> SeriesBatch:
    """The batch restricted to ``rows`` (which must hold the parents of its segments)."""
    parent = None
    if batch.parent is not None:
        where = np.full(len(batch.parent), -1)
        where[rows] = np.arange(len(rows))
        p = batch.parent[rows]
        parent = np.where(p >= 0, where[np.maximum(p, 0)], -1)
    rows_of = lambda a: a[rows] if a is not None and a.ndim == 2 else a  # noqa: E731 ([S, T] or [T])
    return SeriesBatch(value=batch.value[rows], weight=batch.weight[rows], kind=batch.kind[rows],
                       season=batch.season, day=batch.day, holiday=rows_of(batch.holiday), parent=parent,
                       clock=batch.clock, holiday_ref=rows_of(batch.holiday_ref),
                       event_names=rows_of(batch.event_names), time=batch.time,
                       peer_group=None if batch.peer_group is None else batch.peer_group[rows],
                       expected_ref=None if batch.expected_ref is None else batch.expected_ref[rows],
                       threshold_factor=None if batch.threshold_factor is None else batch.threshold_factor[rows])


def count_like(y: np.ndarray, max_mean: float = 1.0) -> np.ndarray:
    """``[S, T]``: whether the series so far (up to and including t) is a sparse count: every
    value a non-negative whole number and their mean at most ``max_mean`` (a rare event counted
    per minute: mostly 0 or 1). Its noise is at least Poisson, so its first 1 after zeros is no
    surprise. Busier counts (thousands of tweets an hour) keep the learned noise alone."""
    finite = np.isfinite(y)
    ok = ~finite | ((y >= 0) & (np.floor(y) == y))
    n = np.cumsum(finite, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.cumsum(np.where(finite, y, 0.0), axis=1) / n
    return np.logical_and.accumulate(ok, axis=1) & (n > 0) & (mean <= max_mean)


def _nanmedian0(a: np.ndarray, n_ok: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN (NaN where none), faster than ``np.nanmedian`` for a few rows."""
    if a.shape[0] <= 4:  # without sorting: drop the smallest and largest, average what is left
        total = np.nansum(a, axis=0)
        lo, hi = np.fmin.reduce(a, axis=0), np.fmax.reduce(a, axis=0)
        with np.errstate(invalid="ignore"):
            med = np.select([n_ok >= 3, n_ok >= 1], [(total - lo - hi) / np.maximum(n_ok - 2, 1), total / np.maximum(n_ok, 1)], np.nan)
        return med
    srt = np.sort(a, axis=0)  # NaN sorts last
    lo = np.clip((n_ok - 1) // 2, 0, None)[None]
    hi = np.clip(n_ok // 2, 0, a.shape[0] - 1)[None]
    med = 0.5 * (np.take_along_axis(srt, lo, 0)[0] + np.take_along_axis(srt, hi, 0)[0])
    return np.where(n_ok > 0, med, np.nan)


def _online_scale(r: np.ndarray, window: int, min_count: int, seen: bool = False):
    """Robust noise scale per series and bucket, from residuals strictly before the bucket.

    A winsorised running mean of |r| (equal weights up to ``window`` values, then exponential
    with that span), turned into a standard deviation; NaN until ``min_count`` values were seen.
    Winsorising at 4 scales keeps an outlier from widening the band; the mean, unlike the
    median, does not collapse on sparse series that are mostly zero. With ``seen``, also returns
    the scale from however few values were seen so far and how many (a young series' band).
    """
    S, T = r.shape
    out = np.full((T, S), np.nan)  # time-major: each step reads and writes contiguous memory
    early = np.full((T, S), np.nan) if seen else None
    count = np.zeros((T, S)) if seen else None
    mean_abs = np.zeros(S)
    n = np.zeros(S)
    absr = np.ascontiguousarray(np.abs(r).T)
    for t in range(T):
        known = n >= min_count
        scale = np.where(known, 1.2533 * mean_abs, np.nan)
        out[t] = scale
        if seen:
            early[t] = np.where(n > 0, 1.2533 * mean_abs, np.nan)
            count[t] = n
        x = absr[t]
        ok = np.isfinite(x)
        x = np.where(known, np.fmin(x, 4.0 * scale), x)
        n += ok
        alpha = np.where(ok, 1.0 / np.maximum(np.minimum(n, window), 1.0), 0.0)
        mean_abs += alpha * (np.where(ok, x, 0.0) - mean_abs)
    if seen:  # also the scale from however few values were seen, and how many
        return out.T, early.T, count.T
    return out.T


def _online_quantile(x: np.ndarray, q: float, start: float, step: float = 0.1) -> np.ndarray:
    """Running estimate of the ``q`` quantile along the last axis, from values strictly before
    each position (stochastic approximation: up by ``step*(1-q)`` past it, down by ``step*q``
    below it, so it settles where a share ``1-q`` of values exceed it)."""
    xt = np.ascontiguousarray(np.moveaxis(x, -1, 0))  # time-major
    est = np.full(xt.shape[1:], start, dtype=float)
    out = np.empty_like(xt, dtype=float)
    for t in range(xt.shape[0]):
        out[t] = est
        v = xt[t]
        ok = np.isfinite(v)
        est += np.where(ok, step * ((v > est) - (1.0 - q)), 0.0)
    return np.moveaxis(out, 0, -1)


def scale_thresholds(thrs: np.ndarray, widen: np.ndarray | None, holiday_widen: float,
                     factor: np.ndarray | None) -> np.ndarray:
    """Thresholds ``[streams, S, T]`` after calibration: wider by ``holiday_widen`` where
    ``widen`` (holidays whose effect is unknown), then times each series' own sensitivity
    ``factor`` (a metric's ``threshold`` over the default), so the whole band scales with it."""
    if widen is not None:
        thrs = np.where(widen[None], thrs * holiday_widen, thrs)
    if factor is not None:
        thrs = thrs * factor[None, :, None]
    return thrs


def combined_evidence(stack: np.ndarray, thrs: np.ndarray) -> np.ndarray:
    """Evidence in units of the threshold: the bucket's own z (``stack[0]``), or a window sum
    (``stack[1:]``) leaning the same way as the bucket, whichever is strongest."""
    z = stack[0]
    evidence = np.abs(z) / thrs[0]
    sign, leaning = np.sign(z), np.abs(z) >= 1.0
    for k in range(1, len(stack)):
        same_way = (np.sign(stack[k]) == sign) & leaning
        evidence = np.fmax(evidence, np.where(same_way, np.abs(stack[k]) / thrs[k], 0.0))
    return evidence


def _anscombe(x: np.ndarray) -> np.ndarray:
    """Variance-stabilising transform for Poisson-like counts: noise ~ N(0, 1) at any level."""
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def _anscombe_inv(t: np.ndarray) -> np.ndarray:
    return np.maximum(t, np.sqrt(0.375) * 2) ** 2 / 4.0 - 0.375


def _window_sum(a: np.ndarray, w: int, reach: np.ndarray | None = None) -> np.ndarray:
    """Sum of the last ``w`` buckets including the current one, or of fewer where ``reach``
    (the most buckets a window at each position may cover) says so."""
    if reach is None:  # plain slices: far cheaper than a gather
        c = np.cumsum(a, axis=1)
        out = c.copy()
        out[:, w:] -= c[:, :-w]
        return out
    T = a.shape[1]
    c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(a, axis=1)], axis=1)
    t = np.arange(T)
    k = np.minimum(np.minimum(w, t + 1), reach)
    return c[:, 1:] - np.take_along_axis(c, np.broadcast_to(t + 1 - k, a.shape), axis=1)


def _reach(exclude: np.ndarray, z: np.ndarray) -> np.ndarray:
    """How far back a window at each bucket may reach: not past an excluded (anomalous) bucket
    that the series has since come back from (two later buckets, not excluded, within one
    noise unit of their expectation together). A deviation that never came back keeps its
    whole window, so a lasting shift stays one incident."""
    S, T = exclude.shape
    t = np.broadcast_to(np.arange(T), (S, T))
    pair = _window_sum(np.nan_to_num(z), 2) / np.sqrt(2.0)
    quiet = ~exclude & np.isfinite(z)
    back = quiet & np.concatenate([np.zeros((S, 1), bool), quiet[:, :-1]], axis=1) & (np.abs(pair) < 1.0)
    last_back = np.maximum.accumulate(np.where(back, t, -1), axis=1)
    prev = np.concatenate([np.zeros((S, 1), bool), exclude[:, :-1]], axis=1)
    last_excluded_before = np.maximum.accumulate(np.where(prev, t - 1, -1), axis=1)
    cut = np.where(last_back >= 0, np.take_along_axis(last_excluded_before, np.maximum(last_back, 0), axis=1), -1)
    return t - cut


def _trailing_sum(a: np.ndarray, w: int) -> np.ndarray:
    """Sum of the previous ``w`` buckets, excluding the current one (NaN counts as 0)."""
    c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(np.nan_to_num(a), axis=1)], axis=1)
    out = c[:, :-1].copy()
    if w < a.shape[1]:
        out[:, w:] -= c[:, :a.shape[1] - w]
    return out


class RobustSeasonal:
    """Seasonal median baseline with level correction, robust noise scale and CUSUM."""

    name = "seasonal"
    #: how far past its usual extremes (running 98th percentile) a series of unknown nature alerts
    real_tail_factor = 2.5

    def __init__(self, threshold: float = 4.0, weeks: int = 4, min_weeks: int = 2,
                 windows: tuple[int, ...] = (3, 6, 12), tail_factor: float = 1.7,
                 min_rel_change: float = 0.1, holiday_widen: float = 1.5, share_days: int = 14,
                 level_margin: float = 0.8, recent_factor: float = 1.5, yearly: bool = True,
                 market: bool = True, daily_weeks: int = 12, yearly_gain: float = 0.0, daily_level: int = 14):
        self.threshold = threshold
        self.weeks = weeks
        self.min_weeks = min_weeks
        self.windows = tuple(windows)
        self.holiday_widen = holiday_widen
        self.share_days = share_days
        self.level_margin = level_margin
        self.recent_factor = recent_factor
        self.yearly = yearly
        self.market = market
        self.daily_weeks = daily_weeks
        self.yearly_gain = yearly_gain
        self.daily_level = daily_level
        self.tail_factor = tail_factor
        self.min_rel_change = min_rel_change

    def min_history(self, season: int) -> int:
        """Buckets of history a seasonal series needs before it can alert on its seasonal
        expectation; series without a rhythm alert earlier, on their recent level."""
        return (self.min_weeks + 1) * season

    @staticmethod
    def _scale_window(batch: SeriesBatch) -> int:
        """Buckets the noise scale averages over: two weeks, and eight for daily data (two
        weeks are only 14 daily residuals)."""
        return 8 * batch.season if batch.day == 1 else 2 * batch.season

    def _baseline(self, y: np.ndarray, batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        weeks = self.daily_weeks if batch.day == 1 else self.weeks
        lags = np.stack([_lag(y, k * batch.season, batch.clock) for k in range(1, weeks + 1)])
        n_ok = np.sum(np.isfinite(lags), axis=0)
        seasonal = _nanmedian0(lags, n_ok)
        ready = n_ok >= self.min_weeks
        return seasonal, ready

    def _choose(self, history: np.ndarray, seasonal: np.ndarray, ready: np.ndarray,
                batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per series and bucket, the seasonal expectation or the recent level (the median of the
        last few buckets), whichever has forecast this series better lately (an online backtest).
        Series without a seasonal rhythm, or without enough history for one, use the level; a
        named day (a holiday, a retail day) uses the seasonal one, which carries its effect."""
        span = max(5, batch.day // 4)
        recent = np.stack([_shift(history, k) for k in range(1, span + 1)])  # the last `span` buckets
        n_ok = np.sum(np.isfinite(recent), axis=0)
        local = np.where(n_ok >= max(span // 2, 2), _nanmedian0(recent, n_ok), np.nan)
        err_s = np.abs(history - seasonal)
        err_l = np.abs(history - local)
        both = np.isfinite(err_s) & np.isfinite(err_l)
        horizon = max(batch.season, 2 * batch.day)
        ew = lambda e: pd.DataFrame(e.T).ewm(  # noqa: E731
            span=horizon, min_periods=max(batch.day // 2, 12), ignore_na=True).mean().shift(1).to_numpy().T
        # the two are compared on the buckets where both forecast: the level wins where
        # EW(err_l) < margin * EW(err_s), that is EW(err_l - margin * err_s) < 0 (one average)
        lead = ew(np.where(both, err_l - self.level_margin * err_s, np.nan))
        use_seasonal = ready & ~(lead < 0)
        if batch.holiday is not None:  # a named day's expectation carries its learned effect
            use_seasonal |= ready & np.broadcast_to(batch.holiday, ready.shape)
        known = np.isfinite(lead)  # the level has a track record
        # series of unknown nature may start on the level alone; business series have a daily
        # rhythm a recent median cannot follow, so they wait for the seasonal comparison
        real = np.flatnonzero(batch.kind == "real")
        if len(real):
            known[real] |= np.isfinite(ew(err_l[real]))
        local_ok = np.isfinite(local) & known
        expected = np.where(use_seasonal, seasonal, np.where(local_ok, local, np.nan))
        return expected, use_seasonal | local_ok

    def _level(self, y: np.ndarray, seasonal: np.ndarray, batch: SeriesBatch) -> np.ndarray:
        """Actual over seasonal expectation across the last season, a factor in [0.2, 5].

        For counts and rates each bucket counts at most 3 times (at least a third of) its
        expectation, so a short burst (a bot flood 100 times the usual traffic) cannot lift the
        level of the whole next week, while a lasting step change still moves it.
        """
        season = batch.season
        span = 2 * season if batch.day == 1 else season  # daily: a week is only 7 noisy values
        business = (batch.kind != "real")[:, None]
        slack = np.where((batch.kind == "count")[:, None], 5.0, 0.0)
        with np.errstate(invalid="ignore"):
            y = np.where(business & (seasonal >= 0),
                         np.clip(y, seasonal / 3.0, 3.0 * seasonal + slack), y)
        both = np.isfinite(y) & np.isfinite(seasonal)
        if batch.holiday is not None:  # a holiday says nothing about the level of the days around it
            both &= ~np.broadcast_to(batch.holiday, both.shape)
        sy = _trailing_sum(np.where(both, y, 0.0), span)
        se = _trailing_sum(np.where(both, seasonal, 0.0), span)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(se > 0, sy / se, 1.0)
        return np.clip(f, 0.2, 5.0)

    def score_batch(self, batch: SeriesBatch) -> Scores:
        """Two passes: the second learns from a history where the first pass's anomalies are
        replaced by their expected values, so an old incident neither shifts the baseline nor
        widens the band. Both passes are causal, so the result is too."""
        y = batch.value.astype(float)
        first, own, event_sd = self._score(batch, y, None)
        # only series with anomalies in their history (and their parents) need the second pass
        rows = np.flatnonzero(first.is_anomaly.any(axis=1))
        if len(rows):
            if batch.parent is not None:
                parents = batch.parent[rows]
                rows = np.union1d(rows, parents[parents >= 0])
            sub = _subset(batch, rows)
            # replace with the series' own seasonal median, which one bad week cannot move (a
            # segment's borrowed expectation could carry a contaminated share into the history)
            cleaned = np.where(first.is_anomaly[rows] & np.isfinite(own[rows]), own[rows], y[rows])
            second, _, sd2 = self._score(sub, cleaned, first.is_anomaly[rows])
            for name in ("expected", "lower", "upper", "z", "anomaly_score", "is_anomaly", "ready"):
                getattr(first, name)[rows] = getattr(second, name)
            event_sd[rows] = sd2
        if self.market and batch.peer_group is not None:
            self._with_market(batch, first, event_sd)
        return first

    def _with_market(self, batch: SeriesBatch, scores: Scores, event_sd: np.ndarray) -> None:
        """Add the evidence of departing from the market (:mod:`sleuth.detectors.market`) in
        place: where it is the stronger and alarms, the expectation, band and z are the
        market-adjusted ones, so an incident reads "expected X given the market"."""
        from .market import adjusted_scores

        adj = adjusted_scores(self, batch, scores.expected, scores.ready, scores.is_anomaly, event_sd)
        if adj is None:
            return
        s = np.clip(scores.anomaly_score, 0.0, 1 - 1e-12)
        own = np.sqrt(s / (1.0 - s))
        take = adj["is_anomaly"] & (adj["evidence"] > own)
        for name in ("expected", "lower", "upper", "z"):
            setattr(scores, name, np.where(take, adj[name], getattr(scores, name)))
        a = adj["evidence"]
        scores.anomaly_score = np.fmax(scores.anomaly_score, a**2 / (1.0 + a**2))
        scores.is_anomaly = scores.is_anomaly | adj["is_anomaly"]

    def _score(self, batch: SeriesBatch, history: np.ndarray,
               exclude: np.ndarray | None) -> tuple[Scores, np.ndarray, np.ndarray]:
        """Scores, the series' own seasonal expectation (before borrowing from a parent) and the
        uncertainty of its learned calendar effects (log units, 0 on ordinary buckets)."""
        y = batch.value.astype(float)
        seasonal, ready = self._baseline(history, batch)
        seasonal = seasonal * self._level(history, seasonal, batch)
        if batch.day == 1:  # daily business series: weekday shares of the week, times the level
            from .daily import weekday_baseline

            rows = np.flatnonzero(batch.kind != "real")
            if len(rows):
                seasonal[rows], ready[rows] = weekday_baseline(history[rows], batch, rows, self.daily_weeks,
                                                               self.daily_level, self.min_weeks)
        if self.yearly and batch.day == 1:
            from .daily import yearly_move

            seasonal = yearly_move(history, seasonal, batch, self.daily_level, self.yearly_gain)
        named = None if batch.holiday is None else np.broadcast_to(batch.holiday, y.shape)
        effect_sd = np.zeros_like(y)
        learned_holiday = np.zeros(y.shape, bool)
        if named is not None:  # learned calendar effects, applied to the expected value
            log_noise = _online_scale(np.where(named, np.nan, log_ratio(batch, history, seasonal)),
                                      window=self._scale_window(batch), min_count=max(batch.season // 2, 3))
            effect, learned_holiday, effect_sd = learned_effects(batch, seasonal, log_noise)
            seasonal = np.where(learned_holiday, seasonal * np.exp(effect), seasonal)
        seasonal, _ = recurring_effect(batch, seasonal, holidays=False)
        weekly = ready
        expected, ready = self._choose(history, seasonal, ready, batch)
        # young business series: the hour-of-day profile until the weekly expectation is ready
        age = np.arange(y.shape[1])[None, :] - first_data(batch)[:, None]  # buckets since first data
        young = (batch.kind != "real")[:, None] & ~weekly & (age >= batch.day)
        # its first week (the profile's residuals teach only its young band and calibration)
        first_week = young & ~np.isfinite(seasonal)
        if young.any():  # its first week: the profile; its second: the same hour a week ago
            cols = np.flatnonzero(young.any(axis=0))
            prof = np.where(np.isfinite(seasonal[:, cols]), seasonal[:, cols], profile(history, batch, cols))
            expected[:, cols] = np.where(young[:, cols] & np.isfinite(prof), prof, expected[:, cols])
        # what an anomalous bucket is replaced by in the history: the seasonal median, which one
        # bad week cannot move (a recent level or a borrowed share could carry the anomaly on)
        own = np.where(np.isfinite(seasonal), seasonal, expected)
        if batch.parent is not None:
            expected = self._borrow(batch, history, expected)

        # variance model, as a transform to a scale where noise is even:
        #   counts and sums: Anscombe square root (Poisson-like: variance grows with the level)
        #   ratios: binomial-like, variance shrinks with the denominator
        #   real values (any sign): as they are
        # (each transform only on the rows of its kind: most batches are mostly counts)
        rows_r, rows_c = np.flatnonzero(batch.kind == "ratio"), np.flatnonzero(batch.kind == "count")
        unit = np.ones_like(y)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = batch.weight[rows_r]
            unit[rows_r] = 1.0 / np.sqrt(np.where(w > 0, w, np.nan))
        ty, te = y.copy(), expected.copy()
        ty[rows_c], te[rows_c] = _anscombe(y[rows_c]), _anscombe(expected[rows_c])
        r = (ty - te) / unit
        if exclude is not None:  # the scale is learned from normal buckets only
            r = np.where(exclude, np.nan, r)
        if named is not None:  # ... and ordinary ones: a named day has its own uncertainty
            r = np.where(named, np.nan, r)
        # robust scale, learned online from past residuals (score first, then learn); the
        # hour-of-day profile's residuals of a series' first week teach its young band only
        n0 = max(batch.season // 2, 3)
        scale = _online_scale(np.where(first_week, np.nan, r), window=self._scale_window(batch), min_count=n0)
        n_prior = max(batch.day, 3)  # the prior counts as a day of residuals (daily data: three)
        blend = None
        if young.any():  # a young series: a prior, worth half a week of residuals, and its own so far
            rows = np.flatnonzero(young.any(axis=1))
            upto = int(np.flatnonzero(young.any(axis=0))[-1]) + batch.season + 1
            blend = np.full_like(y, np.nan)
            blend[rows, :upto] = young_scale(r[rows, :upto], (ty / unit)[rows, :upto], expected[rows, :upto],
                                             batch.kind[rows], batch.weight[rows, :upto], self._scale_window(batch),
                                             n_prior)
        # a rate in [0, 1] is at least as noisy as a binomial proportion
        floor = np.full_like(y, 1e-9)
        floor[rows_c] = 0.5
        e_r = expected[rows_r]
        p = np.clip(np.nan_to_num(e_r), 0.01, 0.99)
        floor[rows_r] = np.where((e_r >= 0) & (e_r <= 1), 0.5 * np.sqrt(p * (1 - p)), 1e-9)
        rows_x = np.flatnonzero(batch.kind == "real")
        if len(rows_x):  # a series of unknown nature that has only ever counted: at least Poisson
            counts = count_like(y[rows_x])
            floor[rows_x] = np.where(counts, 0.5 * np.sqrt(np.maximum(np.nan_to_num(expected[rows_x]), 0.0) + 1.0),
                                     floor[rows_x])
        scale = np.where(np.isfinite(scale), np.fmax(scale, floor), np.nan)  # NaN until learned
        learned = np.isfinite(scale)
        # buckets of business series scored before maturity (from the end of their first full day)
        weekly_ready = ready & learned
        first = np.zeros(len(weekly_ready), int)
        if weekly_ready.size:
            first = np.where(weekly_ready.any(axis=1), weekly_ready.argmax(axis=1), weekly_ready.shape[1])
        since_ready = np.arange(y.shape[1])[None, :] - first[:, None] + 1  # buckets since first ready
        # business series wait a full season of scores; series of unknown nature half of one
        exposure = np.where(batch.kind == "real", batch.season // 2, batch.season)[:, None]
        mature = weekly_ready & (since_ready > exposure)
        # a business series is mature at three weeks (its weekly expectation from two and a week
        # of its scores to calibrate on); before that it is learning, however ready it looks
        mature &= (batch.kind == "real")[:, None] | (age >= self.min_history(batch.season))
        learning = (batch.kind != "real")[:, None] & ~mature & (age >= batch.day) & np.isfinite(expected)
        if blend is None:  # no young bucket: learning ones are weekly-ready, waiting for their exposure
            learning &= learned
        else:
            scale = np.where(learning & ~learned, np.fmax(blend, floor), scale)
        sigma = scale * unit
        if learned_holiday.any():  # a learned event's size is uncertain: its noise adds on its days
            extra = np.abs(expected) * effect_sd  # in the metric's units
            extra[rows_c] = np.sqrt(np.maximum(expected[rows_c], 0.0)) * effect_sd[rows_c]  # Anscombe units
            sigma = np.where(learned_holiday, np.sqrt(sigma**2 + extra**2), sigma)
        z = np.where(ready | learning, (ty - te) / sigma, np.nan)
        ready = mature | learning

        # sustained shifts: evidence summed over the last few buckets (a scan statistic,
        # CUSUM-like). In the second pass a window does not reach back past an earlier anomaly
        # the series has come back from, so the tail of a spike that already alerted does not
        # keep a window sum high for hours after it; a shift that persists stays one incident.
        scored = np.isfinite(z)
        d = np.where(scored, ty - te, 0.0)
        v = np.where(scored, sigma**2, 0.0)
        reach = None if exclude is None else _reach(exclude, z)
        zs = [z]
        for w in self.windows:
            with np.errstate(invalid="ignore", divide="ignore"):
                zw = _window_sum(d, w, reach) / np.sqrt(_window_sum(v, w, reach))
            # (not in a series' first week: against one day's profile only large changes count)
            zs.append(np.where(ready & scored & ~first_week, zw, np.nan))
        stack = np.stack(zs)
        # calibrate: heavy-tailed series (revenue) alert past their own usual extremes, not just 4 sigma
        # (not from a first week's profile scores: they say little about the weekly expectation's)
        hist = np.where(first_week[None], np.nan, stack)
        hist = hist if exclude is None else np.where(exclude[None], np.nan, hist)
        usual = _online_quantile(np.abs(hist), 0.98, start=2.33)  # each stream's running q98
        thrs = np.fmax(self.threshold, self.tail_factor * usual)
        real = batch.kind == "real"
        if real.any():
            # series of unknown nature (no count or rate model): also past their recent extremes,
            # so a bursty series alerts on a burst larger than its usual ones, not on every burst,
            # and further past their usual extremes: their noise model is only a guess, so their
            # tails are heavier than a count's or a rate's
            recent = np.stack([pd.DataFrame(np.abs(zk).T).rolling(batch.season, min_periods=1).max()
                               .shift(1).to_numpy().T for zk in stack[:, real]])
            thrs[:, real] = np.fmax.reduce([thrs[:, real], self.recent_factor * np.nan_to_num(recent),
                                            self.real_tail_factor * usual[:, real]])
        # holidays whose effect could not be learned: widen the band
        widen = None if batch.holiday is None else np.broadcast_to(batch.holiday, thrs.shape[1:]) & ~learned_holiday
        thrs = scale_thresholds(thrs, widen, self.holiday_widen, batch.threshold_factor)
        if learning.any():  # wider while learning: less is known than the residuals so far say, and
            # twice as much wider for sums over several buckets, whose calibration needs history
            f = np.where(learning, learning_factor(age, batch, self.min_history(batch.season)), 1.0)
            thrs = thrs * np.concatenate([f[None], np.repeat((2.0 * f - 1.0)[None], len(thrs) - 1, axis=0)])
        thr = thrs[0]
        evidence = combined_evidence(stack, thrs)
        lower, upper = expected - thr * sigma, expected + thr * sigma
        half = thr[rows_c] * sigma[rows_c]
        lower[rows_c] = _anscombe_inv(te[rows_c] - half)
        upper[rows_c] = _anscombe_inv(te[rows_c] + half)
        rel = np.abs(y - expected) / np.maximum(np.abs(expected), 1e-9)
        a = np.where(np.isfinite(evidence) & ready & np.isfinite(sigma), evidence, 0.0)
        anomaly_score = a**2 / (1.0 + a**2)
        is_anomaly = (a >= 1.0) & (rel >= self.min_rel_change)
        if batch.parent is not None:  # a segment alerts once mature (while learning it explains)
            is_anomaly &= ~(learning & (batch.parent >= 0)[:, None])
        return Scores(expected=expected, lower=lower, upper=upper, z=z,
                      anomaly_score=anomaly_score, is_anomaly=is_anomaly, ready=ready,
                      first=first_data(batch)), own, effect_sd

    def _borrow(self, batch: SeriesBatch, history: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """A segment's expected value from its parent's: the parent's (much less noisy) expectation
        times the segment's share of it at the same hour of day over the last ``share_days`` days.

        Counts: share of the parent's value. Ratios: the segment's rate relative to the parent's,
        both from summed numerators and denominators. Everything is from buckets before t.
        """
        has = batch.parent >= 0
        if not has.any():
            return expected
        seg = np.flatnonzero(has)
        par = batch.parent[seg]
        is_ratio = batch.kind[seg] == "ratio"
        w = np.nan_to_num(batch.weight)
        ratio_rows = (batch.kind == "ratio")[:, None]
        num = np.where(ratio_rows, np.nan_to_num(history) * w, np.nan_to_num(history))  # a ratio's numerator
        step, n = batch.day, self.share_days
        lags = [k * step for k in range(1, n + 1)]

        def same_hour_sum(a: np.ndarray) -> np.ndarray:
            out = np.zeros_like(a)
            for k in lags:
                out += np.nan_to_num(_lag(a, k, batch.clock))
            return out

        with np.errstate(invalid="ignore", divide="ignore"):
            # counts: y_seg / y_parent; ratios: (num_seg/den_seg) / (num_par/den_par)
            top = same_hour_sum(num[seg])
            parents, each = np.unique(par, return_inverse=True)  # a total's sums once, not per segment
            bottom = same_hour_sum(num[parents])[each]
            share = top / bottom
            rate_seg = top / same_hour_sum(w[seg])
            rate_par = bottom / same_hour_sum(w[parents])[each]
            relative = np.where(is_ratio[:, None], rate_seg / rate_par, share)
            borrowed = expected[par] * relative
        enough = np.isfinite(borrowed) & (np.arange(history.shape[1]) >= lags[-1])[None, :]
        out = expected.copy()
        out[seg] = np.where(enough, borrowed, expected[seg])
        return out
