"""root_anom (Insight Data Science, 2020) reproduced, then done better (seed-methods.md, section 2).

Two parts of the original can be checked:

- **Chaining** (2.3) on the shipped Lazy Lantern anomaly logs: the original numbers a row's
  ``anom_num`` by its overlap with the previous row only, over every source in file order, and the
  file's last row joins the previous group untested. :func:`chain_original` does exactly that and
  must give the reference chains (:data:`REFERENCE`); :func:`chain_overlaps` is sleuth's rule
  (transitive chaining of overlapping intervals, per source) and :func:`compare_chaining` says
  which rows change group and why.
- **The transition matrix** (2.6 to 2.8) needs raw events, which are missing from the snapshot, so
  it runs on the demo shop: :func:`faithful_matrix` (one interleaved stream, lone rows as
  self-transitions, column-normalised), :func:`faithful_ranking` (independent row and column
  maxima) against sleuth's :func:`~sleuth.explain.paths.path_change`, in :func:`shop_comparison`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..incidents import segment_text
from ..explain.paths import END, disrupted_event_for, path_change, transitions_for
from ..datasets.shop import generate_shop

COLUMNS = ("metric_name", "source_name", "start_anomaly", "end_anomaly")
#: the chains with more than one row (anom_num -> rows) of each (organisation, source), from the
#: author's saved notebook output and seed-methods.md 2.3
REFERENCE = {
    ("113", 27): {3: 2, 13: 2, 19: 9, 20: 3, 22: 9},
    ("113", 26): {4: 5, 6: 3, 8: 3, 9: 2, 10: 12, 12: 3, 13: 3, 18: 5, 19: 4, 22: 4},
    ("222", 30): {3: 2, 13: 3, 16: 5, 20: 2, 22: 2, 23: 2, 27: 3},
    ("222", 31): {3: 4, 26: 4, 27: 3, 28: 2, 29: 4, 30: 2},
    ("222", 29): {1: 2},
}
#: single-row groups where the reference lists them, and the notebook's window of one chain (2.4)
REFERENCE_SINGLES = {("113", 27): [11, 14, 15, 16, 18, 21, 23]}
REFERENCE_WINDOW = {("113", 27, 19): ("2020-06-22 18:00", "2020-06-23 00:00")}
HOUR = pd.Timedelta(hours=1)


# ----------------------------------------------------------------------------- chaining

def read_anomalies(path: str | Path) -> pd.DataFrame:
    """One ``anonymized-anomalies-org<N>.csv`` in file order, with the hour-rounded interval
    ``start_r = floor(start)``, ``end_r = ceil(end)`` the original works on."""
    try:
        df = pd.read_csv(path, index_col=0)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise InputError(f"{path}: cannot read it as CSV ({e})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    try:
        start, end = pd.to_datetime(df["start_anomaly"]), pd.to_datetime(df["end_anomaly"])
        source = pd.to_numeric(df["source_name"]).astype(int)
    except (ValueError, TypeError) as e:
        raise InputError(f"{path}: start_anomaly/end_anomaly must be timestamps and source_name an integer ({e})") from None
    if start.isna().any() or end.isna().any():
        raise InputError(f"{path}: {int((start.isna() | end.isna()).sum())} row(s) without start_anomaly or end_anomaly")
    return df.reset_index(drop=True).assign(source_name=source.to_numpy(), start_r=start.dt.floor("h").to_numpy(),
                                            end_r=end.dt.ceil("h").to_numpy())


def overlap_hours(a: pd.DataFrame) -> np.ndarray:
    """The original's ``time_overlap``: hours each row overlaps the row before it (0 for the first)."""
    s, e = a["start_r"].to_numpy(), a["end_r"].to_numpy()
    out = np.zeros(len(a))
    if len(a) > 1:
        both = np.minimum(e[1:], e[:-1]) - np.maximum(s[1:], s[:-1])
        out[1:] = np.maximum(both / np.timedelta64(1, "h"), 0.0)
    return out


def chain_original(a: pd.DataFrame, last_row_bug: bool = True) -> np.ndarray:
    """``anom_num`` by the original rule, over the rows of ``a`` in their order: a new group
    starts at each row with no overlap with the row before it (touching is no overlap). With
    ``last_row_bug`` the last row is not tested and always joins the group before it."""
    new = overlap_hours(a) == 0
    if last_row_bug and len(new):
        new[-1] = False
    return np.cumsum(new)


def chain_overlaps(a: pd.DataFrame, by: str = "source_name") -> np.ndarray:
    """sleuth's chaining: rows of one ``by`` value (a source or property) whose intervals overlap,
    directly or through other rows of it, form one group, whatever lies between them in the file
    (a sweep in start order with the furthest end so far). Touching is no overlap, as in the
    original. Groups are numbered 1, 2, ... per ``by`` value in order of their first start."""
    out = np.zeros(len(a), dtype=int)
    for _, g in a.groupby(by, sort=False):
        g = g.sort_values("start_r", kind="stable")
        reach = g["end_r"].cummax().shift()
        out[g.index.to_numpy()] = np.cumsum(~(g["start_r"] < reach).to_numpy())
    return out


def _per_source(a: pd.DataFrame, by: str = "source_name") -> np.ndarray:
    """The original rule (without the last-row bug) run on each source's rows alone."""
    out = np.zeros(len(a), dtype=int)
    for _, g in a.groupby(by, sort=False):
        out[g.index.to_numpy()] = chain_original(g, last_row_bug=False)
    return out


def _changed(before: np.ndarray, after: np.ndarray, rows: np.ndarray) -> list[int]:
    """The rows (of ``rows``) whose group, as the set of ``rows`` in it, differs between two labellings."""
    def members(labels: np.ndarray) -> list[frozenset]:
        lab = labels[rows]
        return [frozenset(rows[lab == x].tolist()) for x in lab]
    return [int(r) for r, b, c in zip(rows, members(before), members(after)) if b != c]


def _windows(a: pd.DataFrame, rows: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Each group's anomalous window: the original's ``[start_r(first row), end_r(last row) + 1 h)``
    and sleuth's ``[min start_r, max end_r + 1 h)``."""
    g = a.iloc[rows].assign(group=labels[rows]).groupby("group", sort=True)
    return pd.DataFrame({"start": g["start_r"].first(), "end": g["end_r"].last() + HOUR,
                         "start_all": g["start_r"].min(), "end_all": g["end_r"].max() + HOUR})


def compare_chaining(a: pd.DataFrame, org: str) -> list[dict[str, Any]]:
    """Per source: the original's groups (checked against :data:`REFERENCE`), sleuth's, and the
    rows whose group differs between the two (``changed``), filed under the step(s) from one to
    the other in which they move, which names why:

    1. *last-row bug*: the original without it (still over all sources, adjacent rows only);
    2. *cross-source chaining*: then per source (another source's row no longer links or splits);
    3. *non-adjacent overlap*: then transitive (a row overlapping an earlier row of its source, not
       the one just before it, joins it).

    ``coincidental``: rows that move in some step but end where the original put them (another
    source's rows bridged what an overlap with a non-adjacent row of their own source also joins).
    ``windows_cut_short``: chains whose original window ends with the last row, not the latest end.
    """
    steps = [chain_original(a), chain_original(a, last_row_bug=False), _per_source(a), chain_overlaps(a)]
    reasons = ("last-row bug", "cross-source chaining", "non-adjacent overlap")
    faithful, ours = steps[0], steps[-1]
    out = []
    for source in sorted(a["source_name"].unique()):
        rows = np.flatnonzero(a["source_name"].to_numpy() == source)
        sizes = pd.Series(faithful[rows]).value_counts().sort_index()
        chains = {int(k): int(v) for k, v in sizes.items() if v > 1}
        singles = [int(k) for k, v in sizes.items() if v == 1]
        key = (org, int(source))
        ref_ok = None
        if key in REFERENCE:
            ref_ok = chains == REFERENCE[key] and singles == REFERENCE_SINGLES.get(key, singles)
        win = _windows(a, rows, faithful)
        for (o, s, num), (lo, hi) in REFERENCE_WINDOW.items():
            if (o, s) == key:
                ref_ok = bool(ref_ok) and num in win.index and (
                    (win.loc[num, "start"], win.loc[num, "end"]) == (pd.Timestamp(lo), pd.Timestamp(hi)))
        ours_sizes = pd.Series(ours[rows]).value_counts()
        net = set(_changed(faithful, ours, rows))
        by_step = {why: _changed(b, c, rows) for why, b, c in zip(reasons, steps, steps[1:])}
        out.append({
            "org": org, "source": int(source), "rows": len(rows),
            "faithful": {"groups": len(sizes), "chains": chains, "singles": singles},
            "reference_ok": ref_ok,
            "recommended": {"groups": len(ours_sizes),
                            "chains": sorted((int(v) for v in ours_sizes if v > 1), reverse=True),
                            "singles": int((ours_sizes == 1).sum())},
            "changed": {why: sorted(net & set(moved)) for why, moved in by_step.items()},
            "coincidental": sorted(set().union(*by_step.values()) - net),
            "windows_cut_short": int((win["end"] < win["end_all"]).sum()),
        })
    return out


def last_row_bug(a: pd.DataFrame) -> dict[str, Any] | None:
    """The file's last row when the bug puts it in the group before it without any overlap."""
    if len(a) < 2 or overlap_hours(a)[-1] > 0:
        return None
    return {"row": len(a) - 1, "source": int(a["source_name"].iat[-1]),
            "joined_source": int(a["source_name"].iat[-2]), "anom_num": int(chain_original(a)[-1])}


def run_chaining(folder: str | Path) -> dict[str, Any]:
    """Every ``anonymized-anomalies-org<N>.csv`` in ``folder``: the comparison per source and
    whether every reference chain that has its file was reproduced."""
    files = sorted(Path(folder).glob("anonymized-anomalies-org*.csv"))
    if not files:
        return {"present": False, "path": str(folder)}
    sources, bugs = [], {}
    for f in files:
        org = f.stem.rsplit("org", 1)[1]
        a = read_anomalies(f)
        sources += compare_chaining(a, org)
        bugs[org] = last_row_bug(a)
    found = {(s["org"], s["source"]) for s in sources}
    missing = [f"{o}/{s}" for o, s in REFERENCE if o in bugs and (o, s) not in found]
    checked = [s for s in sources if s["reference_ok"] is not None]
    return {"present": True, "path": str(folder), "sources": sources, "last_row_bug": bugs,
            "reference_checked": len(checked), "missing_sources": missing,
            "reference_ok": bool(checked) and not missing and all(s["reference_ok"] for s in checked)}


# ----------------------------------------------------------------------------- the matrix

def faithful_matrix(stream: pd.DataFrame, event: str = "event", user: str = "user_id") -> pd.DataFrame:
    """The original ``stream_to_prob`` (2.6): one window's rows as ONE time-ordered stream with all
    users interleaved. Row n counts as a move to row n + 1 only when both are the same user's; a
    row whose neighbours on both sides are other users' counts as a self-transition (the first
    row's "previous" is itself, the last row is never counted). Counts are divided by their
    COLUMN sums, so ``M[i, j]`` is the share of arrivals into j that came from i (0/0 is NaN).
    Events are in order of first appearance."""
    codes, names = pd.factorize(stream[event], sort=False)
    u = stream[user].to_numpy()
    counts = np.zeros((len(names), len(names)))
    if len(u) >= 2:
        same = u[:-1] == u[1:]
        previous = np.concatenate([u[:1], u[:-2]])
        lone = ~same & (u[:-1] != previous)
        np.add.at(counts, (codes[:-1][same], codes[1:][same]), 1.0)
        np.add.at(counts, (codes[:-1][lone], codes[:-1][lone]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = counts / counts.sum(axis=0, keepdims=True)
    return pd.DataFrame(m, index=list(names), columns=list(names))


def faithful_change(anomalous: pd.DataFrame, normal: pd.DataFrame) -> pd.DataFrame:
    """D = M_anom - M_norm over the events present in both, in the anomalous window's order (2.7)."""
    shared = [e for e in anomalous.index if e in normal.index]
    return anomalous.loc[shared, shared] - normal.loc[shared, shared]


def faithful_ranking(d: pd.DataFrame, k: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The original's top ``k`` positive and negative "disruptions" (2.8): rows ranked by their
    maximum and columns by theirs, independently, the k-th row paired with the k-th column,
    valued by the k-th column's maximum and labelled ``<column>-<row>`` (minima for negative).
    Only the first pair is sure to be a real cell."""
    out = {}
    for name, sign in (("positive", 1.0), ("negative", -1.0)):
        x = d * sign
        rows = x.max(axis=1).sort_values(ascending=False, kind="stable")
        cols = x.max(axis=0).sort_values(ascending=False, kind="stable")
        out[name] = [{"label": f"{c}-{r}", "row": r, "column": c, "value": float(sign * v)}
                     for r, c, v in zip(rows.index[:k], cols.index[:k], cols.to_numpy()[:k])]
    return out


# ----------------------------------------------------------------------------- on the demo shop

BREAK = ("begin_checkout", "purchase")
#: a cell of D beyond this counts as a "disruption" of the original (it has no test)
FAITHFUL_CHANGE = 0.1
WEEK = pd.Timedelta(weeks=1)


def _stream(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, property: str | None) -> pd.DataFrame:
    """The original's window of a time-ordered events frame: ``[start, end + 1 h)`` (2.4), rows
    without a user dropped (2.2)."""
    keep = (df["timestamp"] >= start) & (df["timestamp"] < end + HOUR) & df["user_id"].notna()
    if property is not None:
        keep &= df["property"] == property
    return df.loc[keep, ["event", "user_id"]]


def _verdict(cell: tuple[str, str] | None) -> str:
    """Does a top cell name the broken step (``begin_checkout`` to ``purchase`` or to the exit),
    only one of its events, or neither?"""
    if cell is None:
        return "nothing"
    if cell[0] == BREAK[0] and cell[1] in (BREAK[1], END):
        return "the step"
    return "an event of it" if set(cell) & set(BREAK) else "no"


def faithful_case(df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                  property: str | None = None) -> dict[str, Any]:
    """The original's answer for one window against the same hours a week earlier: its top
    disruption (the larger of its first positive and first negative pair, the only real cells),
    the funnel cell ``begin_checkout -> purchase`` (its D and rank among all cells by |D|), how
    many cells moved by more than :data:`FAITHFUL_CHANGE`, and the share of adjacent rows of its
    stream that are two different users' (moves it cannot see)."""
    anomalous = _stream(df, start, end, property)
    d = faithful_change(faithful_matrix(anomalous), faithful_matrix(_stream(df, start - WEEK, end - WEEK, property)))
    u = anomalous["user_id"].to_numpy()
    interleaved = round(1 - int((u[:-1] == u[1:]).sum()) / max(len(u) - 1, 1), 3)
    cells = d.stack().dropna()
    if cells.empty:  # the dashboard: "not enough prior data", and it stops
        return {"top": "no prior data", "label": "", "change": None, "verdict": "nothing", "break_change": None,
                "break_rank": None, "cells": 0, "disruptions": 0, "interleaved_share": interleaved}
    ranking = faithful_ranking(d)
    top = max((ranking[side][0] for side in ("positive", "negative")),
              key=lambda r: abs(r["value"]) if np.isfinite(r["value"]) else -1.0)
    by_size = cells.abs().sort_values(ascending=False, kind="stable")
    return {"top": f"{top['row']} -> {top['column']}", "label": top["label"], "change": round(top["value"], 3),
            "verdict": _verdict((top["row"], top["column"])),
            "break_change": round(float(cells[BREAK]), 3) if BREAK in cells.index else None,
            "break_rank": by_size.index.get_loc(BREAK) + 1 if BREAK in by_size.index else None,
            "cells": len(cells), "disruptions": int((by_size > FAITHFUL_CHANGE).sum()),
            "interleaved_share": interleaved}


def sleuth_case(events, start: pd.Timestamp, end: pd.Timestamp, property: str | None = None,
                segment: dict[str, str] | None = None, weeks: int = 4) -> dict[str, Any]:
    """sleuth's answer for the same window (``[start, end)``, as the pipeline asks): its top
    transition, the funnel cell (its change in P(next | current), its rank among the significant
    transitions), the disrupted event, and how many transitions are significant (Benjamini-Hochberg, q < FDR)."""
    table, disrupted = path_change(events, start, end, property, segment, weeks=weeks)
    sig = transitions_for(table, limit=len(table))  # every significant one, ranked
    rank = next((k + 1 for k, t in enumerate(sig) if (t["from"], t["to"]) == BREAK), None)
    cell = table[(table["from"] == BREAK[0]) & (table["to"] == BREAK[1])]["change"]
    top = sig[0] if sig else None
    event = disrupted_event_for(disrupted)
    return {"top": f"{top['from']} -> {top['to']}" if top else "-",
            "change": top["change"] if top else None,
            "verdict": _verdict((top["from"], top["to"]) if top else None),
            "break_change": round(float(cell.iat[0]), 3) if len(cell) else None,
            "break_rank": rank, "cells": len(table), "disrupted_event": event.get("event", "-"),
            "disruptions": len(sig)}


def shop_comparison(weeks: int = 5, sessions_per_hour: float = 400.0, seed: int = 7) -> dict[str, Any]:
    """The original matrix against sleuth's path change on a generated demo shop: the funnel
    break and the iOS conversion drop (both break ``begin_checkout -> purchase`` on the web), and
    the same hours a week before each (nothing happened) for the false "disruptions"."""
    from ..ingest import load_events

    t0 = time.perf_counter()
    df, truth = generate_shop(weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
    events = load_events(df)
    cases = []
    for inc in (t for t in truth if t.kind in ("funnel_break", "segment_conversion_drop")):
        for name, shift in ((inc.kind, pd.Timedelta(0)), (f"normal (a week before the {inc.kind})", WEEK)):
            start, end = inc.start - shift, inc.end - shift
            rows = {"original (all events, as it ran)": faithful_case(df, start, end),
                    f"original ({inc.property} only)": faithful_case(df, start, end, inc.property),
                    f"sleuth ({inc.property}, 1 baseline week)": sleuth_case(events, start, end, inc.property, weeks=1),
                    f"sleuth ({inc.property}, 4 baseline weeks)": sleuth_case(events, start, end, inc.property)}
            if inc.segment:
                seg = segment_text(inc.segment, "")
                rows[f"sleuth ({inc.property}, {seg}, 4 weeks)"] = sleuth_case(events, start, end, inc.property,
                                                                                  inc.segment)
            cases.append({"case": name, "start": str(start), "end": str(end), "incident": not shift,
                          "methods": rows})
    return {"events": len(df), "weeks": weeks, "sessions_per_hour": sessions_per_hour, "seed": seed,
            "cases": cases, "seconds": round(time.perf_counter() - t0, 1)}


def shop_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per method over every run's windows: how often its top disruption names the broken step
    (or only an event of it) in the incident windows, and in the normal ones, where anything it
    names is false, how often it names the step and how many windows show any disruption."""
    out: dict[str, dict[str, int]] = {}
    for run in runs:
        for case in run["cases"]:
            side = "incident" if case["incident"] else "normal"
            for name, m in case["methods"].items():
                t = out.setdefault(name, {f"{side}_{k}": 0 for side in ("incident", "normal")
                                          for k in ("windows", "step", "event", "with_disruptions")})
                t[f"{side}_windows"] += 1
                t[f"{side}_step"] += m["verdict"] == "the step"
                t[f"{side}_event"] += m["verdict"] == "an event of it"
                t[f"{side}_with_disruptions"] += m["disruptions"] > 0
    return out


def run_rootanom(folder: str | Path, shop: bool = True, seeds: tuple[int, ...] = (7, 1, 2, 3),
                 **shop_kwargs: Any) -> dict[str, Any]:
    """The whole benchmark: chaining on the logs in ``folder`` (when present) and, unless
    ``shop`` is false, the matrix comparison on a generated demo shop per seed."""
    out: dict[str, Any] = {"chaining": run_chaining(folder)}
    if shop:
        runs = [shop_comparison(seed=seed, **shop_kwargs) for seed in seeds]
        out["shop"] = {"runs": runs, "summary": shop_summary(runs)}
    return out
