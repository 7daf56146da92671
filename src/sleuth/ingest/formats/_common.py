"""What every format's normaliser shares: the raw table seen by dotted paths, property bags
turned into columns (chosen from the keys that occur, in the engine), and user-agent parsing.

Everything here builds ibis expressions; the only queries are the few small aggregates that
look at which keys a bag holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt

#: most columns one property bag (event parameters, a map of properties) becomes; the most
#: frequent keys win, and a note counts the rest
MAX_BAG_KEYS = 50


def text(col: ibis.Value) -> ibis.Value:
    """A value as text; JSON strings lose their quotes and JSON ``null`` becomes null."""
    typ = col.type()
    if typ.is_string():
        return col
    if isinstance(typ, dt.JSON):
        return ibis.coalesce(col.str, col.cast("string").nullif("null"))
    return col.cast("string")


def number(col: ibis.Value) -> ibis.Value:
    """A value as float64; text or JSON that is not a number becomes null."""
    typ = col.type()
    if typ.is_numeric():
        return col.cast("float64")
    return text(col).try_cast("float64")


class Source:
    """The raw table seen by dotted paths (``device.web_info.browser``): structs are walked,
    maps are looked up by key, lists and maps stay whole at their own path."""

    def __init__(self, table: ibis.Table) -> None:
        self.table = table
        self.top = set(table.columns)
        self.leaves: dict[str, ibis.Value] = {}
        self.maps: dict[str, ibis.Value] = {}
        self._keys: dict[str, list[tuple[str, int]]] = {}

        def walk(expr: ibis.Value, name: str) -> None:
            typ = expr.type()
            if isinstance(typ, dt.Struct):
                for f in typ.names:
                    walk(expr[f], f"{name}.{f}")
                return
            if isinstance(typ, dt.Map):
                self.maps[name] = expr
            self.leaves[name] = expr

        for col in table.columns:
            walk(table[col], col)

    def has(self, path: str) -> bool:
        return path in self.leaves or self._in_map(path) is not None

    def map_keys(self, path: str) -> list[tuple[str, int]]:
        """The keys a map column holds in the data with how many rows hold each, most frequent
        first (one query, made once)."""
        if path not in self._keys:
            u = self.table.select(_k=self.maps[path].keys().unnest())
            stats = u.group_by("_k").aggregate(_n=u.count()).order_by([ibis.desc("_n"), "_k"]).execute()
            self._keys[path] = [(str(k), int(n)) for k, n in zip(stats["_k"], stats["_n"]) if k is not None]
        return self._keys[path]

    def _in_map(self, path: str) -> ibis.Value | None:
        for prefix, expr in self.maps.items():
            key = path[len(prefix) + 1:]
            if path.startswith(prefix + ".") and key in dict(self.map_keys(prefix)):
                return expr.get(key)
        return None

    def get(self, path: str) -> ibis.Value | None:
        """The value at ``path``, or None when the source has no such field (a key of a map
        counts when some row holds it)."""
        if path in self.leaves:
            return self.leaves[path]
        return self._in_map(path)

    def first(self, *paths: str) -> tuple[str, ibis.Value] | tuple[None, None]:
        """The first of ``paths`` the source has."""
        for p in paths:
            v = self.get(p)
            if v is not None:
                return p, v
        return None, None

    def coalesce_text(self, *paths: str) -> tuple[list[str], ibis.Value | None]:
        """Per row, the first non-null of ``paths`` (those the source has) as text, and which
        paths those were."""
        return self._coalesce(paths, text)

    def coalesce_number(self, *paths: str) -> tuple[list[str], ibis.Value | None]:
        return self._coalesce(paths, number)

    def coalesce_time(self, *paths: str) -> tuple[list[str], ibis.Value | None]:
        """Per row, the first non-null of ``paths``; as text when their types differ (a CSV whose
        column is empty reads it as text), which the timestamp parser reads all the same."""
        found = [p for p in paths if p in self.leaves]
        types = {str(self.leaves[p].type()) for p in found}
        return self._coalesce(found, text if len(types) > 1 else (lambda v: v))

    def _coalesce(self, paths, convert) -> tuple[list[str], ibis.Value | None]:
        found = [(p, v) for p in paths if (v := self.get(p)) is not None]
        if not found:
            return [], None
        exprs = [convert(v) for _, v in found]
        return [p for p, _ in found], exprs[0] if len(exprs) == 1 else ibis.coalesce(*exprs)


class Format:
    """A known export shape: recognised by its columns, normalised by ibis expressions."""

    name: str
    #: what the note calls it ("GA4 BigQuery export")
    title: str

    def matches(self, src: Source) -> bool:
        raise NotImplementedError

    def prepare(self, table: ibis.Table) -> ibis.Table:
        """Helper columns the normaliser reads; the same table when it needs none."""
        return table

    def normalise(self, src: Source) -> Parts:
        raise NotImplementedError


@dataclass
class Parts:
    """What a normaliser makes of a source; :func:`sleuth.ingest.formats.recognise` turns it into
    one table."""

    #: Contract 1 columns the format fills (timestamp, event, session_id, user_id, revenue, property)
    standard: dict[str, ibis.Value]
    #: dimension candidates by friendly name (device, os, browser, country, ...), as text
    dimensions: dict[str, ibis.Value] = field(default_factory=dict)
    #: further columns it computes (``param.page_title``, ``items.count``)
    extra: dict[str, ibis.Value] = field(default_factory=dict)
    #: source paths the columns above stand for; they are not passed through again
    consumed: set[str] = field(default_factory=set)
    #: what it did, for the note
    said: list[str] = field(default_factory=list)
    def take_dimensions(self, src: Source, candidates: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        """For each ``(friendly name, source paths in order of preference)``, the first path the
        source has becomes that dimension, as text."""
        for name, paths in candidates:
            path, expr = src.first(*paths)
            if expr is not None:
                self.dimensions[name] = text(expr)
                self.consumed.add(path)

    #: a column naming each message; a message written to two tables and read from both
    #: (Segment's ``tracks`` and ``order_completed``) is kept once
    unique_on: str | None = None


# ---------------------------------------------------------------- property bags

_NUMERIC_FIELDS = ("int_value", "float_value", "double_value")


def key_value_bag(table: ibis.Table, col: str, prefix: str, limit: int = MAX_BAG_KEYS) -> tuple[dict[str, ibis.Value], int]:
    """A GA4-style list of ``{key, value: {string_value, int_value, float_value, double_value}}``
    as one column per key that occurs (``prefix + key``), most frequent first.

    Each key's column type comes from the value fields it uses in the data: only text -> text,
    only whole numbers -> int64, any other numbers -> float64, text and numbers -> text.
    Returns the columns and how many further keys were left out."""
    typ = table[col].type()
    if not (isinstance(typ, dt.Array) and isinstance(typ.value_type, dt.Struct)):
        return {}, 0
    elem = typ.value_type
    if "key" not in elem.names or "value" not in elem.names or not isinstance(elem["value"], dt.Struct):
        return {}, 0
    fields = [f for f in ("string_value", *_NUMERIC_FIELDS) if f in elem["value"].names]
    u = table.select(_e=table[col].unnest())
    u = u.select(key=u._e.key, **{f: u._e.value[f].notnull().cast("int64") for f in fields})
    u = u.filter(u.key.notnull())
    stats = (u.group_by("key").aggregate(_n=u.count(), **{f: u[f].sum() for f in fields})
             .order_by([ibis.desc("_n"), "key"]).execute())
    keys = [(str(row.key), [f for f in fields if int(getattr(row, f) or 0) > 0])
            for row in stats.itertuples(index=False)]
    keys = [(k, used) for k, used in keys if used]  # a key whose values are all null says nothing
    # each value is found by the key's position in the event's list of keys, which is made once
    # per row by ``key_lists`` (2-3 times faster in DuckDB than filtering the list once per key)
    names = table[KEYS + col] if KEYS + col in table.columns else table[col].map(lambda e: e.key)
    out: dict[str, ibis.Value] = {}
    for key, used in keys[:limit]:
        out[prefix + key] = _typed(table[col][names.index(key)]["value"], used)
    return out, len(keys) - len(out)


#: prefix of the helper columns ``key_lists`` adds (never passed through)
KEYS = "__keys."


def key_lists(table: ibis.Table, cols: list[str]) -> ibis.Table:
    """The table with, for each key/value list in ``cols``, a column listing its keys."""
    have = [c for c in cols if c in table.columns and isinstance(table[c].type(), dt.Array)
            and isinstance(table[c].type().value_type, dt.Struct) and "key" in table[c].type().value_type.names]
    return table.mutate(**{KEYS + c: table[c].map(lambda e: e.key) for c in have}) if have else table


def _typed(value: ibis.Value, used: list[str]) -> ibis.Value:
    numeric = [f for f in used if f in _NUMERIC_FIELDS]
    if used == ["string_value"]:
        return text(value["string_value"])
    if numeric == used:
        if used == ["int_value"]:
            v = value["int_value"]
            return v.cast("int64") if v.type().is_integer() else text(v).try_cast("int64")
        parts = [number(value[f]) for f in numeric]
        return parts[0] if len(parts) == 1 else ibis.coalesce(*parts)
    parts = [text(value[f]) for f in used]
    return ibis.coalesce(*parts)


def map_bag(src: Source, path: str, limit: int = MAX_BAG_KEYS) -> tuple[dict[str, ibis.Value], int]:
    """A map column (how DuckDB reads a JSON object whose keys vary from event to event) as
    one text column ``<path>.<key>`` per key that occurs, most frequent first."""
    keys = [k for k, _ in src.map_keys(path)]
    expr = src.maps[path]
    return {f"{path}.{k}": text(expr.get(k)) for k in keys[:limit]}, max(0, len(keys) - limit)


# ---------------------------------------------------------------- user agents

def browser_from_agent(ua: ibis.Value) -> ibis.Value:
    """The browser family of a user-agent string (the order matters: Edge and Opera say Chrome too)."""
    return ibis.cases(
        (ua.re_search(r"Edg(e|A|iOS)?/"), "Edge"),
        (ua.re_search(r"OPR/|Opera"), "Opera"),
        (ua.re_search(r"SamsungBrowser/"), "Samsung Internet"),
        (ua.re_search(r"Firefox/|FxiOS/"), "Firefox"),
        (ua.re_search(r"Chrome/|CriOS/"), "Chrome"),
        (ua.re_search(r"Safari/"), "Safari"),
        else_=ibis.ifelse(ua.isnull(), ibis.null().cast("string"), "Other"),
    )


def os_from_agent(ua: ibis.Value) -> ibis.Value:
    return ibis.cases(
        (ua.re_search(r"iPhone|iPad|iPod"), "iOS"),
        (ua.re_search(r"Android"), "Android"),
        (ua.re_search(r"Windows"), "Windows"),
        (ua.re_search(r"Mac OS X|Macintosh"), "macOS"),
        (ua.re_search(r"CrOS"), "Chrome OS"),
        (ua.re_search(r"Linux"), "Linux"),
        else_=ibis.ifelse(ua.isnull(), ibis.null().cast("string"), "Other"),
    )


def device_from_agent(ua: ibis.Value) -> ibis.Value:
    return ibis.cases(
        (ua.re_search(r"iPad|Tablet"), "tablet"),
        (ua.re_search(r"Mobi|iPhone|Android"), "mobile"),
        else_=ibis.ifelse(ua.isnull(), ibis.null().cast("string"), "desktop"),
    )
