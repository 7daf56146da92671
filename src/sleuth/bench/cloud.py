"""Microsoft's cloud-monitoring dataset, scored by event.

Each run of consecutive ``Label = 1`` rows is one event. An event is caught when any alarm
(sleuth's ``is_anomaly``) falls inside it or up to :data:`LEAD` rows before it. Alarms outside
every event, and not within :data:`TAIL` rows after one, are grouped into runs of consecutive
rows; each run is one false alarm. Reported per domain and overall, with the false alarms on
series that have no labels at all (where every alarm is false) shown apart.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

LEAD, TAIL = 3, 3  # rows before an event where an alarm still catches it; rows after it that are forgiven


@dataclass
class EventScore:
    """Event counts of one series, a domain or the whole set."""

    series: int = 0
    unlabelled_series: int = 0
    events: int = 0
    caught: int = 0
    blind: int = 0  # events that end before the detector's first score (its warm-up)
    false_alarms: int = 0  # runs of alarm rows outside every event
    false_alarms_unlabelled: int = 0  # of which on series without any label
    alarm_rows: int = 0

    def add(self, other: "EventScore") -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


def events(label: np.ndarray) -> np.ndarray:
    """``[start, end]`` rows (inclusive) of each run of consecutive 1s, as an ``[n, 2]`` array."""
    x = np.concatenate([[0], (np.asarray(label) == 1).astype(np.int8), [0]])
    edges = np.diff(x)
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1], axis=1)


def score_events(label, alarm, first_scored: int = 0, lead: int = LEAD, tail: int = TAIL) -> EventScore:
    """Event score of one series from its labels and boolean alarms (same length); events that
    end before row ``first_scored`` are counted as ``blind`` (they still count as missed)."""
    label, alarm = np.asarray(label), np.asarray(alarm, dtype=bool)
    n, ev = len(alarm), events(label)
    starts, ends = np.maximum(ev[:, 0] - lead, 0), ev[:, 1]
    seen = np.concatenate([[0], np.cumsum(alarm)])  # alarms in rows [a, b]: seen[b + 1] - seen[a]
    caught = (seen[ends + 1] - seen[starts]) > 0
    cover = np.zeros(n + 1, dtype=int)  # rows inside an event, its lead or its tail
    np.add.at(cover, starts, 1)
    np.add.at(cover, np.minimum(ends + tail + 1, n), -1)
    false = alarm & (np.cumsum(cover)[:n] == 0)
    runs = int(false[0] + np.sum(false[1:] & ~false[:-1])) if n else 0
    unlabelled = len(ev) == 0
    return EventScore(series=1, unlabelled_series=int(unlabelled), events=len(ev), caught=int(caught.sum()),
                      blind=int((ends < first_scored).sum()), false_alarms=runs,
                      false_alarms_unlabelled=runs if unlabelled else 0, alarm_rows=int(alarm.sum()))


def read_series(path: Path) -> pd.DataFrame:
    """One series as sleuth's frame (timestamp, value, _ts, _value) plus its ``label``."""
    df = pd.read_csv(path)
    missing = {"TimeStamp", "Value", "Label"} - set(df.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected TimeStamp,Value,Label")
    ts = pd.to_datetime(df["TimeStamp"], utc=True, format="mixed").dt.tz_localize(None)
    value = pd.to_numeric(df["Value"], errors="coerce").astype(float)
    return pd.DataFrame({"timestamp": ts, "value": value, "_ts": ts, "_value": value,
                         "label": pd.to_numeric(df["Label"]).astype(int)})


def run_cloud(root: Path, detector: str = "seasonal") -> dict:
    """Score every series of the dataset (``<root>/data/<domain>/<name>.csv``) with sleuth.

    Returns ``{"detector", "seconds", "domains": {domain: EventScore as dict}, "overall": {...}}``.
    ``blind`` counts events that end before the series' first non-zero ``anomaly_score``: the
    detector cannot see them yet (it needs a few seasons of history).
    """
    from ..score import score_frame  # noqa: PLC0415

    root = Path(root)
    data = root / "data" if (root / "data").is_dir() else root
    paths = sorted(data.glob("*/*.csv"))
    if not paths:
        raise InputError(f"the cloud-monitoring data is not present at {root}: expected data/<domain>/<name>.csv "
                         "(from github.com/microsoft/cloud-monitoring-dataset)")
    domains: dict[str, EventScore] = {}
    started = time.perf_counter()
    for path in paths:
        df = read_series(path)
        out = score_frame(df.drop(columns="label"), detector=detector)
        scored = np.flatnonzero(out["anomaly_score"].to_numpy() > 0)  # a proxy for the end of the warm-up
        first = int(scored[0]) if len(scored) else len(df)
        domains.setdefault(path.parent.name, EventScore()).add(
            score_events(df["label"].to_numpy(), out["is_anomaly"].to_numpy(bool), first))
    overall = EventScore()
    for d in domains.values():
        overall.add(d)
    return {"detector": detector, "seconds": round(time.perf_counter() - started, 2),
            "domains": {k: asdict(v) for k, v in domains.items()}, "overall": asdict(overall)}
