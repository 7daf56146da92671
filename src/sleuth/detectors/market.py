"""The market: a series judged against the concurrent move of the same metric in its peers.

The properties of one deployment (or of a ``peers:`` group) form a market. For each series with
at least two peers (``SeriesBatch.peer_group``), the market's move at bucket t is the median of
the peers' log residuals ``log(actual / expected)`` at t, leaving the series itself out; peers
move together on a day the whole industry moves (a heat wave, a payment provider's outage, a
Black Friday bigger than last year's).

How much of the market's move a series shares is learned online, by regression of its own log
residual on the market's (``beta``: exponentially weighted over past ordinary buckets, flagged
ones left out; 0 for a series that does not move with its market, such as a noisy conversion
rate of a small store). The series' *market-adjusted* expectation is its own times
``exp(beta * market)``; its residual against that has its own robust noise scale, window sums
and calibration, as the default detector's. Where that evidence is strong, a series departs
from its market: an incident even when its own change alone would sit inside its band (a store
down 20 % on a day its market rose 10 %). A move of the whole market is not a departure; the
series' own band still sees it, and the incident says the market moved too.

Everything at t uses the peers' values at t and the series' past only (no look-ahead).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import SeriesBatch
from .events import log_ratio

#: fewest peers with data at a bucket for a market move there
MIN_PEERS = 2
#: range of the learned share of the market's move
BETA_RANGE = (0.0, 1.5)


def leave_one_out_median(r: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``[S, T]``: for each series, the median of ``r`` over the other series of its group at each
    bucket (NaN with fewer than :data:`MIN_PEERS` values, or outside any group). Vectorised per
    group: sort once, then read each member's median with its own value taken out."""
    out = np.full(r.shape, np.nan)
    for g in np.unique(group[group >= 0]):
        rows = np.flatnonzero(group == g)
        a = r[rows]
        n = len(rows)
        order = np.argsort(a, axis=0)  # NaN last
        srt = np.take_along_axis(a, order, axis=0)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n)[:, None].repeat(a.shape[1], 1), axis=0)
        n_ok = np.isfinite(a).sum(axis=0)[None, :]
        own = np.isfinite(a)
        m = n_ok - own  # values left once the member's own is out
        k = np.where(own, rank, n)  # a member without a value removes nothing
        lo, hi = (m - 1) // 2, m // 2
        lo_i = np.clip(lo + (lo >= k), 0, n - 1)
        hi_i = np.clip(hi + (hi >= k), 0, n - 1)
        cols = np.arange(a.shape[1])[None, :].repeat(n, 0)
        med = 0.5 * (srt[lo_i, cols] + srt[hi_i, cols])
        out[rows] = np.where(m >= MIN_PEERS, med, np.nan)
    return out


def _ew_past(a: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean of each series' values strictly before each bucket (NaN
    ignored; NaN until something was seen)."""
    return pd.DataFrame(a.T).ewm(span=span, min_periods=1, ignore_na=True).mean().shift(1).to_numpy().T


def market_view(batch: SeriesBatch, expected: np.ndarray, exclude: np.ndarray | None, span: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(market, beta, residual)``: the market's log move per series and bucket, the learned
    share of it, and the series' log residual against its market-adjusted expectation
    (``own residual - beta * market``); None when no series has a market."""
    group = batch.peer_group
    if group is None or not (group >= 0).any():
        return None
    r = log_ratio(batch, batch.value.astype(float), expected)
    market = leave_one_out_median(r, group)
    learn = np.isfinite(r) & np.isfinite(market)
    if exclude is not None:
        learn &= ~exclude
    if batch.holiday is not None:  # a named day's move is not the usual co-movement
        learn &= ~np.broadcast_to(batch.holiday, learn.shape)
    rm = _ew_past(np.where(learn, r * market, np.nan), span)
    mm = _ew_past(np.where(learn, market * market, np.nan), span)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.clip(rm / mm, *BETA_RANGE)
    beta = np.where(np.isfinite(beta), beta, 0.0)
    residual = r - beta * np.nan_to_num(market)
    return market, beta, np.where(np.isfinite(market), residual, np.nan)


def adjusted_scores(det, batch: SeriesBatch, expected: np.ndarray, ready: np.ndarray, exclude: np.ndarray,
                    event_sd: np.ndarray) -> dict[str, np.ndarray] | None:
    """The evidence of departing from the market, decided as the default detector decides (robust
    scale, window sums, calibration, thresholds): ``expected``, ``lower``, ``upper``, ``z``,
    ``evidence`` (in units of the threshold) and ``is_anomaly``, each ``[S, T]``, for the
    market-adjusted expectation; None without a market. ``det`` is the default detector (its
    threshold, windows, tail factor, minimal change)."""
    from .seasonal import _online_quantile, _online_scale, _window_sum, combined_evidence, scale_thresholds

    span = det._scale_window(batch)
    view = market_view(batch, expected, exclude, span)
    if view is None:
        return None
    market, beta, d = view
    named = np.zeros(d.shape, bool) if batch.holiday is None else np.broadcast_to(batch.holiday, d.shape)
    scale = _online_scale(np.where(exclude | named, np.nan, d), window=span, min_count=max(batch.season // 2, 3))
    # at least half as noisy as Poisson counts of the metric's events (for a ratio, its numerator's)
    w = np.where((batch.kind == "ratio")[:, None] & (batch.weight > 0), batch.weight, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        floor = 0.5 / np.sqrt(np.maximum(expected * w, 0.0) + 0.5)
    sigma = np.fmax(scale, floor)
    # a learned event's size varies per store too: half its uncertainty stays after the market's
    sigma = np.sqrt(sigma**2 + (0.5 * event_sd) ** 2)
    ok = ready & np.isfinite(sigma) & np.isfinite(d) & np.isfinite(scale)
    z = np.where(ok, d / sigma, np.nan)
    dd, v = np.where(ok, d, 0.0), np.where(ok, sigma**2, 0.0)
    zs = [z]
    for k in det.windows:
        with np.errstate(invalid="ignore", divide="ignore"):
            zs.append(np.where(ok, _window_sum(dd, k) / np.sqrt(_window_sum(v, k)), np.nan))
    stack = np.stack(zs)
    usual = _online_quantile(np.abs(np.where(exclude[None], np.nan, stack)), 0.98, start=2.33)
    thrs = np.fmax(det.threshold, det.tail_factor * usual)
    widen = None if batch.holiday is None else named & (event_sd == 0)  # named days never learned
    thrs = scale_thresholds(thrs, widen, det.holiday_widen, batch.threshold_factor)
    evidence = np.where(ok, combined_evidence(stack, thrs), 0.0)
    adj = expected * np.exp(beta * np.nan_to_num(market))
    thr = thrs[0]
    with np.errstate(invalid="ignore", over="ignore"):
        lower, upper = adj * np.exp(-thr * sigma), adj * np.exp(thr * sigma)
        rel = np.abs(np.expm1(d))
    is_anomaly = (evidence >= 1.0) & (rel >= det.min_rel_change) & np.isfinite(batch.value)
    return {"expected": adj, "lower": lower, "upper": upper, "z": z, "evidence": evidence, "is_anomaly": is_anomaly}
