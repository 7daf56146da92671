"""The Numenta Anomaly Benchmark (NAB v1.1): load the corpus, score detections, replay sleuth.

A clean-room implementation of NAB's scoring rules (``SCORING.md`` beside the data; no NAB code):

* the first ``min(floor(0.15 N), 750)`` rows of a file (the probation) are not scored;
* a flagged row inside a window ``[L, R]`` of width ``W`` is worth ``A_tp * S(y) / S(-1)`` with
  ``y = -(R - i + 1) / W`` and ``S(y) = 2 / (1 + e^(5y)) - 1``: the first row earns ``A_tp``, later
  rows less; a window counts once, at its best (earliest) detection, and costs ``-A_fn`` if missed;
* a flagged row outside every window costs ``A_fp * S((i - R_prev) / (W_prev - 1))`` relative to
  the last window that ended before it (about 0 just after it, -A_fp far away), ``-A_fp`` if none;
* one threshold for the whole corpus; ``score = 100 (raw - null) / (perfect - null)`` with
  ``perfect = n_windows A_tp`` and ``null = -n_windows A_fn``.

sleuth replays each file causally and does not use NAB's per-file min/max hint.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

PROBATION_SHARE, PROBATION_MAX = 0.15, 750
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: published Numenta HTM scores (and low-FP at thresholds.json's 0.5752) that the scorer must reproduce
NUMENTA_EXPECTED = {"standard": 70.10, "reward_low_FP_rate": 63.21, "reward_low_FN_rate": 74.32}
NUMENTA_LOW_FP_THRESHOLD, NUMENTA_LOW_FP_AT_THRESHOLD = 0.5752, 63.12
DEFAULT_THRESHOLD = 0.5  # sleuth's shipped alarm level of anomaly_score

Windows = Sequence[tuple]  # [(start, end), ...] inclusive timestamps


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB cost profile."""

    name: str
    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class FileScore:
    """A file's raw score; tp/fn count windows, fp counts flagged rows outside windows."""

    raw: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class CorpusScore:
    """A corpus score at one threshold: raw sum, NAB's normalised score and the counts."""

    profile: str
    threshold: float
    raw: float
    score: float
    tp: int
    fp: int
    fn: int
    windows: int


def _sigmoid(y: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid ``S(y) = 2 / (1 + e^(5y)) - 1``, and -1 past ``y = 3``."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)


def probation(n: int) -> int:
    """Rows at the start of a file of ``n`` rows that are not scored."""
    return min(math.floor(PROBATION_SHARE * n), PROBATION_MAX)


@dataclass(frozen=True)
class _Sweep:
    """Profile-free per-row weights of one file: window id (-1 outside), unit TP and FP values."""

    window: np.ndarray  # int, per row
    tp: np.ndarray  # S(y)/S(-1) inside windows
    fp: np.ndarray  # S(y) relative to the previous window, -1 before any window
    start: int  # first scored row (end of the probation)
    n_windows: int  # windows with at least one scored row

    @classmethod
    def build(cls, timestamps, windows: Windows) -> "_Sweep":
        ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
        n, start = len(ts), probation(len(ts))
        spans = []
        for lo, hi in windows:
            rows = np.flatnonzero((ts >= pd.Timestamp(lo)) & (ts <= pd.Timestamp(hi)))
            if len(rows) and rows[-1] >= start:  # a window wholly inside the probation is not scored
                spans.append((int(rows[0]), int(rows[-1])))
        spans.sort()
        window, tp, fp = np.full(n, -1), np.zeros(n), np.full(n, -1.0)
        s_minus1 = _sigmoid(-1.0)
        for k, (lo, hi) in enumerate(spans):
            width, rows = hi - lo + 1, np.arange(lo, hi + 1)
            window[rows] = k
            tp[rows] = _sigmoid(-(hi - rows + 1) / width) / s_minus1
            nxt = spans[k + 1][0] if k + 1 < len(spans) else n
            after = np.arange(hi + 1, nxt)
            fp[after] = _sigmoid((after - hi) / max(width - 1, 1))  # 1-row windows: avoid 0/0
        return cls(window, tp, fp, start, len(spans))

    def values(self, profile: Profile) -> np.ndarray:
        """What each row is worth if flagged, under ``profile``."""
        return np.where(self.window >= 0, profile.tp * self.tp, profile.fp * self.fp)


def _score_sweep(sweep: _Sweep, scores: np.ndarray, threshold: float, profile: Profile) -> FileScore:
    scores = np.asarray(scores, dtype=float)
    if len(scores) != len(sweep.window):
        raise InputError(f"{len(scores)} scores for a file of {len(sweep.window)} rows")
    flag = scores >= threshold
    flag[: sweep.start] = False
    v, w = sweep.values(profile), sweep.window
    outside = flag & (w < 0)
    best = np.full(sweep.n_windows, -np.inf)
    np.maximum.at(best, w[flag & (w >= 0)], v[flag & (w >= 0)])
    hit = np.isfinite(best)
    raw = float(v[outside].sum() + best[hit].sum() - profile.fn * (~hit).sum())
    return FileScore(raw, int(hit.sum()), int(outside.sum()), int((~hit).sum()))


def score_file(timestamps, scores, windows: Windows, threshold: float, profile: Profile) -> FileScore:
    """Raw NAB score and counts of one file: rows with ``scores >= threshold`` are detections."""
    return _score_sweep(_Sweep.build(timestamps, windows), scores, threshold, profile)


def normalise(raw: float, n_windows: int, profile: Profile) -> float:
    """NAB score: 0 for never alarming, 100 for a detection on each window's first row only."""
    null, perfect = -n_windows * profile.fn, n_windows * profile.tp
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0


@dataclass(frozen=True)
class NabFile:
    """One NAB series and its windows (``key`` as in the labels: ``"<category>/<name>.csv"``)."""

    key: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]

    @property
    def category(self) -> str:
        return self.key.split("/")[0]

    @cached_property
    def sweep(self) -> _Sweep:
        return _Sweep.build(self.timestamps, self.windows)


Run = tuple[NabFile, np.ndarray]  # a file and a detector's per-row scores for it


def _check_root(root: Path) -> Path:
    root = Path(root)
    need = [root / "data", root / "labels" / "combined_windows.json", root / "config" / "profiles.json"]
    if not all(p.exists() for p in need):
        raise InputError(f"the NAB data is not present at {root}: expected data/<category>/<name>.csv, "
                         "labels/combined_windows.json and config/profiles.json (from github.com/numenta/NAB)")
    return root


def load_profiles(root: Path) -> dict[str, Profile]:
    """The cost profiles from ``config/profiles.json``."""
    raw = json.loads((_check_root(root) / "config" / "profiles.json").read_text())
    return {name: Profile(name, c["CostMatrix"]["tpWeight"], c["CostMatrix"]["fpWeight"], c["CostMatrix"]["fnWeight"])
            for name, c in raw.items()}


def load_corpus(root: Path) -> list[NabFile]:
    """Every labelled NAB file with its windows, in the labels' order."""
    root = _check_root(root)
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    files = []
    for key, wins in labels.items():
        df = pd.read_csv(root / "data" / key)
        files.append(NabFile(key, pd.DatetimeIndex(pd.to_datetime(df["timestamp"])), df["value"].to_numpy(float),
                             tuple((pd.Timestamp(a), pd.Timestamp(b)) for a, b in wins)))
    return files


def load_results(root: Path, files: Sequence[NabFile], detector: str = "numenta") -> list[Run]:
    """A published detector's per-row ``anomaly_score`` (``results/<det>/<cat>/<det>_<name>.csv``)."""
    runs = []
    for f in files:
        cat, name = f.key.split("/")
        scores = pd.read_csv(Path(root) / "results" / detector / cat / f"{detector}_{name}")["anomaly_score"]
        runs.append((f, scores.to_numpy(float)))
    return runs


def corpus_score(runs: Sequence[Run], profile: Profile, threshold: float) -> CorpusScore:
    """Sum of the file scores at one corpus-wide threshold, and its normalised NAB score."""
    parts = [_score_sweep(f.sweep, s, threshold, profile) for f, s in runs]
    raw = sum(p.raw for p in parts)
    n_w = sum(f.sweep.n_windows for f, _ in runs)
    return CorpusScore(profile.name, threshold, raw, normalise(raw, n_w, profile),
                       sum(p.tp for p in parts), sum(p.fp for p in parts), sum(p.fn for p in parts), n_w)


def best_threshold(runs: Sequence[Run], profile: Profile) -> CorpusScore:
    """The corpus-wide threshold with the highest raw score, by an exact sweep over every
    distinct score (highest first: a window's value is the running max of its rows' values,
    a row outside windows adds its value). Ties go to the higher threshold."""
    score, value, window, offset = [], [], [], 0
    for f, s in runs:
        sw = f.sweep
        score.append(np.nan_to_num(np.asarray(s, dtype=float), nan=-np.inf)[sw.start:])  # NaN never alarms
        value.append(sw.values(profile)[sw.start:])
        window.append(np.where(sw.window >= 0, sw.window + offset, -1)[sw.start:])
        offset += sw.n_windows
    order = np.argsort(-np.concatenate(score), kind="stable")
    a, v, w = np.concatenate(score)[order], np.concatenate(value)[order], np.concatenate(window)[order]
    gain = np.where(w < 0, v, 0.0)
    inside = w >= 0  # gain of a window row: how much it raises its window's running best
    best = pd.Series(v[inside]).groupby(w[inside]).cummax().to_numpy()
    before = pd.Series(best).groupby(w[inside]).shift(1).fillna(-profile.fn).to_numpy()
    gain[inside] = best - before
    null = -offset * profile.fn
    total = null + np.cumsum(gain)
    ends = np.flatnonzero(np.append(a[1:] != a[:-1], True))  # last row of each group of equal scores
    k = int(np.argmax(total[ends])) if len(ends) else -1
    if k < 0 or total[ends[k]] <= null:
        threshold = float(np.nextafter(max(a.max(initial=1.0), 1.0), np.inf))  # flag nothing
    else:
        threshold = float(a[ends[k]])
    return corpus_score(runs, profile, threshold)


def validate_scorer(root: Path, tolerance: float = 0.05) -> dict:
    """Score the published Numenta HTM output and compare with its published NAB scores."""
    root = _check_root(root)
    profiles, runs = load_profiles(root), load_results(root, load_corpus(root), "numenta")
    out: dict = {"ok": True, "profiles": {}}
    checks = [(name, best_threshold(runs, profiles[name]), NUMENTA_EXPECTED[name]) for name in PROFILES]
    checks.append(("reward_low_FP_rate@0.5752", corpus_score(runs, profiles["reward_low_FP_rate"],
                   NUMENTA_LOW_FP_THRESHOLD), NUMENTA_LOW_FP_AT_THRESHOLD))
    for name, got, want in checks:
        ok = abs(got.score - want) <= tolerance
        out["profiles"][name] = {**asdict(got), "expected": want, "ok": ok}
        out["ok"] &= ok
    return out


def onsets(flags, max_gap: int = 1) -> np.ndarray:
    """1.0 on the first row of each run of flags (runs bridging up to ``max_gap`` unflagged rows,
    as sleuth merges anomalous buckets into incidents), else 0.0: one alarm per incident."""
    rows = np.flatnonzero(np.asarray(flags, dtype=bool))
    out = np.zeros(len(flags))
    out[rows[np.diff(rows, prepend=-max_gap - 2) > max_gap + 1]] = 1.0
    return out


def _replay(f: NabFile, detector: str) -> pd.DataFrame:
    from ..score import score_frame  # noqa: PLC0415 (keeps the scorer importable without the detector)
    df = pd.DataFrame({"timestamp": f.timestamps, "value": f.values, "_ts": f.timestamps, "_value": f.values})
    return score_frame(df, detector=detector)


def run_nab(root: Path, detector: str = "seasonal",
            progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Replay every NAB file through sleuth's ``score_frame`` and score it per profile.

    Returns ``{"detector", "files", "rows", "seconds", "profiles", "categories", "reference"}``:
    ``profiles[p]`` has a :class:`CorpusScore` (as a dict) per way of alarming:

    * ``oracle``: ``anomaly_score`` at the best corpus-wide threshold (NAB's own convention);
    * ``default``: ``anomaly_score >= 0.5``;
    * ``is_anomaly``: the shipped flag (0.5 and at least a 10% relative change);
    * ``onsets``: only the first row of each incident of ``is_anomaly`` flags.

    ``categories[c]`` has the standard profile's fixed-threshold scores per NAB category, and
    ``reference`` Numenta HTM's published output scored the same way (a sanity line).
    ``progress(done, total, key)`` is called after each file.
    """
    from ..incidents import MAX_GAP  # noqa: PLC0415

    files, profiles = load_corpus(root), load_profiles(root)
    ways: dict[str, list[Run]] = {"default": [], "is_anomaly": [], "onsets": []}
    started = time.perf_counter()
    for k, f in enumerate(files):
        out = _replay(f, detector)
        ways["default"].append((f, out["anomaly_score"].to_numpy(float)))
        ways["is_anomaly"].append((f, out["is_anomaly"].to_numpy(float)))
        ways["onsets"].append((f, onsets(out["is_anomaly"].to_numpy(bool), MAX_GAP)))
        if progress:
            progress(k + 1, len(files), f.key)
    seconds = time.perf_counter() - started
    result = {"detector": detector, "files": len(files), "rows": int(sum(len(f.values) for f in files)),
              "seconds": round(seconds, 2), "profiles": {}, "categories": {}}
    for name in PROFILES:
        p = profiles[name]
        result["profiles"][name] = {"oracle": asdict(best_threshold(ways["default"], p)),
                                    **{w: asdict(corpus_score(r, p, DEFAULT_THRESHOLD)) for w, r in ways.items()}}
    for cat in dict.fromkeys(f.category for f in files):
        result["categories"][cat] = {w: asdict(corpus_score([(f, s) for f, s in r if f.category == cat],
                                                             profiles["standard"], DEFAULT_THRESHOLD))
                                     for w, r in ways.items()}
    if (Path(root) / "results" / "numenta").is_dir():
        ref = load_results(root, files, "numenta")
        result["reference"] = {name: {"oracle": asdict(best_threshold(ref, profiles[name]))} for name in PROFILES}
    return result
