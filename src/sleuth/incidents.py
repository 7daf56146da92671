"""Incidents: consecutive anomalous buckets of one series merged, in the Contract 3 shape."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .detectors.base import Scores
from .metrics.cube import TOTAL, Cube

#: a gap of this many normal buckets inside an incident does not split it
MAX_GAP = 1


def json_default(x: Any) -> Any:
    """numpy scalars as plain numbers for JSON."""
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: float) -> float | None:
    if x is None or not np.isfinite(x):
        return None
    return float(f"{x:.6g}")


@dataclass
class Incident:
    """One incident (Contract 3). Fields may be added, never renamed."""

    id: str
    metric: str
    segment: dict[str, str]
    start: str
    end: str
    direction: str
    actual: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    severity: str
    root_causes: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    property: str = "default"
    change: float | None = None          # relative change of actual vs expected
    buckets: int = 0
    peers: dict[str, float | None] = field(default_factory=dict)   # other properties' change, same window
    contributions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    holiday: str | None = None        # the local date's public holiday, when configured
    rate_mix: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # ratios: rate vs mix effect
    #: spike | dip | drop to zero | level shift | trend | sustained: what kind of change it is
    shape: str = ""
    #: the classifier view (explain/classifier.py): verdict, auc, recall, causes, features; filled on
    #: demand only (`sleuth explain --method classifier`, the dashboard), as it takes seconds
    classifier: dict[str, Any] = field(default_factory=dict)
    #: the event whose next steps changed most (explain/paths.py): event, distance (total
    #: variation, 0..1), moves out of it, moved (moves that went elsewhere), q; {} when none did
    disrupted_event: dict[str, Any] = field(default_factory=dict)
    #: for each incident this one is directly linked to: why (time overlap, shared root cause,
    #: metric tree, event network, market-wide)
    link_evidence: dict[str, list[str]] = field(default_factory=dict)
    #: actual minus expected revenue over the incident's window and segment (negative: lost), when
    #: the data has revenue and it left its band then; None otherwise
    revenue_at_stake: float | None = None
    #: how its market (the same metric and segment in the peer properties) moved over the same
    #: window: peers (how many), moved (how many moved the same way by at least a third as much),
    #: change (their median change), text; {} without peers (see explain/segments.py)
    market: dict[str, Any] = field(default_factory=dict)
    #: most of its peers moved with it: likely external (its severity is one level lower)
    market_wide: bool = False
    #: when its series was still learning at the incident's start (under 3 weeks of history): the
    #: stage, the days of history it had, the days at which it is mature, and what it can and cannot
    #: catch yet (see :func:`sleuth.detectors.base.maturity`); None for a mature series
    learning: dict[str, Any] | None = None
    #: conversion metrics, when the sessions stage ran: the sessions' conversion against what the
    #: conversion model expected of them, now and in the same hours of earlier weeks, and the
    #: verdict ("traffic mix explains the drop" or "the same traffic converts worse")
    traffic_mix: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=json_default)

    def start_time(self) -> pd.Timestamp:
        """``start`` as a naive UTC timestamp."""
        return pd.Timestamp(self.start).tz_convert("UTC").tz_localize(None)

    def end_time(self) -> pd.Timestamp:
        """``end`` (exclusive) as a naive UTC timestamp."""
        return pd.Timestamp(self.end).tz_convert("UTC").tz_localize(None)


def segment_text(segment: dict | tuple, empty: str = "all traffic") -> str:
    """``os=iOS, device=mobile``: a segment as people read it; ``empty`` for the total."""
    items = segment.items() if isinstance(segment, dict) else segment
    return ", ".join(f"{k}={v}" for k, v in items) or empty


def incident_id(property: str, metric: str, segment: dict[str, str], start: str) -> str:
    """Stable across runs: the same incident detected twice gets the same id."""
    key = json.dumps([property, metric, sorted(segment.items()), start])
    return hashlib.sha1(key.encode()).hexdigest()[:12]


#: severities, least to most severe
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


def lead_key(severity: str, change: float | None, ident: str) -> tuple:
    """Sort key of a group's incidents, its lead (the one an alert is titled by) first: the most
    severe, then the largest change, then by id so every surface picks the same one."""
    return -SEVERITY_RANK[severity], -abs(change or 0), ident


def severity_of(rel_change: float, peak_z: float) -> str:
    r = abs(rel_change) if np.isfinite(rel_change) else 0.0
    if r >= 0.5 or peak_z >= 12:
        return "high"
    if r >= 0.2 or peak_z >= 7:
        return "medium"
    return "low"


def _runs(flags: np.ndarray, signs: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, end_exclusive, sign)`` of flagged runs of one sign, bridging gaps <= MAX_GAP."""
    out: list[tuple[int, int, int]] = []
    idx = np.flatnonzero(flags)
    for t in idx:
        s = int(signs[t])
        if out and out[-1][2] == s and t - out[-1][1] <= MAX_GAP:
            out[-1] = (out[-1][0], t + 1, s)
        else:
            out.append((t, t + 1, s))
    return out


def shape_of(y: np.ndarray, e: np.ndarray, a: int, b: int, sign: int, season: int, is_ratio: bool) -> str:
    """What kind of change buckets ``[a, b)`` of a series ``y`` (expected ``e``) are, from what
    the series did during and after them (only buckets already seen, as everything else here).

    - drop to zero: a count with nothing at all where something was expected (tracking broke?)
    - spike / dip: at most 3 buckets, then back to normal
    - trend: the gap to the expected value keeps growing
    - level shift: the series stays at its new level after the alert ended, or is still there
      after 6 buckets (the detector then adapts and stays quiet)
    - sustained: a lasting change that neither grows nor stays
    """
    if not is_ratio and np.all(y[a:b] == 0) and np.all(e[a:b] > 0):
        return "drop to zero"
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(y[a:b] - e[a:b]) / np.abs(e[a:b])
    rel = rel[np.isfinite(rel)]
    n, T = b - a, len(y)
    if n >= 4 and len(rel) >= 4:
        half = len(rel) // 2
        if np.mean(rel[half:]) >= 1.3 * np.mean(rel[:half]) and np.corrcoef(np.arange(len(rel)), rel)[0, 1] >= 0.7:
            return "trend"
    # after the alert: do the next buckets stay at the incident's level, against the same hours
    # a week earlier (before the incident)?
    k = min(season // 7, T - b)
    if k >= 2 and b - season >= 0 and a - season + k >= 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            now = np.nansum(y[b:b + k]) / np.nansum(y[b - season:b - season + k]) - 1
            during = np.nansum(y[a:b]) / np.nansum(y[a - season:b - season]) - 1 if a >= season else np.nan
        if np.isfinite(now) and np.isfinite(during) and np.sign(now) == sign and abs(now) >= 0.5 * abs(during):
            return "level shift"
    if n <= 3:
        return "spike" if sign > 0 else "dip"
    return "level shift" if n >= 6 and b >= T - 1 else "sustained"


def window_summary(cube: Cube, scores: Scores, i: int, a: int, b: int) -> dict[str, float]:
    """Actual and expected over buckets ``[a, b)`` of series ``i``: totals, or weighted rates."""
    m = cube.metrics[cube.keys.metric.iat[i]]
    y, e = cube.value[i, a:b], scores.expected[i, a:b]
    lo, hi = scores.lower[i, a:b], scores.upper[i, a:b]
    ok = np.isfinite(y) & np.isfinite(e)
    if not ok.any():
        return {"actual": np.nan, "expected": np.nan, "lower": np.nan, "upper": np.nan}
    if m.is_ratio:
        w = np.where(ok, cube.denominator[i, a:b], 0.0)
        w = w if w.sum() > 0 else ok.astype(float)
        avg = lambda v: float(np.sum(np.where(ok, v, 0.0) * w) / np.sum(w))  # noqa: E731
        return {"actual": avg(y), "expected": avg(e), "lower": avg(lo), "upper": avg(hi)}
    tot = lambda v: float(np.sum(np.where(ok, v, 0.0)))  # noqa: E731
    return {"actual": tot(y), "expected": tot(e), "lower": tot(lo), "upper": tot(hi)}


#: a segment's own incident needs this much more evidence than a total (many segments are watched)
SEGMENT_EVIDENCE = 1.5
#: ... and a change at least this large relative to its expected value
SEGMENT_MIN_CHANGE = 0.5
#: ... and at least this many events behind it over the incident (for a ratio: numerator events)
SEGMENT_MIN_VOLUME = 20.0


def _evidence(anomaly_score: np.ndarray) -> np.ndarray:
    """Evidence in units of the alarm threshold, back from the calibrated score s = a²/(1+a²)."""
    s = np.clip(anomaly_score, 0.0, 1 - 1e-12)
    return np.sqrt(s / (1.0 - s))


def segment_flags(cube: Cube, scores: Scores) -> np.ndarray:
    """Stricter flags for segment series: the runs of anomalous buckets that hold at least one
    strong, large bucket (evidence 1.5x the threshold, a change of half the expected value). The
    whole run is the incident, so its volume and its window are the change's, not only its peak's
    (a 6-hour price glitch whose evidence peaks in 2 of its hours is 6 hours of orders)."""
    evidence = _evidence(scores.anomaly_score)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(cube.value - scores.expected) / np.abs(scores.expected)
    strong = scores.is_anomaly & (evidence >= SEGMENT_EVIDENCE) & (np.nan_to_num(rel) >= SEGMENT_MIN_CHANGE)
    flags = scores.is_anomaly
    starts = flags & ~np.pad(flags, ((0, 0), (1, 0)))[:, :-1]
    run = np.where(flags, np.cumsum(starts, axis=1), 0)  # 1, 2, ... per run of flags; 0 outside
    keep = np.zeros((flags.shape[0], int(run.max()) + 1), bool)
    rows, cols = np.nonzero(strong)
    keep[rows, run[rows, cols]] = True
    keep[:, 0] = False
    return keep[np.arange(flags.shape[0])[:, None], run]


def _volume(cube: Cube, scores: Scores, i: int, a: int, b: int) -> float:
    """Events behind the window: the larger of this window's and the same window a week before.

    For a ratio it is the numerator's events (actual or expected): a conversion rate over many
    sessions but a handful of orders is still a handful of orders.
    """
    if cube.metrics[cube.keys.metric.iat[i]].is_ratio:
        den = np.nan_to_num(cube.denominator[i, a:b])
        exp = np.nan_to_num(scores.expected[i, a:b])
        if np.all((exp >= 0) & (exp <= 1)):  # a rate: the events are its numerator's
            return max(float(np.nansum(cube.numerator[i, a:b])), float(np.sum(exp * den)))
        return float(np.sum(den))  # e.g. revenue per order: the events are the orders
    s = cube.config.season
    now = float(np.nansum(cube.volume[i, a:b]))
    before = float(np.nansum(cube.volume[i, a - s:b - s])) if a >= s else 0.0
    return max(now, before)


def find_incidents(cube: Cube, scores: Scores, since: pd.Timestamp | None = None,
                   segments: bool = True) -> list[Incident]:
    """Incidents of every metric's total per property, then of segments whose own change is
    strong where their total's was not (a segment's incident inside a total's is a root cause)."""
    totals = _find(cube, scores, cube.totals(), scores.is_anomaly, since)
    if not segments:
        return totals
    seg_idx = np.flatnonzero((cube.keys.dimension != TOTAL).to_numpy())
    found = _find(cube, scores, seg_idx, segment_flags(cube, scores), since, min_volume=SEGMENT_MIN_VOLUME)
    covered = {}
    for inc in totals:
        covered.setdefault((inc.property, inc.metric), []).append((inc.start, inc.end))
    kept: list[Incident] = []
    for inc in sorted(found, key=lambda x: -x.score):
        spans = covered.get((inc.property, inc.metric), [])
        if any(inc.start < e and s < inc.end for s, e in spans):
            continue  # overlaps an incident of the total or a stronger segment: part of that one
        spans.append((inc.start, inc.end))
        covered[(inc.property, inc.metric)] = spans
        kept.append(inc)
    out = totals + kept
    out.sort(key=lambda x: (x.start, x.property, x.metric))
    return out


def _find(cube: Cube, scores: Scores, series: np.ndarray, flags: np.ndarray,
          since: pd.Timestamp | None, min_volume: float = 0.0) -> list[Incident]:
    flags = flags.copy()
    if cube.complete_until is not None:
        flags[:, cube.buckets >= cube.complete_until] = False
    step = pd.Timedelta(cube.config.step)
    incidents: list[Incident] = []
    for i in series:
        metric = cube.metrics[cube.keys.metric.iat[i]]
        signs = np.sign(np.nan_to_num(scores.z[i]))
        f = flags[i].copy()
        if metric.direction == "up":
            f &= signs > 0
        elif metric.direction == "down":
            f &= signs < 0
        for a, b, s in _runs(f, signs):
            start = cube.buckets[a]
            if since is not None and start < since:
                continue
            if min_volume and _volume(cube, scores, i, a, b) < min_volume:
                continue
            summ = window_summary(cube, scores, i, a, b)
            rel = (summ["actual"] - summ["expected"]) / abs(summ["expected"]) if summ["expected"] else np.nan
            if abs(summ["actual"] - summ["expected"]) < metric.min_abs_change or (
                    metric.min_change and not abs(rel) >= metric.min_change):
                continue  # real, but smaller than what this metric's owner cares about
            peak = float(np.nanmax(np.abs(scores.z[i, a:b])))
            dim, seg = cube.keys.dimension.iat[i], cube.keys.segment.iat[i]
            segment = {} if dim == TOTAL else {dim: seg}
            prop = cube.keys.property.iat[i]
            start_s, end_s = _iso(start), _iso(cube.buckets[a] + step * (b - a))
            incidents.append(Incident(
                id=incident_id(prop, metric.name, segment, start_s), metric=metric.name, segment=segment,
                start=start_s, end=end_s, direction="up" if s > 0 else "down",
                actual=_num(summ["actual"]), expected=_num(summ["expected"]),
                lower=_num(summ["lower"]), upper=_num(summ["upper"]), score=round(peak, 2),
                severity=severity_of(rel, peak), property=str(prop), change=_num(rel), buckets=int(b - a),
                shape=shape_of(cube.value[i], scores.expected[i], a, b, s, cube.config.season, metric.is_ratio),
            ))
    return incidents


def incidents_frame(incidents: list[Incident]) -> pd.DataFrame:
    cols = ["id", "property", "metric", "start", "end", "direction", "actual", "expected", "change",
            "score", "severity", "top_root_cause"]
    rows = []
    for inc in incidents:
        d = inc.to_dict()
        rc = inc.root_causes[0]["segment"] if inc.root_causes else None
        d["top_root_cause"] = segment_text(rc) if rc else None
        rows.append({c: d.get(c) for c in cols})
    return pd.DataFrame(rows, columns=cols)


def revenue_metric(cube: Cube, revenue_column: str | None) -> str | None:
    """The metric that adds up money (a sum of the revenue column), if any."""
    col = revenue_column or "revenue"
    return next((m for m, spec in cube.metrics.items() if spec.type == "sum" and spec.column in (col, "revenue")), None)


def revenue_at_stake(cube: Cube, scores: Scores, inc: Incident, metric: str | None) -> float | None:
    """Actual minus expected revenue over ``inc``'s window and segment, when revenue left its band
    then (``None`` when it stayed within it: nothing measurable at stake)."""
    if metric is None:
        return None
    dim, seg = next(iter(inc.segment.items())) if inc.segment else (TOTAL, TOTAL)
    try:
        i = cube.index(inc.property, metric, dim, seg)
    except KeyError:
        return None
    window = (cube.buckets >= inc.start_time()) & (cube.buckets < inc.end_time())
    if not scores.is_anomaly[i, window].any():
        return None
    y, e = cube.value[i, window], scores.expected[i, window]
    ok = np.isfinite(y) & np.isfinite(e)
    return _num(float(np.sum(y[ok] - e[ok]))) if ok.any() else None
