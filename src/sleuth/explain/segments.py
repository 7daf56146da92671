"""Which segments explain an incident: a per-dimension contribution ranking.

For additive metrics a segment's share of the change is its own change over the total's. For
ratios it is the *rate effect*: how much of the total's move disappears if that segment had kept
its expected rate at its actual volume. A segment scores by how much more of the change it
explains than its share of the volume would predict (``explains - share``), so a change spread
evenly over every segment has no root cause: it is site-wide.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..detectors.base import Scores
from ..incidents import Incident, _num
from ..metrics.cube import TOTAL, Cube

MIN_SCORE = 0.1
MAX_CAUSES = 5
TABLE_ROWS = 6


def _sums(cube: Cube, scores: Scores, idx: np.ndarray, a: int, b: int) -> dict[str, np.ndarray]:
    y = cube.value[idx, a:b]
    e = scores.expected[idx, a:b]
    ok = np.isfinite(y)
    e = np.where(np.isfinite(e), e, 0.0)
    out = {"actual": np.nansum(np.where(ok, y, 0.0), axis=1), "expected": np.sum(np.where(ok, e, 0.0), axis=1)}
    if cube.metrics[cube.keys.metric.iat[idx[0]]].is_ratio:
        den = np.nan_to_num(cube.denominator[idx, a:b])
        num = np.nan_to_num(cube.numerator[idx, a:b])
        out["num"] = num.sum(axis=1)
        out["den"] = den.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            has = np.isfinite(scores.expected[idx, a:b])
            out["exp_num"] = np.sum(np.where(has, scores.expected[idx, a:b], 0.0) * den, axis=1)
            out["exp_den"] = np.sum(np.where(has, den, 0.0), axis=1)
    return out


def contributions(cube: Cube, scores: Scores, incident: Incident, a: int, b: int) -> list[dict]:
    """One row per (dimension, value): expected, actual, share of the volume, share of the change."""
    k = cube.keys
    base = (k.property == incident.property).to_numpy() & (k.metric == incident.metric).to_numpy()
    tot_i = np.flatnonzero(base & (k.dimension == TOTAL).to_numpy())
    metric = cube.metrics[incident.metric]
    tot = _sums(cube, scores, tot_i, a, b)
    rows = []
    for dim in cube.dimensions:
        idx = np.flatnonzero(base & (k.dimension == dim).to_numpy())
        if not len(idx):
            continue
        s = _sums(cube, scores, idx, a, b)
        if metric.is_ratio:
            N, D = tot["num"][0], tot["den"][0]
            if D <= 0:
                continue
            r_act = N / D
            r_exp = tot["exp_num"][0] / max(tot["exp_den"][0], 1e-12)
            with np.errstate(invalid="ignore", divide="ignore"):
                seg_exp_rate = np.where(s["exp_den"] > 0, s["exp_num"] / s["exp_den"], r_exp)
            counterfactual = (N - s["num"] + seg_exp_rate * s["den"]) / D
            effect = r_act - counterfactual
            delta = r_act - r_exp
            share = s["den"] / D
            actual = np.where(s["den"] > 0, s["num"] / np.maximum(s["den"], 1e-12), np.nan)
            expected = seg_exp_rate
        else:
            effect = s["actual"] - s["expected"]
            delta = tot["actual"][0] - tot["expected"][0]
            share = s["expected"] / max(tot["expected"][0], 1e-12)
            actual, expected = s["actual"], s["expected"]
        if not np.isfinite(delta) or delta == 0:
            continue
        explains = effect / delta
        for j, i in enumerate(idx):
            rows.append({
                "dimension": dim, "segment": k.segment.iat[i],
                "expected": _num(expected[j]), "actual": _num(actual[j]),
                "share": _num(share[j]), "explains": _num(explains[j]),
                "score": float(np.clip(explains[j], 0, 1) - np.clip(share[j], 0, 1)),
            })
    return rows


def explain_incident(events, cube: Cube, scores: Scores, incident: Incident) -> None:
    """Fill ``contributions``, ``root_causes`` (and, for ratios, ``rate_mix``) in place.

    Root causes come from the leaf table (:func:`localize_incident`); only when there is no
    earlier week to compare with does the per-dimension ranking of the contribution table stand in.
    """
    a = int(cube.buckets.get_indexer([incident.start_time()])[0])
    rows = contributions(cube, scores, incident, a, a + incident.buckets)
    table: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: abs(r["explains"] or 0), reverse=True):
        lst = table.setdefault(r["dimension"], [])
        if len(lst) < TABLE_ROWS:
            lst.append({key: r[key] for key in ("segment", "expected", "actual", "share", "explains")})
    incident.contributions = table

    located = localize_incident(events, cube, scores, incident)
    if located is None:  # no earlier week: rank single segments by their excess share of the change
        rows.sort(key=lambda r: r["score"], reverse=True)
        incident.root_causes = [
            {"segment": {r["dimension"]: r["segment"]}, "score": round(r["score"], 3),
             "explains": round(float(np.clip(r["explains"] or 0, -9.99, 9.99)), 3)}
            for r in rows[:MAX_CAUSES] if r["score"] >= MIN_SCORE
        ]
    elif located:
        incident.root_causes = located
    else:  # nothing stands out inside: a segment's own incident is its own cause; a total's is site-wide
        incident.root_causes = [{"segment": dict(incident.segment), "score": 1.0, "explains": 1.0}] \
            if incident.segment else []


def localize_incident(events, cube: Cube, scores: Scores, incident: Incident, weeks: int = 4) -> list[dict] | None:
    """Root causes from the leaf table (:func:`sleuth.explain.rca.localize`: sets of elements of
    any depth, moving in the incident's direction).

    Actual: the incident window. Forecast: the same hours of up to ``weeks`` earlier weeks,
    rescaled so that their total matches the detector's expected value (for a ratio: the rate).
    For a segment's own incident the leaves are those of the segment. ``None`` when there is no
    earlier week to compare with; ``[]`` when nothing stands out (a site-wide change).
    """
    from ..metrics.cube import leaf_table
    from .rca import localize

    metric = cube.metrics[incident.metric]
    start, end = incident.start_time(), incident.end_time()
    week = pd.Timedelta(days=7)  # the same hours (hourly) or days (daily) of earlier weeks
    windows = {"now": (start, end)}
    for k in range(1, weeks + 1):
        if start - k * week >= cube.buckets[0]:
            windows[f"b{k}"] = (start - k * week, end - k * week)
    if len(windows) == 1 or not cube.dimensions:
        return None
    # distinct counts of sessions or users add up over leaves only for per-session dimensions
    per_session = any(p is not None and p.type == "distinct" for p in metric.parts())
    dims = events.session_dimensions() if per_session else list(cube.dimensions)
    dims = [d for d in dims if d in cube.dimensions or d in incident.segment]
    if any(d not in dims for d in incident.segment):
        dims = [*dims, *(d for d in incident.segment if d not in dims)]
    if not dims:
        return None
    leaves = leaf_table(events, metric, windows, dims, property=incident.property)
    for dim, val in incident.segment.items():
        leaves = leaves[leaves[dim] == val]
    if leaves.empty:
        return []
    base = [w for w in windows if w != "now"]
    pred_num = leaves[[f"{w}_num" for w in base]].sum(axis=1) / len(base)
    if metric.is_ratio:
        pred_den = leaves[[f"{w}_den" for w in base]].sum(axis=1) / len(base)
        base_rate = pred_num.sum() / pred_den.sum() if pred_den.sum() > 0 else np.nan
        scale = (incident.expected or 0) / base_rate if base_rate and np.isfinite(base_rate) else 1.0
        frame = pd.DataFrame({"real": leaves["now_num"], "predict": pred_num * scale,
                              "real_den": leaves["now_den"], "predict_den": pred_den})
        kwargs = {"real_den": "real_den", "predict_den": "predict_den"}
    else:
        total = pred_num.sum()
        scale = (incident.expected or 0) / total if total > 0 else 1.0
        frame = pd.DataFrame({"real": leaves["now_num"], "predict": pred_num * scale})
        kwargs = {}
    free = [d for d in dims if d not in incident.segment]
    frame[free] = leaves[free].to_numpy()
    if metric.is_ratio:
        incident.rate_mix = rate_mix_table(frame, free)
    causes = localize(frame.reset_index(drop=True), free, direction=incident.direction, **kwargs)
    out = []
    for rc in causes:
        d = rc.to_dict()
        d["segment"] = {**incident.segment, **rc.segment}
        out.append(d)
    return out


def rate_mix_table(frame: pd.DataFrame, dims: list[str], rows: int = TABLE_ROWS) -> dict[str, list[dict]]:
    """For a ratio, split the change of the total rate by segment into a *rate effect* (the
    segment's own rate moved, at its actual share of the volume) and a *mix effect* (its share of
    the volume moved, at its expected rate relative to the total's). The effects add up to the
    total change exactly: dR = sum(s1 (r1 - r0)) + sum((s1 - s0) (r0 - R0))."""
    out: dict[str, list[dict]] = {}
    D1, D0 = frame["real_den"].sum(), frame["predict_den"].sum()
    if D1 <= 0 or D0 <= 0:
        return out
    R0 = frame["predict"].sum() / D0
    for dim in dims:
        g = frame.groupby(dim)[["real", "predict", "real_den", "predict_den"]].sum()
        s1, s0 = g["real_den"] / D1, g["predict_den"] / D0
        r1 = (g["real"] / g["real_den"]).where(g["real_den"] > 0, 0.0)
        r0 = (g["predict"] / g["predict_den"]).where(g["predict_den"] > 0, R0)
        rate = s1 * (r1 - r0)
        mix = (s1 - s0) * (r0 - R0)
        table = pd.DataFrame({"segment": g.index.astype(str), "rate_effect": rate.to_numpy(),
                              "mix_effect": mix.to_numpy(), "expected_rate": r0.to_numpy(),
                              "actual_rate": r1.to_numpy(), "expected_share": s0.to_numpy(),
                              "actual_share": s1.to_numpy()})
        table["size"] = table["rate_effect"].abs() + table["mix_effect"].abs()
        table = table.sort_values("size", ascending=False).head(rows).drop(columns="size")
        out[dim] = [{k: (_num(v) if k != "segment" else v) for k, v in r.items()} for r in table.to_dict("records")]
    return out


def peer_changes(cube: Cube, scores: Scores, incident: Incident) -> dict[str, float | None]:
    """Relative change of the same metric (and segment) in the other properties of the
    incident's market (its ``peers:`` group, by default all properties) over the same window,
    each against its own expected value."""
    from ..incidents import window_summary

    a = int(cube.buckets.get_indexer([incident.start_time()])[0])
    b = a + incident.buckets
    k = cube.keys
    groups = cube.config.peers or []
    mine = next((g for g in groups if incident.property in g), None)
    dim, seg = next(iter(incident.segment.items())) if incident.segment else (TOTAL, TOTAL)
    same = (k.metric == incident.metric).to_numpy() & (k.property != incident.property).to_numpy()
    if mine is not None:
        same &= k.property.isin(mine).to_numpy()
    peers = np.flatnonzero(same & (k.dimension == dim).to_numpy() & (k.segment == seg).to_numpy())
    out = {}
    for i in peers:
        s = window_summary(cube, scores, i, a, b)
        rel = (s["actual"] - s["expected"]) / abs(s["expected"]) if s["expected"] else np.nan
        out[k.property.iat[i]] = _num(rel)
    return out


#: peers needed before a move can be called market-wide, and the share of them that must move
MARKET_MIN_PEERS, MARKET_SHARE = 2, 2 / 3
#: a peer moved with the incident when it moved the same way by at least this share of its change (a
#: third: an incident window can hold a day or two either side of the move itself)
MARKET_WITH = 1 / 3
#: a peer's change this small is no move at all
MARKET_FLAT = 0.05


def label_market(incident: Incident) -> None:
    """Fill ``market`` and ``market_wide`` from ``peers`` (see :func:`peer_changes`), in place.

    When most peers moved the same way by at least a third as much (at least two thirds of two or
    more peers), the change is market-wide ("4 of 5 stores fell ~30 %: likely external") and
    its severity is one level lower: nothing in this property alone broke. Otherwise the text
    says how the market moved, so a store that fell while its market rose reads as such."""
    from ..incidents import SEVERITY_RANK

    changes = {p: c for p, c in incident.peers.items() if c is not None and np.isfinite(c)}
    own = incident.change
    if not changes or own is None or not np.isfinite(own):
        incident.market, incident.market_wide = {}, False
        return
    values = np.array(list(changes.values()))
    moved = int(np.sum((np.sign(values) == np.sign(own)) & (np.abs(values) >= max(MARKET_WITH * abs(own), MARKET_FLAT))))
    n = len(values)
    median = float(np.median(values))
    wide = n >= MARKET_MIN_PEERS and moved >= max(MARKET_MIN_PEERS, int(np.ceil(MARKET_SHARE * n)))
    verb = "rose" if own > 0 else "fell"
    if wide:
        everyone = "all" if moved == n else f"{moved + 1} of"
        text = f"{everyone} {n + 1} properties {verb} ~{abs(np.median([own, *values[np.sign(values) == np.sign(own)]])):.0%}: likely external"
    else:
        market = "was flat" if abs(median) < MARKET_FLAT else f"moved {median:+.0%}"
        text = f"its market ({n} other propert{'ies' if n > 1 else 'y'}) {market} while {incident.property} {verb} {abs(own):.0%}"
    incident.market = {"peers": n, "moved": moved, "change": _num(median), "text": text}
    incident.market_wide = bool(wide)
    if wide and incident.severity != "low":
        incident.severity = {v: k for k, v in SEVERITY_RANK.items()}[SEVERITY_RANK[incident.severity] - 1]
