"""The terminal: where tables and messages go, and ``--json`` output."""
from __future__ import annotations

import json
import sys

from rich.console import Console

out = Console()
if not out.is_terminal:  # piped or in CI: tables at a readable width instead of 80 columns
    out = Console(width=160)
err = Console(stderr=True)


def emit_json(result: dict, as_json: bool) -> bool:
    """Print ``result`` as one JSON line when ``--json`` was given; say whether it did."""
    if as_json:
        sys.stdout.write(json.dumps(result, default=str, ensure_ascii=False) + "\n")
    return as_json
