"""Flatten nested records: structs become dotted columns, chosen lists become tables of their own.

Property bags differ from event to event; DuckDB unions their keys into one struct type, so
flattening needs no list of keys in advance.

Lists named under ``explode`` form a tree (``pages`` is the parent of ``pages.events`` and of
``pages.forms``). Each list becomes its own table of elements (:func:`list_tables`), carrying its
parents' fields and keys: ``_row`` (the record) and ``<list>#`` (the element's position in its
list). Sibling lists are never unnested together, which would pair every event of a page with
every form of it (a cross product that invents rows). The flat event stream (:func:`flatten`) is
the union of the elements that have no exploded children, plus the records and elements whose
exploded lists are all empty, so every nested element is one row, once.
"""
from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt

from ..errors import InputError

ROW = "_row"  #: the key of a top-level record in every list table


def index_column(path: str) -> str:
    """The column holding an element's position in its list ``path``."""
    return f"{path}#"


def _flat_columns(table: ibis.Table) -> dict[str, ibis.Value]:
    out: dict[str, ibis.Value] = {}

    def walk(expr: ibis.Value, name: str) -> None:
        typ = expr.type()
        if isinstance(typ, dt.Struct):
            for field in typ.names:
                walk(expr[field], f"{name}.{field}")
        elif isinstance(typ, dt.JSON):
            out[name] = expr.cast("string")
        else:
            out[name] = expr

    for col in table.columns:
        walk(table[col], col)
    return out


def _flat(table: ibis.Table) -> ibis.Table:
    cols = _flat_columns(table)
    return table.select(**{k: v.name(k) for k, v in cols.items()})


def _lists(table: ibis.Table) -> list[str]:
    return [c for c in table.columns if isinstance(table[c].type(), (dt.Array, dt.Map))]


def _parent(path: str, paths: list[str]) -> str:
    """The nearest exploded ancestor of ``path`` ('' for the top level)."""
    best = ""
    for p in paths:
        if p != path and path.startswith(p + ".") and len(p) > len(best):
            best = p
    return best


def list_tables(table: ibis.Table, explode: list[str], source: str, keys: bool = True) -> dict[str, ibis.Table]:
    """One flat table per exploded list, keyed by ``''`` for the top-level records.

    Each table has its own elements (an empty or missing list gives no rows), its ancestors'
    scalar fields and the keys ``_row`` (unless ``keys`` is false) and ``<ancestor>#``, so tables
    join on those keys and their row counts are the element counts of the nested source.
    """
    paths = sorted(dict.fromkeys(explode), key=lambda p: p.count("."))
    root = table if ROW in table.columns or not keys else table.mutate(**{ROW: ibis.row_number()})
    out: dict[str, ibis.Table] = {"": _flat(root)}
    for path in paths:
        parent = out.get(_parent(path, paths))
        if parent is None or path not in parent.columns or not isinstance(parent[path].type(), dt.Array):
            # an exploded list of objects is flattened to 'col.field' columns, so 'col' itself is gone
            known = parent if parent is not None else out[""]
            lists = ", ".join(_lists(known)) or "none"
            kind = f"has type {parent[path].type()}" if parent is not None and path in parent.columns else "is not a list field"
            raise InputError(f"{source}: 'explode' names {path!r}, which {kind}; list fields are: {lists}")
        out[path] = _flat(_unnest(parent, path))
    return out


def _unnest(table: ibis.Table, path: str) -> ibis.Table:
    """One row per element of the list ``path``, with its position in ``<path>#``.

    On DuckDB through ``generate_subscripts`` beside ``UNNEST``: ibis's portable form zips each
    list with a range first, which is about 40 times slower there.
    """
    try:
        con = table._find_backend()
    except Exception:
        con = None
    if getattr(con, "name", "") != "duckdb":
        return table.unnest(path, offset=index_column(path), keep_empty=False)
    q = lambda name: '"' + name.replace('"', '""') + '"'  # noqa: E731
    element = f"{path}__element__"
    sql = (f"SELECT p.*, UNNEST(p.{q(path)}) AS {q(element)}, generate_subscripts(p.{q(path)}, 1) - 1 "
           f"AS {q(index_column(path))} FROM ({ibis.to_sql(table, dialect='duckdb')}) AS p")
    out = con.sql(sql)
    return out.drop(path).rename({path: element}).relocate(path, before=index_column(path))


def _childless(table: ibis.Table, children: list[str]) -> ibis.Table:
    """Rows whose exploded child lists are all empty or missing."""
    for c in children:
        table = table.filter(table[c].isnull() | (table[c].length() == 0))
    return table


def flatten(table: ibis.Table, explode: list[str], source: str) -> tuple[ibis.Table, list[str]]:
    """Return the flat table and notes about what was left out."""
    notes: list[str] = []
    if not explode:
        flat = _flat(table)
    else:
        tables = list_tables(table, explode, source)
        paths = [p for p in tables if p]
        parts = []
        for path, t in tables.items():
            children = [p for p in paths if _parent(p, paths) == path]
            # keys and the exploded lists themselves (their elements are rows of their own tables)
            drop = [c for c in t.columns if c == ROW or c.endswith("#")
                    or (c in paths and isinstance(t[c].type(), dt.Array))]
            parts.append(_childless(t, children).drop(*drop))
        schema: dict[str, dt.DataType] = {}
        for part in parts:
            for name, typ in part.schema().items():
                schema.setdefault(name, typ)
        parts = [p.select(**{c: (p[c] if c in p.columns else ibis.null().cast(typ)).name(c) for c, typ in schema.items()})
                 for p in parts]
        flat = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
    lists = _lists(flat)
    if lists:
        notes.append(f"list fields left out (name them in 'explode' to use them): {', '.join(lists)}")
        flat = flat.drop(*lists)
    return flat, notes
