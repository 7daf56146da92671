"""Event-path changes (Markov transitions with START/END states, tested and ranked)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sleuth.explain.paths import (END, FDR, START, compare, disrupted_event_for, disrupted_events, path_change,
                                  transition_counts, transitions_for)
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
    d = disrupted_event_for(events)
    assert d["event"] == "checkout" and d["distance"] == -drop["change"] and d["moves"] == next(
        r["moves_out"] for _, r in table.iterrows() if r["from"] == "checkout")
    # a normal week against earlier normal weeks: nothing significant, no disrupted event
    quiet, quiet_events = path_change(ev, start - pd.Timedelta(weeks=1), start - pd.Timedelta(weeks=1) + pd.Timedelta(hours=1), weeks=3)
    assert transitions_for(quiet) == [] and disrupted_event_for(quiet_events) == {}


def test_compare_handles_missing_sides():
    counts = pd.DataFrame({"window": ["during"], "from": ["a"], "to": ["b"], "n": [3.0]})
    table = compare(counts, "during", ["w1"])
    assert table["baseline"].tolist() == [0.0] and transitions_for(table) == []
    assert compare(counts.iloc[:0], "during", ["w1"]).empty


def counts_of(window: str, moves: dict[str, dict[str, int]]) -> list[dict]:
    return [{"window": window, "from": a, "to": b, "n": float(n)} for a, nxt in moves.items() for b, n in nxt.items()]


def test_the_disrupted_event_is_the_one_whose_moves_changed_most_not_a_rare_or_a_noisy_busy_one():
    rng = np.random.default_rng(1)
    pages = [f"p{k}" for k in range(8)]
    during = {  # a busy page with 8 next steps, unchanged (noise only): summed over them, noise adds up
        "home": dict(zip(pages, rng.multinomial(20000, [1 / 8] * 8).tolist())),
        "checkout": {"purchase": 20, END: 180},      # 200 moves: P(purchase) 0.6 -> 0.1
        "help": {END: 3},                            # rare: every move changed, but only 3 of them
        START: {"home": 100, "landing": 900},        # entries changed a lot, but START is no event
    }
    baseline = {"home": dict(zip(pages, rng.multinomial(80000, [1 / 8] * 8).tolist())),
                "checkout": {"purchase": 480, END: 320}, "help": {"home": 12}, START: {"home": 1000}}
    table = compare(pd.DataFrame(counts_of("during", during) + counts_of("w1", baseline)), "during", ["w1"])
    ev = disrupted_events(table).set_index("event")
    assert START not in ev.index
    assert ev.loc["checkout", "distance"] == pytest.approx(0.5) and ev.loc["checkout", "moved"] == pytest.approx(100)
    assert ev.loc["help", "total_distance"] == pytest.approx(1.0) and ev.loc["help", "moves"] == 3
    # the busy page's summed noise moves more sessions than the real change, but none of its moves is significant
    assert ev.loc["home", "total_distance"] * ev.loc["home", "moves"] > 100 and ev.loc["home", "q"] >= FDR
    assert ev.loc["home", "distance"] == 0
    got = disrupted_event_for(disrupted_events(table))
    assert got == {"event": "checkout", "distance": 0.5, "moves": 200, "moved": 100, "q": got["q"]} and got["q"] < FDR
    # a real but small shift on the busy page (two points to one next step, significant at 20,000
    # moves) moves more sessions than the broken checkout, yet the checkout is the disrupted event
    during["home"] = {p: 2500 for p in pages}
    during["home"]["p0"], during["home"]["p1"] = 2900, 2100
    baseline["home"] = {p: 10000 for p in pages}
    table = compare(pd.DataFrame(counts_of("during", during) + counts_of("w1", baseline)), "during", ["w1"])
    ev = disrupted_events(table).set_index("event")
    assert 0 < ev.loc["home", "distance"] < 0.05 and ev.loc["home", "moved"] > ev.loc["checkout", "moved"]
    assert disrupted_event_for(disrupted_events(table))["event"] == "checkout"
    assert disrupted_events(table.iloc[:0]).empty and disrupted_event_for(disrupted_events(table.iloc[:0])) == {}
