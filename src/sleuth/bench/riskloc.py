"""RiskLoc as the paper describes it, written here from that description (a baseline for
``sleuth bench rca``, run side by side with sleuth's localiser on the same cases).

M. Kalander, "RiskLoc: Localization of Multi-dimensional Root Causes by Weighted Risk",
arXiv:2205.10004. Defaults as published: risk threshold 0.5, explanatory-power threshold 0.02,
five extreme deviations removed before the cut-off, element pruning in the first layer.

1. Each leaf gets a deviation ``d = 2 (f - v) / (f + v)`` and an explanatory power (its share of
   the total change). The cut-off is the negated, smaller in magnitude, of the 6th largest and 6th
   smallest distinct deviations; leaves beyond it, on the anomaly's side, form the abnormal
   partition.
2. Weights grow linearly with the distance from the cut-off (abnormal leaves: ``|d|``; normal leaves:
   ``|t - d|``, 0 when both values are 0), capped at 1.
3. Layer by layer (1, 2, ... attributes), the elements of each cuboid with at least one abnormal leaf
   are tried by decreasing explanatory power; an element is accepted when its risk (weighted share
   in the abnormal partition, minus the relative change of deviation once its forecast is scaled to
   its actual total, the ripple effect) reaches 0.5. The best accepted element of the first layer
   with any is a root cause; its leaves are removed and the search repeats while the abnormal
   partition's remaining explanatory power is at least 2 % of the original.
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from ..explain.rca import _Cuboids, leaf_arrays

RISK_THRESHOLD, EP_THRESHOLD, N_REMOVE = 0.5, 0.02, 5


class Found:
    """One root cause (the bench reads ``segment``)."""

    def __init__(self, segment: dict[str, str]):
        self.segment = segment


def _cutoff(d: np.ndarray) -> float:
    u = np.unique(d)
    lo = u[min(N_REMOVE, len(u) - 1)]
    hi = u[max(len(u) - 1 - N_REMOVE, 0)]
    return -(lo if abs(lo) < abs(hi) else hi)


def _low_risk(v: np.ndarray, f: np.ndarray, d: np.ndarray) -> float:
    keep = (v != 0) & (f != 0)
    if not keep.any() or f[keep].sum() == 0:
        return 0.0
    a = f[keep] * v[keep].sum() / f[keep].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.nan_to_num(2 * (a - v[keep]) / (a + v[keep]))
    base = np.abs(d[keep]).mean()
    return float(np.abs(da).mean() / base) if base else 0.0


def riskloc(leaves: pd.DataFrame, dims: Sequence[str], real: str = "real", predict: str = "predict",
            real_den: str | None = None, predict_den: str | None = None) -> list[Found]:
    v, f, _, _, _ = leaf_arrays(leaves, real, predict, real_den, predict_den)
    total = v.sum() - f.sum()
    ep = (v - f) / total if total else np.zeros(len(v))
    both = (v + f) != 0
    d = np.where(both, 2 * (f - v) / np.where(both, f + v, 1.0), 0.0)
    t = _cutoff(d)
    right = t > 0 or (t == 0 and np.copysign(1.0, t) > 0)
    abnormal = d > t if right else d < t
    weight = np.where(abnormal, np.abs(d), np.where((v == 0) & (f == 0), 0.0, np.abs(t - d)))
    weight = np.minimum(weight, 1.0)
    if ep[abnormal].sum() < 0:
        ep = -ep
    threshold = ep[abnormal].sum() * EP_THRESHOLD
    cub = _Cuboids(leaves, dims)
    D = len(cub.dims)
    alive = np.ones(len(v), dtype=bool)
    pruned: dict[int, set[int]] = defaultdict(set)  # first-layer elements left out of deeper layers
    found: list[Found] = []
    while alive.any() and ep[alive & abnormal].sum() >= threshold:
        best = None
        for k in range(1, D + 1):
            best_ep = threshold
            for combo in combinations(range(D), k):
                if combo not in cub.ids:
                    continue
                ids = cub.ids[combo]
                use = alive.copy()
                for j in combo:
                    if pruned[j] and k > 1:
                        use &= ~np.isin(cub.ids[(j,)], list(pruned[j]))
                size = cub.size[combo]
                e = np.bincount(ids[use], ep[use], size)
                n_ab = np.bincount(ids[use], abnormal[use], size)
                if k == 1:
                    e_pos = np.bincount(ids[use], np.maximum(ep[use], 0), size)
                    present = np.bincount(ids[use], minlength=size) > 0
                    pruned[combo[0]] |= set(np.flatnonzero(present & ((e_pos < threshold) | (n_ab == 0))).tolist())
                for gid in np.argsort(-e):
                    if e[gid] <= best_ep or n_ab[gid] == 0:
                        if e[gid] <= best_ep:
                            break
                        continue
                    sel = use & (ids == gid)
                    w_ab = weight[sel & abnormal].sum()
                    high = w_ab / (w_ab + weight[sel & ~abnormal].sum() + 1)
                    if high - _low_risk(v[sel], f[sel], d[sel]) >= RISK_THRESHOLD:
                        best, best_ep = (combo, int(gid), sel), float(e[gid])
                        break
            if best is not None:
                break
        if best is None:
            break
        combo, gid, _ = best
        found.append(Found(cub.element(combo, gid)))
        alive &= cub.ids[combo] != gid
    return found
