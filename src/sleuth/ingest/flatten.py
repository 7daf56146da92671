"""Flatten nested records: structs become dotted columns, chosen lists explode into rows.

Property bags differ from event to event; DuckDB unions their keys into one struct type, so
flattening needs no list of keys in advance.
"""
from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt

from ..errors import InputError


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


def flatten(table: ibis.Table, explode: list[str], source: str) -> tuple[ibis.Table, list[str]]:
    """Return the flat table and notes about what was left out."""
    notes: list[str] = []
    exploded: set[str] = set()
    for _ in range(4):  # explode, then flatten what the elements contain; nested lists up to 4 deep
        cols = _flat_columns(table)
        table = table.select(**{k: v.name(k) for k, v in cols.items()})
        todo = [c for c in explode if c in table.columns and isinstance(table[c].type(), dt.Array)]
        if not todo:
            break
        for col in todo:
            # keep_empty: an event without the list stays one row (its element columns are null)
            table = table.unnest(col, keep_empty=True)
            exploded.add(col)
    # an exploded list of objects is flattened to 'col.field' columns, so 'col' itself is gone
    missing = [c for c in explode if c not in exploded and c not in table.columns]
    if missing:
        raise InputError(
            f"{source}: 'explode' names {missing[0]!r}, which is not a list field; "
            f"list fields are: {', '.join(c for c in table.columns if isinstance(table[c].type(), dt.Array)) or 'none'}"
        )
    lists = [c for c in table.columns if isinstance(table[c].type(), (dt.Array, dt.Map))]
    if lists:
        notes.append(f"list fields left out (name them in 'explode' to use them): {', '.join(lists)}")
        table = table.drop(*lists)
    return table, notes
