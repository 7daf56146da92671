"""Open a source as a raw ibis table: a file (CSV, JSON Lines, Parquet), a frame, or any ibis URL."""
from __future__ import annotations

import glob
import itertools
import os
import re
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

from ..errors import InputError
from ..redact import redact_url as _redact
from .textcheck import csv_header, diagnose_csv, scan

FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}
#: what an ibis URL looks like: ``duckdb:///shop.duckdb#events``, ``postgres://u@127.0.0.1/db#events``
URL_RE = re.compile(r"^[a-z][a-z0-9+]*://")


#: DuckDB's memory for sleuth's engine: ``SLEUTH_DUCKDB_MEMORY`` (e.g. ``8GB``), else this share of
#: the machine's memory, at most ``DUCKDB_MEMORY_CAP``
DUCKDB_MEMORY_SHARE, DUCKDB_MEMORY_CAP = 0.2, 3 * 2**30


def duckdb_memory_limit() -> str:
    """How much memory DuckDB may hold before it writes to its temporary folder. DuckDB's own
    default (80 % of the machine) let the cached events of a 21.6 M-event source take 7.9 GB;
    under a limit it keeps the same tables and spills what does not fit, so memory follows the
    limit rather than the events (``sleuth bench scale`` measures it)."""
    given = os.environ.get("SLEUTH_DUCKDB_MEMORY")
    if given:
        return given
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return f"{max(512, int(min(total * DUCKDB_MEMORY_SHARE, DUCKDB_MEMORY_CAP) / 2**20))}MB"


_SPILLS = itertools.count()


def connect_duckdb() -> ibis.BaseBackend:
    import tempfile

    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone='UTC'")
    con.raw_sql("SET enable_progress_bar = false")  # DuckDB's own bar would land in sleuth's output
    con.raw_sql(f"SET memory_limit = '{duckdb_memory_limit()}'")
    # spilled blocks go to a folder of this connection's own in the system's temporary folder
    # (DuckDB's default is .tmp in the working directory, shared by every process started there);
    # DuckDB creates it when it first spills and removes it when the connection closes
    spill = Path(tempfile.gettempdir()) / f"sleuth-duckdb-{os.getpid()}-{next(_SPILLS)}"
    con.raw_sql(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
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


def _engine_message(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.sub(r"^[A-Za-z ]*Error: ", "", first)[:300]


def _files(path: Path) -> list[Path]:
    """The files of a path or a glob (sorted), each checked to exist and hold something."""
    if not any(ch in str(path) for ch in "*?["):
        _check_file(path)
        return [path]
    found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not found:
        raise InputError(f"{path}: no file matches; check the pattern")
    return found


def read_file(con: ibis.BaseBackend, path: Path, notes: list[str] | None = None) -> ibis.Table:
    """Read one file (or glob) through DuckDB. Nested JSON stays as structs; see ``flatten``.

    Text files are checked whole first (:mod:`.textcheck`): a NUL byte or a non-text byte is an
    error naming its line; a Latin-1 file and a last line still being written are read cleanly,
    with a note in ``notes``."""
    fmt = _format_of(path)
    files = originals = _files(path)
    if fmt != "parquet":
        checked = [scan(f, "CSV" if fmt == "csv" else "JSON Lines") for f in files]
        files = [c.read_path for c in checked]
        if notes is not None:
            notes.extend(n for c in checked for n in c.notes)
    p = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    if fmt == "csv":
        sql = f"SELECT * FROM read_csv({p}, header=true, sample_size=-1, union_by_name=true)"
    elif fmt == "jsonl":
        sql = f"SELECT * FROM read_json({p}, format='auto', sample_size=-1, maximum_object_size=67108864, union_by_name=true)"
    else:
        sql = f"SELECT * FROM read_parquet({p}, union_by_name=true)"
    try:
        name = ibis.util.gen_name("events_raw")
        con.raw_sql(f"CREATE TEMP VIEW {name} AS {sql}")
        table = con.table(name)
        n_cols = len(table.columns)
    except Exception as err:  # the engine's own parse errors: say which line and why when we can
        cause = _csv_cause(originals, files) if fmt == "csv" else None
        raise InputError(f"{cause or f'{path}: cannot read as {fmt.upper()} ({_engine_message(err)})'}; "
                         "check the file format") from None
    if n_cols == 0:
        raise InputError(f"{path}: no columns found; the file needs a header row")
    if fmt == "csv":
        header = [h for h in csv_header(files[0]) if h.strip()]
        if header and not set(header) <= set(table.columns):  # the engine guessed another layout
            cause = _csv_cause(originals, files)
            if cause:
                raise InputError(f"{cause}; check the file format")
    return table


def _csv_cause(originals: list[Path], files: list[Path]) -> str | None:
    """The first bad line of the files (read from their clean copies, named by the user's paths)."""
    for name, f in zip(originals, files):
        cause = diagnose_csv(f)
        if cause:
            return f"{name}: {cause}"
    return None


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



def open_source(source: Any, con: ibis.BaseBackend | None = None,
                notes: list[str] | None = None, spark: Any = None) -> tuple[ibis.BaseBackend, ibis.Table, str]:
    """Resolve ``source`` to ``(backend, raw table, display name)``; what reading it noticed goes
    to ``notes``. ``spark``: the ``spark:`` block of the config, for Spark sources."""
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
    from .spark import is_spark_source, open_spark

    if is_spark_source(text):
        backend, table, _ = open_spark(text, spark)
        return backend, table, _redact(text)
    if URL_RE.match(text):
        backend, table = read_url(text)
        return backend, table, _redact(text)
    con = con or connect_duckdb()
    return con, read_file(con, Path(text), notes), text


def is_struct(t: dt.DataType) -> bool:
    return isinstance(t, dt.Struct)


def is_array(t: dt.DataType) -> bool:
    return isinstance(t, dt.Array)
