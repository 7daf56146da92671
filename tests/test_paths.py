"""Event-path changes (Markov transitions with START/END states, tested and ranked)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sleuth.explain.paths import END, START, compare, path_change, transition_counts, transitions_for
from sleuth.ingest import load_events


def frame(paths: dict[str, list[str]], t0: str) -> list[dict]:
    rows = []
    for sid, events in paths.items():
        for k, e in enumerate(events):
            rows.append({"timestamp": pd.Timestamp(t0) + pd.Timedelta(seconds=30 * k), "event": e,
                         "session_id": sid, "user_id": "u" + sid})
    return rows


def test_paths_have_start_and_end_and_one_event_sessions_no_self_loop():
    df = pd.DataFrame(frame({"a": ["home", "cart", "buy"], "b": ["home"], "c": ["home", "home"]}, "2026-01-05 10:00"))
    ev = load_events(df)
    c = transition_counts(ev, {"w": (pd.Timestamp("2026-01-05 10:00"), pd.Timestamp("2026-01-05 11:00"))})
    got = {(r["from"], r["to"]): r["n"] for _, r in c.iterrows()}
    assert got == {(START, "home"): 3, ("home", "cart"): 1, ("cart", "buy"): 1, ("buy", END): 1,
                   ("home", END): 2, ("home", "home"): 1}


def shop_sessions(n: int, p_buy: float, t0: str, rng) -> dict[str, list[str]]:
    out = {}
    for i in range(n):
        path = ["home", "product"]
        if rng.random() < 0.5:
            path.append("checkout")
            if rng.random() < p_buy:
                path.append("purchase")
        out[f"{t0}-{i}"] = path
    return out


def test_a_broken_checkout_step_is_the_top_change_and_normal_weeks_show_none():
    rng = np.random.default_rng(0)
    rows = []
    for week in range(5):
        t0 = pd.Timestamp("2026-01-05 10:00") + pd.Timedelta(weeks=week)
        rows += frame(shop_sessions(400, 0.1 if week == 4 else 0.6, str(t0), rng), str(t0))
    ev = load_events(pd.DataFrame(rows))
    start = pd.Timestamp("2026-02-02 10:00")
    table, events = path_change(ev, start, start + pd.Timedelta(hours=1))
    top = transitions_for(table)
    assert {(t["from"], t["to"]) for t in top[:2]} == {("checkout", "purchase"), ("checkout", END)}
    drop = next(t for t in top if t["to"] == "purchase")
    assert drop["change"] < -0.4 and drop["baseline"] > 0.5 and drop["q"] < 1e-6
    assert events["event"].iat[0] == "checkout"
    # a normal week against earlier normal weeks: nothing significant
    quiet, _ = path_change(ev, start - pd.Timedelta(weeks=1), start - pd.Timedelta(weeks=1) + pd.Timedelta(hours=1), weeks=3)
    assert transitions_for(quiet) == []


def test_compare_handles_missing_sides():
    counts = pd.DataFrame({"window": ["during"], "from": ["a"], "to": ["b"], "n": [3.0]})
    table = compare(counts, "during", ["w1"])
    assert table["baseline"].tolist() == [0.0] and transitions_for(table) == []
    assert compare(counts.iloc[:0], "during", ["w1"]).empty
