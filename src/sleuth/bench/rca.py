"""Root-cause benchmarks: every case folder under ``../shared/bench/rca`` (the RS cases, a ratio
measure; Squeeze-format settings such as RiskLoc's S and L, additive, ``.csv`` or ``.csv.gz``),
sleuth's localiser side by side with RiskLoc (:mod:`sleuth.bench.riskloc`) and beside the figures
published with the cases; then generated shops end to end (:mod:`sleuth.bench.rca_shops`).

Scoring as in the Squeeze and RiskLoc evaluation code: an element matches only if it is exactly
the same set of attribute=value pairs; per case TP, FP, FN; micro F1 over all cases.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import yaml

from ..errors import InputError
from ..explain.rca import localize

RS_DIMS_EXCLUDE = {"min", "value", "cnt", "timestamp"}
RS_COLUMNS = {"real": "good_real", "predict": "good_pred", "real_den": "cnt_real", "predict_den": "cnt_pred"}

#: figures published with the cases, measured there with the published implementations (not in
#: this run): ``riskloc-synthetic/README.md`` (F1, TP, FP, FN, CPU seconds per case) and
#: ``README.md`` of the RS folder (F1)
REFERENCE = {
    "S": [("RiskLoc", 0.617, 79, 26, 72, 3.4), ("AutoRoot", 0.471, 53, 21, 98, 0.9),
          ("Squeeze", 0.080, 8, 42, 143, 28.2)],
    "L": [("RiskLoc", 0.707, 58, 0, 48, 0.8), ("AutoRoot", 0.568, 42, 0, 64, 0.2),
          ("Squeeze", 0.259, 21, 35, 85, 6.5)],
    "rs": [("RobustSpot", 0.420, None, None, None, None), ("Adtributor", 0.274, None, None, None, None),
           ("RiskLoc", 0.025, None, None, None, None)],
}

Case = tuple[str, pd.DataFrame, list[str], list[dict]]


def _as_set(elements: list[dict]) -> set[frozenset]:
    return {frozenset((str(k), str(v)) for k, v in e.items()) for e in elements}


def f1(results: list[tuple[list[dict], list[dict]]]) -> dict:
    """Exact-match micro F1 over ``(predicted, truth)`` pairs of element lists."""
    tp = fp = fn = 0
    for pred, truth in results:
        p, t = _as_set(pred), _as_set(truth)
        tp += len(p & t)
        fp += len(p - t)
        fn += len(t - p)
    return {"f1": 2 * tp / max(2 * tp + fp + fn, 1), "tp": tp, "fp": fp, "fn": fn, "cases": len(results)}


def rs_cases(root: Path) -> Iterator[Case]:
    """RS cases as leaf tables: actual = the anomalous minute, forecast = mean of the 4 before.

    The measure is good/cnt with good = cnt - value (numerator and denominator kept).
    """
    meta = root / "anomaly.yaml"
    if not meta.is_file():
        raise InputError(f"{root}: no anomaly.yaml; the RS root-cause cases are not present at this path")
    for item in yaml.safe_load(meta.read_text(encoding="utf-8")):
        path = root / f"{item['data']}.csv"
        if not path.is_file():
            continue
        df = pd.read_csv(path, dtype={"min": np.int64}, encoding="utf-8")
        dims = [c for c in df.columns if c not in RS_DIMS_EXCLUDE]
        df[dims] = df[dims].astype(str)
        t = int(item["timestamp"])
        df["good"] = df["cnt"] - df["value"]
        now = df[df["min"] == t].groupby(dims)[["good", "cnt"]].sum()
        before = df[(df["min"] < t) & (df["min"] >= t - 4 * 60)]
        minutes = max(before["min"].nunique(), 1)
        past = before.groupby(dims)[["good", "cnt"]].sum() / minutes
        leaves = now.join(past, how="outer", lsuffix="_real", rsuffix="_pred").fillna(0.0).reset_index()
        causes = item["cause"] if isinstance(item["cause"], list) else [item["cause"]]
        yield item["data"], leaves, dims, [{k: str(v) for k, v in c.items()} for c in causes]


def squeeze_cases(root: Path) -> Iterator[Case]:
    """A Squeeze-format folder: ``<timestamp>.csv`` or ``.csv.gz`` leaf tables and ``injection_info.csv``.
    Cases are read one at a time (bounded memory)."""
    info = pd.read_csv(root / "injection_info.csv", dtype={"timestamp": str})
    for _, row in info.iterrows():
        path = next((p for p in (root / f"{row['timestamp']}.csv", root / f"{row['timestamp']}.csv.gz") if p.is_file()), None)
        if path is None:
            continue
        leaves = pd.read_csv(path)
        dims = [c for c in leaves.columns if c not in ("real", "predict")]
        leaves[dims] = leaves[dims].astype(str)
        truth = [dict(pair.split("=", 1) for pair in element.split("&")) for element in str(row["set"]).split(";")]
        yield path.name, leaves, dims, truth


def run(cases: Iterator[Case], methods: dict[str, Callable[..., list]], **kwargs) -> dict[str, dict]:
    """Every method on every case: F1, TP/FP/FN, and wall and CPU seconds per case (the call only)."""
    results: dict[str, list] = {name: [] for name in methods}
    wall: dict[str, list] = {name: [] for name in methods}
    cpu: dict[str, list] = {name: [] for name in methods}
    for _, leaves, dims, truth in cases:
        for name, method in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            found = method(leaves, dims, **kwargs)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            results[name].append(([rc.segment for rc in found], truth))
    out = {}
    for name in methods:
        res = f1(results[name])
        res["seconds_per_case"] = round(float(np.mean(wall[name])), 4) if wall[name] else 0.0
        res["cpu_per_case"] = round(float(np.mean(cpu[name])), 4) if cpu[name] else 0.0
        res["max_seconds"] = round(float(np.max(wall[name])), 4) if wall[name] else 0.0
        out[name] = res
    return out


def _methods() -> dict[str, Callable[..., list]]:
    from .riskloc import riskloc

    return {"sleuth": localize, "RiskLoc (re-implemented here)": riskloc}


def run_folder(root: Path) -> dict:
    """One folder: RS (``anomaly.yaml``) or Squeeze-format (``injection_info.csv``); sleuth's result."""
    root = Path(root)
    if (root / "anomaly.yaml").is_file():
        return run(rs_cases(root), {"sleuth": localize}, **RS_COLUMNS)["sleuth"]
    if (root / "injection_info.csv").is_file():
        return run(squeeze_cases(root), {"sleuth": localize})["sleuth"]
    raise InputError(f"{root}: no anomaly.yaml or injection_info.csv; the root-cause cases are not present at this path")


def case_folders(root: Path) -> list[Path]:
    """``root`` itself when it holds cases, else every folder below it that does (sorted)."""
    root = Path(root)
    if (root / "anomaly.yaml").is_file() or (root / "injection_info.csv").is_file():
        return [root]
    found = sorted({p.parent for pattern in ("anomaly.yaml", "injection_info.csv") for p in root.rglob(pattern)})
    if not found:
        raise InputError(f"{root}: no root-cause cases here (no anomaly.yaml or injection_info.csv below it)")
    return found


def run_all(root: Path) -> dict:
    """Every case folder under ``root``: sleuth and RiskLoc in this run, the published figures beside."""
    settings = []
    for folder in case_folders(root):
        if (folder / "anomaly.yaml").is_file():
            res = run(rs_cases(folder), _methods(), **RS_COLUMNS)
        else:
            res = run(squeeze_cases(folder), _methods())
        reference = [dict(zip(("method", "f1", "tp", "fp", "fn", "cpu_per_case"), r)) for r in REFERENCE.get(folder.name, [])]
        settings.append({"setting": folder.name, "path": str(folder), "methods": res, "reference": reference})
    return {"settings": settings, "large_case": large_case_speed()}


def large_case_speed(seed: int = 2) -> dict:
    """Seconds for one generated case of 5 dimensions x 10 values (100,000 leaves), two causes."""
    leaves, dims, truth = synthetic_case(n_dims=5, values=10, n_causes=2, depth=2, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    found = localize(leaves, dims)
    return {"leaves": len(leaves), "seconds": round(time.perf_counter() - t0, 3),
            "cpu": round(time.process_time() - c0, 3), "exact": _as_set([rc.segment for rc in found]) == _as_set(truth)}


def synthetic_case(n_dims: int = 4, values: int = 10, n_causes: int = 1, depth: int = 2, seed: int = 0,
                   noise: float = 0.05, magnitude: float = 0.5):
    """A Squeeze-style additive case: every combination is a leaf; the causes' leaves move together."""
    rng = np.random.default_rng(seed)
    dims = [chr(ord("a") + i) for i in range(n_dims)]
    grid = pd.MultiIndex.from_product([[f"{d}{k}" for k in range(values)] for d in dims], names=dims)
    leaves = grid.to_frame(index=False)
    predict = rng.lognormal(3, 1, len(leaves))
    real = predict * (1 + rng.normal(0, noise, len(leaves)))
    truth = []
    hit = np.zeros(len(leaves), dtype=bool)
    while len(truth) < n_causes:  # causes do not overlap, so the true set is unambiguous
        chosen = sorted(rng.choice(n_dims, depth, replace=False))
        elem = {dims[j]: f"{dims[j]}{rng.integers(values)}" for j in chosen}
        mask = np.all([leaves[k] == v for k, v in elem.items()], axis=0)
        if (mask & hit).any():
            continue
        hit |= mask
        real[mask] = predict[mask] * (1 - magnitude) * (1 + rng.normal(0, noise, mask.sum()))
        truth.append(elem)
    leaves["real"], leaves["predict"] = real, predict
    return leaves, dims, truth
