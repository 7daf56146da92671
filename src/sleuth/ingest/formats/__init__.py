"""Formats people already have, recognised by their columns and normalised without config.

A GA4 BigQuery export, Segment warehouse tables, Snowplow enriched events, an Amplitude export
and a Mixpanel export each have a known shape. A format in :data:`FORMATS` says whether a raw
table has its shape (``matches``) and builds the Contract 1 columns from it as ibis expressions
(``normalise``): the work runs in the engine, and no format explodes a list, so one row stays
one event (Segment's only change to the rows drops a message read from two tables).
:func:`recognise` is the one entry point ``load_events`` calls; what the format does not use is
passed through under its dotted path, so ``dimensions:``, ``columns:`` and metrics' ``column:``
can still name any field of the source.
"""
from __future__ import annotations

from dataclasses import dataclass

import ibis

from ...config import Columns, Config
from ...errors import ConfigError, did_you_mean
from ._common import KEYS, Format, Parts, Source, map_bag


def _registry() -> dict[str, Format]:
    from .amplitude import Amplitude
    from .ga4 import GA4
    from .mixpanel import Mixpanel
    from .segment import Segment
    from .snowplow import Snowplow

    return {f.name: f for f in (GA4(), Snowplow(), Amplitude(), Mixpanel(), Segment())}


#: the formats by name, most specific first
FORMATS: dict[str, Format] = _registry()


@dataclass
class Recognised:
    """A source normalised by its format."""

    format: str
    table: ibis.Table
    #: the config for the rest of ``load_events``: ``columns:`` already applied, lists the
    #: format understood taken out of ``explode:``
    config: Config
    #: dimension candidates (friendly names); automatic dimensions are chosen among them
    dimensions: list[str]
    notes: list[str]


def recognise(table: ibis.Table, config: Config, source: str) -> Recognised | None:
    """Normalise ``table`` if its columns are those of a known format; None otherwise."""
    src = Source(table)
    fmt = next((f for f in FORMATS.values() if f.matches(src)), None)
    if fmt is None:
        return None
    prepared = fmt.prepare(table)
    if prepared is not table:
        src = Source(prepared)
    parts = fmt.normalise(src)
    cols: dict[str, ibis.Value] = {**parts.standard}
    for name, expr in parts.dimensions.items():
        cols[name] = expr.cast("string") if not expr.type().is_string() else expr
    cols.update(parts.extra)
    passed, notes = _pass_through(src, parts, set(cols), fmt.name)
    _apply_columns(cols, src, passed, config.columns, source)
    cols.update(passed)
    explode = [c for c in config.explode if c not in parts.consumed]
    if len(explode) < len(config.explode):
        gone = [c for c in config.explode if c in parts.consumed]
        notes.append(f"'explode: [{', '.join(gone)}]' ignored: sleuth reads {', '.join(gone)} of the "
                     f"{fmt.title} format itself, and exploding would repeat each event once per element")
    said = f": {'; '.join(parts.said)}" if parts.said else ""
    notes.insert(0, f"format {fmt.title}, recognised by its columns{said}")
    table = src.table.select(**{k: v.name(k) for k, v in cols.items()})
    if parts.unique_on:
        table, repeated = _once(table, parts.unique_on)
        if repeated:
            notes.append(f"{repeated:,} rows repeat the {parts.unique_on!r} of another row (a call written to "
                         "two tables that were read together): each message counted once")
    dims = [d for d in parts.dimensions if d in table.columns]
    cfg = config.model_copy(update={"columns": Columns(), "explode": explode})
    return Recognised(format=fmt.name, table=table, config=cfg, dimensions=dims, notes=notes)


def _once(table: ibis.Table, key: str) -> tuple[ibis.Table, int]:
    """Keep one row per ``key`` (rows without one all stay), preferring a row that has revenue."""
    stats = table.aggregate(n=table[key].count(), distinct=table[key].nunique()).execute().iloc[0]
    repeated = int(stats["n"]) - int(stats["distinct"])
    if repeated == 0:
        return table, 0
    order = [table.revenue.isnull()] if "revenue" in table.columns else []
    w = ibis.window(group_by=table[key], order_by=order)
    ranked = table.mutate(_once=ibis.row_number().over(w))
    return ranked.filter(ranked[key].isnull() | (ranked._once == 0)).drop("_once"), repeated


def _consumed(path: str, consumed: set[str]) -> bool:
    return any(path == c or path.startswith(c + ".") for c in consumed)


def _pass_through(src: Source, parts: Parts, taken: set[str], prefix: str) -> tuple[dict[str, ibis.Value], list[str]]:
    """Every field the format did not use, under its dotted path; a map becomes one column per
    key that occurs. A name the format's own columns took gets the format's prefix
    (GA4's signed-in ``user_id`` becomes ``ga4.user_id``: sleuth's ``user_id`` is the pseudo id)."""
    out: dict[str, ibis.Value] = {}
    notes: list[str] = []
    for path, expr in src.leaves.items():
        if _consumed(path, parts.consumed) or path.startswith(KEYS):
            continue
        if path in src.maps:
            bag, left = map_bag(src, path)
            items = [(k, v) for k, v in bag.items() if not _consumed(k, parts.consumed)]
            if left:
                notes.append(f"{path}: the {len(bag)} most frequent keys became columns; {left} rarer keys left out")
        else:
            items = [(path, expr)]
        for name, e in items:
            out[f"{prefix}.{name}" if name in taken else name] = e
    return out, notes


def _apply_columns(cols: dict[str, ibis.Value], src: Source, passed: dict[str, ibis.Value],
                   columns: Columns, source: str) -> None:
    """``columns:`` in sleuth.yaml still decides: a standard column mapped there is read from the
    named field of the source (or a column the format made, such as ``param.page_title``)."""
    for std, name in columns.model_dump().items():
        if name is None:
            continue
        expr = cols.get(name) if name in cols and name != std else passed.get(name)
        if expr is None:
            expr = src.get(name)
        if expr is None:
            options = sorted({*cols, *passed, *(p for p in src.leaves if not p.startswith(KEYS))})
            raise ConfigError(f"{source}: columns.{std} names {name!r}, which is not a column"
                              f"{did_you_mean(name, options)}; "
                              f"columns are: {', '.join(options[:30])}")
        cols[std] = expr


__all__ = ["FORMATS", "Format", "Recognised", "recognise"]
