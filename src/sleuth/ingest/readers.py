"""Open a source as a raw ibis table: a file (CSV, JSON Lines, Parquet), a frame, or any ibis URL."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

from ..errors import InputError

FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}
#: what an ibis URL looks like: ``duckdb:///shop.duckdb#events``, ``postgres://u@127.0.0.1/db#events``
URL_RE = re.compile(r"^[a-z][a-z0-9+]*://")


def connect_duckdb() -> ibis.BaseBackend:
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone='UTC'")
    # DuckDB draws a progress bar on stdout for queries over 2 s, into `--json` output
    con.raw_sql("SET enable_progress_bar=false")
    return con


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for s in reversed(suffixes):
        if s in FORMATS:
            return FORMATS[s]
        if s not in (".gz", ".zst", ".bz2"):
            break
    raise InputError(
        f"{path}: unknown file type {''.join(path.suffixes) or '(no extension)'!r}; "
        "use .csv, .tsv, .jsonl/.ndjson/.json, or .parquet"
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; pass one file (or a glob such as '{path}/*.parquet')")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; it needs a header and at least one event")


def _looks_binary(path: Path, fmt: str) -> bool:
    if fmt == "parquet" or path.suffix.lower() in (".gz", ".zst", ".bz2"):
        return False
    head = path.open("rb").read(8192)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(head) - 4  # a multi-byte char cut at the end is fine
    return False


def _engine_message(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", first)[:300]


def read_file(con: ibis.BaseBackend, path: Path) -> ibis.Table:
    """Read one file (or glob) through DuckDB. Nested JSON stays as structs; see ``flatten``."""
    is_glob = any(ch in str(path) for ch in "*?[")
    if not is_glob:
        _check_file(path)
    fmt = _format_of(path)
    if not is_glob and _looks_binary(path, fmt):
        raise InputError(f"{path}: not a text {fmt.upper()} file (binary content); export the events as CSV, JSON Lines or Parquet")
    p = str(path).replace("'", "''")
    if fmt == "csv":
        sql = f"SELECT * FROM read_csv('{p}', header=true, sample_size=-1)"
    elif fmt == "jsonl":
        sql = f"SELECT * FROM read_json('{p}', format='auto', sample_size=-1, maximum_object_size=67108864)"
    else:
        sql = f"SELECT * FROM read_parquet('{p}', union_by_name=true)"
    try:
        name = ibis.util.gen_name("events_raw")
        con.raw_sql(f"CREATE TEMP VIEW {name} AS {sql}")
        table = con.table(name)
        n_cols = len(table.columns)
    except Exception as err:  # the engine's own parse errors: keep one line of them
        raise InputError(f"{path}: cannot read as {fmt.upper()} ({_engine_message(err)}); check the file format") from None
    if n_cols == 0:
        raise InputError(f"{path}: no columns found; the file needs a header row")
    return table


def read_frame(con: ibis.BaseBackend, frame: pd.DataFrame) -> ibis.Table:
    if frame.empty:
        raise InputError("data frame: no events (0 rows)")
    name = ibis.util.gen_name("events_df")
    return con.create_table(name, frame, temp=True)


def read_url(url: str) -> tuple[ibis.BaseBackend, ibis.Table]:
    """``BACKEND://...#table``: a table of any ibis backend."""
    base, _, table_name = url.partition("#")
    if not table_name:
        raise InputError(f"{_redact(url)}: name the table after '#', e.g. duckdb:///shop.duckdb#events")
    try:
        con = ibis.connect(base)
    except Exception as err:
        raise InputError(f"{_redact(url)}: cannot connect ({_engine_message(err)})") from None
    try:
        return con, con.table(table_name)
    except Exception:
        raise InputError(f"{_redact(url)}: no table {table_name!r}; check the name after '#'") from None


def _redact(url: str) -> str:
    """Hide a password in a URL before it is printed."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_source(source: Any, con: ibis.BaseBackend | None = None) -> tuple[ibis.BaseBackend, ibis.Table, str]:
    """Resolve ``source`` to ``(backend, raw table, display name)``."""
    if isinstance(source, ibis.Table):
        try:
            backend = source._find_backend()
        except Exception:
            backend = con or connect_duckdb()
        return backend, source, "table"
    if isinstance(source, pd.DataFrame):
        con = con or connect_duckdb()
        return con, read_frame(con, source), "data frame"
    text = str(source)
    if URL_RE.match(text):
        backend, table = read_url(text)
        return backend, table, _redact(text)
    con = con or connect_duckdb()
    return con, read_file(con, Path(text)), text


def is_struct(t: dt.DataType) -> bool:
    return isinstance(t, dt.Struct)


def is_array(t: dt.DataType) -> bool:
    return isinstance(t, dt.Array)
