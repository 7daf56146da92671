"""Multi-dimensional root-cause localisation: which set of segments explains an anomaly.

Input is a leaf table: one row per combination of dimension values with the actual and the
forecast value of an additive measure, or the actual and forecast numerator and denominator
of a ratio. Output is a ranked *set* of elements (``{dim: value, ...}`` with up to
``max_depth`` dimensions), each with a score and the share of the change it explains.

The method (clean-room, in the spirit of HotSpot's ripple effect and Squeeze's generalised
potential score, with a significance gate so that small segments do not win by noise):

1. **Ratios become additive.** A ratio's leaf is compared at its actual volume: the forecast
   numerator is the forecast *rate* times the actual denominator. What remains is the rate
   effect alone; a shift in the traffic mix does not make a segment a root cause.
2. **Only real changes.** An element is a candidate only when its own change is beyond the
   noise its volume allows (Poisson-like) and material relative to its size.
3. **Ripple potential.** If element ``e`` is a root cause, every leaf under it moves by the
   same factor ``v(e)/f(e)`` and every other leaf stays at its forecast. The potential of a set
   is ``1 - |v - f'| / |v - f|``: how much of the distance between actual and forecast the
   hypothesis removes. It is computed for every candidate from group sums in one pass per
   cuboid (``np.bincount``), so no leaf-by-element loop is needed.
4. **Greedy set, decided by the data.** Elements are added while one is still significant
   against the noise once the chosen ones are accounted for, and it removes a material share of
   the distance compared with the first; among nearly equally good candidates the more general one wins
   (succinctness), and a more specific one wins only when its parent would drag normal leaves
   along.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

#: a further element's own change must be at least this share of the first one's
MIN_RELATIVE_GAIN = 0.3
#: a more specific element must beat its more general competitor by this much
SUCCINCTNESS = 0.15
#: an element's own change must exceed its noise by this many standard deviations
Z_MIN = 3.0
#: ... and be at least this large relative to its size (Squeeze's deviation scale, 0..2)
REL_MIN = 0.05
#: at most this many elements in a set
MAX_ELEMENTS = 5


@dataclass(frozen=True)
class RootCause:
    segment: dict[str, str]
    score: float          # share of the distance beyond noise between actual and forecast it removes
    explains: float       # share of the total change inside the element
    actual: float
    expected: float

    def to_dict(self) -> dict:
        return {"segment": self.segment, "score": round(self.score, 4), "explains": round(self.explains, 4),
                "actual": float(f"{self.actual:.6g}"), "expected": float(f"{self.expected:.6g}")}


def _codes(leaves: pd.DataFrame, dims: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    codes, uniques = [], []
    for d in dims:
        c, u = pd.factorize(leaves[d].astype(str), sort=True)
        codes.append(c)
        uniques.append(np.asarray(u))
    return np.stack(codes, axis=1) if codes else np.zeros((len(leaves), 0), dtype=int), uniques


class _Candidates:
    """Every element of every cuboid up to ``max_depth`` with group sums for the potential."""

    def __init__(self, codes: np.ndarray, uniques: list[np.ndarray], dims: Sequence[str], max_depth: int):
        self.cuboids = []
        for depth in range(1, min(max_depth, len(dims)) + 1):
            for combo in combinations(range(len(dims)), depth):
                radix = [len(uniques[j]) for j in combo]
                gid = np.zeros(len(codes), dtype=np.int64)
                for j, r in zip(combo, radix):
                    gid = gid * r + codes[:, j]
                ids, inv = np.unique(gid, return_inverse=True)
                self.cuboids.append((combo, ids, inv, radix))
        self.dims, self.uniques = list(dims), uniques

    def element(self, combo: tuple[int, ...], gid: int, radix: list[int]) -> dict[str, str]:
        out = {}
        for j, r in reversed(list(zip(combo, radix))):
            out[self.dims[j]] = str(self.uniques[j][gid % r])
            gid //= r
        return dict(sorted(out.items(), key=lambda kv: self.dims.index(kv[0])))


def _best_element(cands: _Candidates, v: np.ndarray, f: np.ndarray, cur: np.ndarray):
    """The element whose ripple hypothesis most reduces the squared distance |v - cur|."""
    base = (v - cur) ** 2
    best = None
    for combo, ids, inv, radix in cands.cuboids:
        n = len(ids)
        sv = np.bincount(inv, v, n)
        sf = np.bincount(inv, f, n)
        svf = np.bincount(inv, v * f, n)
        sff = np.bincount(inv, f * f, n)
        svv = np.bincount(inv, v * v, n)
        sbase = np.bincount(inv, base, n)
        # only elements whose unexplained change is beyond noise and material are candidates
        s_cur = np.bincount(inv, cur, n)
        s_abs = np.bincount(inv, np.abs(v) + np.abs(cur), n)
        z = (sv - s_cur) / np.sqrt(s_abs + 1.0)
        rel = 2 * (sv - s_cur) / (s_abs + 1e-12)
        has_abn = (np.abs(z) > Z_MIN) & (np.abs(rel) > REL_MIN)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(np.abs(sf) > 0, sv / sf, 1.0)
        # squared distance inside the element once its leaves move by the factor a; an element
        # with no forecast volume (a new segment value) explains its leaves exactly
        after = np.where(np.abs(sf) > 0, svv - 2 * a * svf + a * a * sff, 0.0)
        gain = sbase - np.maximum(after, 0.0)
        gain = np.where(has_abn, gain, -np.inf)
        k = int(np.argmax(gain))
        if not np.isfinite(gain[k]):
            continue
        depth = len(combo)
        # a more specific element must be clearly better than a general one (succinctness)
        adj = gain[k] * (1 - SUCCINCTNESS * (depth - 1))
        if best is None or adj > best[0]:
            best = (adj, gain[k], combo, int(ids[k]), radix, inv == k, a[k])
    return best


def localize(leaves: pd.DataFrame, dims: Sequence[str], real: str = "real", predict: str = "predict",
             real_den: str | None = None, predict_den: str | None = None, max_depth: int = 3) -> list[RootCause]:
    """Return the ranked set of root-cause elements for one leaf table; empty when nothing
    stands out or the change is spread evenly over everything (site-wide).

    Additive measure: ``real`` and ``predict`` columns. Ratio measure: also ``real_den`` and
    ``predict_den`` (numerator over denominator, per leaf).
    """
    for col in [real, predict, real_den, predict_den, *dims]:
        if col is not None and col not in leaves.columns:
            raise InputError(f"leaf table: no column {col!r}; columns are: {', '.join(map(str, leaves.columns))}")
    if leaves.empty or not dims:
        return []
    v = pd.to_numeric(leaves[real], errors="coerce").fillna(0.0).to_numpy(float)
    f = pd.to_numeric(leaves[predict], errors="coerce").fillna(0.0).to_numpy(float)
    if real_den is not None and predict_den is not None:
        dv = pd.to_numeric(leaves[real_den], errors="coerce").fillna(0.0).to_numpy(float)
        df = pd.to_numeric(leaves[predict_den], errors="coerce").fillna(0.0).to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(df > 0, f / np.where(df > 0, df, 1), np.nan)
        # leaves with no forecast volume take the overall forecast rate
        overall = f.sum() / df.sum() if df.sum() > 0 else 0.0
        f = np.where(np.isfinite(rate), rate, overall) * dv
    total_change = v.sum() - f.sum()
    base = float(((v - f) ** 2).sum())
    if base <= 0:
        return []
    # the part of the distance beyond Poisson-like noise: what a root cause can explain
    excess = float(np.maximum((v - f) ** 2 - (np.abs(v) + np.abs(f) + 1.0), 0.0).sum()) or base
    codes, uniques = _codes(leaves, dims)
    cands = _Candidates(codes, uniques, dims, max_depth)

    # the whole is a candidate too: a change spread evenly over every leaf has no root cause
    a_all = v.sum() / f.sum() if f.sum() else 1.0
    whole_gain = base - float(((v - f * a_all) ** 2).sum())

    cur = f.copy()
    out: list[RootCause] = []
    first_change = 0.0
    while len(out) < MAX_ELEMENTS:
        best = _best_element(cands, v, f, cur)
        if best is None:
            break
        _, gain, combo, gid, radix, mask, factor = best
        if gain <= 0:
            break
        share = min(gain / excess, 1.0)
        change = abs(float(v[mask].sum() - cur[mask].sum()))
        if out and change < MIN_RELATIVE_GAIN * first_change:
            break  # much smaller than the main cause: noise, or not worth naming
        first_change = first_change or change
        cur = np.where(mask, f * factor if np.abs(f[mask].sum()) > 0 else v, cur)
        seg = cands.element(combo, gid, radix)
        change = float(v[mask].sum() - f[mask].sum())
        out.append(RootCause(segment=seg, score=float(share), explains=float(change / total_change) if total_change else 0.0,
                             actual=float(v[mask].sum()), expected=float(f[mask].sum())))
    set_gain = base - float(((v - cur) ** 2).sum())
    if whole_gain >= set_gain * (1 - SUCCINCTNESS):
        return []  # scaling everything alike explains it as well: site-wide
    return sorted(out, key=lambda rc: -rc.score)
