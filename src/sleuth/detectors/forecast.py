"""Forecasting-model detectors: statsforecast MSTL ("mstl") and AutoETS ("autoets"), and Prophet
("prophet", one fit per series: slow, for comparison).

Causal by a rolling origin: the buckets are cut into blocks of ``refit`` buckets on a grid fixed
from the first bucket; the model for a block is fitted on the buckets before it only (the last
``window`` of them), forecasts the whole block with a prediction interval, and every bucket of the
block is scored against that forecast. One ``StatsForecast.forecast`` call fits all series of a
block at once. The default refit is weekly (one season): refitting daily costs seven times as
much (MSTL(24, 168) on four weeks of hourly data is ~0.07 s per fit, so ~0.4 s per 8-week series
refit weekly and ~3 s refit daily), and a week-ahead forecast still carries the weekly shape.

Noise: the model is fitted on a scale where noise is even (Anscombe square root for counts, the
rate itself for ratios), and the noise scale is the larger of the interval's (half-width over the
normal quantile of ``level``) and a robust scale of this series' own past out-of-sample errors
(models fitted in-sample tend to be over-confident). Ratios are at least as noisy as a binomial
proportion over their denominator; counts at least as noisy as Poisson.

Evidence and decision as in the default detector: single-bucket z plus z of sums over the last
3, 6 and 12 buckets (sustained shifts), each against its own per-series threshold (``threshold``,
or ``tail_factor`` times the running 98th percentile of its past values when higher: week-ahead
errors are correlated and heavy-tailed); ``anomaly_score = a^2 / (1 + a^2)`` with ``a = evidence
/ threshold``; an anomaly needs ``a >= 1`` and a relative change of at least ``min_rel_change``.
Alerts start after ``min_weeks`` weeks of history plus ``exposure`` weeks of forecast errors.
Buckets flagged in earlier blocks are replaced by their forecast before the next fit, so an old
incident does not bend the model, unless their run has lasted a day or more (the new normal).
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from statistics import NormalDist

import numpy as np
import pandas as pd

from .base import Scores, SeriesBatch, first_data, recurring_effect
from .seasonal import (_anscombe, _anscombe_inv, _online_quantile, _online_scale, _window_sum, combined_evidence,
                       scale_thresholds)


def _runs_of_a_day(flag: np.ndarray, day: int) -> np.ndarray:
    """Flags that belong to a run of consecutive flags at least ``day`` long (by its end so far)."""
    S, T = flag.shape
    length = np.zeros(S, dtype=int)
    run_len = np.zeros((S, T), dtype=int)
    for t in range(T):  # run length so far at each bucket
        length = np.where(flag[:, t], length + 1, 0)
        run_len[:, t] = length
    # a bucket is part of a long run when the run it belongs to has reached `day` by the end
    final = np.zeros((S, T), dtype=int)
    best = np.zeros(S, dtype=int)
    for t in range(T - 1, -1, -1):
        best = np.where(flag[:, t], np.maximum(best, run_len[:, t]), 0)
        final[:, t] = best
    return flag & (final >= max(day, 2))


def _fill(window: np.ndarray) -> np.ndarray:
    """A series' window with its gaps filled by linear interpolation (ends: nearest value)."""
    return pd.Series(window).interpolate(limit_direction="both").to_numpy()


class ForecastDetector(ABC):
    """Rolling-origin detector around one forecasting model (see the module docstring); a subclass
    says how to forecast a block (:meth:`_forecast`)."""

    name = "forecast"
    #: whether the model takes the calendar's named days as regressors (then they are never
    #: cleaned from its history: they are what it learns their effect from)
    models_holidays = False

    def __init__(self, threshold: float = 4.0, refit: int | None = None, window_weeks: int = 4,
                 min_weeks: int = 2, level: int = 99, windows: tuple[int, ...] = (3, 6, 12),
                 min_rel_change: float = 0.1, holiday_widen: float = 1.5, tail_factor: float = 1.7,
                 exposure: float = 1.0, n_jobs: int = 1):
        self.threshold = threshold
        self.refit = refit
        self.window_weeks = window_weeks
        self.min_weeks = min_weeks
        self.level = level
        self.windows = tuple(windows)
        self.min_rel_change = min_rel_change
        self.holiday_widen = holiday_widen
        self.tail_factor = tail_factor
        self.exposure = exposure  # seasons of out-of-sample errors before alerting
        self.n_jobs = n_jobs

    def min_history(self, season: int) -> int:
        """Buckets of history before alerts: the first forecast, then ``exposure`` seasons of its
        errors to learn the noise scale and the usual extremes from."""
        return int((self.min_weeks + self.exposure) * season)

    def min_fit(self, batch: SeriesBatch) -> int:
        """Fewest known buckets a series needs in its window to be fitted."""
        return self.min_weeks * batch.season

    def _window(self, batch: SeriesBatch) -> int:
        """Buckets a fit looks back: ``window_weeks`` weeks, and two years for daily data (yearly
        seasonality)."""
        return max(self.window_weeks * batch.season, 2 * 365 + 7 if batch.day == 1 else 0)

    def _fittable(self, batch: SeriesBatch, hist: np.ndarray, mean: np.ndarray, half: np.ndarray):
        """``(row, values)`` of the series worth a fit: enough known buckets (gaps filled, leading
        ones dropped) and not constant; a constant's forecast is itself with no band."""
        for i in range(hist.shape[0]):
            known = np.flatnonzero(np.isfinite(hist[i]))
            if len(known) < self.min_fit(batch):
                continue
            y = _fill(hist[i, known[0]:])
            if np.ptp(y) == 0:  # nothing to fit, no noise seen
                mean[i], half[i] = y[0], 0.0
                continue
            yield i, y

    @abstractmethod
    def _forecast(self, batch: SeriesBatch, hist: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Forecast and interval half-width ``[S, h]`` for every series from ``hist`` (its last
        buckets before the block, on the fitting scale); NaN for series with too little data."""

    def score_batch(self, batch: SeriesBatch) -> Scores:
        """Score block by block: forecast a block from the (cleaned) buckets before it, score it,
        then replace its short anomalies by their forecast for the fits that follow."""
        if self.n_jobs != 1:  # statsforecast's processes each start BLAS threads: one each
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
            os.environ.setdefault("OMP_NUM_THREADS", "1")
        y = batch.value.astype(float)
        S, T = y.shape
        count = (batch.kind == "count")[:, None]
        ty = np.where(count, _anscombe(y), y)  # the fitting scale
        te = np.full((S, T), np.nan)
        model_sigma = np.full((S, T), np.nan)
        z_level = NormalDist().inv_cdf(0.5 + self.level / 200.0)
        refit = self.refit or batch.season
        start = -(-self.min_weeks * batch.season // refit) * refit  # first origin on the grid
        clean = ty.copy()
        result = None
        for origin in range(start, T, refit):
            end = min(origin + refit, T)
            hist = clean[:, max(0, origin - self._window(batch)):origin]
            self._origin = origin  # where the block starts (a model on real dates needs it)
            mean, half = self._forecast(batch, hist, refit)
            te[:, origin:end] = mean[:, : end - origin]
            te = self._recurring(batch, te, origin, count)
            model_sigma[:, origin:end] = half[:, : end - origin] / z_level
            result = self._evaluate(batch, y, ty, te, model_sigma, end)
            flagged = result.is_anomaly[:, :end]
            short = flagged & ~_runs_of_a_day(flagged, batch.day)
            if self.models_holidays and batch.holiday is not None:  # its holidays are what it learns from
                short &= ~np.broadcast_to(batch.holiday, (S, T))[:, :end]
            clean[:, :end] = np.where(short & np.isfinite(te[:, :end]), te[:, :end], ty[:, :end])
        if result is None:  # too short to forecast anything
            result = self._evaluate(batch, y, ty, te, model_sigma, T)
        return result

    @staticmethod
    def _recurring(batch: SeriesBatch, te: np.ndarray, origin: int, count: np.ndarray) -> np.ndarray:
        """The forecast from ``origin`` on, moved by the holidays and the windows labelled
        expected seen before (see :func:`recurring_effect`), on the fitting scale."""
        if batch.holiday_ref is None and batch.expected_ref is None:
            return te
        level = np.where(count, _anscombe_inv(te), te)
        moved, learned = recurring_effect(batch, level, origin)
        return np.where(learned, np.where(count, _anscombe(moved), moved), te)

    def _evaluate(self, batch: SeriesBatch, y: np.ndarray, ty: np.ndarray, te: np.ndarray,
                  model_sigma: np.ndarray, end: int) -> Scores:
        """Scores for buckets ``< end`` (later ones are left unscored) from forecasts on the fitting
        scale; everything at bucket t uses forecasts for t and errors before t only."""
        S, T = y.shape
        y, ty, te, model_sigma = y[:, :end], ty[:, :end], te[:, :end], model_sigma[:, :end]
        count = (batch.kind == "count")[:, None]
        ratio = (batch.kind == "ratio")[:, None]
        expected = np.where(count, _anscombe_inv(te), te)
        r = ty - te
        learned = _online_scale(r, window=2 * batch.season, min_count=max(int(self.exposure * batch.season), 3))
        sigma = np.fmax(model_sigma, learned)  # fmax: the learned scale is NaN at first
        # floors: Poisson noise is 1 on the Anscombe scale; a rate is at least binomially noisy
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(batch.weight[:, :end] > 0, batch.weight[:, :end], np.nan)
            p = np.clip(np.nan_to_num(te), 0.0, 1.0)
            binomial = np.where(ratio, np.sqrt(p * (1 - p) / w), 0.0)
        floor = np.where(count, 1.0, np.fmax(np.nan_to_num(binomial), 1e-6 * np.abs(np.nan_to_num(te)) + 1e-9))
        sigma = np.where(np.isfinite(te), np.fmax(sigma, floor), np.nan)
        # alerts wait for the series' own out-of-sample errors: in-sample intervals are over-confident
        ready = np.isfinite(te) & np.isfinite(sigma) & np.isfinite(learned)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(ready, r / sigma, np.nan)
        d = np.where(np.isfinite(z), r, 0.0)
        v = np.where(np.isfinite(z), sigma**2, 0.0)
        zs = [z]
        for w_len in self.windows:  # sustained shifts: evidence summed over the last few buckets
            with np.errstate(invalid="ignore", divide="ignore"):
                zs.append(np.where(np.isfinite(z), _window_sum(d, w_len) / np.sqrt(_window_sum(v, w_len)), np.nan))
        # calibrate each stream on this series' own past: week-ahead forecast errors are
        # correlated and heavy-tailed, so alert past the usual extremes, not just `threshold`;
        # then holidays and each metric's own sensitivity, as the default detector does
        stack = np.stack(zs)
        thrs = np.fmax(self.threshold, self.tail_factor * _online_quantile(np.abs(stack), 0.98, start=2.33))
        widen = None if batch.holiday is None else np.broadcast_to(batch.holiday, (S, T))[:, :end]
        thrs = scale_thresholds(thrs, widen, self.holiday_widen, batch.threshold_factor)
        evidence = combined_evidence(stack, thrs)
        band = thrs[0] * sigma
        lower = np.where(count, _anscombe_inv(te - band), te - band)
        upper = np.where(count, _anscombe_inv(te + band), te + band)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(y - expected) / np.maximum(np.abs(expected), 1e-9)
        a = np.where(ready & np.isfinite(evidence), evidence, 0.0)
        is_anomaly = (a >= 1.0) & (rel >= self.min_rel_change) & np.isfinite(y)
        pad = lambda x, fill: np.concatenate([x, np.full((S, T - end), fill, dtype=x.dtype)], axis=1)  # noqa: E731
        return Scores(expected=pad(expected, np.nan), lower=pad(lower, np.nan), upper=pad(upper, np.nan),
                      z=pad(z, np.nan), anomaly_score=pad(a**2 / (1.0 + a**2), 0.0),
                      is_anomaly=pad(is_anomaly, False), ready=pad(ready, False), first=first_data(batch))


class StatsForecastDetector(ForecastDetector):
    """A detector around a statsforecast model (:meth:`model`), fitted for all series at once."""

    alias = "model"  # the model's column name in statsforecast's output

    @abstractmethod
    def model(self, batch: SeriesBatch, length: int):
        """The statsforecast model for a fit on ``length`` buckets."""

    def _forecast(self, batch: SeriesBatch, hist: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        """All series of a block in one batched ``StatsForecast.forecast`` call per fit length."""
        from statsforecast import StatsForecast

        mean, half = np.full((hist.shape[0], h), np.nan), np.full((hist.shape[0], h), np.nan)
        groups: dict[int, list[tuple[int, np.ndarray]]] = {}  # by length after leading gaps
        for i, y in self._fittable(batch, hist, mean, half):
            groups.setdefault(len(y), []).append((i, y))
        for length, members in groups.items():  # one batched call per model shape
            rows = [i for i, _ in members]
            frame = pd.DataFrame({"unique_id": np.repeat(np.arange(len(rows)), length),
                                  "ds": np.tile(np.arange(length), len(rows)),
                                  "y": np.concatenate([y for _, y in members])})
            sf = StatsForecast(models=[self.model(batch, length)], freq=1, n_jobs=self.n_jobs)
            fc = sf.forecast(df=frame, h=h, level=[self.level])
            fc = fc.sort_values(["unique_id", "ds"])
            mean[rows] = fc[self.alias].to_numpy().reshape(len(rows), h)
            lo = fc[f"{self.alias}-lo-{self.level}"].to_numpy().reshape(len(rows), h)
            hi = fc[f"{self.alias}-hi-{self.level}"].to_numpy().reshape(len(rows), h)
            half[rows] = np.abs(hi - lo) / 2.0
        return mean, half


class MSTLDetector(StatsForecastDetector):
    """MSTL (daily and weekly seasonality; yearly for daily data with two years of history),
    trend forecast by AutoETS. ``fast`` uses coarser STL smoothing passes (about half the time)."""

    name = "mstl"
    alias = "MSTL"

    def __init__(self, threshold: float = 4.0, fast: bool = True, **kwargs):
        super().__init__(threshold=threshold, **kwargs)
        self.fast = fast

    def seasons(self, batch: SeriesBatch, length: int) -> list[int]:
        """The periods that fit at least twice into ``length`` buckets."""
        periods = sorted({p for p in (batch.day, batch.season) if p > 1} | ({365} if batch.day == 1 else set()))
        return [p for p in periods if 2 * p <= length] or [1]

    def model(self, batch: SeriesBatch, length: int):
        from statsforecast.models import MSTL, AutoETS

        kwargs = {"trend_jump": 10, "low_pass_jump": 5} if self.fast else {}
        return MSTL(season_length=self.seasons(batch, length), trend_forecaster=AutoETS(model="ZZN"),
                    stl_kwargs=kwargs)


class AutoETSDetector(StatsForecastDetector):
    """AutoETS with the daily season (hourly data) or the weekly one (daily data): ETS cannot
    hold a 168-bucket season, so hourly series lose their weekday rhythm."""

    name = "autoets"
    alias = "AutoETS"

    def __init__(self, threshold: float = 4.0, model: str = "ZZA", **kwargs):
        super().__init__(threshold=threshold, **kwargs)
        self.ets_model = model

    def model(self, batch: SeriesBatch, length: int):
        from statsforecast.models import AutoETS

        period = batch.day if batch.day > 1 else batch.season
        if 2 * period > length:
            return AutoETS(season_length=1, model=self.ets_model[:2] + "N")
        return AutoETS(season_length=period, model=self.ets_model)


def quiet_prophet() -> None:
    """Silence Prophet's logging (a line about plotly at import, two per fit); call before import."""
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logging.getLogger(name).disabled = True  # disabled, because cmdstanpy resets its level


class ProphetDetector(ForecastDetector):
    """Prophet (daily and weekly seasonality; yearly for daily data with two years of history),
    one fit per series and block. Its own intervals are drawn at random, so the band comes from
    the fit's in-sample residuals instead (deterministic, like the other detectors).

    ``holidays=True`` gives Prophet the calendar as its holiday regressors (every named day of
    the batch's ``event_names``, on the batch's real dates), as a Prophet user would; the
    calendar is known in advance, so a block's future holidays are no look-ahead."""

    name = "prophet"

    def __init__(self, threshold: float = 4.0, holidays: bool = False, **kwargs):
        super().__init__(threshold=threshold, **kwargs)
        self.holidays = holidays
        self.models_holidays = holidays

    def _calendar(self, batch: SeriesBatch, i: int, ds: pd.DatetimeIndex) -> pd.DataFrame | None:
        """Prophet's holidays frame for series ``i`` (``holiday, ds``) over dates ``ds``."""
        if not self.holidays or batch.event_names is None or batch.time is None:
            return None
        names = batch.event_names if batch.event_names.ndim == 1 else batch.event_names[i]
        days = pd.DatetimeIndex(batch.time).normalize()
        frame = pd.DataFrame({"holiday": names, "ds": days}).dropna().drop_duplicates()
        frame["holiday"] = frame["holiday"].astype(str)
        return frame if len(frame) else None

    def _forecast(self, batch: SeriesBatch, hist: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        quiet_prophet()
        from prophet import Prophet
        step = pd.Timedelta(days=7) / batch.season
        z_level = NormalDist().inv_cdf(0.5 + self.level / 200.0)
        mean, half = np.full((hist.shape[0], h), np.nan), np.full((hist.shape[0], h), np.nan)
        for i, y in self._fittable(batch, hist, mean, half):
            if self.holidays and batch.time is not None:  # real dates, ending where the history ends
                end = self._origin + h
                ds = pd.DatetimeIndex(batch.time[max(end - len(y) - h, 0):end])
                if len(ds) < len(y) + h:  # the last block runs past the data: continue the grid
                    ds = ds.append(pd.DatetimeIndex(ds[-1] + step * np.arange(1, len(y) + h - len(ds) + 1)))
            else:
                ds = pd.Timestamp("2000-01-03") + step * np.arange(len(y) + h)  # a Monday: weekdays line up
            m = Prophet(daily_seasonality=batch.day > 1, weekly_seasonality=True,
                        yearly_seasonality=batch.day == 1 and len(y) >= 2 * 365, uncertainty_samples=0,
                        holidays=self._calendar(batch, i, ds))
            m.fit(pd.DataFrame({"ds": ds[: len(y)], "y": y}))
            fit = m.predict(pd.DataFrame({"ds": ds}))["yhat"].to_numpy()
            resid = y - fit[: len(y)]
            mean[i] = fit[len(y):]
            half[i] = z_level * np.sqrt(np.mean(resid**2))
        return mean, half
