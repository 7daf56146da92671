"""The metrics cube: metric x segment x time bucket, computed in the engine through ibis.

One query (a UNION ALL of one GROUP BY per grouping level) computes every aggregate every metric
needs, for the total and for each value of each dimension, per property. The result is laid
out as dense arrays ``[series, bucket]`` so detection runs on all series at once. An empty
bucket is a zero for counts and sums and "no data" (NaN) for a ratio whose denominator is zero.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable

import ibis
import numpy as np
import pandas as pd

from ..config import Aggregate, Config, Metric
from ..ingest import Events
from .grouping import ENGINES, grouping_sets_frame

TOTAL = ""  # the dimension and segment of a metric's total series


def _agg_key(a: Aggregate) -> tuple:
    return (a.type, a.column, tuple(a.events or ()))


def _agg_expr(t: ibis.Table, a: Aggregate) -> ibis.Value:
    where = t.event.isin(a.events) if a.events else None
    if a.type == "count":
        return t.count(where=where) if where is not None else t.count()
    if a.type == "sum":
        return t[a.column].sum(where=where).fill_null(0).cast("float64")
    return t[a.column].nunique(where=where)


def _volume_agg(m: Metric) -> Aggregate:
    """How many events stand behind a bucket's value: the count of events a sum adds up."""
    a, b = m.parts()
    if b is not None:
        return b
    if a.type == "sum":
        return Aggregate(type="count", event=a.event)
    return a


@ibis.udf.scalar.builtin(name="timezone")
def _timezone(zone: str, t: ibis.dtype("timestamp('UTC')")) -> ibis.dtype("timestamp"):  # noqa: F821
    """DuckDB's and PostgreSQL's ``timezone(zone, instant)``: the wall-clock time there."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _from_utc(t: ibis.dtype("timestamp"), zone: str) -> ibis.dtype("timestamp"):  # noqa: F821
    """Spark's spelling of the same."""


#: engines with a function for wall-clock time in a zone; any other engine gets :func:`offset_local`
NATIVE_LOCAL = ("duckdb", "postgres", "pyspark")


def utc_offsets(tz: str, first: pd.Timestamp, last: pd.Timestamp) -> list[tuple[pd.Timestamp | None, int]]:
    """``[(from, offset seconds)]`` in force in ``tz`` between two naive UTC times: the first
    entry's ``from`` is None, each later one starts at a transition (daylight saving time).
    Zones change on a quarter hour of UTC, so a 15-minute grid finds every transition exactly."""
    grid = pd.date_range(pd.Timestamp(first).floor("D") - pd.Timedelta(days=1),
                         pd.Timestamp(last).ceil("D") + pd.Timedelta(days=1), freq="15min", tz="UTC")
    offset = ((grid.tz_convert(tz).tz_localize(None) - grid.tz_localize(None)) // pd.Timedelta(seconds=1)).to_numpy()
    change = np.flatnonzero(np.diff(offset)) + 1
    return [(None, int(offset[0]))] + [(grid[i].tz_localize(None), int(offset[i])) for i in change]


def offset_local(ts: ibis.Value, tz: str, first: pd.Timestamp, last: pd.Timestamp) -> ibis.Value:
    """Wall-clock time in ``tz`` with nothing but comparisons and interval arithmetic, which every
    SQL engine has: the UTC offset in force is a step function of the instant (a step at each
    daylight-saving transition in the data's span), written as one CASE."""
    steps = utc_offsets(tz, first, last)
    naive = ts.cast("timestamp")
    last_offset = naive + ibis.interval(seconds=steps[-1][1])
    branches = [(naive < ibis.literal(until.to_pydatetime()), naive + ibis.interval(seconds=seconds))
                for (_, seconds), (until, _) in zip(steps, steps[1:])]
    return ibis.cases(*branches, else_=last_offset) if branches else last_offset


def _local(ts: ibis.Value, tz: str, con, span: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> ibis.Value:
    """Wall-clock time in ``tz`` for a UTC timestamp (daily buckets follow the local calendar)."""
    if tz == "UTC":
        return ts
    name = getattr(con, "name", "")
    if name in ("duckdb", "postgres"):
        return _timezone(tz, ts)
    if name == "pyspark":
        return _from_utc(ts.cast("timestamp"), tz)
    if span is None:
        raise ValueError("the data's time span is needed for local time on this engine")
    return offset_local(ts, tz, *span)


def bucket_expr(t: ibis.Table, config: Config, con) -> ibis.Value:
    """Each event's bucket start: the UTC hour, or the local day (as a naive wall-clock time)."""
    if config.granularity == "1h":
        if getattr(con, "name", "") == "duckdb":
            # the same UTC hours (ibis sessions are in UTC) as truncate("h"), about 4x faster per row:
            # TIME_BUCKET works on the instant, DATE_TRUNC on a time-zone-aware calendar
            return t.timestamp.bucket(hours=1).cast("timestamp")
        return t.timestamp.truncate("h").cast("timestamp")  # hours are the same in every whole-hour zone
    span = None
    if config.timezone != "UTC" and getattr(con, "name", "") not in NATIVE_LOCAL:
        got = t.aggregate(a=t.timestamp.min(), b=t.timestamp.max()).execute().iloc[0]
        span = (_naive_utc(got["a"]), _naive_utc(got["b"]))
    return _local(t.timestamp, config.timezone, con, span).truncate("D").cast("timestamp")


def _naive_utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


@dataclass
class Cube:
    """Dense series: ``keys`` describes each row of the ``[series, bucket]`` arrays."""

    keys: pd.DataFrame              # property, metric, dimension, segment
    buckets: pd.DatetimeIndex       # bucket starts in UTC (naive)
    value: np.ndarray               # metric value (ratio = num/den; NaN = no data)
    numerator: np.ndarray           # ratio numerator (or the value itself)
    denominator: np.ndarray         # ratio denominator (NaN for non-ratios)
    volume: np.ndarray              # events behind each value (the count a sum adds up, a denominator)
    metrics: dict[str, Metric]
    config: Config
    dimensions: list[str]
    complete_until: pd.Timestamp | None = None  # buckets at or after this are still in progress
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def index(self, property: str, metric: str, dimension: str = TOTAL, segment: str = TOTAL) -> int:
        k = self.keys
        hit = np.flatnonzero((k.property == property).to_numpy() & (k.metric == metric).to_numpy()
                             & (k.dimension == dimension).to_numpy() & (k.segment == segment).to_numpy())
        if not len(hit):
            raise KeyError((property, metric, dimension, segment))
        return int(hit[0])

    def parents(self) -> np.ndarray:
        """For each series, the row of its total (same property and metric), or -1 for a total."""
        k = self.keys
        total_row = {(p, m): i for i, (p, m, d) in enumerate(zip(k.property, k.metric, k.dimension)) if d == TOTAL}
        return np.array([-1 if d == TOTAL else total_row.get((p, m), -1)
                         for p, m, d in zip(k.property, k.metric, k.dimension)], dtype=int)

    def totals(self) -> np.ndarray:
        return np.flatnonzero((self.keys.dimension == TOTAL).to_numpy())

    def series_frame(self, i: int) -> pd.DataFrame:
        return pd.DataFrame({"bucket": self.buckets, "value": self.value[i],
                             "numerator": self.numerator[i], "denominator": self.denominator[i]})

    def to_frame(self) -> pd.DataFrame:
        """Long frame: one row per series and bucket."""
        n, t = self.value.shape
        out = self.keys.loc[self.keys.index.repeat(t)].reset_index(drop=True)
        out["bucket"] = np.tile(self.buckets.to_numpy(), n)
        out["value"] = self.value.ravel()
        out["numerator"] = self.numerator.ravel()
        out["denominator"] = self.denominator.ravel()
        return out


def _aggregate_frame(events: Events, metrics: list[Metric], config: Config,
                     until: pd.Timestamp | None) -> tuple[pd.DataFrame, dict[tuple, str]]:
    t = events.table
    if until is not None:
        t = t.filter(t.timestamp < ibis.literal(until.to_pydatetime().replace(tzinfo=dt.timezone.utc)))
    t = t.mutate(_bucket=bucket_expr(t, config, events.con))
    aggs: dict[tuple, str] = {}
    needed = [a for m in metrics for a in (*filter(None, m.parts()), _volume_agg(m))]
    for a in needed:
        aggs.setdefault(_agg_key(a), f"a{len(aggs)}")
    by_key = {_agg_key(a): a for a in needed}

    if getattr(events.con, "name", "") in ENGINES:
        return grouping_sets_frame(t, events.con, list(events.dimensions), aggs, by_key, TOTAL), aggs

    def level(dim: str | None) -> ibis.Table:
        seg = t[dim] if dim else ibis.literal(TOTAL)
        g = t.mutate(_dimension=ibis.literal(dim or TOTAL), _segment=seg)
        return g.group_by(["property", "_bucket", "_dimension", "_segment"]).aggregate(
            **{name: _agg_expr(g, by_key[key]).cast("float64") for key, name in aggs.items()}
        )

    expr = ibis.union(*[level(d) for d in [None, *events.dimensions]], distinct=False)
    frame = expr.to_pyarrow().to_pandas()
    return frame, aggs


def build_cube(events: Events, metrics: list[Metric], config: Config,
               until: pd.Timestamp | None = None) -> Cube:
    """Compute every metric for the total and each dimension value, per property."""
    frame, aggs = _aggregate_frame(events, metrics, config, until)
    step = pd.Timedelta(config.step)
    if frame.empty:
        from ..errors import InputError
        raise InputError(f"{events.source}: no events before the requested time")
    frame["_bucket"] = pd.to_datetime(frame["_bucket"]).dt.tz_localize(None)

    # keep the most frequent values of each dimension; the leaf table keeps them all
    first = next(iter(aggs.values()))
    seg_rows = frame[frame["_dimension"] != TOTAL]
    vol = seg_rows.groupby(["_dimension", "_segment"])[first].sum().reset_index()
    vol = vol.sort_values(first, ascending=False).groupby("_dimension").head(config.max_segments)
    keep = pd.MultiIndex.from_frame(vol[["_dimension", "_segment"]])
    is_total = frame["_dimension"] == TOTAL
    in_keep = pd.MultiIndex.from_frame(frame[["_dimension", "_segment"]]).isin(keep)
    frame = frame[is_total | in_keep]

    start, end = frame["_bucket"].min(), frame["_bucket"].max()
    buckets = pd.date_range(start, end, freq="h" if config.granularity == "1h" else "D")
    if config.granularity == "1d" and config.timezone != "UTC":
        # daily buckets are local days: label each by its local midnight, expressed in UTC
        def to_utc(x):
            return pd.DatetimeIndex(x).tz_localize(config.timezone, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC").tz_localize(None)
        frame["_bucket"] = to_utc(frame["_bucket"])
        buckets = to_utc(buckets)

    series = frame[["property", "_dimension", "_segment"]].drop_duplicates().sort_values(
        ["property", "_dimension", "_segment"]).reset_index(drop=True)
    sidx = pd.MultiIndex.from_frame(series)
    row = sidx.get_indexer(pd.MultiIndex.from_frame(frame[["property", "_dimension", "_segment"]]))
    col = buckets.get_indexer(frame["_bucket"])
    ok = col >= 0
    row, col = row[ok], col[ok]

    # per property, buckets before its first or after its last event are "no data"
    span = frame.groupby("property")["_bucket"].agg(["min", "max"])
    prop_first = buckets.get_indexer(span.loc[series["property"], "min"])
    prop_last = buckets.get_indexer(span.loc[series["property"], "max"])
    grid = np.arange(len(buckets))
    outside = (grid[None, :] < prop_first[:, None]) | (grid[None, :] > prop_last[:, None])

    dense = {}
    for name in aggs.values():
        arr = np.zeros((len(series), len(buckets)))
        arr[row, col] = frame[name].to_numpy(dtype=float)[ok]
        arr[outside] = np.nan
        dense[name] = arr

    keys, values, nums, dens, vols = [], [], [], [], []
    for m in metrics:
        a, b = m.parts()
        vols.append(dense[aggs[_agg_key(_volume_agg(m))]])
        num = dense[aggs[_agg_key(a)]]
        if b is None:
            val, den = num, np.full_like(num, np.nan)
        else:
            den = dense[aggs[_agg_key(b)]]
            if m.invert:
                num = den - num
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        k = series.rename(columns={"_dimension": "dimension", "_segment": "segment"}).copy()
        k.insert(1, "metric", m.name)
        keys.append(k)
        values.append(val)
        nums.append(num)
        dens.append(den)
    keys_df = pd.concat(keys, ignore_index=True)
    cube = Cube(keys=keys_df, buckets=buckets, value=np.vstack(values), numerator=np.vstack(nums),
                denominator=np.vstack(dens), volume=np.vstack(vols), metrics={m.name: m for m in metrics}, config=config,
                dimensions=list(events.dimensions))
    _mark_incomplete(cube, events, until, step)
    return cube


def _mark_incomplete(cube: Cube, events: Events, until: pd.Timestamp | None, step: pd.Timedelta) -> None:
    """The last bucket is still in progress unless the data (or ``until``) reaches its end."""
    last = cube.buckets[-1]
    if until is not None and until >= last + step:
        return
    latest = pd.Timestamp(events.table.timestamp.max().execute())
    latest = latest.tz_convert("UTC").tz_localize(None) if latest.tzinfo else latest
    if until is not None:
        latest = min(latest, until)
    if latest < last + step * 0.95:
        cube.complete_until = last
        cube.notes.append(f"the bucket starting {last:%Y-%m-%d %H:%M} UTC is still in progress and is not scored")


def utc_literal(ts: pd.Timestamp) -> ibis.Value:
    """A naive UTC time as a literal comparable with the events' (UTC) timestamps."""
    return ibis.literal(pd.Timestamp(ts).tz_localize("UTC").to_pydatetime())


def window_label(t: ibis.Table, windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]]) -> ibis.Value:
    """The name of the window ``[start, end)`` (naive UTC) each row's timestamp falls in, NULL
    outside all of them (windows must not overlap)."""
    label = ibis.null().cast("string")
    for name, (start, end) in windows.items():
        label = ibis.ifelse((t.timestamp >= utc_literal(start)) & (t.timestamp < utc_literal(end)), name, label)
    return label


def leaf_table(events: Events, metric: Metric, windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
               dimensions: Iterable[str] | None = None, property: str | None = None) -> pd.DataFrame:
    """Aggregates per leaf (every combination of dimension values) for each named window.

    Returns one row per leaf with ``<window>_num`` and ``<window>_den`` columns (``_den`` only
    for ratios), for root-cause localisation over any windows. One engine query for all windows.
    """
    dims = list(dimensions if dimensions is not None else events.dimensions)
    t = events.table
    if property is not None:
        t = t.filter(t.property == property)
    a, b = metric.parts()
    if a.events and (b is None or b.events):  # only the metric's own events can count: read just those
        t = t.filter(t.event.isin(sorted({*a.events, *(b.events if b is not None else ())})))
    keys = dims or ["_all"]
    t = t.mutate(_window=window_label(t, windows), _all=ibis.literal("all")).filter(lambda x: x._window.notnull())
    aggs = {"num": _agg_expr(t, a).cast("float64")}
    if b is not None:
        aggs["den"] = _agg_expr(t, b).cast("float64")
    long = t.group_by([*keys, "_window"]).aggregate(**aggs).to_pyarrow().to_pandas()
    if long.empty:
        return pd.DataFrame(columns=[*dims, *(f"{w}_{k}" for w in windows for k in aggs)])
    wide = long.pivot_table(index=keys, columns="_window", values=list(aggs), aggfunc="sum", fill_value=0.0)
    wide.columns = [f"{w}_{k}" for k, w in wide.columns]
    out = wide.reset_index()
    if not dims:
        out = out.drop(columns="_all")
    for wname in windows:
        for k in aggs:
            if f"{wname}_{k}" not in out.columns:
                out[f"{wname}_{k}"] = 0.0
    if b is not None and metric.invert:
        for wname in windows:
            out[f"{wname}_num"] = out[f"{wname}_den"] - out[f"{wname}_num"]
    return out
