"""Multi-dimensional root-cause localisation: the *set* of segments that explains an anomaly.

Input is a leaf table: one row per combination of dimension values with the actual and the
forecast value of an additive measure (or of a ratio's numerator and denominator). Output is a
ranked set of elements (``{dim: value, ...}`` of any depth), each with its share of the evidence,
its share of the change and its own relative change; ``unexplained`` says what the set leaves.

The method (clean-room; the problem as posed by HotSpot, Squeeze and RiskLoc, the decision made as a
penalised likelihood):

1. **One deviation per leaf.** ``q = (actual - forecast) / max(actual, forecast)`` in [-1, 1]: a
   drop of 60 % is -0.6 and the mirror rise (forecast 40, actual 100) is +0.6, so forecast errors
   of either sign have the same, light tails; zero leaves (both 0) carry no information. For counts
   (whole numbers) the scale is the forecast, at least one burst of events: a Pearson-like
   deviation, so that a value appearing from nothing stands out. A ratio's leaf is compared at its
   actual volume (forecast numerator = forecast rate x actual denominator): only rate effects
   count, a shift in the traffic mix does not.
2. **A noise model fitted to the case.** ``var(q) = s2 + kappa / vol + b / vol^2``: relative
   forecast error, count-like error and the known sampling variance (Poisson in bursts for counts,
   binomial for proportions, with a floor of one event). ``s2`` and ``kappa`` are fitted per volume
   bin so that the 90th percentile of the standardised deviations of the leaves not yet explained
   matches a chi-square's: the tails of real forecast errors, not their median, decide what is
   surprising. A cause that holds many leaves is judged again against the noise of the others.
3. **Evidence of an element.** If element ``e`` is a cause, its leaves share one shift; the
   log-likelihood gain is ``G(e) = (sum w q)^2 / sum w`` (``w = 1/var``), computed for every
   element of every cuboid at once from group sums (one ``np.bincount``). Naming an element costs
   its description length, ``2 (ln(D+1) + ln C(D, k) + ln K) + 6`` for an element of ``k`` of ``D``
   dimensions in a cuboid of ``K`` elements (the 6: evidence 20 times the cost's), so a general
   element is cheaper than a specific one and the depth follows the evidence, with no cap. Among
   ancestors and descendants the true element has the largest gain (a parent dilutes its shift
   with normal leaves, a child loses part of the evidence), so the specificity comes out of the
   same score.
4. **The set, decided by the data.** Elements are added greedily while one gains more than it
   costs; after each, the noise is refitted on the leaves still unexplained. Two guards from the
   data itself keep real-world noise out: an element must move with the anomaly (the incident's
   direction, or the total's change) and beat the strongest evidence of any element moving
   *against* it (an empirical null), and a further element must move its segment by at least a
   quarter of the strongest cause's relative change (one incident, not the background). A chosen
   element is widened to an ancestor when the rest of that ancestor moved as well (parts holding
   90 % of its information, most of its siblings among them): people name ``bitrate=2000``, not
   its four device parts.
5. **Site-wide.** When a common shift of everything beats the set, or the set spans nearly every
   leaf, the search runs again beyond that shift (re-estimated on the leaves its causes leave out),
   and the better description wins (penalised profile likelihood: the noise's shape is the common
   fit, its scale each description's own): a change that is only the common shift
   has no root cause (``[]``); a common shift with a local cause on top names the local cause.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

#: the leaf noise is matched at this quantile of the standardised squared deviations
NOISE_QUANTILE = 0.9
_CHI2_Q = 2.705543454095404  # chi-square(1 dof) at NOISE_QUANTILE
#: the smallest relative noise of a leaf: a perfect forecast still leaves rounding
MIN_NOISE = 0.01
#: leaves per volume bin of the noise fit, and most bins
BIN_LEAVES, MAX_BINS = 20, 20
#: a bin whose squared deviations reach this at the quantile is saturated (|q| <= 1)
SATURATED = 0.8
#: a count's sampling noise is never below one event
UNIT = 1.0
#: leaves with almost nothing expected that estimate the size of one burst of events
BURSTS = 10
#: a further cause must move its segment by at least this share of the strongest cause's move
MIN_SEVERITY = 0.25
#: a cause is widened to its ancestor when parts holding this share of the ancestor's information
#: moved with it
GENERALISE = 0.9
#: a part moved when its own evidence is beyond this (chi-square, 1 dof: z = 3)
PART_MOVED = 9.0
#: the set spans (nearly) everything when its leaves hold this share of the information
SPANNED = 0.9
#: evidence must beat an element's description length by this much (chi-square units: 20 times)
MARGIN = 6.0
#: bounded work: most elements in a set, and most (leaf x cuboid) cells kept in memory (deeper
#: cuboids beyond it are left out; at 100,000 leaves that is every cuboid of up to 6 dimensions)
MAX_ELEMENTS = 50
MAX_CELLS = 10_000_000


@dataclass(frozen=True)
class RootCause:
    segment: dict[str, str]
    score: float     # share of the evidence (all leaves' weighted squared deviations) the element carries
    explains: float  # share of the total change inside the element (for ratios: of the rate effect)
    actual: float    # the element's actual total (for ratios: its actual rate)
    expected: float  # its forecast total (for ratios: its forecast rate at its actual volume)
    change: float    # its relative change, (actual - expected) / sum of max(actual, expected)

    def to_dict(self) -> dict:
        return {"segment": self.segment, "score": round(self.score, 4), "explains": round(self.explains, 4),
                "actual": float(f"{self.actual:.6g}"), "expected": float(f"{self.expected:.6g}"),
                "change": round(self.change, 4)}


# ----------------------------------------------------------------------------- the leaf table

def _column(leaves: pd.DataFrame, col: str) -> np.ndarray:
    x = pd.to_numeric(leaves[col], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(x), x, 0.0)


def _prior_rate(leaves: pd.DataFrame, dims: Sequence[str], f: np.ndarray, df: np.ndarray, overall: float) -> np.ndarray:
    """A forecast rate for leaves with no forecast volume: the rate of their value of the dimension
    that explains most of the spread of the other leaves' rates (a new combination of known values
    sells at its category's price, not the shop's average), else the overall rate."""
    has = df > 0
    rate = np.where(has, f / np.where(has, df, 1.0), overall)
    spread = float((df * (rate - overall) ** 2)[has].sum())
    prior, best = np.full(len(f), overall), 0.0
    for d in dims:
        codes, _ = pd.factorize(leaves[d].astype(str))
        num, den = np.bincount(codes, np.where(has, f, 0.0)), np.bincount(codes, np.where(has, df, 0.0))
        group = np.where(den > 0, num / np.where(den > 0, den, 1.0), overall)
        between = float((den * (group - overall) ** 2).sum())
        if spread > 0 and between / spread > best:
            best, prior = between / spread, group[codes]
    return prior


def leaf_arrays(leaves: pd.DataFrame, real: str, predict: str, real_den: str | None = None,
                predict_den: str | None = None, dims: Sequence[str] = ()
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Actual ``v``, forecast ``f``, sampling variance ``b`` and denominator of each leaf, and the
    unit of the measure (1 for counts, 0 otherwise).

    For a ratio the forecast numerator is the forecast rate at the actual denominator (a leaf with
    no forecast volume takes its rate from a dimension, :func:`_prior_rate`), and ``b`` is the binomial variance of the
    numerator given the denominator, with the forecast's own sampling error. An additive measure
    whose actual values are all whole numbers is a count: ``b`` is its Poisson variance in bursts
    (the count at the 90th percentile of the leaves where almost nothing was expected: page views
    come a session at a time). Both have a floor of one event (or burst), as one is never strong
    evidence; other measures have ``b = 0``.
    """
    v, f = _column(leaves, real), _column(leaves, predict)
    unit = UNIT if len(v) and bool(np.all(v >= 0) and np.all(v == np.round(v))) else 0.0
    if real_den is None or predict_den is None:
        if not unit:
            return v, f, np.zeros(len(v)), np.ones(len(v)), unit
        # events come in bursts (a session views several pages): a count where almost nothing was
        # expected is one burst; its size at the noise quantile is the smallest change worth a look
        burst = (f <= 1) & (v > 0)
        if burst.sum() >= BURSTS:
            unit = max(unit, _upper(v[burst]))
        return v, f, unit * (np.maximum(f, 0.0) + unit), np.ones(len(v)), unit
    dv, df = _column(leaves, real_den), _column(leaves, predict_den)
    has = df > 0
    overall = f.sum() / df.sum() if df.sum() > 0 else 0.0
    rate = np.where(has, f / np.where(has, df, 1.0), _prior_rate(leaves, dims, f, df, overall))
    f = rate * dv
    if unit and 0.0 <= overall <= 1.0:  # a proportion of counts (conversions of sessions): binomial
        b = overall * (1 - overall) * dv * (1 + np.where(has, dv / np.where(has, df, 1.0), 0.0))
        b = b + np.where(dv > 0, unit, 0.0)
    else:  # another ratio (revenue per order): its noise is fitted from the data alone
        b = np.zeros(len(v))
    return v, f, b, dv, unit


# ----------------------------------------------------------------------------- cuboids

class _Cuboids:
    """Every cuboid (set of dimensions) with each leaf's element id in it, a representative leaf
    per element (to name it) and the cost of naming one of its elements."""

    def __init__(self, leaves: pd.DataFrame, dims: Sequence[str], max_depth: int | None = None):
        n = len(leaves)
        self.dims = list(dims)
        self.codes, self.values = [], []
        for d in self.dims:
            c, u = pd.factorize(leaves[d].astype(str), sort=True)
            self.codes.append(c.astype(np.int64))
            self.values.append(np.asarray(u, dtype=object))
        D = len(self.dims)
        self.ids: dict[tuple[int, ...], np.ndarray] = {}
        self.size: dict[tuple[int, ...], int] = {}
        self.rep: dict[tuple[int, ...], np.ndarray] = {}
        self.cost: dict[tuple[int, ...], float] = {}
        built = {(): (np.zeros(n, dtype=np.int64), 1)}
        for k in range(1, min(max_depth or D, D) + 1):
            for combo in combinations(range(D), k):
                if (len(self.ids) + 1) * n > MAX_CELLS:
                    break
                parent, j = combo[:-1], combo[-1]
                if parent not in built:
                    continue
                pid, psize = built[parent]
                ids, size = pid * len(self.values[j]) + self.codes[j], psize * len(self.values[j])
                if size > 4 * n:  # sparse: renumber the elements that occur
                    _, ids = np.unique(ids, return_inverse=True)
                    size = int(ids.max()) + 1 if n else 0
                built[combo] = (ids, size)
                rep = np.full(size, -1, dtype=np.int64)
                rep[ids] = np.arange(n)
                self.ids[combo], self.size[combo], self.rep[combo] = ids, size, rep
                present = max(int((rep >= 0).sum()), 1)
                self.cost[combo] = 2 * (math.log(D + 1) + math.log(math.comb(D, k)) + math.log(present)) + MARGIN
        self.root_cost = 2 * math.log(D + 1) + MARGIN
        # every cuboid's elements side by side, so that one bincount sums a leaf array over all
        self.combos = list(self.ids)
        sizes = [self.size[c] for c in self.combos]
        self.offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.total = int(self.offset[-1])
        self.n = n
        self.flat = (np.concatenate([self.ids[c] + o for c, o in zip(self.combos, self.offset)])
                     if self.combos else np.zeros(0, dtype=np.int64))
        self.flat_cost = np.repeat([self.cost[c] for c in self.combos], sizes) if self.combos else np.zeros(0)

    def sums(self, x: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """The sum of the leaf array ``x`` in every element (of the leaves ``idx`` only, if given)."""
        if idx is None:
            return np.bincount(self.flat, np.tile(x, len(self.combos)), self.total)
        pos = (idx[None, :] + self.n * np.arange(len(self.combos))[:, None]).ravel()
        return np.bincount(self.flat[pos], np.tile(x[idx], len(self.combos)), self.total)

    def locate(self, k: int) -> tuple[tuple[int, ...], int]:
        """Cuboid and element id of the ``k``-th element of the flat layout."""
        c = int(np.searchsorted(self.offset, k, side="right")) - 1
        return self.combos[c], int(k - self.offset[c])

    def element(self, combo: tuple[int, ...], gid: int) -> dict[str, str]:
        i = self.rep[combo][gid]
        return {self.dims[j]: str(self.values[j][self.codes[j][i]]) for j in combo}

    def mask(self, combo: tuple[int, ...], gid: int) -> np.ndarray:
        return self.ids[combo] == gid


# ----------------------------------------------------------------------------- the noise

def _upper(x: np.ndarray) -> float:
    """The NOISE_QUANTILE quantile of ``x`` (nearest rank; a partition, not a sort)."""
    k = int(NOISE_QUANTILE * (len(x) - 1))
    return float(np.partition(x, k)[k])


class _Noise:
    """The variance of each leaf's deviation, fitted on the leaves not yet explained.

    ``var(q) = s2 + kappa / vol + b / vol^2``: a relative forecast error, a count-like error and
    the known sampling variance ``b`` (in units of the measure), where ``vol`` is the deviation's
    scale. ``s2`` and ``kappa`` make the 90th percentile of the standardised deviations match a
    chi-square's in every volume bin, fitted across the bins by least squares.
    """

    def __init__(self, q: np.ndarray, vol: np.ndarray, b: np.ndarray, informative: np.ndarray,
                 floor: bool, bounded: bool):
        self.bounded = bounded
        safe = np.where(informative, vol, 1.0)
        self.q2 = q * q
        self.rel = informative.astype(float)                     # multiplies s2
        self.cnt = np.where(informative, 1.0 / safe, 0.0)        # multiplies kappa
        self.b = np.where(informative, b / safe ** 2, 0.0)
        self.floor = MIN_NOISE ** 2 if floor else 0.0
        idx = np.flatnonzero(informative)
        idx = idx[np.argsort(vol[idx], kind="stable")]
        self.bins = np.array_split(idx, int(np.clip(len(idx) // BIN_LEAVES, 1, MAX_BINS)))

    def fit(self, open_: np.ndarray) -> tuple[float, float]:
        rows = []
        for part in self.bins:
            part = part[open_[part]]
            if len(part) < 3:
                continue
            # a bounded q (|q| <= 1): a bin whose deviations are mostly +-1 is saturated and
            # says nothing
            if self.bounded and _upper(self.q2[part]) >= SATURATED:
                continue
            # q2 / (e + b) > c  <=>  q2 - c b > c e: the quantile has a closed form
            e = max(_upper(self.q2[part] - _CHI2_Q * self.b[part]), 0.0) / _CHI2_Q
            rows.append((e, float(self.rel[part].mean()), float(self.cnt[part].mean())))
        if not rows:
            return max(1.0 / _CHI2_Q, self.floor), 0.0  # every bin saturated: as noisy as it gets
        e, x1, x2 = map(np.array, zip(*rows))
        s2, kappa = float(np.median(e / np.maximum(x1, 1e-300))), 0.0
        if len(e) >= 3 and np.ptp(x2 / np.maximum(x1, 1e-300)) > 0:
            (a, c), *_ = np.linalg.lstsq(np.stack([x1, x2], axis=1), e, rcond=None)
            if a >= 0 and c >= 0:
                s2, kappa = float(a), float(c)
            elif c > 0:  # no relative term: all of it count-like
                s2, kappa = 0.0, float(np.median(e / np.maximum(x2, 1e-300)))
        return max(s2, self.floor), kappa

    def weights(self, open_: np.ndarray, to: np.ndarray | None = None) -> np.ndarray:
        """1 / var(q) of the leaves ``to`` (default ``open_``), the noise fitted on ``open_``."""
        s2, kappa = self.fit(open_)
        var = s2 * self.rel + kappa * self.cnt + self.b
        return np.where(open_ if to is None else to, 1.0 / np.maximum(var, 1e-300), 0.0)


# ----------------------------------------------------------------------------- the search

def _gains(sw: np.ndarray, swd: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sw > 0, swd * (swd / np.where(sw > 0, sw, 1.0)), 0.0)


def _widen(cub: _Cuboids, combo: tuple[int, ...], gid: int, w: np.ndarray, wq: np.ndarray, sign: float):
    """The most general ancestor of the element whose parts (in the element's cuboid) that moved
    with the anomaly hold at least GENERALISE of its information, the element's siblings included
    (most of the rest of the ancestor moved too); the element itself otherwise."""
    leaf = cub.rep[combo][gid]
    ids = cub.ids[combo]
    for k in range(1, len(combo)):
        best = None
        for anc in combinations(combo, k):
            aid = cub.ids[anc][leaf]
            idx = np.flatnonzero((cub.ids[anc] == aid) & (w > 0))
            u, inv = np.unique(ids[idx], return_inverse=True)
            sw = np.bincount(inv, w[idx], len(u))
            swd = np.bincount(inv, wq[idx], len(u))
            moved = (_gains(sw, swd) > PART_MOVED) & (swd * sign > 0)
            rest = u != gid
            if (sw.sum() > 0 and sw[moved].sum() >= GENERALISE * sw.sum()
                    and sw[moved & rest].sum() >= 0.5 * sw[rest].sum() > 0):
                gain = float(swd.sum() ** 2 / sw.sum())
                if best is None or gain > best[0]:
                    best = (gain, anc, int(aid))
        if best is not None:
            return best[1], best[2]
    return combo, gid


def _best(cub: _Cuboids, w: np.ndarray, wq: np.ndarray, sign: float, change: np.ndarray, volume: np.ndarray,
          top_severity: float) -> tuple[float, tuple[int, ...], int, float]:
    """The element with the largest evidence net of its cost among those moving with the anomaly
    (and, after the first cause, by at least MIN_SEVERITY of its move), and the bar: the strongest
    net evidence of any element moving against the anomaly."""
    sw, swd = cub.sums(w), cub.sums(wq)
    net = _gains(sw, swd) - cub.flat_cost
    bar = 0.0
    if sign:
        against = swd * sign < 0
        if against.any():
            bar = max(bar, float(net[against].max()))
        net[~(swd * sign > 0)] = -np.inf
    if top_severity > 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            weak = ~(np.abs(change) >= MIN_SEVERITY * top_severity * volume)
        net[weak] = -np.inf
    if not len(net):
        return -np.inf, (), 0, bar
    k = int(np.argmax(net))
    combo, gid = cub.locate(k)
    return float(net[k]), combo, gid, bar


def _search(cub: _Cuboids, noise: _Noise, q: np.ndarray, vol: np.ndarray, informative: np.ndarray,
            sign: float, shift: float) -> tuple[list[tuple[tuple[int, ...], int, float]], float]:
    """Greedy forward selection (module doc, step 4) after removing a common ``shift`` of q.

    Returns the chosen ``(cuboid, element id, gain - cost)`` and the total of ``gain - cost``.
    """
    open_ = informative.copy()
    chosen: list[tuple[tuple[int, ...], int, float]] = []
    total, top_severity = 0.0, 0.0
    # the change and volume of every element, for its relative change (severity)
    qs = q - shift
    change, volume = cub.sums(vol * qs), cub.sums(vol)
    while len(chosen) < MAX_ELEMENTS and open_.any():
        w = noise.weights(open_)
        wq = w * qs
        gain, combo, gid, bar = _best(cub, w, wq, sign, change, volume, top_severity)
        if not np.isfinite(gain):
            break
        if gain <= bar:
            # a cause that holds many of the leaves inflates the noise it is judged against: judge
            # it again with the noise fitted on the other leaves
            w_out = noise.weights(open_ & ~cub.mask(combo, gid), to=open_)
            gain_out, combo_out, gid_out, bar_out = _best(cub, w_out, w_out * qs, sign, change, volume, top_severity)
            if gain_out <= bar_out or (combo_out, gid_out) != (combo, gid):
                break
        combo, gid = _widen(cub, combo, gid, w, wq, sign)
        mask = cub.mask(combo, gid)
        sw, swd = w[mask].sum(), wq[mask].sum()
        gain = (swd * swd / sw if sw > 0 else 0.0) - cub.cost[combo]
        hit = mask & open_
        top_severity = max(top_severity, abs(float((vol * qs)[hit].sum())) / max(float(vol[hit].sum()), 1e-300))
        idx = np.flatnonzero(hit)  # the element's leaves are explained: out of every element's sums
        change -= cub.sums(vol * qs, idx)
        volume -= cub.sums(vol, idx)
        open_ &= ~mask
        chosen.append((combo, gid, gain))
        total += gain
    return chosen, total


def _spanned(cub: _Cuboids, chosen: list, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for combo, gid, _ in chosen:
        out |= cub.mask(combo, gid)
    return out


def _misfit(cub: _Cuboids, w: np.ndarray, q: np.ndarray, shift: float, chosen: list) -> float:
    """Weighted squared deviation of every leaf from its element's shift (from ``shift`` outside
    the elements)."""
    r = q - shift
    fitted = np.zeros(len(q))
    taken = np.zeros(len(q), dtype=bool)
    for combo, gid, _ in chosen:
        mask = cub.mask(combo, gid) & ~taken
        sw = w[mask].sum()
        fitted[mask] = (w * r)[mask].sum() / sw if sw > 0 else 0.0
        taken |= mask
    return float((w * (r - fitted) ** 2).sum())


def _cost(cub: _Cuboids, chosen: list) -> float:
    return float(sum(cub.cost[c] for c, _, _ in chosen))


def localize(leaves: pd.DataFrame, dims: Sequence[str], real: str = "real", predict: str = "predict",
             real_den: str | None = None, predict_den: str | None = None,
             max_depth: int | None = None, direction: str | None = None) -> list[RootCause]:
    """Return the ranked set of root-cause elements for one leaf table; empty when nothing stands
    out or the change is spread evenly over everything (site-wide).

    Additive measure: ``real`` and ``predict`` columns. Ratio measure: also ``real_den`` and
    ``predict_den`` (numerator over denominator, per leaf). ``max_depth`` caps the dimensions of an
    element if you want it capped; by default the depth follows the data. ``direction`` (``up`` or
    ``down``) is the anomaly's, when known (an incident's); by default the total's change says it.
    """
    for col in [real, predict, real_den, predict_den, *dims]:
        if col is not None and col not in leaves.columns:
            raise InputError(f"leaf table: no column {col!r}; columns are: {', '.join(map(str, leaves.columns))}")
    if (real_den is None) != (predict_den is None):
        raise InputError("leaf table: real_den and predict_den go together (the denominators of a ratio)")
    if leaves.empty or not dims:
        return []
    v, f, b, den, unit = leaf_arrays(leaves, real, predict, real_den, predict_den, dims)
    informative = np.maximum(np.abs(v), np.abs(f)) > 0
    # the deviation's scale: the larger of actual and forecast (bounded deviations, light tails);
    # for counts the forecast, at least one event (a Pearson-like deviation: 0 where 0.3 were
    # expected is -0.3, and 19,543 page views where none were expected stand out as they should)
    vol = np.maximum(np.abs(f), unit) if unit else np.maximum(np.abs(v), np.abs(f))
    q = np.where(informative, (v - f) / np.where(informative, vol, 1.0), 0.0)
    total_change = float(v.sum() - f.sum())
    sign = {"up": 1.0, "down": -1.0}.get(direction or "", float(np.sign(total_change)))
    if not informative.any() or not np.any(q):
        return []
    cub = _Cuboids(leaves, dims, max_depth)
    noise = _Noise(q, vol, b, informative, floor=not b.any(), bounded=not unit)
    chosen, score = _search(cub, noise, q, vol, informative, sign, 0.0)

    # everything shifted alike: when a common shift alone beats the set found, or the set spans
    # (nearly) every leaf, search again beyond that shift and keep the better description
    # (nothing beyond the shift: site-wide, no root cause)
    w = noise.weights(informative)
    wq = w * q
    root = wq.sum() ** 2 / w.sum() - cub.root_cost if w.sum() > 0 and wq.sum() * sign >= 0 else 0.0
    spanned = _spanned(cub, chosen, len(q))
    if root > 0 and (root > score or w[spanned].sum() >= SPANNED * w.sum()):
        shift = float(wq.sum() / w.sum())
        beyond, _ = _search(cub, noise, q, vol, informative, sign, shift)
        if beyond:  # the common shift of the leaves the causes beyond it leave out, and search again
            rest = informative & ~_spanned(cub, beyond, len(q))
            if w[rest].sum() > 0:
                shift = float(wq[rest].sum() / w[rest].sum())
                beyond, _ = _search(cub, noise, q, vol, informative, sign, shift)
        # the noise's scale is each description's own (profile likelihood), its shape the common fit
        n_inf = int(informative.sum())
        fit_a = n_inf * math.log(max(_misfit(cub, w, q, 0.0, chosen), 1e-300) / n_inf) + _cost(cub, chosen)
        fit_b = n_inf * math.log(max(_misfit(cub, w, q, shift, beyond), 1e-300) / n_inf) + _cost(cub, beyond)
        if fit_a > fit_b + cub.root_cost:
            chosen = beyond

    evidence = max(float((w * q * q).sum()), 1e-300)
    out = []
    for combo, gid, _ in chosen:
        mask = cub.mask(combo, gid)
        sw, swd = w[mask].sum(), (w * q)[mask].sum()
        actual, expected = float(v[mask].sum()), float(f[mask].sum())
        rc_change = (actual - expected) / max(float(vol[mask].sum()), 1e-300)
        if real_den is not None:  # rates at the element's actual volume
            d = max(float(den[mask].sum()), 1e-300)
            actual, expected = actual / d, expected / d
        out.append(RootCause(segment=cub.element(combo, gid),
                             score=float(min(swd * swd / sw / evidence, 1.0)) if sw > 0 else 0.0,
                             explains=float(v[mask].sum() - f[mask].sum()) / total_change if total_change else 0.0,
                             actual=actual, expected=expected, change=float(rc_change)))
    return sorted(out, key=lambda rc: -rc.score)


def unexplained(causes: Sequence[RootCause]) -> float:
    """The share of the total change the set leaves unexplained (1 - the sum of ``explains``)."""
    return 1.0 - float(sum(rc.explains for rc in causes))
