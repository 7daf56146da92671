"""Learned effects of recurring calendar events (holidays, retail days, a user's own sales).

An event's effect on a series is how far the series stood from its ordinary expectation on
the event's earlier occurrences, on a log scale (``log(actual / expected)``: Black Friday x2.6
is +0.96 whatever the store's size). The chain of occurrences comes from ``holiday_ref`` (each
named bucket points at the same bucket of the same event's previous occurrence), so the
estimate for an occurrence uses earlier occurrences only (no look-ahead): the average of the
last :data:`MEMORY` occurrences, recent ones weighing as much as older ones.

With little history an estimate is shrunk towards a prior, by precision (each observation is
as noisy as the series' own log residuals on ordinary buckets): a segment towards its parent
series' effect (a segment of a few orders a day learns Black Friday mostly from its store), a
property's series towards the mean effect of its market peers (a store that opened this year
expects Black Friday as its peers saw it last year). A series with neither history nor prior
learns nothing, and the detector widens its band there as before.

The estimate is uncertain: events vary in size from year to year (the market's mood, this
year's promotion), and so does its estimate from a few occurrences. ``effect_sd`` says how much,
in log units: the estimate's own variance plus :data:`SIZE_SPREAD` of the (log) effect. The
detector adds it to its noise on those buckets only, so an event's band is about as wide as an
ordinary day's (Black Friday's x2.6 adds 5 % of 0.96, about ±5 %, to the noise); the market
view (:mod:`sleuth.detectors.market`) then tells a Black Friday bigger in every store from a
store's own departure.
"""
from __future__ import annotations

import numpy as np

from .base import SeriesBatch

#: occurrences averaged (the most recent ones)
MEMORY = 3
#: relative spread of an event's size from year to year (as a share of its log effect)
SIZE_SPREAD = 0.05
#: prior standard deviation (log units) of a segment's effect around its parent's, and of a
#: property's around its peers' mean
PARENT_SD, PEER_SD = 0.15, 0.1
#: log effects are clipped to this range (x0.05 to x20)
CLIP = 3.0


def log_ratio(batch: SeriesBatch, y: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``log(y / base)`` with a half-event offset: counts as they are, ratios on their numerator
    scale (rate times denominator), real values only where both are positive (NaN elsewhere)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        count = (batch.kind == "count")[:, None]
        ratio = (batch.kind == "ratio")[:, None]
        w = np.where(ratio & (batch.weight > 0), batch.weight, 1.0)
        c = np.where(count | ratio, 0.5, 0.0)
        num, den = y * w + c, base * w + c
        out = np.log(num / den)
    return np.where(np.isfinite(out) & (num > 0) & (den > 0), out, np.nan)


def _chain(batch: SeriesBatch, S: int, T: int) -> np.ndarray:
    return np.broadcast_to(batch.holiday_ref, (S, T)) if batch.holiday_ref is not None else np.full((S, T), -1)


def _peer_mean(est: np.ndarray, n: np.ndarray, group: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per series, the mean estimate of its market peers that have one (leave-one-out), and how
    many there were; NaN and 0 without a market."""
    S = est.shape[0]
    if group is None or not (group >= 0).any():
        return np.full_like(est, np.nan), np.zeros_like(n)
    has = (n > 0) & np.isfinite(est)
    g = np.where(group >= 0, group, group.max() + 1 + np.arange(S))  # lone series: groups of one
    k = int(g.max()) + 1
    tot = np.zeros((k, est.shape[1]))
    cnt = np.zeros((k, est.shape[1]))
    np.add.at(tot, g, np.where(has, est, 0.0))
    np.add.at(cnt, g, has * 1.0)
    others = cnt[g] - has
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (tot[g] - np.where(has, est, 0.0)) / others
    return np.where(others > 0, mean, np.nan), others


def learned_effects(batch: SeriesBatch, base: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(effect, learned, effect_sd)``, each ``[S, T]``: the log effect expected at each named
    bucket from the event's earlier occurrences (0 elsewhere), where one could be learned, and
    its uncertainty (log units). ``base`` is the ordinary expectation (without the event) and
    ``noise`` the series' log noise per bucket (NaN where unknown)."""
    S, T = base.shape
    effect = np.zeros((S, T))
    learned = np.zeros((S, T), bool)
    sd = np.zeros((S, T))
    if batch.holiday_ref is None or not T:
        return effect, learned, sd
    ref = _chain(batch, S, T)
    named = np.broadcast_to(batch.holiday, (S, T)) if batch.holiday is not None else ref >= 0
    obs = np.clip(log_ratio(batch, batch.value.astype(float), base), -CLIP, CLIP)
    # running stats of each series' occurrences up to and including each named bucket
    n_incl = np.zeros((S, T))
    mean_incl = np.zeros((S, T))
    est = np.full((S, T), np.nan)  # own estimate from earlier occurrences
    n_own = np.zeros((S, T))
    rows = np.arange(S)
    parent = batch.parent if batch.parent is not None else np.full(S, -1)
    group = batch.peer_group
    var1 = np.fmax(np.where(np.isfinite(noise), noise, 0.3), 1e-3) ** 2  # one observation's variance (log units)
    prior_cols: list[int] = []
    for t in np.flatnonzero(named.any(axis=0)):  # named buckets in time order, all series at once
        r = ref[:, t]
        has_ref = r >= 0
        rr = np.where(has_ref, r, 0)
        n_prev = np.where(has_ref, n_incl[rows, rr], 0.0)
        m_prev = np.where(has_ref, mean_incl[rows, rr], 0.0)
        est[:, t] = np.where(n_prev > 0, m_prev, np.nan)
        n_own[:, t] = n_prev
        o = obs[:, t]
        ok = np.isfinite(o) & named[:, t]
        n_new = n_prev + ok
        alpha = np.where(ok, 1.0 / np.clip(n_new, 1, MEMORY), 0.0)
        mean_incl[:, t] = m_prev + alpha * (np.where(ok, o, 0.0) - m_prev)
        n_incl[:, t] = np.minimum(n_new, MEMORY)
        prior_cols.append(t)
    cols = np.asarray(prior_cols, dtype=int)
    if not len(cols):
        return effect, learned, sd
    e_own, n = est[:, cols], n_own[:, cols]
    own_var = var1[:, cols] / np.maximum(n, 1)
    # priors: a segment's parent, else the mean of its market peers
    peer_mean, peers = _peer_mean(e_own, n, group)
    has_parent = parent >= 0
    par_est = np.where(has_parent[:, None], e_own[np.maximum(parent, 0)], np.nan)
    par_n = np.where(has_parent[:, None], n[np.maximum(parent, 0)], 0)
    prior = np.where(np.isfinite(par_est) & (par_n > 0), par_est, peer_mean)
    prior_var = np.where(np.isfinite(par_est) & (par_n > 0), PARENT_SD**2, PEER_SD**2)
    has_prior = np.isfinite(prior)
    w_own = np.where(n > 0, 1.0 / own_var, 0.0)
    w_pri = np.where(has_prior, 1.0 / prior_var, 0.0)
    total = w_own + w_pri
    with np.errstate(invalid="ignore", divide="ignore"):
        post = (w_own * np.nan_to_num(e_own) + w_pri * np.nan_to_num(prior)) / total
        post_var = 1.0 / total
    ok = (total > 0) & named[:, cols]
    effect[:, cols] = np.where(ok, post, 0.0)
    learned[:, cols] = ok
    sd[:, cols] = np.where(ok, np.sqrt(post_var + (SIZE_SPREAD * post) ** 2), 0.0)
    return effect, learned, sd
