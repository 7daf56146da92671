"""Ingest (Contract 1): any source -> one normalised ibis table of events.

The normalised table has ``timestamp`` (UTC), ``event``, ``session_id``, ``user_id``,
``revenue``, ``property`` and one text column per dimension (``(none)`` where missing),
plus every other scalar column of the source (nested objects flattened to dotted names).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from ..config import Config
from ..errors import InputError, did_you_mean
from .flatten import flatten
from .formats import recognise
from .readers import open_source
from .sessionize import sessionize
from .span import bounded_span, empty_measures
from .timestamps import parse_timestamp

NONE_VALUE = "(none)"
DEFAULT_PROPERTY = "default"

#: names sleuth recognises for the standard columns when ``columns:`` does not map them
ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "ts", "time", "event_time", "event_timestamp", "datetime",
                  "received_at", "original_timestamp", "sent_at", "date", "created_at"),
    "event": ("event", "event_name", "event_type", "name", "action"),
    "session_id": ("session_id", "sessionid", "session", "ga_session_id", "sid", "visit_id"),
    "user_id": ("user_id", "userid", "user_pseudo_id", "anonymous_id", "anonymousid", "client_id",
                "visitor_id", "uid", "user"),
    "revenue": ("revenue", "properties.revenue", "ecommerce.purchase_revenue", "amount",
                "order_value", "properties.total", "value"),
    "property": ("property", "app", "app_id", "site", "site_id", "store", "stream_id", "property_id"),
}
REQUIRED = ("timestamp", "event")
_JUNK_COLUMNS = {"", "column0", "unnamed: 0", "column00", "index"}
#: names of id-like columns, which are never automatic dimensions ("user_id", "userId", "ID"; not "paid")
_ID_LIKE = re.compile(r"(^|[^A-Za-z])(?i:id)$|[a-z0-9](Id|ID)$|(?i:uuid|guid|token|url|timestamp|time)$")


@dataclass
class Events:
    """Normalised events plus what sleuth learned about them."""

    con: Any
    table: ibis.Table
    source: str
    dimensions: list[str]
    mapping: dict[str, str | None]
    sessions_derived: bool = False
    notes: list[str] = field(default_factory=list)
    #: the known format the source was recognised as (``ga4``, ``segment``, ...; see ``formats``)
    format: str | None = None
    _session_dims: list[str] | None = field(default=None, repr=False)
    #: the sessions, hits, forms and clicks tables when the source was a nested session export
    nested: Any = field(default=None, repr=False)

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns)

    def session_dimensions(self) -> list[str]:
        """Dimensions that stay the same within a session (device, country: not a product's
        category). Leaves of a per-session metric only add up over these."""
        if self._session_dims is None:
            t = self.table.filter(self.table.session_id.notnull())
            if not self.dimensions or t.count().execute() == 0:
                self._session_dims = list(self.dimensions)
            else:
                per = t.group_by("session_id").aggregate(**{f"n{i}": t[d].nunique() for i, d in enumerate(self.dimensions)})
                worst = per.aggregate(**{f"n{i}": per[f"n{i}"].max() for i in range(len(self.dimensions))}).execute().iloc[0]
                self._session_dims = [d for i, d in enumerate(self.dimensions) if int(worst[f"n{i}"]) <= 1]
        return self._session_dims


def _resolve_columns(table: ibis.Table, config: Config, source: str) -> dict[str, str | None]:
    cols = list(table.columns)
    lower = {c.lower(): c for c in cols}
    mapping: dict[str, str | None] = {}
    for std, aliases in ALIASES.items():
        explicit = getattr(config.columns, std)
        if explicit is not None:
            if explicit not in cols:
                raise InputError(
                    f"{source}: columns.{std} names {explicit!r}, which is not a column"
                    f"{did_you_mean(explicit, cols)}; columns are: {', '.join(cols[:30])}"
                )
            mapping[std] = explicit
            continue
        mapping[std] = next((lower[a] for a in aliases if a in lower), None)
    for std in REQUIRED:
        if mapping[std] is None:
            raise InputError(
                f"{source}: no {std!r} column (looked for {', '.join(ALIASES[std][:6])}); columns are: "
                f"{', '.join(cols[:30]) or 'none'}. Map yours in sleuth.yaml: columns: {{{std}: <column>}}"
            )
    return mapping


def _as_text(col: ibis.Value) -> ibis.Value:
    return col if col.type().is_string() else col.cast("string")


def numeric_column(table: ibis.Table, name: str, source: str, what: str = "revenue") -> ibis.Value:
    """The column as float64; text that is not a number is an error naming the first bad row."""
    col = table[name]
    if col.type().is_numeric():
        return col.cast("float64")
    if col.type().is_string():
        parsed = col.strip().try_cast("float64")
        bad = (
            table.mutate(_row=ibis.row_number() + 1, _v=col, _p=parsed)
            .filter(lambda t: t._v.notnull() & (t._v.strip() != "") & t._p.isnull())
            .order_by("_row").select("_row", "_v").limit(1).execute()
        )
        if len(bad):
            row, val = int(bad["_row"].iloc[0]), bad["_v"].iloc[0]
            raise InputError(
                f"{source}: column {name!r} row {row}: {val!r} is not a number; "
                f"{what} must be numeric (no currency signs or text)"
            )
        return parsed
    raise InputError(f"{source}: column {name!r} has type {col.type()}; {what} must be numeric")


def _auto_dimensions(table: ibis.Table, exclude: set[str], only: list[str] | None = None) -> list[str]:
    cands = [
        c for c, t in table.schema().items()
        if c not in exclude and (t.is_string() or t.is_boolean())
        and not _ID_LIKE.search(c) and (only is None or c in only)
    ]
    if not cands:
        return []
    stats = table.aggregate(
        [table[c].approx_nunique().name(f"n{i}") for i, c in enumerate(cands)]
        + [table[c].count().name(f"c{i}") for i, c in enumerate(cands)]
        + [table.count().name("rows")]
    ).execute().iloc[0]
    rows = int(stats["rows"])
    keep = []
    for i, c in enumerate(cands):
        n, nonnull = int(stats[f"n{i}"]), int(stats[f"c{i}"])
        if 2 <= n <= 60 and nonnull >= 0.01 * rows and n <= 0.5 * max(nonnull, 1):
            keep.append(c)
    return keep


def load_events(source: Any, config: Config | None = None, con: Any = None) -> Events:
    """Open ``source`` and normalise it (Contract 1). Raises :class:`InputError` on bad input."""
    config = config or Config()
    read_notes: list[str] = []
    backend, raw, name = open_source(source, con, read_notes, spark=config.spark)
    junk = [c for c in raw.columns if c.strip().lower() in _JUNK_COLUMNS]
    if len(junk) == len(raw.columns):
        raise InputError(f"{name}: no named columns; the first line must be a header such as 'timestamp,event'")
    raw = raw.drop(*junk)
    from ..sessions.source import is_session_export, nested_tables

    nested, fmt = None, None
    if not config.explode and is_session_export(raw, config.sessions.fields):
        # a nested session export (GA360 ga_sessions): one event per hit, the tables kept for the sessions stage
        nested = nested_tables(raw, config, name, backend, materialize=not name.lower().endswith((".parquet", ".pq")))
        raw = nested.event_stream()
    else:
        fmt = recognise(raw, config, name)  # GA4, Segment, Snowplow, Amplitude, Mixpanel: by their columns
        if fmt is not None:
            raw, config, read_notes = fmt.table, fmt.config, [*read_notes, *fmt.notes]
    raw, notes = flatten(raw, config.explode, name)
    notes = [*read_notes, *notes]
    if nested is not None:
        notes = [f"a nested session export: one event per hit ({len(nested.context)} context fields)", *nested.notes, *notes]
    mapping = _resolve_columns(raw, config, name)

    try:
        n = int(raw.count().execute())
    except InputError:
        raise
    except Exception as err:
        msg = str(err).strip().splitlines()[0][:300]
        raise InputError(f"{name}: cannot read the events ({msg}); check the file format") from None
    if n == 0:
        raise InputError(f"{name}: no events (the source has a header but no rows); add at least one event row")

    std = {}
    std["timestamp"] = parse_timestamp(raw, mapping["timestamp"], name)
    std["event"] = _as_text(raw[mapping["event"]])
    for key in ("session_id", "user_id"):
        std[key] = _as_text(raw[mapping[key]]) if mapping[key] else ibis.null().cast("string")
    std["revenue"] = numeric_column(raw, mapping["revenue"], name) if mapping["revenue"] else ibis.null().cast("float64")
    std["property"] = (
        _as_text(raw[mapping["property"]]).fill_null(DEFAULT_PROPERTY) if mapping["property"]
        else ibis.literal(DEFAULT_PROPERTY)
    )
    used = {c for c in mapping.values() if c}
    others = {c: raw[c] for c in raw.columns if c not in used and c not in std}

    if config.dimensions is None:
        # a source column named like a standard one is not a dimension; a known format offers its own
        dimensions = _auto_dimensions(raw, used | set(std), fmt.dimensions if fmt else None)
        if dimensions:
            notes.append(f"dimensions found automatically: {', '.join(dimensions)}")
    else:
        dimensions = list(config.dimensions)
        for d in dimensions:
            if d not in raw.columns:
                raise InputError(
                    f"{name}: dimension {d!r} is not a column{did_you_mean(d, list(raw.columns))}; "
                    f"columns are: {', '.join(list(raw.columns)[:30])}. Fix 'dimensions' in sleuth.yaml"
                )
            if d in std:
                raise InputError(f"{name}: dimension {d!r} is a standard column; list attributes such as device or country")
    for d in dimensions:
        others[d] = _as_text(raw[d]).fill_null(NONE_VALUE)

    table = raw.select(**{k: v.name(k) for k, v in std.items()}, **{k: v.name(k) for k, v in others.items()})
    table = table.filter(table.timestamp.notnull())
    table = table.mutate(event=table.event.fill_null(NONE_VALUE))

    derived = False
    if mapping["session_id"] is None:
        if mapping["user_id"] is not None:
            table = sessionize(table, config.session_timeout_minutes)
            derived = True
            notes.append(f"sessions derived from user_id by {config.session_timeout_minutes} minutes of inactivity")
        else:
            notes.append("no session_id or user_id: session and user metrics are not available")
    try:
        table = table.cache()
    except Exception as err:
        msg = str(err).strip().splitlines()[0][:300]
        raise InputError(f"{name}: cannot read the events ({msg})") from None
    if int(table.count().execute()) == 0:
        raise InputError(f"{name}: column {mapping['timestamp']!r} is empty in every row; every event needs a time")
    table, span_notes = bounded_span(table, name, config.max_gap_days)
    notes += span_notes
    notes += empty_measures(table, mapping)
    return Events(con=backend, table=table, source=name, dimensions=dimensions, mapping=mapping,
                  sessions_derived=derived, notes=notes, format=fmt.format if fmt else None, nested=nested)


__all__ = ["Events", "load_events", "numeric_column", "ALIASES", "NONE_VALUE", "DEFAULT_PROPERTY"]
