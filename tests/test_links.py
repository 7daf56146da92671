"""Linked anomalies: incidents that are one event, grouped into one alert."""
from __future__ import annotations

import pandas as pd

from sleuth.alerts.notify import group_linked
from sleuth.explain.links import link_incidents, link_weight
from sleuth.incidents import Incident

H = pd.Timedelta(hours=1)


def inc(id: str, metric: str, start: str, hours: int, prop: str = "web", cause: dict | None = None,
        severity: str = "medium") -> Incident:
    s = pd.Timestamp(start)
    return Incident(id=id, metric=metric, segment={}, start=s.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    end=(s + hours * H).strftime("%Y-%m-%dT%H:%M:%SZ"), direction="down", actual=1.0,
                    expected=2.0, lower=1.5, upper=2.5, score=2.0, severity=severity, property=prop,
                    root_causes=[{"segment": cause, "score": 1.0, "explains": 1.0}] if cause else [])


def test_overlapping_incidents_of_a_property_form_one_group_led_by_the_worst():
    a = inc("a", "sessions", "2026-01-01 10:00", 4)
    b = inc("b", "orders", "2026-01-01 11:00", 3, severity="high")
    c = inc("c", "revenue", "2026-01-01 20:00", 2)           # later the same day: another event
    d = inc("d", "sessions", "2026-01-01 10:00", 4, prop="app")  # another property
    groups = link_incidents([a, b, c, d], H)
    assert [[x.id for x in g] for g in groups] == [["b", "a"], ["d"], ["c"]]
    assert a.linked == ["b"] and b.linked == ["a"] and c.linked == [] and d.linked == []


def test_a_shared_root_cause_strengthens_a_weak_overlap():
    a = inc("a", "page_view", "2026-01-01 10:00", 8, cause={"browser": "HeadlessChrome"})
    b = inc("b", "conversion_rate", "2026-01-01 18:00", 1)
    b_same = inc("b2", "conversion_rate", "2026-01-01 18:00", 1, cause={"browser": "HeadlessChrome"})
    weak, strong = link_weight(a, b, H), link_weight(a, b_same, H)
    assert 0 < weak < 0.3 <= strong
    assert link_incidents([a, b], H)[0][0].linked == []
    assert link_incidents([a, b_same], H)[0][0].linked == ["b2"]


def test_notifications_follow_the_link_groups():
    t = pd.Timestamp("2026-01-01")
    rows = [{"property": "web", "start_at": t, "end_at": t + 2 * H, "key": "k1", "data": {"id": "a", "linked": ["c"]}},
            {"property": "web", "start_at": t + H, "end_at": t + 3 * H, "key": "k2", "data": {"id": "b", "linked": []}},
            {"property": "web", "start_at": t + 5 * H, "end_at": t + 6 * H, "key": "k3", "data": {"id": "c", "linked": ["a"]}}]
    # overlap alone would join k1 and k2; the link step grouped a with c instead
    assert [[r["key"] for r in g] for g in group_linked(rows)] == [["k1", "k3"], ["k2"]]
