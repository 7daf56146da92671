"""Contract 8: ``sleuth sessions SOURCE --json`` prints sessions, pages and cluster shifts.

The page and cluster-shift records are the detector's incidents on the page and cluster-share
metrics, seen from the page or the cluster, so they carry the incident's id: the same finding
is stored and alerted by ``sleuth run``. A first ``summary`` line says what the stage learned
(the reduction and why, the clusters and how k was chosen, bots and outliers).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..incidents import Incident, _num
from .clusters import NEW
from .features import BEHAVIOUR, LOG, behaviour_matrix, fmt_value
from .metrics import cluster_metric, page_metric_names

MAX_SESSION_IDS = 20


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_records(det) -> list[dict[str, Any]]:
    """Bots and outliers, most unusual first (a ``session`` record each)."""
    f = det.sessions.flagged()
    return [{"kind": "session", "session_id": str(r.session_id), "user_id": None if pd.isna(r.user_id) else str(r.user_id),
             "start": _iso(r.start), "score": round(float(r.score), 4), "label": r.label, "reasons": list(r.reasons),
             "cluster": r.cluster_name} for r in f.itertuples()]


def _page_of(inc: Incident) -> str | None:
    if "page" in inc.segment:
        return inc.segment["page"]
    return next((rc["segment"]["page"] for rc in inc.root_causes if "page" in rc["segment"]), None)


def page_records(det) -> list[dict[str, Any]]:
    """Incidents of the page metrics, by the page they are about."""
    short = page_metric_names()
    out = []
    for inc in det.incidents:
        if inc.metric not in short:
            continue
        out.append({"kind": "page", "page": _page_of(inc) or "(all pages)", "metric": short[inc.metric],
                    "start": inc.start, "end": inc.end, "actual": inc.actual, "expected": inc.expected,
                    "direction": inc.direction, "segment": inc.segment, "root_causes": inc.root_causes,
                    "incident": inc.id, "property": inc.property})
    return out


def _cluster_of(det, metric: str) -> int | None:
    """The cluster index behind a ``cluster_share.*`` metric (-1: new behaviour)."""
    if metric == "cluster_share.new_behaviour":
        return -1
    return next((c for c, n in enumerate(det.sessions.clusters.names) if cluster_metric(n) == metric), None)


def describe_window(det, cluster: int, start: pd.Timestamp, end: pd.Timestamp) -> tuple[str, list[str]]:
    """What sets a cluster's sessions in ``[start, end)`` apart from people's usual sessions, in
    words, and some of their session ids."""
    a = det.sessions
    f = a.frame
    inside = ((f["cluster"] == cluster) & (f["label"] != "bot") & (f["start"] >= start) & (f["start"] < end)).to_numpy()
    usual = (f["train"] & (f["label"] != "bot")).to_numpy()
    if not inside.any():
        return "no sessions", []
    # on the models' scale (log for counts and durations), where one long visit does not dominate
    x = behaviour_matrix(f.loc[inside | usual], a.features)
    now, base = x[inside[inside | usual]], x[usual[inside | usual]]
    parts = []
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_now, mean_base, sd = np.nanmean(now, axis=0), np.nanmean(base, axis=0), np.nanstd(base, axis=0)
    effect = np.where((sd > 0) & np.isfinite(mean_now), (mean_now - mean_base) / np.where(sd > 0, sd, 1), 0.0)
    for j in np.argsort(-np.abs(effect))[:3]:
        feat = a.features[j]
        hi, lo, what = BEHAVIOUR[feat]
        back = (lambda v: np.expm1(v)) if feat in LOG else (lambda v: v)
        parts.append(f"{hi if effect[j] > 0 else lo} ({what} {fmt_value(back(mean_now[j]))}, usually {fmt_value(back(mean_base[j]))})")
    pages = _pages_over(a, f.loc[inside, "sid"])
    text = "sessions with " + "; ".join(parts)
    if pages:
        text += f"; they visit {', '.join(pages)} more than people usually do"
    ids = f.loc[inside, "session_id"].astype(str).head(MAX_SESSION_IDS).tolist()
    return text, ids


def _pages_over(a, sids: pd.Series, top: int = 3) -> list[str]:
    """The pages most over-represented among these sessions' page views (lift over everyone's)."""
    if not len(sids) or "page" not in a.tables.has:
        return []
    import ibis

    con = a.tables.con
    pick = con.create_table(ibis.util.gen_name("sids"), pd.DataFrame({"sid": sids.to_numpy()[:50_000]}), temp=True)
    h = a.page_facts()
    mine = h.semi_join(pick, "sid").group_by("page").aggregate(n=lambda t: t.count()).to_pyarrow().to_pandas()
    every = h.group_by("page").aggregate(n=lambda t: t.count()).to_pyarrow().to_pandas()
    if mine.empty:
        return []
    m = mine.set_index("page")["n"] / mine["n"].sum()
    e = every.set_index("page")["n"] / every["n"].sum()
    lift = (m / e.reindex(m.index)).where(m >= 0.05).dropna().sort_values(ascending=False)
    return [p for p in lift.index[:top] if lift[p] >= 1.5]



def shift_records(det) -> list[dict[str, Any]]:
    """Incidents of the cluster-share metrics: the mix of behaviour moved."""
    out = []
    for inc in det.incidents:
        if not inc.metric.startswith("cluster_share."):
            continue
        c = _cluster_of(det, inc.metric)
        if c is None:
            continue
        text, ids = describe_window(det, c, inc.start_time(), inc.end_time())
        usual = NEW if c < 0 else det.sessions.clusters.descriptions[c]
        out.append({"kind": "cluster_shift", "cluster": det.sessions.clusters.name_of(c), "start": inc.start, "end": inc.end,
                    "share": inc.actual, "expected_share": inc.expected, "direction": inc.direction,
                    "segment": inc.segment, "description": text, "cluster_description": usual,
                    "session_ids": ids, "root_causes": inc.root_causes, "incident": inc.id, "property": inc.property})
    return out


def summary_record(det) -> dict[str, Any]:
    s = det.sessions.summary()
    bot_incidents = [i.id for i in det.incidents if i.metric == "bot_share"]
    return {"kind": "summary", **{k: v for k, v in s.items() if k != "notes"}, "bot_share_incidents": bot_incidents,
            "notes": det.notes}


def records(det) -> list[dict[str, Any]]:
    """Every Contract 8 line: the summary, cluster shifts, pages, then flagged sessions."""
    return [summary_record(det), *shift_records(det), *page_records(det), *session_records(det)]


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return _num(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


__all__ = ["records", "session_records", "page_records", "shift_records", "summary_record", "describe_window", "_clean"]
