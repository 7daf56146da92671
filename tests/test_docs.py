"""Docs that cannot drift: every config key and CLI verb is documented, and the README is short."""
from __future__ import annotations

import re
from pathlib import Path

from sleuth.cli import app
from sleuth.config import Config, Metric, NotifyRoute

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRACTS = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
CLI = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands_and_reads_in_five_minutes():
    head = README[:1500]
    assert "make demo" in head and "make test" in head
    assert len(README.splitlines()) <= 220
    assert max(len(line) for line in README.splitlines() if not line.startswith("|")) <= 120


def test_every_config_key_is_documented():
    table_keys = set(re.findall(r"^\| `([a-z_]+)` \|", CONTRACTS, flags=re.M))
    assert set(Config.model_fields) <= table_keys, set(Config.model_fields) - table_keys
    metric_row = next(line for line in CONTRACTS.splitlines() if line.startswith("| `metrics` |"))
    for key in Metric.model_fields:
        assert f"`{key}`" in metric_row, key
    notify_row = next(line for line in CONTRACTS.splitlines() if line.startswith("| `notify` |"))
    for key in NotifyRoute.model_fields:
        assert f"`{key}`" in notify_row, key


def test_every_cli_verb_is_documented():
    verbs = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert verbs
    for verb in verbs:
        assert f"`sleuth {verb}" in README, verb
        assert f"`sleuth {verb}" in CLI or f"`{verb}`" in CLI, verb


def test_every_docs_link_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if target.startswith("http"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}"
