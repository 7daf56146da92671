"""The classifier view (explain/classifier.py) on generated events where we know the answer, and
on the demo shop's bot flood."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("sklearn", reason="the classifier extra is not installed (make install adds it)")

from sleuth.bench.shop import write_shop  # noqa: E402
from sleuth.cli import DEMO_CONFIG  # noqa: E402
from sleuth.config import Config, Metric, parse_config  # noqa: E402
from sleuth.explain.classifier import NOISE, classify_incident, drop_correlated  # noqa: E402
from sleuth.incidents import Incident  # noqa: E402
from sleuth.ingest import load_events  # noqa: E402

START = pd.Timestamp("2026-03-09 10:00")
OS_SHARE = {"Android": 0.55, "iOS": 0.1, "Windows": 0.35}


def _sessions(rng, n: int, t0: pd.Timestamp, hours: int, os_share: dict[str, float], first: int) -> pd.DataFrame:
    """``n`` sessions of 1-4 events in ``[t0, t0 + hours)``, the os drawn from ``os_share``; the
    other dimensions are independent of everything."""
    rows = []
    oses = rng.choice(list(os_share), n, p=list(os_share.values()))
    for k in range(n):
        t = t0 + pd.Timedelta(seconds=int(rng.integers(0, hours * 3600 - 300)))
        dims = {"os": oses[k], "country": rng.choice(["US", "DE", "FR", "GB"]), "device": rng.choice(["mobile", "desktop"])}
        for j in range(int(rng.integers(1, 5))):
            rows.append({"timestamp": t + pd.Timedelta(seconds=30 * j), "session_id": f"s{first + k}",
                         "user_id": f"u{first + k}", "event": rng.choice(["page_view", "search", "signup"], p=[0.6, 0.3, 0.1]),
                         **dims})
    return pd.DataFrame(rows)


def _events(flood_os: dict[str, float] | None, seed: int = 0):
    """Two hours of ordinary traffic now and a week earlier, plus 1,200 extra sessions of page
    views now whose os follows ``flood_os``: mostly iOS (a segment to find) or the usual mix
    (nothing to find)."""
    rng = np.random.default_rng(seed)
    parts = [_sessions(rng, 400, START - pd.Timedelta(days=7), 2, OS_SHARE, 0),
             _sessions(rng, 400, START, 2, OS_SHARE, 1000)]
    if flood_os:
        flood = _sessions(rng, 1200, START, 2, flood_os, 2000)
        flood["event"] = "page_view"
        parts.append(flood)
    frame = pd.concat(parts, ignore_index=True)
    events = load_events(frame, Config(dimensions=["os", "country", "device"]))
    inc = Incident(id="x", metric="page_view", segment={}, start="2026-03-09T10:00:00Z", end="2026-03-09T12:00:00Z",
                   direction="up", actual=None, expected=None, lower=None, upper=None, score=1.0, severity="high")
    return events, inc, Metric(name="page_view", type="count", event="page_view")


def test_a_segment_behind_the_extra_events_is_named_over_represented():
    events, inc, metric = _events({"iOS": 0.95, "Android": 0.03, "Windows": 0.02})
    view = classify_incident(events, inc, metric)
    assert view["verdict"] == "root cause" and view["auc"] > 0.8, view
    top = view["causes"][0]
    assert (top["feature"] == "os=iOS" or "os=iOS" in top["same_as"]) and "over-represented" in top["text"]
    assert top["anomalous"] > top["other"]
    names = [f["feature"] for f in view["features"]]
    assert names.index("os=iOS") < names.index(NOISE)
    again = classify_incident(events, inc, metric)  # seeded: the same answer every time
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in view.items() if k != "seconds"}


def test_extra_events_like_the_usual_traffic_have_no_cause():
    events, inc, metric = _events(OS_SHARE)
    view = classify_incident(events, inc, metric)
    assert view["verdict"] == "unknown" and not view["causes"]
    assert view["reason"].startswith(("poor fit", "nothing stands out")), view["reason"]


def test_an_incident_without_enough_events_is_unknown_without_a_model():
    events, inc, metric = _events(None)
    quiet = Incident(**{**inc.to_dict(), "start": "2026-03-09T14:00:00Z", "end": "2026-03-09T15:00:00Z"})
    view = classify_incident(events, quiet, metric)
    assert view["verdict"] == "unknown" and view["auc"] is None and "too few sessions" in view["reason"]


def test_correlated_columns_are_dropped_and_remembered():
    x = pd.DataFrame({"a": [0, 1, 0, 1, 1, 0], "b": [1, 0, 1, 0, 0, 1], "c": [0, 0, 1, 1, 0, 1]})
    assert drop_correlated(x) == {"a": ["b"], "c": []}


def test_demo_bot_flood_is_put_down_to_headless_chrome(tmp_path):
    written = write_shop(tmp_path, fmt="parquet", weeks=3, sessions_per_hour=40, seed=3)
    truth = json.loads(Path(written["truth"]).read_text(encoding="utf-8"))
    flood = next(t for t in truth if t["kind"] == "bot_flood")
    events = load_events(written["events"], parse_config(yaml.safe_load(DEMO_CONFIG)))
    inc = Incident(id="flood", metric="page_view", segment={}, start=flood["start"], end=flood["end"],
                   direction="up", actual=None, expected=None, lower=None, upper=None, score=1.0,
                   severity="high", property=flood["property"])
    view = classify_incident(events, inc, Metric(name="page_view", type="count", event="page_view"))
    assert view["verdict"] == "root cause", view
    named = {f for c in view["causes"] for f in (c["feature"], *c["same_as"])}
    assert "browser=HeadlessChrome" in named, view["causes"]
