"""Panomaly on its own sample data: reproduce the reference outputs, then compare sleuth's way.

Reads the Lazy Lantern sample (``data/lazylantern-panomaly``: the app, metric, anomaly,
anomaly_event and raw-event CSVs, and ``reference/``). For each reference run (edge weights
``faithful`` or ``symmetric``, window 02:00 or 03:00) the faithful mode is given the run's edge
weights and its seed-0 Louvain partition, and every column of the link table and the grouped
report must agree. Then sleuth's mode runs on the same data through sleuth's own ingest (the
window's events only, 30-minute sessions, no pseudo-user, seeded Louvain, connected-component
groups) and the alerts each way makes are counted.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..explain import panomaly as pan

INTERVAL = pd.Timedelta(hours=1)
#: columns that must agree to this tolerance (Gevc: power iteration vs tolerance, see NOTES.md)
NUMERIC = {"N": 0, "PbProb": 1e-6, "PbNab": 0, "PfProb": 1e-6, "Gdeg": 1e-6, "Gbtw": 1e-6,
           "Gevc": 1e-4, "Gavg": 1e-4, "Qp": 1e-4, "Qg": 1e-4, "Qpan": 1e-4}


def _read(root: Path, name: str) -> pd.DataFrame:
    path = root / f"panomaly_{name}_sample_data.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found; the Panomaly sample data is not present at {root}")
    return pd.read_csv(path, encoding="utf-8").drop(columns="Unnamed: 0", errors="ignore")


def anomalies_in(root: Path, start: pd.Timestamp, app: int = 33, org: int = 3) -> pd.DataFrame:
    """The anomalies that STARTED in ``[start, start + 1 h)`` for one app (seed-methods 1.1)."""
    anomaly, metric, apps, life = (_read(root, n) for n in ("anomaly", "metric", "app", "anomaly_event"))
    started = life[life["event"] == "STARTED"][["anomaly_id", "occurred_at"]]
    t = (anomaly.merge(metric, left_on="metric_id", right_on="id", suffixes=("", "_metric"))
         .merge(apps, left_on="app_id", right_on="id", suffixes=("", "_app"))
         .merge(started, left_on="id", right_on="anomaly_id"))
    t["tstart"] = pd.to_datetime(t["occurred_at"])
    t = t[(t["app_id"] == app) & (t["organization_id"] == org)
          & (t["tstart"] >= start) & (t["tstart"] < start + INTERVAL)]
    return t.sort_values("id")[["id", "metric_id", "name"]].reset_index(drop=True)


def _faithful_present(raw: pd.DataFrame, names: list[str]) -> set[str]:
    """The original's "has user events" test: a substring of all event names joined."""
    blob = "\n".join(raw["event"].dropna().astype(str))
    return {n for n in names if n in blob}


def faithful(root: Path, start: pd.Timestamp, variant: str) -> tuple[pd.DataFrame, list]:
    """The original method on the sample, given the reference run's edge weights and seed-0
    Louvain partition (the two things the original left to chance)."""
    raw = _read(root, "raw_events")
    ref = root / "reference"
    edges = pd.read_csv(ref / f"{variant}_graph_edges.csv")
    nodes = pd.read_csv(ref / f"{variant}_graph_nodes.csv")
    name = dict(zip(nodes["metric_id"], nodes["event"]))
    weights = {(name[a], name[b]): float(w) for a, b, w in
               edges[["metric_a", "metric_b", "weight_friends"]].itertuples(index=False)}
    partition = {name[m]: int(g) for m, g in nodes[["metric_id", "louvain_seed0"]].itertuples(index=False)}
    moves = pan.user_paths_faithful(raw)
    counts = pan.event_counts(raw)
    metrics = pan.node_metrics(counts.index, weights, partition=partition)
    anoms = anomalies_in(root, start)
    table = pan.link_table([pan.Anomaly(int(i), n) for i, n in zip(anoms["id"], anoms["name"])],
                           moves, metrics, counts, present=_faithful_present(raw, list(anoms["name"])))
    return table, pan.master_report(table)


def _pair_key(a, b) -> frozenset:
    return frozenset((int(a), int(b)))


def compare_table(ours: pd.DataFrame, ref: pd.DataFrame) -> dict:
    """Row-by-row agreement with a reference ``pan_la`` table, pairs compared as unordered sets."""
    ref = ref.copy()
    if "Class" in ref:  # the notebook's typo column: class 0 lands there, pan_class stays -1
        ref.loc[ref["Class"] == 0, "pan_class"] = 0
    theirs = {_pair_key(r.id_anom1, r.id_anom2): r for r in ref.itertuples(index=False)}
    mismatches: list[str] = []
    for r in ours.itertuples(index=False):
        key = _pair_key(r.id_anom1, r.id_anom2)
        t = theirs.pop(key, None)
        if t is None:
            mismatches.append(f"{sorted(key)}: not in the reference")
            continue
        swap = int(r.id_anom1) != int(t.id_anom1)
        for col, tol in NUMERIC.items():
            for side in ("1", "2") if col in ("N", "Gdeg", "Gbtw", "Gevc", "Gavg") else ("",):
                other = {"1": "2", "2": "1"}[side] if swap and side else side
                a, b = float(getattr(r, col + side)), float(getattr(t, col + other))
                if not np.isclose(a, b, atol=tol, rtol=0):
                    mismatches.append(f"{sorted(key)} {col}{side}: {a:.6g} vs {b:.6g}")
        for col in ("pan_class", "Qcrit", "Verdict"):
            if getattr(r, col) != getattr(t, col) and not (col == "Qcrit" and np.isclose(r.Qcrit, t.Qcrit)):
                mismatches.append(f"{sorted(key)} {col}: {getattr(r, col)} vs {getattr(t, col)}")
    mismatches += [f"{sorted(k)}: missing" for k in theirs]
    return {"rows": len(ours), "reference_rows": len(ref), "mismatches": mismatches}


def compare_report(ours: list, ref: pd.DataFrame) -> bool:
    """The grouped report equals the reference's, row for row."""
    theirs = [(int(c), sorted(json.loads(ids))) for c, ids in ref[["pan_class", "id_anom"]].itertuples(index=False)]
    return [(int(c), sorted(int(i) for i in g)) for c, g in ours] == theirs


def sleuths(root: Path, start: pd.Timestamp, seed: int = 0) -> tuple[pd.DataFrame, list[list]]:
    """sleuth's mode on the sample, through sleuth's ingest: the window's events only, paths per
    30-minute session of a known user, symmetric weights, seeded Louvain, component groups."""
    from ..config import Config
    from ..explain.paths import transition_counts
    from ..ingest import load_events

    events = load_events(root / "panomaly_raw_events_sample_data.csv",
                         Config(columns={"user_id": "userId"}, dimensions=["channel"]))
    moves, n_events = pan.session_moves(transition_counts(events, {"w": (start, start + INTERVAL)}))
    anoms = anomalies_in(root, start)
    table = pan.link_anomalies([pan.Anomaly(int(i), n) for i, n in zip(anoms["id"], anoms["name"])],
                               moves, n_events, seed=seed)
    return table, pan.link_groups(table, [int(i) for i in anoms["id"]])


def run_panomaly(root: Path) -> dict:
    """Every reference case (faithful check) and sleuth's mode, with alert counts; only
    ``present: False`` when the sample data is not at ``root``."""
    root = Path(root)
    if not (root / "reference").is_dir():
        return {"present": False, "faithful": [], "sleuth": [], "seconds": 0.0}
    t0 = time.perf_counter()
    cases = []
    for variant in ("faithful", "symmetric"):
        for hour in ("2020-01-11T02", "2020-01-11T03"):
            start = pd.Timestamp(hour + ":00")
            table, report = faithful(root, start, variant)
            ref_table = pd.read_csv(root / "reference" / f"{variant}_{hour}_pan_la.csv")
            ref_report = pd.read_csv(root / "reference" / f"{variant}_{hour}_master_report.csv")
            cmp = compare_table(table, ref_table)
            cases.append({"variant": variant, "window": hour, "anomalies": int(table["id_anom1"].nunique()),
                          "rows": cmp["rows"], "mismatches": cmp["mismatches"],
                          "report_rows": len(report), "report_matches": compare_report(report, ref_report)})
    ours = []
    for hour in ("2020-01-11T02", "2020-01-11T03"):
        start = pd.Timestamp(hour + ":00")
        table, groups = sleuths(root, start)
        n = len(groups and sum(groups, []))
        true = table[table["Verdict"] & table["pan_class"].isin([1, 2, 3])]
        ours.append({"window": hour, "anomalies": n, "alerts": len(groups),
                     "saved": round(1 - len(groups) / n, 3) if n else 0.0,
                     "links": len(true), "groups": groups,
                     "no_user_events": [int(i) for i in table.loc[table["pan_class"] == 0, "id_anom1"]]})
    return {"present": True, "faithful": cases, "sleuth": ours, "seconds": round(time.perf_counter() - t0, 2)}


# ----------------------------------------------------------------------------- on the demo shop

def _hour_events(events, prop: str, start: pd.Timestamp) -> pd.DataFrame:
    """One property's raw events of one hour, time-sorted (the original's per-hour input)."""
    t = events.table
    t = t.filter((t.property == prop) & (t.timestamp >= start) & (t.timestamp < start + INTERVAL))
    return t.select("user_id", "event", "timestamp").order_by("timestamp").to_pyarrow().to_pandas()


def _panomaly_alerts(det, incidents: list, faithful_mode: bool) -> int:
    """Alerts Panomaly makes for ``incidents``: it links those that started in the same hour
    of a property, each by the event its metric counts (metrics of no single event, such as
    sessions or a conversion rate, stand alone). The original: per-user paths of the hour, its
    report's rows (overlapping groups) plus each anomaly in none. sleuth's mode: 30-minute
    sessions, the 3-move bar, one alert per connected component."""
    from ..explain.links import footprint
    from ..explain.paths import transition_counts

    alerts = 0
    by_hour: dict[tuple, list] = {}
    for inc in incidents:
        by_hour.setdefault((inc.property, inc.start_time().floor("h")), []).append(inc)
    for (prop, hour), group in by_hour.items():
        fps = {i.id: footprint(det.cube.metrics.get(i.metric)) for i in group}
        anoms = [pan.Anomaly(i.id, next(iter(fps[i.id])) if fps[i.id] and len(fps[i.id]) == 1 else None)
                 for i in group]
        if faithful_mode:
            raw = _hour_events(det.events, prop, hour)
            moves, counts = pan.user_paths_faithful(raw, user="user_id"), pan.event_counts(raw)
            nodes = pan.node_metrics(counts.index, pan.edge_weights(moves, faithful=True), seed=0)
            report = pan.master_report(pan.link_table(anoms, moves, nodes, counts))
            covered = {a for _, ids in report for a in ids}
            alerts += len(report) + sum(i.id not in covered for i in group)
        else:
            moves, counts = pan.session_moves(transition_counts(det.events, {"w": (hour, hour + INTERVAL)}, prop))
            alerts += len(pan.link_groups(pan.link_anomalies(anoms, moves, counts), [i.id for i in group]))
    return alerts


def demo_linking(weeks: int = 6, sessions_per_hour: float = 1000.0, seed: int = 7) -> dict:
    """On a generated demo shop: alerts for the incidents detected during the injected ones,
    without linking, with Panomaly (original and sleuth's mode) and with sleuth's linking
    (overlap, shared root cause, metric tree, event network); and how many groups mix two
    injected incidents or an injected incident with a false alarm."""
    import tempfile

    import yaml

    from ..config import parse_config
    from ..pipeline import detect
    from ..datasets.shop import DEMO_CONFIG, InjectedIncident, _matches, evaluate, write_shop

    with tempfile.TemporaryDirectory() as tmp:
        written = write_shop(Path(tmp), fmt="parquet", weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
        det = detect(written["events"], parse_config(yaml.safe_load(DEMO_CONFIG)))
        truth = [InjectedIncident.from_dict(d) for d in json.loads(Path(written["truth"]).read_text())]
        alerts = evaluate([i.to_dict() for i in det.incidents], truth)["alerts"]  # the demo's own count
        slack = pd.Timedelta(hours=2)
        during = [[i for i in det.incidents if _matches(i.to_dict(), t, slack, False, any_metric=True)] for t in truth]
        label = {i.id: k for k, g in enumerate(during) for i in g}
        groups: dict[str, set] = {}  # each incident's group, keyed by its smallest id
        for inc in det.incidents:
            groups.setdefault(min([inc.id, *inc.linked]), set()).add(label.get(inc.id, "other"))
        return {"incidents": alerts["detections"], "injected": len(truth), "no_linking": alerts["detections"],
                "panomaly_original": sum(_panomaly_alerts(det, g, True) for g in during),
                "panomaly_sleuth_mode": sum(_panomaly_alerts(det, g, False) for g in during),
                "sleuth": alerts["alerts"],
                "sleuth_mixed_groups": sum(len(k) > 1 for k in groups.values() if k != {"other"})}
