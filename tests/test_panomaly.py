"""Panomaly's linked anomalies (explain/panomaly.py) on hand-made and generated events."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.config import Config
from sleuth.explain import panomaly as pan
from sleuth.explain.paths import transition_counts
from sleuth.ingest import load_events


def _raw(paths: dict[str | None, list[str]]) -> pd.DataFrame:
    """One row per event, users interleaved in file order as a time-sorted export would be."""
    rows, t = [], pd.Timestamp("2026-01-05 10:00")
    longest = max(len(p) for p in paths.values())
    for k in range(longest):
        for user, path in paths.items():
            if k < len(path):
                rows.append({"userId": user, "event": path[k], "timestamp": t})
                t += pd.Timedelta(seconds=10)
    return pd.DataFrame(rows)


RAW = _raw({"u1": ["a", "a", "b", "c"], "u2": ["a", "b", "b", "a"], None: ["c", "a"], "u3": ["d"],
            "u4": ["b", "c", "c"]})


def test_faithful_transitions_merge_missing_users_and_keep_self_moves():
    moves = pan.user_paths_faithful(RAW).set_index(["from", "to"])["n"]
    # u1: a-a, a-b, b-c; u2: a-b, b-b, b-a; None: c-a; u4: b-c, c-c; u3 alone adds no move
    assert moves.to_dict() == {("a", "a"): 1, ("a", "b"): 2, ("b", "a"): 1, ("b", "b"): 1,
                               ("b", "c"): 2, ("c", "a"): 1, ("c", "c"): 1}
    assert pan.event_counts(RAW).to_dict() == {"a": 5, "b": 4, "c": 4, "d": 1}


def test_link_table_probabilities_classes_and_scores_follow_the_spec():
    moves, counts = pan.user_paths_faithful(RAW), pan.event_counts(RAW)
    nodes = pan.node_metrics(counts.index, pan.edge_weights(moves), partition={"a": 0, "b": 0, "c": 1, "d": 2})
    # degree over all nodes (d is isolated): a-b, b-c, c-a
    assert nodes.loc["a", "Gdeg"] == pytest.approx(2 / 4) and nodes.loc["d", "Gdeg"] == 0
    assert np.allclose(nodes["Gavg"], nodes[["Gdeg", "Gbtw", "Gevc"]].mean(axis=1))
    anomalies = [pan.Anomaly(1, "a"), pan.Anomaly(2, "b"), pan.Anomaly(3, "c"), pan.Anomaly(4, "zzz")]
    t = pan.link_table(anomalies, moves, nodes, counts).set_index(["id_anom1", "id_anom2"])
    assert len(t) == 4 * 5 // 2  # unordered pairs, self-pairs included
    # a -> b: 2 of a's 3 moves out; b -> a: 1 of b's 4; the mirror merge sums both directions
    ab = t.loc[(1, 2)]
    assert ab["PbProb"] == pytest.approx(2 / 3 + 1 / 4) and ab["PbNab"] == 3 and ab["PfProb"] == pytest.approx(3 / 9)
    assert ab["pan_class"] == 3  # moves and one community
    assert t.loc[(2, 3), "pan_class"] == 2 and t.loc[(2, 3), "Qg"] == -1  # moves across communities
    assert t.loc[(1, 1), "pan_class"] == 4 and t.loc[(1, 1), "Verdict"]  # users repeated a
    assert t.loc[(4, 4), "pan_class"] == 0 and t.loc[(4, 4), "Verdict"]  # no user events
    assert t.loc[(1, 4), "pan_class"] == -1 and not t.loc[(1, 4), "Verdict"]
    qp_max, qg_max = t.attrs["Qp_max"], t.attrs["Qg_max"]
    assert t.loc[(2, 3), "Qpan"] == pytest.approx(t.loc[(2, 3), "Qp"] / (qp_max + qg_max))
    assert t.loc[(1, 2), "Qpan"] == pytest.approx(np.hypot(t.loc[(1, 2), "Qp"], t.loc[(1, 2), "Qg"]))
    report = pan.master_report(t.reset_index())
    assert (0, [4]) in report and (4, [1]) in report
    assert [c for c, _ in report] == sorted((c for c, _ in report), reverse=True)


def test_class_one_uses_the_graph_when_no_user_moved():
    moves = pd.DataFrame({"from": ["x", "y", "x"], "to": ["y", "z", "x"], "n": [5, 5, 2]})
    counts = pd.Series({"x": 7, "y": 5, "z": 5})
    nodes = pan.node_metrics(counts.index, pan.edge_weights(moves), partition={"x": 0, "y": 0, "z": 0})
    t = pan.link_table([pan.Anomaly("X", "x"), pan.Anomaly("Z", "z")], moves, nodes, counts)
    xz = t[(t["id_anom1"] == "X") & (t["id_anom2"] == "Z")].iloc[0]
    assert xz["PbNab"] == 0 and xz["pan_class"] == 1 and xz["Qp"] == -1
    assert xz["Qpan"] == pytest.approx(xz["Qg"] / t["Qg"].max() * t.attrs["Qg_max"] / t.attrs["Qp_max"])


def test_symmetric_weights_add_both_directions_and_faithful_keeps_one():
    moves = pd.DataFrame({"from": ["a", "b", "a"], "to": ["b", "a", "a"], "n": [3, 5, 9]})
    assert pan.edge_weights(moves) == {("a", "b"): 8.0}  # self-moves are no edge
    assert pan.edge_weights(moves, faithful=True) == {("a", "b"): 5.0}


def test_groups_are_connected_components_of_true_links():
    table = pd.DataFrame({"id_anom1": [1, 1, 2, 3, 4], "id_anom2": [1, 2, 3, 4, 4],
                          "event1": ["a", "a", "b", "c", "d"], "event2": ["a", "b", "c", "d", "d"],
                          "pan_class": [4, 3, 2, -1, 4], "Verdict": [True, True, True, False, True]})
    assert pan.link_groups(table) == [[1, 2, 3], [4]]
    assert pan.link_groups(table, ids=[1, 2, 3, 4, 5]) == [[1, 2, 3], [4], [5]]


def test_two_anomalies_on_one_event_are_one_self_link_and_no_event_is_no_class():
    moves = pd.DataFrame({"from": ["a", "a", "b"], "to": ["a", "b", "a"], "n": [4, 6, 5]})
    counts = pd.Series({"a": 10, "b": 5})
    nodes = pan.node_metrics(counts.index, pan.edge_weights(moves), partition={"a": 0, "b": 0})
    t = pan.link_table([pan.Anomaly(1, "a"), pan.Anomaly(2, "a"), pan.Anomaly(3, None)], moves, nodes, counts)
    t = t.set_index(["id_anom1", "id_anom2"])
    assert t.loc[(1, 2), "pan_class"] == 4  # orders and revenue both count purchases: one event
    assert t.loc[(3, 3), "pan_class"] == -1 and not t.loc[(3, 3), "Verdict"]  # sessions: no single event
    assert pan.link_groups(t.reset_index()) == [[1, 2], [3]]


def test_one_users_move_through_a_rare_event_does_not_link_in_sleuths_mode():
    rng = np.random.default_rng(3)
    paths = {f"s{k}": ["home", "search", "product"] * 2 for k in range(60)}
    paths.update({f"c{k}": ["cart", "checkout", "pay"] for k in range(60)})
    paths["odd"] = ["promo", "pay"]  # one session from a rare promo event straight to pay
    paths["odd2"] = ["promo"]
    raw = _raw(dict(sorted(paths.items(), key=lambda kv: rng.random())))
    moves, counts = pan.user_paths_faithful(raw), pan.event_counts(raw)
    anomalies = [pan.Anomaly(1, "promo"), pan.Anomaly(2, "pay"), pan.Anomaly(3, "checkout")]
    loose = pan.link_anomalies(anomalies, moves, counts, min_moves=1, min_lift=0)
    strict = pan.link_anomalies(anomalies, moves, counts)
    assert [1, 2] in [g[:2] for g in pan.link_groups(loose)]  # P(pay | promo) = 1/2 on one move
    assert [1] in pan.link_groups(strict) and [2, 3] in pan.link_groups(strict)


def test_sessions_from_the_engine_feed_the_network(tmp_path):
    raw = _raw({"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["b", "c"], "u4": ["a", "b", "c"]})
    raw["timestamp"] = raw["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    path = tmp_path / "ev.csv"
    raw.to_csv(path, index=False)
    events = load_events(path, Config(columns={"user_id": "userId"}))
    t0 = pd.Timestamp("2026-01-05 10:00")
    moves, counts = pan.session_moves(transition_counts(events, {"w": (t0, t0 + pd.Timedelta(hours=1))}))
    assert moves.set_index(["from", "to"])["n"].to_dict() == {("a", "b"): 3.0, ("b", "c"): 3.0}
    assert counts.to_dict() == {"a": 3.0, "b": 4.0, "c": 3.0}
    table = pan.link_anomalies([pan.Anomaly(1, "a"), pan.Anomaly(2, "b")], moves, counts)
    assert pan.link_groups(table) == [[1, 2]]


def test_eigenvector_centrality_answers_on_a_graph_in_pieces():
    """Power iteration fails on a graph in pieces (seen on a 4-week shop's event network); the
    numpy fallback answers without scipy and agrees with the power iteration where both work."""
    import networkx as nx

    from sleuth.explain.panomaly import eigenvector_centrality

    pieces = nx.Graph()
    pieces.add_weighted_edges_from([("a", "b", 5.0), ("b", "c", 5.0), ("x", "y", 7.0)])  # close leading eigenvalues
    with pytest.raises(nx.PowerIterationFailedConvergence):
        nx.eigenvector_centrality(pieces, weight="weight", max_iter=100, tol=1e-6)
    evc = eigenvector_centrality(pieces)
    assert set(evc) == set(pieces) and all(v >= 0 for v in evc.values())
    assert sum(v * v for v in evc.values()) == pytest.approx(1.0)
    whole = nx.Graph()
    whole.add_weighted_edges_from([("a", "b", 3.0), ("b", "c", 1.0), ("c", "a", 2.0), ("c", "d", 1.0)])
    power = nx.eigenvector_centrality(whole, weight="weight", max_iter=100, tol=1e-6)
    adj = nx.to_numpy_array(whole, nodelist=list(whole), weight="weight")
    lead = np.abs(np.linalg.eigh(adj)[1][:, -1])
    assert dict(zip(whole, lead / np.linalg.norm(lead))) == pytest.approx(power, abs=1e-4)
