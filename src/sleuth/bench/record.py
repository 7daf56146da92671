"""Benchmark figures that cannot go stale: ``make bench`` runs each verb with ``--record``, which
writes the verb's results to ``bench-results/<section>.json`` and its table into the docs page
between ``<!-- bench:<section> -->`` and ``<!-- /bench:<section> -->`` markers, with the date and
the machine it was measured on. The docs then show what the last ``make bench`` measured, not what
someone remembered."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

DOCS = Path("docs/benchmarks.md")
RESULTS = Path("bench-results")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def record(section: str, markdown: str, data: dict[str, Any], docs: Path | None = None) -> Path:
    """Write ``data`` to ``bench-results/<section>.json`` and ``markdown`` into the docs page's
    section (added at the end when the page has no markers for it yet). Returns the page."""
    page = docs or DOCS
    RESULTS.mkdir(exist_ok=True)
    stamp = f"{dt.date.today():%Y-%m-%d}, {machine()}"
    (RESULTS / f"{section}.json").write_text(json.dumps({"measured": stamp, **data}, indent=2, default=str) + "\n")
    block = f"<!-- bench:{section} -->\n_Measured by `make bench` on {stamp}._\n\n{markdown.strip()}\n<!-- /bench:{section} -->"
    text = page.read_text(encoding="utf-8") if page.exists() else ""
    pattern = re.compile(rf"<!-- bench:{re.escape(section)} -->.*?<!-- /bench:{re.escape(section)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, encoding="utf-8")
    return page
