"""Parse a timestamp column into UTC, whatever it holds.

ISO 8601 strings with or without a zone (naive means UTC) at any precision, dates, native
timestamp types, and epoch seconds, milliseconds, microseconds or nanoseconds (by magnitude).
"""
from __future__ import annotations

import ibis

from ..errors import InputError

UTC = "timestamp('UTC')"


@ibis.udf.scalar.builtin(name="timestamp_millis")
def _spark_timestamp_millis(millis: int) -> ibis.dtype("timestamp"):  # noqa: F821
    """Spark SQL's own ``timestamp_millis`` (ibis compiles epoch ms only at second precision there)."""


@ibis.udf.scalar.builtin(name="to_timestamp")
def _to_timestamp(seconds: float) -> ibis.dtype("timestamp('UTC')"):  # noqa: F821
    """PostgreSQL's ``to_timestamp(epoch seconds)`` (ibis has no epoch conversion there)."""


def _from_millis(millis: ibis.Value, backend: str) -> ibis.Value:
    if backend == "pyspark":
        return _spark_timestamp_millis(millis).cast(UTC)
    if backend == "postgres":
        return _to_timestamp(millis.cast("float64") / 1000.0).cast(UTC)
    return millis.as_timestamp("ms").cast(UTC)


def _epoch(col: ibis.Value, max_abs: float, backend: str = "") -> ibis.Value:
    """Numbers as epoch time, unit chosen by magnitude (s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns).

    Kept at millisecond precision, which every engine supports (Spark through its own
    ``timestamp_millis``: ibis's epoch conversion there keeps whole seconds only).
    """
    if max_abs < 1e11:
        scale = 1.0
    elif max_abs < 1e14:
        scale = 1e3
    elif max_abs < 1e17:
        scale = 1e6
    else:
        scale = 1e9
    millis = (col.cast("float64") * (1e3 / scale)).round().cast("int64")
    return _from_millis(millis, backend)


def _backend_name(table: ibis.Table) -> str:
    try:
        return table._find_backend().name
    except Exception:  # an unbound table: no engine-specific spelling
        return ""


def parse_timestamp(table: ibis.Table, name: str, source: str) -> ibis.Value:
    col = table[name]
    backend = _backend_name(table)
    typ = col.type()
    if typ.is_timestamp():
        return col if typ.timezone else col.cast(UTC)
    if typ.is_date():
        return col.cast("timestamp").cast(UTC)
    if typ.is_numeric():
        max_abs = float(col.abs().max().execute() or 0)
        return _epoch(col, max_abs, backend)
    if not typ.is_string():
        raise InputError(f"{source}: column {name!r} has type {typ}; a timestamp must be text, a number or a time type")
    text = col.strip()
    numeric = text.re_search(r"^-?[0-9]+(\.[0-9]+)?$")
    stats = table.aggregate(
        all_numeric=(numeric | text.isnull()).min(),
        max_abs=text.try_cast("float64").abs().max(),
    ).execute().iloc[0]
    if bool(stats["all_numeric"]) and stats["max_abs"] == stats["max_abs"]:
        return _epoch(text.try_cast("float64"), float(stats["max_abs"]), backend)
    parsed = text.try_cast(UTC)
    bad = (
        table.mutate(_row=ibis.row_number() + 1, _v=col, _p=parsed)
        .filter(lambda t: t._v.notnull() & t._p.isnull())
        .order_by("_row").select("_row", "_v").limit(1).execute()
    )
    if len(bad):
        row, val = int(bad["_row"].iloc[0]), bad["_v"].iloc[0]
        raise InputError(
            f"{source}: column {name!r} row {row}: cannot parse {val!r} as a time; "
            "use ISO 8601 (2026-04-01T14:00:00Z) or epoch seconds/milliseconds"
        )
    return parsed
