"""Linked anomalies: incidents that are one event seen on several metrics, grouped into one alert.

A graph of incidents. Two incidents of a property can be linked only when their windows overlap
(each widened by one bucket); the weight of the link adds up the evidence that they are one event:

- **time**: how much their windows overlap (the Jaccard share, 0..1);
- **root cause**: both name the same segment (a bot flood moves sessions, page views and the
  conversion rate, all explained by one browser);
- **metric tree**: one metric is built from the other's events (traffic -> checkouts -> revenue
  -> conversion rate: sessions count every event, revenue sums the purchases that orders count,
  the conversion rate divides purchasing sessions by sessions), or they are the same metric in
  a segment and in a segment containing it;
- **event network**: users moved between the two metrics' events during the incidents, or the
  events sit in one community of the network of user transitions (Panomaly's method,
  :mod:`sleuth.explain.panomaly`, on the events of the incidents' time span).

Incidents of different properties link only as one **market-wide** move: the same metric and
segment moving the same way in most of the market at once (both labelled ``market_wide``).

Communities of that graph (Louvain modularity, networkx) are the groups: one alert each, led by
its most severe incident. Each incident's ``linked`` lists the ids of the others in its group and
``link_evidence`` says, for each incident it is directly linked to, why.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable

import networkx as nx
import pandas as pd

from ..config import Metric
from ..incidents import Incident, lead_key, segment_text

#: an incident pair needs at least this link weight to be joined
MIN_WEIGHT = 0.5
#: weight of each kind of evidence besides the windows' overlap
SHARED_CAUSE, METRIC_TREE, EVENT_NETWORK = 0.5, 0.25, 0.25
#: weight of two properties' incidents of one market-wide move, besides their windows' overlap
MARKET_WIDE = 0.5

#: ``(a, b) -> reason`` for the pairs the event network links (see :func:`event_network_links`)
NetworkLinks = dict[frozenset, str]


def _causes(inc: Incident) -> set[tuple]:
    """The segments an incident is about: its own and its top root causes."""
    out = {tuple(sorted(rc["segment"].items())) for rc in inc.root_causes[:3] if rc.get("segment")}
    if inc.segment:
        out.add(tuple(sorted(inc.segment.items())))
    return out


def footprint(metric: Metric | None) -> set[str] | None:
    """The events a metric is built from; None when it counts every event (sessions, users, and
    any ratio over them: traffic, the root of the metric tree)."""
    if metric is None:
        return None
    out: set[str] = set()
    for part in filter(None, metric.parts()):
        if part.events is None:
            return None
        out.update(part.events)
    return out


def tree_related(a: Incident, b: Incident, metrics: dict[str, Metric]) -> str | None:
    """Why ``a`` and ``b`` are related through their metrics' definitions, or None. Only for
    the same users: one segment must contain the other (the total contains every segment), so
    a flood of one browser and a drop on another OS are not related by the tree."""
    small, big = sorted((set(a.segment.items()), set(b.segment.items())), key=len)
    if not small <= big:
        return None
    if a.metric == b.metric:
        return "same metric, nested segments"
    if a.metric not in metrics or b.metric not in metrics:
        return None
    fa, fb = footprint(metrics[a.metric]), footprint(metrics[b.metric])
    if fa is None or fb is None:
        traffic = a.metric if fa is None else b.metric
        return f"metric tree: {traffic} is built on all traffic"
    shared = fa & fb
    return f"metric tree: both built from {', '.join(sorted(shared))}" if shared else None


def link_evidence(a: Incident, b: Incident, step: pd.Timedelta, metrics: dict[str, Metric] | None = None,
                  network: NetworkLinks | None = None) -> tuple[float, list[str]]:
    """How strongly two incidents look like one event, and why: 0 and no reasons when their
    windows (each widened by ``step``) do not overlap, or they are on different properties
    (unless both are the same market-wide move: one external event seen in every store)."""
    if a.property != b.property:
        return market_link(a, b, step)
    s1, e1 = a.start_time() - step, a.end_time() + step
    s2, e2 = b.start_time() - step, b.end_time() + step
    overlap = (min(e1, e2) - max(s1, s2)) / step
    if overlap <= 0:
        return 0.0, []
    share = overlap / ((max(e1, e2) - min(s1, s2)) / step)
    weight, reasons = share, [f"windows overlap {share:.0%}"]
    shared = _causes(a) & _causes(b)
    if shared:
        weight += SHARED_CAUSE
        reasons.append("same root cause " + segment_text(sorted(shared)[0]))
    tree = tree_related(a, b, metrics or {})
    if tree:
        weight += METRIC_TREE
        reasons.append(tree)
    net = (network or {}).get(frozenset((a.id, b.id)))
    if net:
        weight += EVENT_NETWORK
        reasons.append(net)
    return weight, reasons


def market_link(a: Incident, b: Incident, step: pd.Timedelta) -> tuple[float, list[str]]:
    """Two properties' incidents of one market-wide move (the same metric and segment, both
    labelled market-wide, in the same direction, windows overlapping): linked, so the whole
    market's move is one alert."""
    if not (a.market_wide and b.market_wide and a.metric == b.metric and a.segment == b.segment
            and a.direction == b.direction):
        return 0.0, []
    s1, e1 = a.start_time() - step, a.end_time() + step
    s2, e2 = b.start_time() - step, b.end_time() + step
    overlap = (min(e1, e2) - max(s1, s2)) / step
    if overlap <= 0:
        return 0.0, []
    share = overlap / ((max(e1, e2) - min(s1, s2)) / step)
    return share + MARKET_WIDE, [f"windows overlap {share:.0%}", f"market-wide: {a.metric} moved in {a.property} "
                                 f"and {b.property} alike"]


def link_incidents(incidents: list[Incident], step: pd.Timedelta, metrics: dict[str, Metric] | None = None,
                   network: NetworkLinks | None = None) -> list[list[Incident]]:
    """Group ``incidents`` (filling each one's ``linked`` and ``link_evidence``); groups ordered
    by start, each led by its most severe incident."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(incidents)))
    for inc in incidents:
        inc.link_evidence = {}
    for i, j in _overlapping_pairs(incidents, step):
        w, why = link_evidence(incidents[i], incidents[j], step, metrics, network)
        if w >= MIN_WEIGHT:
            graph.add_edge(i, j, weight=w)
            incidents[i].link_evidence[incidents[j].id] = why
            incidents[j].link_evidence[incidents[i].id] = why
    groups = []
    for community in nx.community.louvain_communities(graph, weight="weight", seed=0):
        members = sorted((incidents[k] for k in community),
                         key=lambda x: lead_key(x.severity, x.change, x.id))
        ids = {m.id for m in members}
        for inc in members:
            inc.linked = sorted(ids - {inc.id})
            inc.link_evidence = {k: v for k, v in inc.link_evidence.items() if k in ids}
        groups.append(members)
    groups.sort(key=lambda g: (min(x.start for x in g), g[0].id))
    return groups


def _overlapping_pairs(incidents: list[Incident], step: pd.Timedelta) -> list[tuple[int, int]]:
    """The pairs whose widened windows overlap, by a sweep over start times (not all n² pairs:
    a year of incidents mostly never meet)."""
    spans = [(inc.start_time() - step, inc.end_time() + step) for inc in incidents]
    order = sorted(range(len(incidents)), key=lambda k: spans[k][0])
    pairs = []
    for n, i in enumerate(order):
        for j in order[n + 1:]:
            if spans[j][0] >= spans[i][1]:
                break
            pairs.append((min(i, j), max(i, j)))
    return sorted(pairs)  # the order of all pairs, so the graph (and Louvain's result) is the same


def _overlap_clusters(incidents: list[Incident], step: pd.Timedelta) -> list[list[Incident]]:
    """Incidents of one property whose (widened) windows chain into one time span: the
    connected components of the overlapping pairs."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(incidents)))
    graph.add_edges_from((i, j) for i, j in _overlapping_pairs(incidents, step)
                         if incidents[i].property == incidents[j].property)
    return [[incidents[k] for k in sorted(c)] for c in nx.connected_components(graph)]


def event_network_links(incidents: list[Incident], metrics: dict[str, Metric], step: pd.Timedelta,
                        transitions: Callable[[str, pd.Timestamp, pd.Timestamp], pd.DataFrame]) -> NetworkLinks:
    """The incident pairs whose metrics' events the event network links (true verdicts of
    classes 1-3), with the reason. ``transitions(property, start, end)`` returns the moves of
    that span, with START and END states (:func:`sleuth.explain.paths.transition_counts`) and
    is called once per cluster of incidents that overlap in time and have at least two
    different events between them."""
    from .panomaly import Anomaly, link_anomalies, session_moves

    out: NetworkLinks = {}
    for cluster in _overlap_clusters(incidents, step):
        event_of = {}
        for inc in cluster:
            fp = footprint(metrics.get(inc.metric))
            if fp is not None and len(fp) == 1:
                event_of[inc.id] = next(iter(fp))
        events = sorted(set(event_of.values()))
        if len(events) < 2:
            continue
        moves, counts = session_moves(transitions(cluster[0].property, min(x.start_time() for x in cluster),
                                                  max(x.end_time() for x in cluster)))
        table = link_anomalies([Anomaly(e, e) for e in events], moves, counts)
        true = table[table["Verdict"] & table["pan_class"].isin([1, 2, 3])]
        linked = {frozenset((r.id_anom1, r.id_anom2)): _network_reason(r) for r in true.itertuples(index=False)}
        for a, b in combinations(event_of, 2):
            reason = linked.get(frozenset((event_of[a], event_of[b])))
            if reason:
                out[frozenset((a, b))] = reason
    return out


def _network_reason(link) -> str:
    """A true link of the event network in words, by its Panomaly class."""
    pair = f"{link.id_anom1} ~ {link.id_anom2}"
    if link.pan_class == 1:
        return f"event network: {pair} (one community of user paths)"
    where = "within one community" if link.pan_class == 3 else "across communities"
    return (f"event network: {pair} ({int(link.PbNab)} moves between them, {link.lift:.1f}x chance, "
            f"{where})")
