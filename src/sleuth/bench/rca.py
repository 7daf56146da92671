"""Root-cause benchmarks: the RS cases (ratio measure) and Squeeze-format folders (additive).

Scoring as in the Squeeze and RiskLoc evaluation code: an element matches only if it is exactly
the same set of attribute=value pairs; per case TP, FP, FN; micro F1 over all cases.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from ..errors import InputError
from ..explain.rca import localize

RS_DIMS_EXCLUDE = {"min", "value", "cnt", "timestamp"}


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


def rs_cases(root: Path) -> list[tuple[str, pd.DataFrame, list[str], list[dict]]]:
    """RS cases as leaf tables: actual = the anomalous minute, forecast = mean of the 4 before.

    The measure is good/cnt with good = cnt - value (numerator and denominator kept).
    """
    meta = root / "anomaly.yaml"
    if not meta.is_file():
        raise InputError(f"{root}: no anomaly.yaml; the RS root-cause cases are not present at this path")
    cases = []
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
        cases.append((item["data"], leaves, dims, [{k: str(v) for k, v in c.items()} for c in causes]))
    return cases


def squeeze_cases(root: Path) -> list[tuple[str, pd.DataFrame, list[str], list[dict]]]:
    """A Squeeze-format folder: ``<timestamp>.csv`` leaf tables plus ``injection_info.csv``."""
    info = pd.read_csv(root / "injection_info.csv")
    cases = []
    for _, row in info.iterrows():
        path = root / f"{row['timestamp']}.csv"
        if not path.is_file():
            continue
        leaves = pd.read_csv(path)
        dims = [c for c in leaves.columns if c not in ("real", "predict")]
        leaves[dims] = leaves[dims].astype(str)
        truth = [dict(pair.split("=", 1) for pair in element.split("&")) for element in str(row["set"]).split(";")]
        cases.append((path.name, leaves, dims, truth))
    return cases


def run(cases, method: Callable[..., list], **kwargs) -> dict:
    t0 = time.perf_counter()
    results = []
    for _, leaves, dims, truth in cases:
        pred = [rc.segment for rc in method(leaves, dims, **kwargs)]
        results.append((pred, truth))
    out = f1(results)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def run_folder(root: Path) -> dict:
    """An RS folder (``anomaly.yaml``) or a Squeeze-format folder (``injection_info.csv``)."""
    root = Path(root)
    if (root / "anomaly.yaml").is_file():
        return run_rs(root)
    if (root / "injection_info.csv").is_file():
        return run(squeeze_cases(root), localize)
    raise InputError(f"{root}: no anomaly.yaml or injection_info.csv; the root-cause cases are not present at this path")


def run_rs(root: Path) -> dict:
    cases = rs_cases(root)
    return run(cases, localize, real="good_real", predict="good_pred", real_den="cnt_real", predict_den="cnt_pred")


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
