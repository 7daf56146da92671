"""Event-path changes: how users moved between events during an incident, against the same
hours of earlier weeks.

Each session is a path of events in time order, with virtual START and END states, so the
first event is ``START -> e``, the last ``e -> END`` and a one-event session ``START -> e -> END``.
Counts are row-normalised to P(next | current) (a first-order Markov chain). Every transition
is tested with a two-proportion z-test between the incident window and the baseline (the
Benjamini-Hochberg procedure controls false discoveries over all of them), and the changed ones
are ranked by how many of the window's moves they account for: ``|ΔP| × moves out of the event``.
Per event, the total-variation distance between its next-step distributions names the disrupted
event (the one whose moves went most differently, among those with a significant transition).
This is the method of the original root_anom write-up, corrected (see seed-methods.md, 2.10):
paths per session rather than one interleaved stream, rows rather than columns normalised, and
a significance test rather than ranking raw differences.
"""
from __future__ import annotations

import math
from typing import Any

import ibis
import numpy as np
import pandas as pd

from ..metrics.cube import window_label

START, END = "(start)", "(end)"
#: transitions reported per incident
MAX_TRANSITIONS = 8
#: false discovery rate for a transition to count as changed
FDR = 0.01


def transition_counts(events, windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
                      property: str | None = None, segment: dict[str, str] | None = None) -> pd.DataFrame:
    """Moves between events per window: columns ``window, from, to, n``. One engine query for
    all windows. A session's path is cut at the window's edges, in every window alike."""
    t = events.table
    if property is not None:
        t = t.filter(t.property == property)
    for dim, value in (segment or {}).items():
        t = t.filter(t[dim] == value)
    t = t.filter(t.session_id.notnull()).mutate(_window=window_label(t, windows))
    t = t.filter(t._window.notnull())
    w = ibis.window(group_by=[t._window, t.session_id], order_by=[t.timestamp, t.event])
    t = t.mutate(_next=t.event.lead().over(w), _first=t.event.lag().over(w).isnull())
    moves = t.group_by(["_window", "event", "_next"]).aggregate(n=t.count())
    first = t.filter(t._first)
    starts = first.group_by(["_window", "event"]).aggregate(n=first.count())
    a = moves.to_pyarrow().to_pandas().rename(columns={"_window": "window", "event": "from", "_next": "to"})
    b = starts.to_pyarrow().to_pandas().rename(columns={"_window": "window", "event": "to"})
    a["to"] = a["to"].fillna(END)
    b["from"] = START
    return pd.concat([a, b[["window", "from", "to", "n"]]], ignore_index=True).astype({"n": float})


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values)."""
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def compare(counts: pd.DataFrame, during: str, baseline: list[str]) -> pd.DataFrame:
    """Every transition with its probability during the incident and in the baseline windows
    (pooled), the z-test, its q-value and its weight (moves it accounts for), most changed first."""
    c = counts.assign(side=np.where(counts["window"] == during, "during",
                                    np.where(counts["window"].isin(baseline), "baseline", None)))
    c = c[c["side"].notna()]
    cols = ["from", "to", "during", "baseline", "change", "z", "q", "moves", "moves_out", "weight"]
    if c.empty:
        return pd.DataFrame(columns=cols)
    wide = c.pivot_table(index=["from", "to"], columns="side", values="n", aggfunc="sum", fill_value=0.0)
    for side in ("during", "baseline"):
        if side not in wide:
            wide[side] = 0.0
    wide = wide.reset_index()
    out_d = wide.groupby("from")["during"].transform("sum")
    out_b = wide.groupby("from")["baseline"].transform("sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        p_d, p_b = wide["during"] / out_d, wide["baseline"] / out_b
        pooled = (wide["during"] + wide["baseline"]) / (out_d + out_b)
        se = np.sqrt(pooled * (1 - pooled) * (1 / out_d + 1 / out_b))
        z = (p_d - p_b) / se
    ok = np.isfinite(z)
    pval = np.array([math.erfc(abs(v) / math.sqrt(2)) if np.isfinite(v) else 1.0 for v in z])
    q = np.ones(len(pval))
    q[ok.to_numpy()] = _bh(pval[ok.to_numpy()])
    frame = pd.DataFrame({"from": wide["from"], "to": wide["to"], "during": p_d.fillna(0.0),
                          "baseline": p_b.fillna(0.0), "z": z.fillna(0.0), "q": q,
                          "moves": wide["during"], "moves_out": out_d})
    frame["change"] = frame["during"] - frame["baseline"]
    frame["weight"] = (frame["change"].abs() * frame["moves_out"]).fillna(0.0)
    return frame.sort_values(["weight", "from", "to"], ascending=[False, True, True])[cols].reset_index(drop=True)


#: an event needs this many moves out during the incident to be named the disrupted one
MIN_EVENT_MOVES = 20


def disrupted_events(table: pd.DataFrame) -> pd.DataFrame:
    """Per event, how differently sessions went on from it, counting significant changes only:
    ``distance`` is the total-variation distance between its next-step distributions during
    the incident and in the baseline over its transitions with q < FDR (0 = no significant
    change, 1 = no next step in common), ``moved = distance × moves``, the number of moves that
    went elsewhere than the baseline's shares would have sent them; ``total_distance`` counts
    every transition (noise included) and ``q`` is the smallest q-value of its transitions.

    Ranked by ``distance`` among events with at least :data:`MIN_EVENT_MOVES` moves (then by
    ``moved``): a broken checkout step (0.6 -> 0.1) outranks a two-point shift on a busy landing
    page, though the latter moves more sessions, and a rare event cannot win on a few moves."""
    cols = ["event", "distance", "total_distance", "moves", "moved", "q"]
    t = table[table["from"] != START]
    diff = t["change"].abs()
    g = t.assign(diff=diff, sig=np.where(t["q"] < FDR, diff, 0.0)).groupby("from")
    out = pd.DataFrame({"distance": 0.5 * g["sig"].sum(), "total_distance": 0.5 * g["diff"].sum(),
                        "moves": g["moves_out"].first(), "seen_before": g["baseline"].sum(), "q": g["q"].min()})
    out = out[(out["moves"] > 0) & (out["seen_before"] > 0)]  # both sides have moves out of it
    out["moved"] = out["distance"] * out["moves"]
    out["eligible"] = out["moves"] >= MIN_EVENT_MOVES
    out = out.reset_index(names="event").sort_values(["eligible", "distance", "moved", "event"],
                                                     ascending=[False, False, False, True])
    return out.reindex(columns=cols).reset_index(drop=True)


def disrupted_event_for(events: pd.DataFrame) -> dict[str, Any]:
    """The disrupted event for Contract 3 (``disrupted_event``): the first of
    :func:`disrupted_events` with a significant change and enough moves, or ``{}``."""
    sig = events[(events["distance"] > 0) & (events["moves"] >= MIN_EVENT_MOVES)]
    if sig.empty:
        return {}
    r = sig.iloc[0]
    return {"event": r["event"], "distance": round(float(r["distance"]), 4), "moves": int(r["moves"]),
            "moved": int(round(r["moved"])), "q": float(f"{r['q']:.3g}")}


def path_change(events, start: pd.Timestamp, end: pd.Timestamp, property: str | None = None,
                segment: dict[str, str] | None = None, weeks: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transition table and the disrupted events for the window ``[start, end)`` against
    the same hours of up to ``weeks`` earlier weeks."""
    windows = {"during": (start, end)}
    windows.update({f"w{k}": (start - pd.Timedelta(weeks=k), end - pd.Timedelta(weeks=k)) for k in range(1, weeks + 1)})
    counts = transition_counts(events, windows, property, segment)
    table = compare(counts, "during", [f"w{k}" for k in range(1, weeks + 1)])
    return table, disrupted_events(table)


def transitions_for(table: pd.DataFrame, limit: int = MAX_TRANSITIONS) -> list[dict[str, Any]]:
    """The significant changes as Contract 3 ``transitions`` entries."""
    sig = table[(table["q"] < FDR) & (table["weight"] > 0)].head(limit)
    return [{"from": r["from"], "to": r["to"], "baseline": round(float(r["baseline"]), 4),
             "during": round(float(r["during"]), 4), "change": round(float(r["change"]), 4),
             "moves": int(r["moves"]), "q": float(f"{r['q']:.3g}")} for _, r in sig.iterrows()]
