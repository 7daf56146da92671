"""Sessions from any source, as four tables joined by a session key, computed in the engine.

- ``sessions``: ``sid`` (the key), ``session_id`` and ``user_id`` as the source names them, ``key``
  (unique: GA360's ``fullVisitorId.visitId``), ``start`` (UTC), ``property`` and the context
  (device, browser, os, country, channel, or the event stream's dimensions)
- ``hits``: ``sid``, ``seq``, ``off`` (seconds since the session started), ``kind`` (page, event,
  conversion), ``page``, ``event``, ``revenue``, ``latency`` (ms), ``ajax``, ``bytes``
- ``forms``: ``sid``, ``fill`` (seconds); ``clicks``: ``sid``, ``off``

A nested export (GA360 ``ga_sessions`` names by default, others mapped under ``sessions.fields``)
is read through :func:`sleuth.ingest.flatten.list_tables`: each nested list is its own table, so
sibling lists (a page's events, forms and clicks) are never multiplied together. A flat event
stream (Contract 1) becomes the same tables: each event is a hit and an interaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from ..config import Config, SessionFields
from ..errors import InputError
from ..ingest.flatten import index_column, list_tables
from ..ingest.timestamps import parse_timestamp

#: event names that are conversions, whatever the source
CONVERSIONS = ("purchase", "transaction", "Order Completed", "order_completed", "checkout_complete")
SID = "__sid"
PAGE_EVENTS = ("page_view", "pageview", "page", "screen_view", "Page Viewed", "Screen Viewed")
CONTEXT = ("device", "browser", "os", "country", "channel")
#: where a flat event stream keeps page facts, when ``sessions.fields`` does not say
FLAT_ALIASES = {
    "page": ("page", "page_path", "pagepath", "page.path", "context.page.path", "properties.path",
             "page_location", "screen_name"),
    "latency": ("latency_ms", "page_load_time", "pageloadtime", "load_time_ms", "latency"),
    "ajax_calls": ("ajax_calls", "ajaxcalls", "ajax"),
    "bytes": ("bytes", "page_bytes", "transfer_size", "transfer_bytes"),
    "form_fill": ("form_fill_ms", "fill_time_ms", "filltime", "form_fill_time"),
}


@dataclass
class SessionTables:
    """The four tables (cached in the engine) and what was skipped or missing on the way."""

    con: Any
    sessions: ibis.Table
    hits: ibis.Table
    forms: ibis.Table | None
    clicks: ibis.Table | None
    context: list[str]
    source: str
    nested: bool
    notes: list[str] = field(default_factory=list)
    has: set[str] = field(default_factory=set)  # page facts the source has: latency, ajax, bytes, page
    cached: list[Any] = field(default_factory=list, repr=False)  # engine tables behind hits, forms, clicks
    events_inside: bool = False  # events are a list inside each page (they share its ``seq``)

    def release(self) -> None:
        """Free the engine's copies of the hits (and their forms and clicks) once features and
        page facts are computed; ``hits``, ``forms`` and ``clicks`` are unusable afterwards."""
        for t in self.cached:
            t.release()
        self.cached.clear()

    def event_stream(self) -> ibis.Table:
        """Contract 1 events, one per hit: page hits are ``page_view``, conversions ``purchase``."""
        s, h = self.sessions, self.hits
        j = h.join(s, h.sid == s.sid)
        name = ibis.cases((j.kind == "page", "page_view"), (j.kind == "conversion", "purchase"),
                          else_=j.event.fill_null("event"))
        ts = add_seconds(j.start, j.off)
        return j.select(timestamp=ts, event=name, session_id=j.key, user_id=j.user_id, revenue=j.revenue,
                        **{c: j[c] for c in self.context}, page=j.page)


def add_seconds(ts: ibis.Value, seconds: ibis.Value) -> ibis.Value:
    """``ts`` plus ``seconds`` (float), at millisecond precision, as a UTC timestamp."""
    ms = ((epoch_s(ts) + seconds) * 1000).round().cast("int64")
    return ms.as_timestamp("ms").cast("timestamp('UTC')")


def epoch_s(ts: ibis.Value) -> ibis.Value:
    """Seconds since the epoch with milliseconds, on every engine: ibis types ``epoch_seconds``
    as whole seconds, while DuckDB's returns the fraction too (floored away here)."""
    return ts.epoch_seconds().cast("float64").floor() + ts.millisecond().cast("float64") / 1000


def is_session_export(raw: ibis.Table, fields: SessionFields) -> bool:
    """A nested export: its hits field is a list and it names a session or its start."""
    top = fields.hits.split(".")[0]
    return top in raw.columns and isinstance(raw[top].type(), (dt.Array, dt.JSON, dt.String)) and (
        fields.session_id.split(".")[0] in raw.columns or fields.start.split(".")[0] in raw.columns)


def _explicit(fields: SessionFields) -> set[str]:
    return set(fields.model_fields_set)


def _check_list(table: ibis.Table, path: str, key: str, source: str) -> None:
    if path not in table.columns:
        return
    typ = table[path].type()
    if not isinstance(typ, dt.Array):
        raise InputError(f"{source}: field {path!r} has type {typ}, not a list; sessions.fields.{key} must "
                         f"name the list of {key} (a JSON array or a Parquet list)")


def _number(table: ibis.Table, path: str, key: str, source: str, shown: str | None = None) -> ibis.Value:
    """A numeric field as float64; text that is not a number is an error naming the field."""
    col = table[path]
    path = shown or path
    typ = col.type()
    if typ.is_numeric() or typ.is_boolean():
        return col.cast("float64")
    if typ.is_string():
        parsed = col.strip().try_cast("float64")
        bad = table.filter(col.notnull() & (col.strip() != "") & parsed.isnull()).select(v=col).limit(1).execute()
        if len(bad):
            raise InputError(f"{source}: field {path!r} holds {bad['v'].iloc[0]!r}, which is not a number; "
                             f"sessions.fields.{key} must name a numeric field")
        return parsed
    raise InputError(f"{source}: field {path!r} has type {typ}; sessions.fields.{key} must name a numeric field")


def _list_field(col: ibis.Value, path: str, leaf: str, key: str, leaf_key: str, source: str,
                explicit: set[str]) -> ibis.Value | None:
    """The list ``path`` reduced to one field of its elements (``hits.forms`` -> its ``fillTime``s)."""
    if not leaf.startswith(path + "."):
        raise InputError(f"{source}: sessions.fields.{leaf_key} ({leaf!r}) must be a field of {key} ({path!r})")
    parts = leaf[len(path) + 1:].split(".")

    typ = col.type().value_type
    for p in parts:
        if not isinstance(typ, dt.Struct) or p not in typ.names:
            if leaf_key in explicit or key in explicit:
                raise InputError(f"{source}: the elements of {path!r} have no field {leaf!r}; "
                                 f"map yours under sessions.fields.{leaf_key}")
            return None  # GA360's default names: this export has no such list after all
        typ = typ[p]

    def pick(e):
        for p in parts:
            e = e[p]
        return e

    return col.map(pick)


def _offset(table: ibis.Table, path: str, start, key: str, source: str, shown: str) -> ibis.Value:
    """Seconds since the session started: from milliseconds since the start, or from timestamps."""
    typ = table[path].type()
    if typ.is_numeric():
        top = table[path].abs().max().execute()
        if top is None or float(top) < 1e10:  # milliseconds since the start (GA360 hits.time)
            return table[path].cast("float64") / 1000
    if typ.is_numeric() or typ.is_string() or typ.is_timestamp() or typ.is_date():
        try:
            return epoch_s(parse_timestamp(table, path, source)) - epoch_s(start(table))
        except InputError:
            raise InputError(f"{source}: field {shown!r} holds values that are neither milliseconds since the "
                             f"session started nor times; check sessions.fields.{key}") from None
    raise InputError(f"{source}: field {shown!r} has type {typ}; sessions.fields.{key} must be milliseconds "
                     "since the session started, or a time")


def nested_tables(raw: ibis.Table, config: Config, source: str, con: Any, materialize: bool = False) -> SessionTables:
    """The four tables from a nested session export.

    Each table is one pass over the source (``materialize``: read it into the engine once
    first, for formats such as JSON that are slow to parse again). Rows join on ``sid``, a 64-bit
    hash of the session's key computed from the same fields in every table, so no numbering
    has to agree between passes.
    """
    f = config.sessions.fields
    explicit = _explicit(f)
    notes: list[str] = []

    def present(table: ibis.Table, key: str) -> str | None:
        path = getattr(f, key)
        if path is None:
            return None
        if path in table.columns:
            return path
        if key in explicit:
            raise InputError(f"{source}: sessions.fields.{key} names {path!r}, which is not a field of the "
                             f"export; fields are: {', '.join(list(table.columns)[:30])}")
        return None

    _check_list(raw, f.hits.split(".")[0], "hits", source)
    cached = raw.cache() if materialize else None
    base = cached if cached is not None else raw
    root = list_tables(base, [], source, keys=False)[""]
    for key in ("session_id", "start"):
        if getattr(f, key) not in root.columns:
            raise InputError(f"{source}: no field {getattr(f, key)!r} for the session's {key.replace('_', ' ')}; "
                             f"map yours under sessions.fields.{key}; fields are: {', '.join(list(root.columns)[:30])}")
    start = parse_timestamp(root, f.start, f"{source}: field")
    user_path = present(root, "user_id")

    sid_text = root[f.session_id].cast("string")
    user = root[user_path].cast("string") if user_path else ibis.null().cast("string")
    key = ibis.ifelse(user.isnull(), sid_text, user.concat(".", sid_text))
    # the key of every table: a hash of the session's own fields, computed once per session and
    # carried into its hits by the unnest (so no numbering of rows has to agree between passes)
    root = root.mutate(**{SID: key.concat("@", root[f.start].cast("string")).hash()})

    # ---- sessions (scalar fields only: reading the hits lists here would decode them twice)
    ctx = {k: root[p].cast("string").fill_null("(none)") for k in CONTEXT if (p := present(root, k))}
    sessions = root.select(sid=root[SID], session_id=sid_text, user_id=user, key=key, start=start,
                           property=ibis.literal("default"), **ctx).cache()
    counts = sessions.aggregate(n=sessions.count(), keys=sessions.sid.nunique(),
                                no_start=sessions.start.isnull().sum()).execute().iloc[0]
    if int(counts["no_start"]) == int(counts["n"]):
        raise InputError(f"{source}: field {f.start!r} is empty in every session; every session needs its start time")
    if int(counts["no_start"]):
        notes.append(f"{int(counts['no_start']):,} sessions without a start time ({f.start}) skipped")
    if int(counts["keys"]) < int(counts["n"]):
        notes.append(f"{int(counts['n']) - int(counts['keys']):,} sessions repeat another's key and start: counted once")
    sessions = sessions.filter(sessions.start.notnull())

    # ---- which lists the hits hold (forms and clicks ride along in the hits pass)
    # only the key, the start and the hits go through the unnest (it repeats the parent's columns per hit)
    tables = list_tables(root.select(SID, f.start, f.hits), [f.hits], source, keys=False)
    hits = tables[f.hits]
    inner: dict[str, str] = {}
    for key, leaf in (("forms", "form_fill"), ("clicks", "click_time"), ("events", None)):
        path = getattr(f, key)
        if path and path.startswith(f.hits + ".") and path in hits.columns:
            _check_list(hits, path, key, source)
            inner[key] = path
        elif path and key in explicit:
            raise InputError(f"{source}: sessions.fields.{key} names {path!r}, which is not a list of the export")
    if f.hit_time not in hits.columns:
        raise InputError(f"{source}: no field {f.hit_time!r} for the hits' times; map yours under sessions.fields.hit_time")

    # ---- hits: one pass into the engine, then typed views over it
    keep = {"sid": hits[SID], "seq": hits[index_column(f.hits)], "_st": hits[f.start], "_time": hits[f.hit_time]}
    on_hits = ("page", "revenue", "latency", "ajax_calls", "bytes")
    wanted = {k: present(hits, k) if k in on_hits or "events" not in inner else None
              for k in ("hit_type", "event", *on_hits)}  # events inside the hits: their names are theirs
    keep.update({f"_{k}": hits[p] for k, p in wanted.items() if p})
    for key, leaf in (("forms", "form_fill"), ("clicks", "click_time")):
        if key in inner and getattr(f, leaf):
            picked = _list_field(hits[inner[key]], inner[key], getattr(f, leaf), key, leaf, source, explicit)
            if picked is not None:
                keep[f"_{key}"] = picked
    hc = hits.select(**keep).cache()
    timed = hc.aggregate(n=hc.count(), timed=hc._time.count()).execute().iloc[0]
    if int(timed["timed"]) == 0:
        raise InputError(f"{source}: field {f.hit_time!r} is empty in every hit; every hit needs its time")
    start_ts = lambda t: parse_timestamp(t, "_st", source)  # noqa: E731  (only for absolute hit times)
    off = _offset(hc, "_time", start_ts, "hit_time", source, f.hit_time)
    kind = ibis.literal("page")
    if wanted["hit_type"]:
        typ = hc._hit_type.cast("string").upper()
        kind = ibis.cases((typ.isin(["PAGE", "APPVIEW", "SCREENVIEW"]), "page"),
                          (typ == "TRANSACTION", "conversion"), else_="event")
    event = hc._event.cast("string") if wanted["event"] else ibis.null().cast("string")
    has = {n for k, n in (("page", "page"), ("latency", "latency"), ("ajax_calls", "ajax"), ("bytes", "bytes")) if wanted[k]}
    num = lambda k: _number(hc, f"_{k}", k, source, getattr(f, k)) if wanted[k] else ibis.null().cast("float64")  # noqa: E731
    hit_rows = hc.select(
        sid=hc.sid, seq=hc.seq, off=off, kind=ibis.ifelse(event.isin(list(CONVERSIONS)), "conversion", kind),
        event=event, page=hc._page.cast("string") if wanted["page"] else ibis.null().cast("string"),
        revenue=num("revenue") * f.revenue_scale, latency=num("latency"), ajax=num("ajax_calls"), bytes=num("bytes"))
    if "events" in inner:
        events = list_tables(root.select(SID, f.start, f.hits), [f.hits, inner["events"]], source,
                             keys=False)[inner["events"]]
        hit_rows = hit_rows.union(_nested_events(events, f), distinct=False).cache()  # it reads the source again
        extra_cache = [hit_rows]
    else:
        extra_cache = []
    stats = hit_rows.aggregate(n=hit_rows.count(), bad=hit_rows.off.isnull().sum()).execute().iloc[0]
    if int(stats["bad"]):
        if int(stats["bad"]) == int(stats["n"]):
            raise InputError(f"{source}: field {f.hit_time!r} is empty in every hit; every hit needs its time")
        notes.append(f"{int(stats['bad']):,} hits without a time ({f.hit_time}) skipped")
        hit_rows = hit_rows.filter(hit_rows.off.notnull())

    # ---- forms and clicks, unnested from the hits pass
    forms = clicks = None
    if "_forms" in hc.columns:
        t = hc.select("sid", "_forms").unnest("_forms")
        forms = t.select(sid=t.sid, fill=_number(t, "_forms", "form_fill", source, f.form_fill) / 1000)
        forms = forms.filter(forms.fill.notnull())
    if "_clicks" in hc.columns:
        t = hc.select("sid", "_st", "_clicks").unnest("_clicks")
        clicks = t.select(sid=t.sid, off=_offset(t, "_clicks", start_ts, "click_time", source, f.click_time))
        clicks = clicks.filter(clicks.off.notnull())
    missing = [k for k, ok in (("latency", "latency" in has), ("ajax_calls", "ajax" in has), ("bytes", "bytes" in has),
                               ("forms", forms is not None), ("clicks", clicks is not None)) if not ok]
    if missing:
        notes.append(f"the export has no {', '.join(missing)} (sessions.fields names where they are)")
    if cached is not None:
        cached.release()
    return SessionTables(con=con, sessions=sessions, hits=hit_rows, forms=forms, clicks=clicks,
                         context=list(ctx), source=source, nested=True, notes=notes, has=has, cached=[hc, *extra_cache],
                         events_inside="events" in inner)


def _nested_events(events: ibis.Table, f: SessionFields) -> ibis.Table:
    """Events kept in a list inside each hit (``pages[].events[]``) as hits of their own, on
    their page, at their own time when the list has one (else their page's)."""
    name = f.event if f.event and f.event in events.columns else None
    own_time = f.hit_time.replace(f.hits + ".", f.events + ".", 1)
    t_col = own_time if own_time in events.columns else f.hit_time
    ev = events.select(
        sid=events[SID], seq=events[index_column(f.hits)],
        off=events[t_col].cast("float64") / 1000,
        event=events[name].cast("string") if name else ibis.literal("event"),
        page=events[f.page].cast("string") if f.page and f.page in events.columns else ibis.null().cast("string"),
    )
    kind = ibis.ifelse(ev.event.isin(list(CONVERSIONS)), "conversion", "event")
    return ev.select(sid=ev.sid, seq=ev.seq, off=ev.off, kind=kind, event=ev.event, page=ev.page,
                     revenue=ibis.null().cast("float64"), latency=ibis.null().cast("float64"),
                     ajax=ibis.null().cast("float64"), bytes=ibis.null().cast("float64"))


def _alias(table: ibis.Table, fields: SessionFields, key: str) -> str | None:
    if key in fields.model_fields_set:
        path = getattr(fields, key)
        if path is not None and path not in table.columns:
            raise InputError(f"events: sessions.fields.{key} names {path!r}, which is not a column")
        return path
    lower = {c.lower(): c for c in table.columns}
    return next((lower[a] for a in FLAT_ALIASES.get(key, ()) if a in lower), None)


def flat_tables(events, config: Config) -> SessionTables:
    """The four tables from a flat event stream: each event is a hit and an interaction."""
    f = config.sessions.fields
    t = events.table.filter(events.table.session_id.notnull())
    if int(t.count().execute()) == 0:
        raise InputError(f"{events.source}: no session_id or user_id, so no sessions to describe; "
                         "map one under columns: {session_id: …}")
    dims = list(events.dimensions)
    g = t.group_by("session_id").aggregate(
        start=t.timestamp.min(), user_id=t.user_id.arbitrary(), property=t.property.arbitrary(),
        **{d: t[d].argmin(t.timestamp) for d in dims})
    sessions = g.mutate(sid=ibis.row_number(), key=g.session_id).cache()
    j = t.join(sessions.select("sid", "session_id", st="start"), "session_id")
    page_col, has = _alias(t, f, "page"), set()
    is_page = j.event.isin(list(PAGE_EVENTS))
    kind = ibis.cases((j.event.isin(list(CONVERSIONS)), "conversion"), (is_page, "page"), else_="event")
    cols: dict[str, ibis.Value] = {
        "sid": j.sid, "seq": ibis.row_number().over(group_by=j.sid, order_by=j.timestamp),
        "off": epoch_s(j.timestamp) - epoch_s(j.st), "kind": kind, "event": j.event,
        "page": j[page_col].cast("string") if page_col else ibis.null().cast("string"), "revenue": j.revenue,
    }
    if page_col:
        has.add("page")
    for key, name in (("latency", "latency"), ("ajax_calls", "ajax"), ("bytes", "bytes")):
        col = _alias(t, f, key)
        cols[name] = _number(j, col, key, events.source) if col else ibis.null().cast("float64")
        if col:
            has.add(name)
    hits = j.select(**cols).cache()
    fill_col = _alias(t, f, "form_fill")
    forms = None
    if fill_col:
        ff = j.filter(j[fill_col].notnull())
        forms = ff.select(sid=ff.sid, fill=_number(ff, fill_col, "form_fill", events.source) / 1000).cache()
    clicks = hits.select("sid", "off")  # every event is an interaction
    notes = ["sessions built from the event stream: each event is a hit and an interaction"]
    if not page_col:
        notes.append("no page column (page, page_path, …): page metrics are not available")
    return SessionTables(con=events.con, sessions=sessions, hits=hits, forms=forms, clicks=clicks,
                         context=[d for d in dims], source=events.source, nested=False, notes=notes, has=has)


def session_tables(events, config: Config) -> SessionTables:
    """The tables behind ``events``: those ingest read from a nested export, else built from the stream."""
    nested = getattr(events, "nested", None)
    return nested if nested is not None else flat_tables(events, config)


__all__ = ["SessionTables", "is_session_export", "nested_tables", "flat_tables", "session_tables", "CONVERSIONS"]


#: the engine's share of the sessions stage's memory: 1 M sessions (10 M hits) in 4 GB all told
ENGINE_MEMORY = "2GB"


def bound_memory(con: Any) -> None:
    """Cap the DuckDB connection sleuth opened at ``ENGINE_MEMORY``, spilling to the system's
    temporary folder beyond it (DuckDB's default is 80 % of the machine's memory, and an
    in-memory database spills into the working directory)."""
    import tempfile

    spill = Path(tempfile.gettempdir()) / "sleuth-duckdb"
    con.raw_sql(f"SET memory_limit='{ENGINE_MEMORY}'")
    con.raw_sql(f"SET temp_directory='{str(spill).replace(chr(39), chr(39) * 2)}'")


def session_events(source: Any, config: Config):
    """Events for the sessions stage alone (``sleuth sessions``): a nested export's tables, its
    event stream left unread; an event stream as :func:`sleuth.ingest.load_events` reads it."""
    from ..ingest import Events, load_events
    from ..ingest.readers import open_source

    backend, raw, name = open_source(source)
    if config.explode or not is_session_export(raw, config.sessions.fields):
        return load_events(source, config, con=backend)
    if isinstance(source, (str, Path)) and getattr(backend, "name", "") == "duckdb":
        bound_memory(backend)
    tables = nested_tables(raw, config, name, backend, materialize=not name.lower().endswith((".parquet", ".pq")))
    known = [*tables.context, *(["page"] if "page" in tables.has else [])]
    dims = list(config.dimensions) if config.dimensions is not None else known
    bad = [d for d in dims if d not in known]
    if bad:
        raise InputError(f"{name}: dimension {bad[0]!r} is not a session field here; the sessions stage knows "
                         f"{', '.join(known)} (map others under sessions.fields)")
    mapping = {k: k for k in ("timestamp", "event", "session_id", "user_id", "revenue")}
    return Events(con=backend, table=tables.event_stream(), source=name, dimensions=dims,
                  mapping={**mapping, "property": None}, notes=[f"a nested session export ({len(tables.context)} context fields)"],
                  nested=tables)
