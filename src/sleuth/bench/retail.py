"""``sleuth bench retail``: daily e-commerce of several stores over three years, against what
users pick today.

The stores come from :func:`sleuth.datasets.retail.generate_retail` (a moving retail calendar,
yearly and quarter shapes, a store's own recurring sale; injected incidents in the last year).
sleuth runs its whole pipeline on the events; in the same run, Prophet with the calendar as its
holiday regressors and statsforecast MSTL score the same metrics' totals (rolling origin, refit
every ``refit`` days, sleuth's decision on their forecasts: see :mod:`sleuth.detectors.forecast`).

Scored from the second year on, per store: false alarms on named days (public holidays, retail
days, the store's own sale) and on other days, separately; recall of the injected incidents
(a detection of one of its metrics, in its direction, from its first day to a day after it);
whether the segment behind it is named, the market-wide drop labelled market-wide, the missing
Black Friday lift found. A false alarm is an incident that overlaps no injected incident of its
store (widened by a day); "alerts" counts them as people receive them, linked ones together.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..datasets.retail import STORES, special_days, write_retail
from ..datasets.shop import InjectedIncident

SLACK = pd.Timedelta(days=1)
#: what each way of detecting is called in the output
BASELINES = {"prophet": "Prophet with holidays", "mstl": "statsforecast MSTL"}


def _hits(det: dict, inc: InjectedIncident, any_metric: bool = False) -> bool:
    if det["property"] != inc.property:
        return False
    start, end = pd.Timestamp(det["start"]).tz_localize(None), pd.Timestamp(det["end"]).tz_localize(None)
    if not (start < inc.end + SLACK and end > inc.start):
        return False
    if any_metric:
        return True
    want = inc.metrics.get(det["metric"])
    return want is not None and (want == "" or det["direction"] == want)


def _groups(dets: list[dict]) -> list[list[dict]]:
    """Linked detections together (Contract 3 ``linked``), as people receive them."""
    by_id = {d["id"]: d for d in dets}
    seen, out = set(), []
    for d in dets:
        if d["id"] in seen:
            continue
        todo, group = [d["id"]], []
        while todo:
            k = todo.pop()
            if k in seen or k not in by_id:
                continue
            seen.add(k)
            group.append(by_id[k])
            todo += by_id[k].get("linked", [])
        out.append(group)
    return out


def evaluate_retail(detected: list[dict], truth: list[InjectedIncident], days: pd.DatetimeIndex,
                    from_day: int = 365) -> dict:
    """Score detections (Contract 3 dicts) against the truth from day ``from_day`` on."""
    start = days[from_day]
    dets = [d for d in detected if pd.Timestamp(d["start"]).tz_localize(None) >= start]
    named = special_days(days)
    on_named = {s: set(days[named[s]]) for s in named}

    def special(d: dict) -> bool:
        a = pd.Timestamp(d["start"]).tz_localize(None)
        b = pd.Timestamp(d["end"]).tz_localize(None)
        return any(a <= x < b for x in on_named.get(d["property"], ()))

    per = []
    for inc in truth:
        hits = [d for d in dets if _hits(d, inc)]
        named_ok = None
        if inc.segment:
            want = inc.segment.items()
            named_ok = any(want <= {**rc.get("segment", {})}.items() for d in hits for rc in (d.get("root_causes") or [])[:3])
        per.append({"kind": inc.kind, "property": inc.property, "start": str(inc.start.date()), "found": bool(hits),
                    "segment_named": named_ok, "market_wide": any(d.get("market_wide") for d in hits),
                    "metrics": sorted({d["metric"] for d in hits}), "description": inc.description})
    false = [d for d in dets if not any(_hits(d, inc, any_metric=True) for inc in truth)]
    years = (len(days) - from_day) / 365.0
    stores = len(STORES)
    fa_special = [d for d in false if special(d)]
    fa_other = [d for d in false if not special(d)]
    alerts = _groups(false)
    alert_special = [g for g in alerts if any(special(d) for d in g)]
    market = [p for p in per if p["kind"] == "market_drop"]
    store_only = [p for p in per if p["kind"] != "market_drop"]
    return {
        "injected": len(per), "found": sum(p["found"] for p in per),
        "recall": round(sum(p["found"] for p in per) / max(len(per), 1), 3),
        "store_only_found": f"{sum(p['found'] for p in store_only)}/{len(store_only)}",
        "segments_named": f"{sum(bool(p['segment_named']) for p in per)}/{sum(p['segment_named'] is not None for p in per)}",
        "market_wide_found": f"{sum(p['found'] for p in market)}/{len(market)}",
        "market_wide_labelled": f"{sum(p['market_wide'] for p in market)}/{len(market)}",
        "missing_black_friday_found": any(p["found"] for p in per if p["kind"] == "missing_black_friday"),
        "false_alarms_special": len(fa_special), "false_alarms_other": len(fa_other),
        "false_alerts_special": len(alert_special), "false_alerts_other": len(alerts) - len(alert_special),
        "special_per_store_year": round(len(fa_special) / (stores * years), 2),
        "other_per_store_month": round(len(fa_other) / (stores * years * 12), 2),
        "alerts_special_per_store_year": round(len(alert_special) / (stores * years), 2),
        "alerts_other_per_store_month": round((len(alerts) - len(alert_special)) / (stores * years * 12), 2),
        "per_incident": per,
        "false_alarm_list": [{k: d.get(k) for k in ("property", "metric", "segment", "start", "direction", "change",
                                                      "holiday")} for d in false],
    }


def _baseline_incidents(result, name: str, refit: int) -> list[dict]:
    """A forecasting model on the metrics' totals, with sleuth's decision on its forecasts."""
    from ..detectors.base import Scores, get_detector
    from ..incidents import find_incidents
    from ..pipeline import batch_of
    from ..detectors.seasonal import _subset

    cube = result.cube
    full = batch_of(cube)
    rows = cube.totals()
    sub = _subset(full, rows)
    sub.parent = None
    sub.peer_group = None
    if name == "mstl":  # statsforecast MSTL as it comes: no calendar
        sub.holiday = sub.holiday_ref = None
        det = get_detector("mstl", threshold=cube.config.threshold, refit=refit)
    else:  # Prophet with the calendar as its holidays (and none of sleuth's handling of them)
        sub.holiday_ref = None
        det = get_detector("prophet", threshold=cube.config.threshold, refit=refit, holidays=True)
    part = det.score_batch(sub)
    S, T = cube.value.shape
    fill = {"expected": np.nan, "lower": np.nan, "upper": np.nan, "z": np.nan, "anomaly_score": 0.0,
            "is_anomaly": False, "ready": False}
    arrays = {}
    for f, v in fill.items():
        a = np.full((S, T), v, dtype=np.asarray(getattr(part, f)).dtype)
        a[rows] = getattr(part, f)
        arrays[f] = a
    first = np.full(S, -1)
    first[rows] = part.first
    scores = Scores(**arrays, first=first)
    return [i.to_dict() for i in find_incidents(cube, scores, segments=False)]


def run_retail(years: int = 3, seed: int = 11, scale: float = 1.0, baselines: tuple[str, ...] = ("prophet", "mstl"),
               refit: int = 28, workdir: str | Path | None = None,
               progress: Callable[[str], None] | None = None) -> dict:
    """Generate the stores, run sleuth and the baselines, and score them (see the module docstring)."""
    from ..pipeline import detect

    say = progress or (lambda _msg: None)
    out: dict = {"years": years, "seed": seed, "stores": len(STORES), "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(workdir or tmp)
        t0 = time.perf_counter()
        say("generating the stores")
        written = write_retail(root, years=years, seed=seed, scale=scale)
        out["events"] = written["rows"]
        truth = [InjectedIncident.from_dict(d) for d in pd.read_json(written["truth"]).to_dict("records")]
        out["generate_seconds"] = round(time.perf_counter() - t0, 1)
        say("sleuth: detect")
        t0 = time.perf_counter()
        result = detect(written["events"], written["config"])
        days = pd.DatetimeIndex(result.cube.buckets)
        res = evaluate_retail([i.to_dict() for i in result.incidents], truth, days)
        out["methods"]["sleuth"] = {**res, "seconds": round(time.perf_counter() - t0, 1)}
        for name in baselines:
            say(f"{BASELINES[name]}: fit and score")
            t0 = time.perf_counter()
            res = evaluate_retail(_baseline_incidents(result, name, refit), truth, days)
            out["methods"][BASELINES[name]] = {**res, "seconds": round(time.perf_counter() - t0, 1)}
    out["truth"] = [i.to_dict() for i in truth]
    return out
