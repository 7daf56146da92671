"""The terminal: where tables and messages go, and ``--json`` output."""
from __future__ import annotations

import json
import os
import sys

from rich.console import Console

out = Console()
if not out.is_terminal and not os.environ.get("COLUMNS"):  # piped or in CI: tables at a readable width
    out = Console(width=160)
err = Console(stderr=True)
#: below this many columns, tables use their narrow layout
NARROW = 110


def narrow() -> bool:
    return out.width < NARROW


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 false alarm``, ``2 false alarms``, ``0 incidents``."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def emit_json(result: dict, as_json: bool) -> bool:
    """Print ``result`` as one JSON line when ``--json`` was given; say whether it did."""
    if as_json:
        sys.stdout.write(json.dumps(result, default=str, ensure_ascii=False) + "\n")
    return as_json


def fmt_number(x: float | None, ratio: bool = False) -> str:
    """A number as people write it in a sentence: ``11,510``, ``42.5``, ``0.0213``, ``4.8 %`` for a
    ratio; never ``1.151e+04``.

    >>> fmt_number(11510.3), fmt_number(42.54), fmt_number(0.021345), fmt_number(0.048, ratio=True)
    ('11,510', '42.5', '0.0213', '4.8 %')
    """
    if x is None or x != x:
        return "n/a"
    if ratio:
        return f"{x * 100:.3g} %" if abs(x) < 0.1 else f"{x * 100:.1f} %"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:,.1f}".rstrip("0").rstrip(".")
    if a >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"
