"""Snapshots: what every surface shows, read from the alert store or made from a live detection.

The store is the spine of the running product: each ``run``/``watch`` writes one snapshot per
source (each series' recent actual, expected value, band and score, as compressed float32 arrays,
plus the resolved config and the metric definitions) next to its incidents with their
explanations. The dashboard, ``sleuth explain ID``, ``sleuth report --store`` and ``alerts show``
read it instead of detecting again: one row, loaded in milliseconds.

Totals keep four weeks of hours (or 400 days), segments one week (or 90 days): the overview's
sparklines, the metric page and its drill-down; each incident keeps its own chart (its series a
few days either side) in its stored data, so an old segment incident still draws.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, Metric, parse_config
from .incidents import Incident
from .metrics.cube import TOTAL

#: buckets kept per granularity: (totals, segments)
KEEP = {"1h": (28 * 24, 7 * 24), "1d": (400, 90)}
#: the arrays of a series, in this order on the last axis
FIELDS = ("value", "expected", "lower", "upper", "anomaly_score", "is_anomaly")
#: buckets either side of an incident in its stored chart: (hourly, daily)
CHART_PAD = {"1h": 72, "1d": 21}
KEY_COLUMNS = ["property", "metric", "dimension", "segment"]
_INCIDENT_FIELDS = set(Incident.__dataclass_fields__)


@dataclass
class Block:
    """Series of one kind (totals or segments) over one stretch of buckets."""

    keys: pd.DataFrame           # property, metric, dimension, segment
    buckets: pd.DatetimeIndex    # bucket starts, naive UTC
    data: np.ndarray             # [series, bucket, len(FIELDS)] float32

    def find(self, property: str, metric: str, dimension: str, segment: str) -> int | None:
        k = self.keys
        hit = np.flatnonzero((k.property.to_numpy() == property) & (k.metric.to_numpy() == metric)
                             & (k.dimension.to_numpy() == dimension) & (k.segment.to_numpy() == segment))
        return int(hit[0]) if len(hit) else None

    def frame(self, i: int) -> pd.DataFrame:
        out = pd.DataFrame({"bucket": self.buckets})
        for n, name in enumerate(FIELDS):
            out[name] = self.data[i, :, n].astype(float)
        out["is_anomaly"] = out["is_anomaly"] > 0.5
        return out


def _block(cube, scores, rows: np.ndarray, keep: int) -> Block:
    T = len(cube.buckets)
    a = max(T - keep, 0)
    parts = [cube.value, scores.expected, scores.lower, scores.upper, scores.anomaly_score,
             scores.is_anomaly.astype(float)]
    data = np.stack([p[rows, a:] for p in parts], axis=-1).astype(np.float32)
    return Block(cube.keys.iloc[rows].reset_index(drop=True)[KEY_COLUMNS].astype(str), cube.buckets[a:], data)


def chart_of(cube, scores, inc: Incident) -> dict[str, Any] | None:
    """The incident's own series a few buckets either side, for its stored chart."""
    dim, seg = next(iter(inc.segment.items())) if inc.segment else (TOTAL, TOTAL)
    try:
        i = cube.index(inc.property, inc.metric, dim, seg)
    except KeyError:
        return None
    pad = CHART_PAD[cube.config.granularity]
    a = max(int(np.searchsorted(cube.buckets, inc.start_time())) - pad, 0)
    b = min(int(np.searchsorted(cube.buckets, inc.end_time())) + pad, len(cube.buckets))
    as_list = lambda x: [None if not np.isfinite(v) else float(f"{v:.6g}") for v in x[i, a:b]]  # noqa: E731
    return {"start": f"{cube.buckets[a]:%Y-%m-%dT%H:%M:%SZ}", "step_seconds": int(cube.config.step.total_seconds()),
            "value": as_list(cube.value), "expected": as_list(scores.expected), "lower": as_list(scores.lower),
            "upper": as_list(scores.upper), "is_anomaly": [bool(x) for x in scores.is_anomaly[i, a:b]]}


def chart_frame(chart: dict[str, Any]) -> pd.DataFrame:
    """A stored chart as the frame :meth:`Snapshot.series` returns."""
    n = len(chart["value"])
    start = pd.Timestamp(chart["start"]).tz_convert("UTC").tz_localize(None)
    out = pd.DataFrame({"bucket": pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=chart["step_seconds"]))})
    for name in ("value", "expected", "lower", "upper"):
        out[name] = pd.to_numeric(pd.Series(chart[name], dtype=object), errors="coerce").astype(float)
    out["anomaly_score"] = np.nan
    out["is_anomaly"] = chart["is_anomaly"]
    return out


def incident_from(data: dict[str, Any]) -> Incident:
    """An :class:`Incident` from its stored (Contract 3) dict; unknown keys are left out."""
    return Incident(**{k: v for k, v in data.items() if k in _INCIDENT_FIELDS})


@dataclass
class Snapshot:
    """Incidents with their explanations, each series' recent values and bands, and what they mean."""

    source: str
    config: Config
    metrics: dict[str, Metric]
    totals: Block
    segments: Block
    incidents: list[Incident] = field(default_factory=list)
    charts: dict[str, dict] = field(default_factory=dict)   # incident id -> its stored chart
    notes: list[str] = field(default_factory=list)
    revenue_column: str | None = None
    run: int | None = None          # the run that wrote it (None: made from a live detection)
    created: str | None = None      # when (ISO, UTC)
    data_end: str | None = None     # the end of the last complete bucket it saw (ISO, UTC)
    detection: Any = None           # the live Detection it was made from, when it was
    #: "property|metric" -> the maturity of each metric still learning (stage, days, full_days,
    #: catches, misses): wider bands, fewer things caught (see sleuth.detectors.base.maturity)
    learning: dict[str, dict] = field(default_factory=dict)

    # -- made from a detection -----------------------------------------------------------------------
    @classmethod
    def from_detection(cls, det, source: str | None = None) -> "Snapshot":
        cube, scores = det.cube, det.scores
        keep_total, keep_segment = KEEP[cube.config.granularity]
        is_total = (cube.keys.dimension == TOTAL).to_numpy()
        end = cube.complete_until if cube.complete_until is not None else cube.buckets[-1] + cube.config.step
        return cls(source=source or det.events.source, config=det.config, metrics=dict(cube.metrics),
                   totals=_block(cube, scores, np.flatnonzero(is_total), keep_total),
                   segments=_block(cube, scores, np.flatnonzero(~is_total), keep_segment),
                   incidents=list(det.incidents), charts={i.id: chart_of(cube, scores, i) for i in det.incidents},
                   notes=list(det.notes), revenue_column=det.events.mapping.get("revenue"),
                   data_end=f"{end:%Y-%m-%dT%H:%M:%SZ}", detection=det,
                   learning={f"{p}|{m}": asdict(mat) for (p, m), mat in det.learning().items()})

    # -- to and from the store -----------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"source": self.source, "config": self.config.to_dict() | {"notify": [], "store": None},
                "metrics": [m.model_dump(mode="json", exclude_none=True) for m in self.metrics.values()],
                "notes": self.notes, "revenue_column": self.revenue_column, "data_end": self.data_end,
                "learning": self.learning,
                "totals": {"keys": self.totals.keys.to_dict("list"), "start": _iso(self.totals.buckets)},
                "segments": {"keys": self.segments.keys.to_dict("list"), "start": _iso(self.segments.buckets)}}

    def blob(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, totals=self.totals.data, segments=self.segments.data)
        return buf.getvalue()

    @classmethod
    def load(cls, meta: dict[str, Any], blob: bytes, run: int | None = None, created: str | None = None) -> "Snapshot":
        arrays = np.load(io.BytesIO(blob))
        cfg_dict = {k: v for k, v in meta["config"].items() if k not in ("notify", "store", "metrics")}
        config = parse_config(cfg_dict, "stored config")
        step = config.step

        def block(name: str) -> Block:
            data = arrays[name]
            keys = pd.DataFrame(meta[name]["keys"], columns=KEY_COLUMNS).astype(str)
            start = meta[name]["start"]
            buckets = (pd.date_range(pd.Timestamp(start).tz_localize(None), periods=data.shape[1], freq=step)
                       if start else pd.DatetimeIndex([]))
            return Block(keys, buckets, data)

        metrics = {m["name"]: Metric.model_validate(m) for m in meta["metrics"]}
        return cls(source=meta["source"], config=config, metrics=metrics, totals=block("totals"),
                   segments=block("segments"), notes=meta.get("notes", []), revenue_column=meta.get("revenue_column"),
                   run=run, created=created, data_end=meta.get("data_end"), learning=meta.get("learning", {}))

    # -- what the surfaces ask --------------------------------------------------------------------------
    @property
    def properties(self) -> list[str]:
        return sorted(self.totals.keys.property.unique())

    def series(self, metric: str, property: str | None = None, dimension: str = TOTAL,
               segment: str = TOTAL) -> pd.DataFrame:
        """One series with its expected value and band (empty when it is not kept)."""
        prop = property or (self.properties[0] if self.properties else "")
        block = self.totals if dimension == TOTAL else self.segments
        i = block.find(prop, metric, dimension, segment)
        if i is None:
            return pd.DataFrame(columns=["bucket", *FIELDS])
        return block.frame(i)

    def segment_values(self, property: str, metric: str, dimension: str) -> list[str]:
        k = self.segments.keys
        return list(k.segment[(k.property == property) & (k.metric == metric) & (k.dimension == dimension)])

    @property
    def dimensions(self) -> list[str]:
        return sorted(x for x in self.segments.keys.dimension.unique() if x)

    def learning_text(self) -> str | None:
        """A banner's sentence when metrics are still learning, else None."""
        if not self.learning:
            return None
        young = min(self.learning.values(), key=lambda m: m["days"])
        names = sorted({k.split("|", 1)[1] for k in self.learning})
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        misses = young["misses"] if young["misses"].startswith("cannot") else f"misses {young['misses']}"
        return (f"Still learning: {shown} ({len(self.learning)} series; the youngest has {young['days']:g} of the "
                f"{young['full_days']:g} days it needs). Their bands are wider: sleuth catches {young['catches']}; "
                f"it {misses}.")

    def incident(self, key: str) -> Incident | None:
        return next((i for i in self.incidents if i.id == key), None)

    def chart(self, inc: Incident) -> pd.DataFrame:
        """The incident's chart: its stored one, else its series in this snapshot."""
        stored = self.charts.get(inc.id)
        if stored:
            return chart_frame(stored)
        dim, seg = next(iter(inc.segment.items())) if inc.segment else (TOTAL, TOTAL)
        return self.series(inc.metric, inc.property, dim, seg)

    def with_store_incidents(self, rows: list[dict]) -> "Snapshot":
        """This snapshot with the store's incidents of its properties (every run's, not only the
        last one's), each with its stored chart."""
        props = set(self.properties)
        incs, charts = [], {}
        for r in rows:
            if r["property"] not in props:
                continue
            data = dict(r["data"])
            inc = incident_from({**data, "id": r["key"]})
            incs.append(inc)
            if data.get("chart"):
                charts[inc.id] = data["chart"]
        self.incidents = sorted(incs, key=lambda i: (i.start, i.id))
        self.charts = charts
        return self


def _iso(buckets: pd.DatetimeIndex) -> str | None:
    return f"{buckets[0]:%Y-%m-%dT%H:%M:%S}" if len(buckets) else None


def meta_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, ensure_ascii=False, default=str)
