"""Linked anomalies through the event network: Panomaly's method (seed-methods.md, section 1).

The anomalies that started in one hour are linked through how users moved between their events
in that hour. From each user's (or session's) ordered events come the transitions ``a -> b``:

- **probability**: ``P(next = m2 | current = m1)`` (``PbProb``, Panomaly's "Bayesian" quantity,
  which simplifies to the first-order Markov transition probability) and the joint frequency
  ``PfProb``; a pair of anomalies sums both directions.
- **graph**: the undirected network of events weighted by transitions; each event's degree,
  betweenness (on the inverted weight) and eigenvector centrality, averaged into ``Gavg``, and
  its Louvain community.
- **class** of a link: 4 an event repeated by users, 3 a transition inside one community
  (probability and graph agree), 2 a transition across communities, 1 the same community without
  a transition, 0 an anomaly without any user event, -1 unrelated.
- **score** ``Qpan`` per class and a verdict (``Qpan >= Qcrit``: 0 for class 4, 0.1 otherwise).

Two modes. ``faithful`` reproduces the original notebook, quirks included, so its reference
outputs can be checked (``sleuth bench panomaly``). The default is what sleuth uses: events of the
window only, paths per session rather than per user (with no merged pseudo-user for missing ids),
edge weights that count both directions, a seeded Louvain, and one group per connected component
of true links instead of Panomaly's overlapping per-class groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import Iterable

import networkx as nx
import numpy as np
import pandas as pd

#: the verdict's bar for classes 1-3 (Panomaly's ``limit10``)
QCRIT = 0.10
TAGS = {4: "Pb & G (self)", 3: "Pb & G", 2: "Pb only", 1: "G only", 0: "No user events"}
NODE_COLUMNS = ["Gmod", "Gdeg", "Gbtw", "Gevc", "Gavg"]


@dataclass(frozen=True)
class Anomaly:
    """An anomaly to link: its id, and the event its metric counts (None: no single event, so
    the event network says nothing about it: class -1)."""

    id: str | int
    event: str | None


# ----------------------------------------------------------------------------- transitions

def user_paths_faithful(raw: pd.DataFrame, user: str = "userId", event: str = "event") -> pd.DataFrame:
    """Panomaly's transitions, exactly: every row of ``raw`` (no time filter), missing users
    merged into one pseudo-user ``'None'``, each user's events in file order, self-transitions
    kept, no sessions. Columns ``from, to, n``; isolated events are in :func:`event_counts`."""
    df = raw.dropna(subset=[event]).copy()
    df[user] = df[user].astype(object).where(df[user].notna(), "None")
    nxt = df.groupby(user, sort=False)[event].shift(-1)
    moves = pd.DataFrame({"from": df[event], "to": nxt}).dropna()
    return moves.groupby(["from", "to"]).size().rename("n").reset_index()


def session_moves(counts: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Moves between events (``from, to, n``) and events per name, from session paths with
    START and END states (:func:`sleuth.explain.paths.transition_counts` of one window)."""
    from .paths import END, START

    n_events = counts[counts["from"] != START].groupby("from")["n"].sum()
    moves = counts[(counts["from"] != START) & (counts["to"] != END)]
    return moves.groupby(["from", "to"], as_index=False)["n"].sum(), n_events


def event_counts(raw: pd.DataFrame, event: str = "event") -> pd.Series:
    """Raw events per event name (Panomaly's N)."""
    return raw[event].dropna().value_counts()


# ----------------------------------------------------------------------------- the network

def edge_weights(moves: pd.DataFrame, faithful: bool = False) -> dict[tuple[str, str], float]:
    """Undirected edge weights from directed transitions (self-transitions left out).

    Default: ``n(a->b) + n(b->a)``. ``faithful``: the original let the direction added last
    overwrite the other, in the iteration order of a Python set (not reproducible across Python
    versions); here the pairs are taken in sorted order, one of the orders the original could see.
    """
    out: dict[tuple[str, str], float] = {}
    for a, b, n in moves[moves["from"] != moves["to"]].sort_values(["from", "to"]).itertuples(index=False):
        key = (a, b) if a <= b else (b, a)
        out[key] = float(n) if faithful else out.get(key, 0.0) + float(n)
    return out


def _louvain(graph: nx.Graph, seed: int) -> dict[str, int]:
    """Louvain communities (networkx, seeded), labelled 0.. by size, then by first node."""
    parts = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    parts = sorted(parts, key=lambda c: (-len(c), min(map(str, c))))
    return {node: k for k, part in enumerate(parts) for node in part}


def eigenvector_centrality(graph: nx.Graph) -> dict[str, float]:
    """networkx's power iteration (what Panomaly used), or where it does not converge (a graph
    in pieces, say) the leading eigenvector of the weighted adjacency computed with numpy: the
    same values to ~1e-5 where both work, and an answer on a disconnected graph, where
    ``eigenvector_centrality_numpy`` raises AmbiguousSolution (and needs scipy)."""
    try:
        return nx.eigenvector_centrality(graph, weight="weight", max_iter=100, tol=1e-6)
    except nx.PowerIterationFailedConvergence:
        nodes = list(graph.nodes)
        adj = nx.to_numpy_array(graph, nodelist=nodes, weight="weight")
        _, vectors = np.linalg.eigh(adj)  # the graph is undirected: the matrix is symmetric
        lead = np.abs(vectors[:, -1])
        norm = np.linalg.norm(lead)
        return dict(zip(nodes, (lead / norm if norm > 0 else lead).tolist()))


def node_metrics(nodes: Iterable[str], weights: dict[tuple[str, str], float],
                 partition: dict[str, int] | None = None, seed: int = 0) -> pd.DataFrame:
    """Per event: ``Gmod`` (community), ``Gdeg`` (neighbours / all nodes), ``Gbtw`` (betweenness
    on the "enemy" distance ``w_max - w + w_min``), ``Gevc`` (eigenvector centrality on the
    weight) and their mean ``Gavg``. ``partition`` fixes the communities (e.g. a reference run)."""
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    if weights:
        lo, hi = min(weights.values()), max(weights.values())
        for (a, b), w in weights.items():
            graph.add_edge(a, b, weight=w, enemy=hi - w + lo)
    n = graph.number_of_nodes()
    if n == 0:
        return pd.DataFrame(columns=NODE_COLUMNS)
    btw = nx.betweenness_centrality(graph, weight="enemy", normalized=True)
    evc = eigenvector_centrality(graph)
    mod = partition if partition is not None else _louvain(graph, seed)
    out = pd.DataFrame({"Gmod": [mod.get(v, -1) for v in graph.nodes],
                        "Gdeg": [graph.degree(v) / n for v in graph.nodes],
                        "Gbtw": [btw[v] for v in graph.nodes],
                        "Gevc": [evc[v] for v in graph.nodes]}, index=list(graph.nodes))
    out["Gavg"] = out[["Gdeg", "Gbtw", "Gevc"]].mean(axis=1)
    return out


# ----------------------------------------------------------------------------- the link table

def _pair_probabilities(moves: pd.DataFrame, events: list[str | None]) -> dict[tuple, tuple[float, int, float, float]]:
    """``(PbProb, PbNab, PfProb, lift)`` for every ordered pair of the anomalies' events; the
    lift is ``P(next = m2 | m1) / P(next = m2)``: how much likelier the move is than chance."""
    total = float(moves["n"].sum())
    out_n = moves.groupby("from")["n"].sum()
    in_n = moves.groupby("to")["n"].sum()
    nab = moves.set_index(["from", "to"])["n"]
    out: dict[tuple, tuple[float, int, float, float]] = {}
    for m1 in events:
        for m2 in events:
            n = float(nab.get((m1, m2), 0.0))
            b, a = float(out_n.get(m1, 0.0)), float(in_n.get(m2, 0.0))
            if total > 0 and a > 0 and b > 0 and n > 0:
                out[(m1, m2)] = (n / b, int(n), n / total, (n / b) / (a / total))
            else:
                out[(m1, m2)] = (0.0, 0, 0.0, 0.0)
    return out


def _link_class(self_pair: bool, nab: float, g1: int, g2: int) -> int:
    same = g1 >= 0 and g2 >= 0 and g1 == g2
    diff = g1 >= 0 and g2 >= 0 and g1 != g2
    if self_pair:
        return 4 if nab > 0 and same else -1
    if nab > 0:
        return 3 if same else 2 if diff else -1
    return 1 if same else -1


def link_table(anomalies: list[Anomaly], moves: pd.DataFrame, nodes: pd.DataFrame,
               counts: pd.Series, present: set[str] | None = None, min_moves: int = 1,
               min_lift: float = 0.0) -> pd.DataFrame:
    """Panomaly's linked-anomaly table (``pan_la_df``): one row per unordered pair of anomalies
    (self-pairs included, both directions summed), with its probabilities, both sides' node
    metrics, ``pan_class``, ``Qp``, ``Qg``, ``Qpan``, ``Qcrit`` and ``Verdict``.

    ``present``: the event names that count as "has user events" (default: those in ``counts``;
    the faithful mode passes its substring test's answer). A transition between two different
    events counts (classes 2 and 3) only with at least ``min_moves`` moves and a ``lift`` (the
    larger of both directions) of at least ``min_lift``; the original counts a single move, so
    one user passing through a hub event (one every page fires) links it to everything."""
    anomalies = sorted(anomalies, key=lambda a: a.id)
    probs = _pair_probabilities(moves, list(dict.fromkeys(a.event for a in anomalies)))
    present = set(counts.index) if present is None else present
    blank = pd.Series({"Gmod": -1, "Gdeg": 0.0, "Gbtw": 0.0, "Gevc": 0.0, "Gavg": 0.0}, dtype=object)
    rows = []
    for i, j in combinations_with_replacement(range(len(anomalies)), 2):
        a1, a2 = anomalies[i], anomalies[j]
        pb, nab, pf, lift = probs[(a1.event, a2.event)]
        if a1.event != a2.event:  # the mirror merge: both directions summed
            pb2, nab2, pf2, lift2 = probs[(a2.event, a1.event)]
            pb, nab, pf, lift = pb + pb2, nab + nab2, pf + pf2, max(lift, lift2)
        s1 = nodes.loc[a1.event] if a1.event in nodes.index else blank
        s2 = nodes.loc[a2.event] if a2.event in nodes.index else blank
        row = {"id_anom1": a1.id, "event1": a1.event, "N1": int(counts.get(a1.event, 0)),
               "id_anom2": a2.id, "event2": a2.event, "N2": int(counts.get(a2.event, 0)),
               "PbProb": pb, "PbNab": nab, "PfProb": pf, "lift": lift}
        row.update({f"{c}1": s1[c] for c in NODE_COLUMNS})
        row.update({f"{c}2": s2[c] for c in NODE_COLUMNS})
        same = a1.event == a2.event  # "self": one event (the original: one metric)
        moved = nab if same or (nab >= min_moves and lift >= min_lift) else 0
        row["pan_class"] = _link_class(same, moved, int(s1["Gmod"]), int(s2["Gmod"]))
        if i == j and a1.event is not None and a1.event not in present:
            row["pan_class"] = 0
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return _score(table)


def _score(table: pd.DataFrame) -> pd.DataFrame:
    """Qp, Qg, Qpan, Qcrit and the verdict (seed-methods.md 1.6-1.8)."""
    t = table
    t["Qp"] = np.hypot(t["PbProb"], t["PfProb"])
    t["Qg"] = np.hypot(t["Gavg1"], t["Gavg2"])
    qp_max, qg_max = float(t["Qp"].max()), float(t["Qg"].max())
    if not np.isfinite(qp_max + qg_max) or qp_max == 0 or qp_max + qg_max <= 0:
        s_p = s_g = 1.0
    else:
        s_p, s_g = qp_max / (qp_max + qg_max), qg_max / qp_max
    cls = t["pan_class"]
    t["Qpan"] = 0.0
    both = cls.isin([3, 4])
    t.loc[both, "Qpan"] = np.hypot(t.loc[both, "Qp"], t.loc[both, "Qg"])
    pb_only = cls == 2
    t.loc[pb_only, "Qpan"] = t.loc[pb_only, "Qp"] / qp_max * s_p
    t.loc[pb_only, "Qg"] = -1.0
    g_only = cls == 1
    if g_only.any():  # the column maximum after the class-2 rows became -1, as the original
        t.loc[g_only, "Qpan"] = t.loc[g_only, "Qg"] / t["Qg"].max() * s_g
        t.loc[g_only, "Qp"] = -1.0
    t["Qcrit"] = np.select([cls.isin([0, 4]), cls.isin([1, 2, 3])], [0.0, QCRIT], 1.0)
    t["Verdict"] = (t["Qpan"] >= t["Qcrit"]) & (cls >= 0)
    t.attrs.update(Qp_max=qp_max, Qg_max=qg_max)
    return t


# ----------------------------------------------------------------------------- reports

def _members(rows: pd.DataFrame) -> list:
    return sorted(set(rows["id_anom1"]) | set(rows["id_anom2"]))


def master_report(table: pd.DataFrame) -> list[tuple[int, list]]:
    """Panomaly's grouped report, as the original builds it: ``(class, anomaly ids)`` in the
    order 4 (one per repeated event), 3 (per community), 2 (one group of every cross-community
    link), 1 (per community), 0 (one per anomaly without events). Groups may overlap."""
    true = table[table["Verdict"]]
    out: list[tuple[int, list]] = []
    for _, r in true[true["pan_class"] == 4].iterrows():
        out.append((4, [r["id_anom1"]]))
    for cls in (3, 2, 1):
        rows = true[true["pan_class"] == cls]
        if rows.empty:
            continue
        if cls == 2:
            out.append((2, _members(rows)))
            continue
        for _, group in rows.groupby("Gmod1", sort=True):
            out.append((cls, _members(group)))
    for _, r in true[true["pan_class"] == 0].iterrows():
        out.append((0, [r["id_anom1"]]))
    return out


def link_groups(table: pd.DataFrame, ids: Iterable | None = None) -> list[list]:
    """sleuth's grouping: one group (one alert) per connected component of true links between
    different anomalies (classes 1-3), and of anomalies on one and the same event; every
    anomaly is in exactly one group."""
    graph = nx.Graph()
    graph.add_nodes_from(ids if ids is not None else _members(table) if not table.empty else [])
    if not table.empty:
        one_event = (table["event1"] == table["event2"]) & table["event1"].notna()
        links = table[(table["Verdict"] & table["pan_class"].isin([1, 2, 3])) | one_event]
        graph.add_edges_from(zip(links["id_anom1"], links["id_anom2"]))
    return sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda g: g[0])


#: sleuth's bar for a transition to link two events: moves, and times likelier than chance
MIN_MOVES, MIN_LIFT = 3, 2.0


def link_anomalies(anomalies: list[Anomaly], moves: pd.DataFrame, counts: pd.Series,
                   seed: int = 0, min_moves: int = MIN_MOVES, min_lift: float = MIN_LIFT) -> pd.DataFrame:
    """sleuth's Panomaly on one window's transitions (``from, to, n``, self-transitions kept,
    no START/END states) and event counts: the scored link table. The network keeps only edges
    of at least ``min_moves`` moves, so no community rests on a single user's path either."""
    weights = {k: w for k, w in edge_weights(moves).items() if w >= min_moves}
    nodes = node_metrics(counts.index, weights, seed=seed)
    return link_table(anomalies, moves, nodes, counts, min_moves=min_moves, min_lift=min_lift)
