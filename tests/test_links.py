"""Linked anomalies: incidents that are one event, grouped into one alert."""
from __future__ import annotations

import pandas as pd

from sleuth.alerts.notify import group_linked
from sleuth.config import Metric
from sleuth.explain.links import event_network_links, link_evidence, link_incidents, tree_related
from sleuth.explain.paths import END, START
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
    weak, strong = link_evidence(a, b, H)[0], link_evidence(a, b_same, H)[0]
    assert 0 < weak < 0.5 <= strong
    assert link_incidents([a, b], H)[0][0].linked == []
    assert link_incidents([a, b_same], H)[0][0].linked == ["b2"]


def test_notifications_follow_the_link_groups():
    t = pd.Timestamp("2026-01-01")
    rows = [{"property": "web", "start_at": t, "end_at": t + 2 * H, "key": "k1", "data": {"id": "a", "linked": ["c"]}},
            {"property": "web", "start_at": t + H, "end_at": t + 3 * H, "key": "k2", "data": {"id": "b", "linked": []}},
            {"property": "web", "start_at": t + 5 * H, "end_at": t + 6 * H, "key": "k3", "data": {"id": "c", "linked": ["a"]}}]
    # overlap alone would join k1 and k2; the link step grouped a with c instead
    assert [[r["key"] for r in g] for g in group_linked(rows)] == [["k1", "k3"], ["k2"]]


METRICS = {m.name: m for m in [
    Metric(name="sessions", type="distinct", column="session_id"),
    Metric(name="orders", type="count", event="purchase"),
    Metric(name="revenue", type="sum", column="revenue", event="purchase"),
    Metric(name="add_to_cart", type="count", event="add_to_cart"),
    Metric(name="search", type="count", event="search"),
    Metric(name="conversion_rate", type="ratio", numerator={"type": "distinct", "column": "session_id", "event": "purchase"},
           denominator={"type": "distinct", "column": "session_id"}),
]}


def test_the_metric_tree_relates_metrics_built_from_the_same_events():
    t = "2026-01-01 10:00"
    assert "both built from purchase" in tree_related(inc("a", "orders", t, 2), inc("b", "revenue", t, 2), METRICS)
    assert "sessions is built on all traffic" in tree_related(inc("a", "sessions", t, 2), inc("b", "orders", t, 2), METRICS)
    assert "conversion_rate is built on all traffic" in tree_related(inc("a", "conversion_rate", t, 2), inc("b", "search", t, 2), METRICS)
    assert tree_related(inc("a", "add_to_cart", t, 2), inc("b", "revenue", t, 2), METRICS) is None
    child = inc("c", "orders", t, 2)
    child.segment = {"os": "iOS"}
    assert tree_related(inc("a", "orders", t, 2), child, METRICS) == "same metric, nested segments"
    assert "sessions is built on all traffic" in tree_related(inc("a", "sessions", t, 2), child, METRICS)
    # different users: a flood of one browser and a drop on one OS are not related by the tree
    bots = inc("b", "sessions", t, 2)
    bots.segment = {"browser": "HeadlessChrome"}
    assert tree_related(bots, child, METRICS) is None


def test_a_partial_overlap_links_only_with_evidence_and_says_why():
    a = inc("a", "orders", "2026-01-01 10:00", 6)
    related = inc("b", "revenue", "2026-01-01 13:00", 6)     # built from the same purchases
    unrelated = inc("c", "search", "2026-01-01 16:00", 6)    # another event, no users between them
    link_incidents([a, related, unrelated], H, METRICS)
    assert a.linked == ["b"] and unrelated.linked == []
    assert link_evidence(related, unrelated, H, METRICS)[0] < 0.5
    assert a.link_evidence["b"][0].startswith("windows overlap") and "both built from purchase" in a.link_evidence["b"][1]
    # the event network: users moved search -> add_to_cart in that span, so those two are one event
    moves = pd.DataFrame({"from": [START, "search", "add_to_cart", START, "home", "view", "view"],
                          "to": ["search", "add_to_cart", END, "home", "view", "home", END],
                          "n": [40.0, 30.0, 30.0, 50.0, 50.0, 40.0, 50.0]})
    cart = inc("d", "add_to_cart", "2026-01-01 19:00", 6)
    calls = []
    network = event_network_links([a, unrelated, cart], METRICS, H,
                                  lambda prop, s, e: calls.append((prop, s, e)) or moves)
    assert calls == [("web", pd.Timestamp("2026-01-01 10:00"), pd.Timestamp("2026-01-02 01:00"))]
    assert link_incidents([unrelated, cart], H, METRICS)[0][0].linked == []  # the overlap alone is too weak
    assert list(network) == [frozenset({"c", "d"})]
    # 30 of the 120 moves, all of search's: 4x likelier than chance
    assert network[frozenset({"c", "d"})] == ("event network: add_to_cart ~ search (30 moves between them, "
                                              "4.0x chance, within one community)")
    link_incidents([a, unrelated, cart], H, METRICS, network)
    assert unrelated.linked == ["d"] and any(r.startswith("event network") for r in unrelated.link_evidence["d"])


def test_the_alert_says_why_incidents_were_sent_together():
    from sleuth.alerts.notify import message

    a = inc("a", "orders", "2026-01-01 10:00", 4, severity="high")
    b = inc("b", "revenue", "2026-01-01 10:00", 4)
    link_incidents([a, b], H, METRICS)
    rows = [{"property": "web", "severity": i.severity, "key": i.id, "revision": 1, "state": "open",
             "start_at": i.start_time(), "end_at": i.end_time(), "data": i.to_dict()} for i in (a, b)]
    title, body, _ = message(rows)
    assert title.endswith("(+1 linked)")
    assert "linked because: windows overlap 100%; metric tree: both built from purchase" in body


def test_the_grouped_report_has_one_row_per_alert_with_what_joined_it():
    from rich.console import Console

    from sleuth.report import groups_table

    a = inc("a", "orders", "2026-01-01 10:00", 4, severity="high")
    b = inc("b", "revenue", "2026-01-01 10:00", 4, cause={"os": "iOS"})
    c = inc("c", "sessions", "2026-01-02 10:00", 2)
    link_incidents([a, b, c], H, METRICS)
    console = Console(record=True, width=200)
    console.print(groups_table([a, b, c], small=False))
    text = console.export_text()
    rows = [line for line in text.splitlines() if "orders" in line or "sessions" in line]
    assert len(rows) == 2  # two alerts: orders with revenue, sessions alone
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert cells[0][2:] == ["orders", "revenue", "time, metric tree"]
    assert cells[1][2:] == ["sessions", "-", "-"]
