"""Text files checked whole before the engine reads them: a NUL byte, a byte that is not UTF-8 or a
last line still being written anywhere in the file gets its line number and its cause.

DuckDB accepts a NUL byte in a CSV silently and reports a bad byte only as "CSV Error on Line N";
a Latin-1 export is common and readable; a file another program is appending to ends mid-line.
One streaming pass (8 MB at a time, memchr-speed checks) finds all three, and when the file needs
it, a clean copy is read instead: the complete lines only, re-encoded as UTF-8.
"""
from __future__ import annotations

import atexit
import codecs
import csv
import gzip
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

CHUNK = 8 << 20
#: bytes that do not occur in text (besides tab, line feed, carriage return, form feed)
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_TEMP: list[tempfile.TemporaryDirectory] = []


@dataclass
class TextFile:
    """What the scan found: where the complete lines end, the encoding, and notes for the user."""

    path: Path
    read_path: Path
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)


def _opener(path: Path):
    return gzip.open if path.suffix.lower() == ".gz" else open


def _line_at(counted: int, chunk: bytes, offset: int) -> int:
    return counted + chunk.count(b"\n", 0, offset) + 1


def scan(path: Path, what: str) -> TextFile:
    """Check ``path`` whole (``what``: 'CSV' or 'JSON Lines'); raise :class:`InputError` naming the
    line and the cause, or return how to read it."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0           # line feeds before the current chunk
    size = 0            # bytes before the current chunk
    bad_utf8: tuple[int, int] | None = None  # (line, byte) of the first byte that is not UTF-8
    controls = 0
    last = b""
    try:
        with _opener(path)(path, "rb") as f:
            while chunk := f.read(CHUNK):
                nul = chunk.find(b"\x00")
                if nul >= 0:
                    raise InputError(
                        f"{path}: line {_line_at(lines, chunk, nul)}: a NUL byte, which no text {what} file holds "
                        "(binary content: corrupted, or another format); export the events as CSV, JSON Lines or "
                        "Parquet")
                if bad_utf8 is None:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as err:
                        bad_utf8 = (_line_at(lines, chunk, err.start), chunk[err.start])
                if bad_utf8 is not None:  # text in another encoding, or binary? control bytes tell
                    controls += len(chunk) - len(chunk.translate(None, _CONTROL))
                lines += chunk.count(b"\n")
                size += len(chunk)
                last = chunk[-1:]
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read ({err}); check that the file is complete") from None
    out = TextFile(path, path)
    if bad_utf8 is not None:
        line, byte = bad_utf8
        if controls > size // 100:
            raise InputError(f"{path}: line {line}: byte 0x{byte:02X} is not UTF-8 and the file holds control "
                             f"bytes (binary content, not a text {what} file); export the events as CSV, JSON Lines "
                             "or Parquet")
        out.encoding = "cp1252"
        out.notes.append(f"{path} is not UTF-8 (first at line {line}: byte 0x{byte:02X}); read it as "
                         "Windows-1252/Latin-1")
    if size and last != b"\n":
        if lines == 0:
            raise InputError(f"{path}: the file has no complete line yet (no line feed): it is still being "
                             "written, or empty; try again once it is")
        out.notes.append(f"{path}: the last line has no line feed yet (still being written?); it is left out "
                         "and read by the next run")
        out.read_path = _clean_copy(path, lines, out.encoding)
    elif out.encoding != "utf-8":
        out.read_path = _clean_copy(path, None, out.encoding)
    return out


def _clean_copy(path: Path, lines: int | None, encoding: str) -> Path:
    """A temporary copy of the first ``lines`` lines (all with None), re-encoded as UTF-8; removed
    when the process exits."""
    if not _TEMP:
        _TEMP.append(tempfile.TemporaryDirectory(prefix="sleuth-input-"))
        atexit.register(_TEMP[0].cleanup)
    name = path.name[:-3] if path.suffix.lower() == ".gz" else path.name
    target = Path(_TEMP[0].name) / f"{len(list(Path(_TEMP[0].name).iterdir()))}-{name}"
    with _opener(path)(path, "rb") as src, open(target, "wb") as dst:
        if lines is None and encoding == "utf-8":
            shutil.copyfileobj(src, dst, CHUNK)
            return target
        decode = codecs.getincrementaldecoder(encoding)(errors="replace") if encoding != "utf-8" else None
        left = lines
        while left is None or left > 0:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            if left is not None:
                n = chunk.count(b"\n")
                if n >= left:
                    cut = -1
                    for _ in range(left):
                        cut = chunk.index(b"\n", cut + 1)
                    chunk = chunk[:cut + 1]
                    n = left
                left -= n
            dst.write(decode.decode(chunk).encode("utf-8") if decode else chunk)
    return target


def _delimiter(line: str) -> str:
    return max(",\t;|", key=line.count)


def csv_header(path: Path, encoding: str = "utf-8") -> list[str]:
    """The fields of the first line, split on the delimiter it uses most."""
    with _opener(path)(path, "rb") as f:
        first = f.readline().decode(encoding, errors="replace").rstrip("\r\n")
    return next(csv.reader([first], delimiter=_delimiter(first)), [])


def diagnose_csv(path: Path, encoding: str = "utf-8") -> str | None:
    """The first line whose number of fields differs from the header's, as a sentence; None when
    every line has as many fields as the header (the problem is elsewhere)."""
    import io

    with _opener(path)(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        first = text.readline()
        delim = _delimiter(first)
        width = len(next(csv.reader([first], delimiter=delim), []))
        reader = csv.reader(text, delimiter=delim)
        try:
            for row in reader:
                if row and len(row) != width:
                    line = reader.line_num + 1
                    return (f"line {line}: {len(row)} fields where the header has {width}; quote values that "
                            f"contain {'a comma' if delim == ',' else repr(delim)} or fix that line")
        except csv.Error as err:
            return f"line {reader.line_num + 1}: {err}"
    return None
