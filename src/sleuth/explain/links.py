"""Linked anomalies: incidents that are one event seen on several metrics, grouped into one alert.

A graph of incidents: two incidents of a property are linked when their windows overlap (within
one bucket); the link is stronger the more they overlap (the Jaccard share of their windows) and
when they name the same root-cause segment (a bot flood moves sessions, page views and the
conversion rate, all explained by one browser). Communities of that graph (Louvain modularity,
networkx) are the groups: one alert each, led by its most severe incident. Each incident's
``linked`` lists the ids of the others in its group.
"""
from __future__ import annotations

from itertools import combinations

import networkx as nx
import pandas as pd

from ..incidents import SEVERITY_RANK, Incident

#: an incident pair needs at least this link weight to be joined
MIN_WEIGHT = 0.3
#: extra weight when both name the same root-cause segment
SHARED_CAUSE = 0.5


def _causes(inc: Incident) -> set[tuple]:
    """The segments an incident is about: its own and its top root causes."""
    out = {tuple(sorted(rc["segment"].items())) for rc in inc.root_causes[:3] if rc.get("segment")}
    if inc.segment:
        out.add(tuple(sorted(inc.segment.items())))
    return out


def link_weight(a: Incident, b: Incident, step: pd.Timedelta) -> float:
    """How strongly two incidents look like one event: overlap of their windows (each widened by
    ``step``), plus :data:`SHARED_CAUSE` when they name the same segment. 0 when unrelated."""
    if a.property != b.property:
        return 0.0
    s1, e1 = a.start_time() - step, a.end_time() + step
    s2, e2 = b.start_time() - step, b.end_time() + step
    overlap = (min(e1, e2) - max(s1, s2)) / step
    if overlap <= 0:
        return 0.0
    union = (max(e1, e2) - min(s1, s2)) / step
    return overlap / union + (SHARED_CAUSE if _causes(a) & _causes(b) else 0.0)


def link_incidents(incidents: list[Incident], step: pd.Timedelta) -> list[list[Incident]]:
    """Group ``incidents`` (filling each one's ``linked``); groups ordered by start, each led by
    its most severe incident."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(incidents)))
    for i, j in combinations(range(len(incidents)), 2):
        w = link_weight(incidents[i], incidents[j], step)
        if w >= MIN_WEIGHT:
            graph.add_edge(i, j, weight=w)
    groups = []
    for community in nx.community.louvain_communities(graph, weight="weight", seed=0):
        members = sorted((incidents[k] for k in community),
                         key=lambda x: (-SEVERITY_RANK[x.severity], -abs(x.change or 0), x.id))
        for inc in members:
            inc.linked = sorted(m.id for m in members if m.id != inc.id)
        groups.append(members)
    groups.sort(key=lambda g: (min(x.start for x in g), g[0].id))
    return groups
