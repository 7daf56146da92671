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

from sleuth.datasets.shop import write_shop  # noqa: E402
from sleuth.datasets.shop import DEMO_CONFIG  # noqa: E402
from sleuth.config import Aggregate, Config, Metric, parse_config  # noqa: E402
from sleuth.bench.classifier import SPOTLIGHT_GRID, spotlight_faithful, spotlight_rows  # noqa: E402
from sleuth.explain.classifier import (HOUR, NOISE, classify_incident, drop_correlated, excess_fit,  # noqa: E402
                                       group_folds)
from sleuth.incidents import Incident  # noqa: E402
from sleuth.ingest import load_events  # noqa: E402

START = pd.Timestamp("2026-03-09 10:00")
OS_SHARE = {"Android": 0.55, "iOS": 0.1, "Windows": 0.35}
CHANNEL_SHARE = {"organic": 0.4, "direct": 0.3, "email": 0.2, "social": 0.1}


def _sessions(rng, n: int, t0: pd.Timestamp, hours: int, os_share: dict[str, float], first: int,
              channel_share: dict[str, float] = CHANNEL_SHARE) -> pd.DataFrame:
    """``n`` sessions of 1-4 events in ``[t0, t0 + hours)``, the os drawn from ``os_share`` and
    the channel from ``channel_share``; the other dimensions are independent of everything."""
    rows = []
    oses = rng.choice(list(os_share), n, p=list(os_share.values()))
    channels = rng.choice(list(channel_share), n, p=list(channel_share.values()))
    for k in range(n):
        t = t0 + pd.Timedelta(seconds=int(rng.integers(0, hours * 3600 - 300)))
        dims = {"os": oses[k], "channel": channels[k], "country": rng.choice(["US", "DE", "FR", "GB"]),
                "device": rng.choice(["mobile", "desktop"])}
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
    events = load_events(frame, Config(dimensions=["os", "channel", "country", "device"]))
    return events, _incident("page_view"), Metric(name="page_view", type="count", event="page_view")


def _incident(metric: str, direction: str = "up") -> Incident:
    return Incident(id="x", metric=metric, segment={}, start="2026-03-09T10:00:00Z", end="2026-03-09T12:00:00Z",
                    direction=direction, actual=None, expected=None, lower=None, upper=None, score=1.0, severity="high")


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


def test_a_ratio_is_explained_by_the_part_that_moved():
    # the iOS flood views pages and never signs up: the signup rate falls because its denominator grew
    events, _, _ = _events({"iOS": 0.95, "Android": 0.03, "Windows": 0.02})
    rate = Metric(name="signup_rate", type="ratio", numerator=Aggregate(type="distinct", column="session_id", event="signup"),
                  denominator=Aggregate(type="distinct", column="session_id"))
    view = classify_incident(events, _incident("signup_rate", "down"), rate)
    assert view["unit"] == "sessions" and view["verdict"] == "root cause", view
    assert view["causes"][0]["feature"] == "os=iOS" and "over-represented" in view["causes"][0]["text"]


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


SESSIONS = Metric(name="sessions", type="distinct", column="session_id")


def _campaign(extra_channels: dict[str, float], seed: int = 0):
    """Ordinary traffic now and a week earlier, plus half as many extra sessions now, with the
    usual events (so they are a small share of the window's events), whose channel follows
    ``extra_channels``: one channel (a campaign going viral) or the usual mix (nothing to find)."""
    rng = np.random.default_rng(seed)
    frame = pd.concat([_sessions(rng, 600, START - pd.Timedelta(days=7), 2, OS_SHARE, 0),
                       _sessions(rng, 600, START, 2, OS_SHARE, 1000),
                       _sessions(rng, 300, START, 2, OS_SHARE, 2000, channel_share=extra_channels)], ignore_index=True)
    return load_events(frame, Config(dimensions=["os", "channel", "country", "device"]))


def test_a_channel_bringing_extra_sessions_is_named_though_the_window_is_mostly_usual_traffic():
    view = classify_incident(_campaign({"social": 1.0}), _incident("sessions"), SESSIONS)
    assert view["verdict"] == "root cause", view
    assert view["unit"] == "sessions" and view["positives"] == 900 and view["negatives"] == 600
    top = view["causes"][0]
    assert top["feature"] == "channel=social" and "over-represented" in top["text"] and top["anomalous"] > 2 * top["other"]
    # a third of the window is excess: the held-out AUC is diluted, the excess's is not
    assert 0.25 < view["excess"] < 0.42 and view["excess_auc"] > view["auc"] + 0.1


def test_extra_sessions_with_the_usual_channel_mix_have_no_cause():
    view = classify_incident(_campaign(CHANNEL_SHARE), _incident("sessions"), SESSIONS)
    assert view["verdict"] == "unknown" and not view["causes"], view
    assert view["reason"].startswith(("poor fit", "nothing stands out")), view["reason"]


PRICES = {"electronics": 250.0, "apparel": 60.0, "home": 90.0, "toys": 40.0}


def _shop(glitch: str | None, seed: int = 0):
    """Sessions of page views and purchases (the category varies within a session and is none
    on page views) now and a week earlier; now, ``glitch``'s purchases sell at a tenth of the price."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, t0 in enumerate([START - pd.Timedelta(days=7)] * 500 + [START] * 500):
        t = t0 + pd.Timedelta(seconds=int(rng.integers(0, 2 * 3600 - 600)))
        dims = {"session_id": f"s{k}", "user_id": f"u{k}", "os": rng.choice(list(OS_SHARE), p=list(OS_SHARE.values())),
                "country": rng.choice(["US", "DE", "FR"])}
        rows.append({"timestamp": t, "event": "page_view", "category": None, "revenue": None, **dims})
        for j, cat in enumerate(rng.choice(list(PRICES), int(rng.integers(1, 3)))):
            price = PRICES[cat] * float(rng.lognormal(0, 0.3)) * (0.1 if cat == glitch and t0 == START else 1.0)
            rows.append({"timestamp": t + pd.Timedelta(seconds=60 * (j + 1)), "event": "purchase", "category": cat,
                         "revenue": round(price, 2), **dims})
    return load_events(pd.DataFrame(rows), Config(dimensions=["os", "country", "category"]))


REVENUE = Metric(name="revenue", type="sum", column="revenue", event="purchase")


def test_an_event_attribute_behind_lost_revenue_is_named_without_leaking_the_event_or_its_value():
    events = _shop("electronics")
    assert "category" not in events.session_dimensions()  # it changes within a session
    view = classify_incident(events, _incident("revenue", "down"), REVENUE)
    assert view["verdict"] == "root cause", view
    top = view["causes"][0]
    assert top["feature"] == "category=electronics" and "under-represented" in top["text"]
    assert top["anomalous"] < top["other"] / 2  # its share of the revenue, not of the orders
    dims = {f["feature"].split("=")[0] for f in view["features"]} - {HOUR, NOISE}
    assert dims <= {"os", "country", "category"}, dims


def test_revenue_lost_everywhere_alike_has_no_cause():
    events = _shop(None)
    view = classify_incident(events, _incident("revenue", "down"), REVENUE)
    assert view["verdict"] == "unknown", view


def test_session_folds_keep_each_session_on_one_side_and_both_labels_in_each_fold():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(300), rng.integers(1, 5, 300))
    y = (groups % 4 == 0).astype(int)  # a quarter of the sessions are label 1
    folds = group_folds(y, groups, 3, seed=1)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(y)))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert abs(len(set(groups[test][y[test] == 1])) - 25) <= 1  # 75 label-1 sessions dealt out in three
    assert [te.tolist() for _, te in group_folds(y, groups, 3, seed=1)] == [te.tolist() for _, te in folds]


def test_excess_fit_undoes_the_dilution_of_a_growth_and_of_a_drop():
    # a window of 100 usual rows (scored like last week's) and 50 excess rows caught perfectly:
    # the excess is 1/3 of the window; AUC 0.5 + 0.5/3, recall 1/3 + 2/3 * fpr
    grew = excess_fit(auc=0.5 + 0.5 / 3, tpr=1 / 3 + 2 / 3 * 0.1, fpr=0.1, window=150, before=100)
    assert grew["excess"] == pytest.approx(1 / 3, abs=1e-3)
    assert grew["excess_auc"] == pytest.approx(1.0) and grew["excess_recall"] == pytest.approx(1.0)
    # the same rows the other way round: the week before held the missing third
    lost = excess_fit(auc=0.5 + 0.5 / 3, tpr=0.9, fpr=2 / 3 * 0.1, window=100, before=150)
    assert lost["excess_auc"] == pytest.approx(1.0) and lost["excess_recall"] == pytest.approx(1.0)
    assert excess_fit(0.5, 0.5, 0.5, 150, 100)["excess_auc"] == 0.5


def test_spotlight_labels_the_metric_events_strictly_inside_against_everything_else():
    events, inc, _ = _events({"iOS": 1.0})
    rows = spotlight_rows(events, inc, ["page_view"], ["os"])
    table = events.table.to_pyarrow().to_pandas()
    ts = table.timestamp.dt.tz_localize(None) if table.timestamp.dt.tz is not None else table.timestamp
    start, end = pd.Timestamp("2026-03-09 10:00"), pd.Timestamp("2026-03-09 12:00")
    inside = (ts >= start) & (ts <= end)
    week = (ts >= start - pd.Timedelta(days=7)) & (ts <= end - pd.Timedelta(days=7)) & (table.event == "page_view")
    assert len(rows) == int((inside | week).sum())
    assert rows.label.sum() == int(((ts > start) & (ts < end) & (table.event == "page_view")).sum())


def test_spotlight_as_published_names_a_flood_of_one_segment():
    events, inc, metric = _events({"iOS": 0.95, "Android": 0.03, "Windows": 0.02})
    view = spotlight_faithful(events, inc, metric, max_rows=2000)
    assert view["verdict"] == "root cause", view
    assert "os=iOS" in [c["feature"] for c in view["causes"]]
    assert view["forest"]["max_depth"] in SPOTLIGHT_GRID["max_depth"] and view["positives"] + view["negatives"] == 2000


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


def test_a_segment_incident_looks_inside_its_segment_and_never_names_it():
    """Extra US sessions from social: the incident on sessions[country=US] compares US traffic
    only, names the channel, and never offers its own segment (country) as a feature."""
    rng = np.random.default_rng(3)
    extra = _sessions(rng, 300, START, 2, OS_SHARE, 2000, channel_share={"social": 1.0}).assign(country="US")
    frame = pd.concat([_sessions(rng, 600, START - pd.Timedelta(days=7), 2, OS_SHARE, 0),
                       _sessions(rng, 600, START, 2, OS_SHARE, 1000), extra], ignore_index=True)
    events = load_events(frame, Config(dimensions=["os", "channel", "country", "device"]))
    inc = _incident("sessions")
    inc.segment = {"country": "US"}
    view = classify_incident(events, inc, SESSIONS)
    us = frame[frame["country"] == "US"]
    window = us[us["timestamp"] >= START]["session_id"].nunique()
    assert view["positives"] == window and view["negatives"] == us[us["timestamp"] < START]["session_id"].nunique()
    assert view["verdict"] == "root cause", view
    assert view["causes"][0]["feature"] == "channel=social"
    assert not any(f["feature"].startswith("country=") for f in view["features"])
