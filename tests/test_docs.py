"""Docs that cannot drift: the README names every config key and every CLI verb."""
from __future__ import annotations

import re
from pathlib import Path

from sleuth.cli import app
from sleuth.config import Config, Metric

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands():
    head = README[:1500]
    assert "make demo" in head and "make test" in head


def test_every_config_key_is_documented():
    table_keys = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.M))
    assert set(Config.model_fields) <= table_keys, set(Config.model_fields) - table_keys
    metric_row = next(line for line in README.splitlines() if line.startswith("| `metrics` |"))
    for key in Metric.model_fields:
        assert f"`{key}`" in metric_row, key


def test_every_cli_verb_is_documented():
    verbs = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert verbs
    for verb in verbs:
        assert f"`sleuth {verb}" in README or f"`{verb}`" in README, verb
