"""The metrics cube against an independent pandas computation, and its edge cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.config import Config
from sleuth.ingest import load_events
from sleuth.metrics.cube import TOTAL, build_cube, leaf_table
from sleuth.metrics.derive import resolve_metrics

METRICS = [
    {"name": "sessions", "type": "distinct", "column": "session_id"},
    {"name": "purchases", "type": "count", "event": "purchase"},
    {"name": "revenue", "type": "sum", "column": "revenue", "event": "purchase"},
    {"name": "conversion_rate", "type": "ratio",
     "numerator": {"type": "distinct", "column": "session_id", "event": "purchase"},
     "denominator": {"type": "distinct", "column": "session_id"}},
]


def _events(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-04-01") + pd.to_timedelta(rng.integers(0, 48 * 3600, n), unit="s")
    ev = rng.choice(["page_view", "add_to_cart", "purchase"], n, p=[0.7, 0.2, 0.1])
    return pd.DataFrame({
        "timestamp": ts, "event": ev,
        "session_id": [f"s{i}" for i in rng.integers(0, 600, n)],
        "user_id": [f"u{i}" for i in rng.integers(0, 300, n)],
        "revenue": np.where(ev == "purchase", rng.gamma(2, 30, n).round(2), np.nan),
        "property": rng.choice(["web", "app"], n),
        "device": rng.choice(["mobile", "desktop"], n),
        "country": rng.choice(["US", "DE", "FR"], n),
    })


def _cube(frame: pd.DataFrame, **cfg):
    config = Config.model_validate({"dimensions": ["device", "country"], "metrics": METRICS, **cfg})
    events = load_events(frame, config)
    return build_cube(events, resolve_metrics(config, events), config)


def test_cube_matches_pandas_for_every_metric_and_segment():
    df = _events()
    cube = _cube(df)
    df["bucket"] = df.timestamp.dt.floor("h")
    buy = df[df.event == "purchase"]
    for prop in ("web", "app"):
        for dim, seg in [(TOTAL, TOTAL), ("device", "mobile"), ("country", "FR")]:
            sel = (df.property == prop) & ((df[dim] == seg) if dim else True)
            bsel = (buy.property == prop) & ((buy[dim] == seg) if dim else True)
            sessions = df[sel].groupby("bucket").session_id.nunique()
            purchases = buy[bsel].groupby("bucket").size()
            revenue = buy[bsel].groupby("bucket").revenue.sum()
            conv = buy[bsel].groupby("bucket").session_id.nunique() / sessions
            for metric, want in [("sessions", sessions), ("purchases", purchases), ("revenue", revenue)]:
                got = pd.Series(cube.value[cube.index(prop, metric, dim, seg)], index=cube.buckets)
                want = want.reindex(cube.buckets, fill_value=0)
                np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, err_msg=f"{prop} {metric} {dim}")
            got = cube.value[cube.index(prop, "conversion_rate", dim, seg)]
            np.testing.assert_allclose(got, conv.reindex(cube.buckets).fillna(0).to_numpy(), rtol=1e-9)


def test_additive_segments_sum_to_the_total():
    cube = _cube(_events())
    for metric in ("purchases", "revenue"):
        total = cube.value[cube.index("web", metric)]
        parts = sum(cube.value[cube.index("web", metric, "country", c)] for c in ("US", "DE", "FR"))
        np.testing.assert_allclose(parts, total)


def test_empty_bucket_is_zero_for_counts_and_no_data_for_ratios():
    df = pd.DataFrame({
        "timestamp": ["2026-04-01T10:05:00Z", "2026-04-01T10:10:00Z", "2026-04-01T12:30:00Z", "2026-04-01T13:59:59Z"],
        "event": ["page_view", "purchase", "page_view", "page_view"],
        "session_id": ["a", "a", "b", "c"], "revenue": [None, 10.0, None, None],
        "device": ["x", "x", "y", "y"],
    })
    cube = _cube(df, dimensions=["device"])
    assert list(cube.buckets) == list(pd.date_range("2026-04-01 10:00", periods=4, freq="h"))
    i = cube.index("default", "sessions")
    np.testing.assert_array_equal(cube.value[i], [1, 0, 1, 1])
    rate = cube.value[cube.index("default", "conversion_rate")]
    assert rate[0] == 1.0 and np.isnan(rate[1]) and rate[2] == 0.0
    ratio = cube.index("default", "conversion_rate")
    np.testing.assert_array_equal(cube.numerator[ratio], [1, 0, 0, 0])
    np.testing.assert_array_equal(cube.denominator[ratio], [1, 0, 1, 1])


def test_last_bucket_in_progress_is_marked():
    df = pd.DataFrame({"timestamp": ["2026-04-01T10:05:00", "2026-04-01T11:20:00"],
                       "event": ["a", "a"], "session_id": ["s", "t"], "device": ["x", "y"]})
    cube = _cube(df, dimensions=["device"], metrics=[{"name": "a", "type": "count", "event": "a"}])
    assert cube.complete_until == pd.Timestamp("2026-04-01 11:00")
    assert any("in progress" in n for n in cube.notes)


def test_daily_buckets_follow_the_local_calendar():
    df = pd.DataFrame({"timestamp": ["2026-04-01T21:30:00Z", "2026-04-01T22:30:00Z", "2026-04-02T12:00:00Z"],
                       "event": ["a", "a", "a"], "session_id": ["s", "t", "u"], "device": ["x", "y", "x"]})
    cube = _cube(df, granularity="1d", timezone="Europe/Berlin", dimensions=["device"],
                 metrics=[{"name": "a", "type": "count", "event": "a"}])
    # 21:30Z is 23:30 in Berlin (April 1); 22:30Z is 00:30 on April 2
    assert list(cube.buckets) == [pd.Timestamp("2026-03-31 22:00"), pd.Timestamp("2026-04-01 22:00")]
    np.testing.assert_array_equal(cube.value[cube.index("default", "a")], [1, 2])


def test_leaf_table_sums_to_the_window_total():
    df = _events()
    config = Config.model_validate({"dimensions": ["device", "country"], "metrics": METRICS})
    events = load_events(df, config)
    metric = next(m for m in resolve_metrics(config, events) if m.name == "conversion_rate")
    start, end = pd.Timestamp("2026-04-01 06:00"), pd.Timestamp("2026-04-01 12:00")
    leaves = leaf_table(events, metric, {"now": (start, end)}, property="web")
    assert len(leaves) == 6  # 2 devices x 3 countries
    w = df[(df.property == "web") & (df.timestamp >= start) & (df.timestamp < end)]
    # distinct sessions per leaf, summed over leaves, counts a session once per leaf it touched
    want = w.groupby(["device", "country"]).session_id.nunique().sum()
    assert leaves["now_den"].sum() == want
    want_num = w[w.event == "purchase"].groupby(["device", "country"]).session_id.nunique().sum()
    assert leaves["now_num"].sum() == want_num


@pytest.mark.parametrize("invert", [False, True])
def test_inverted_ratio_is_one_minus(invert):
    df = _events()
    metric = {"name": "r", "type": "ratio", "invert": invert,
              "numerator": {"type": "distinct", "column": "session_id", "event": "purchase"},
              "denominator": {"type": "distinct", "column": "session_id", "event": "add_to_cart"}}
    cube = _cube(df, metrics=[metric])
    v = cube.value[cube.index("web", "r")]
    plain_cube = _cube(df, metrics=[{**metric, "invert": False}])
    plain = plain_cube.value[plain_cube.index("web", "r")]
    ok = np.isfinite(v)
    np.testing.assert_allclose(v[ok], (1 - plain[ok]) if invert else plain[ok])
