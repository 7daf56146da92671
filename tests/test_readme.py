"""The README's commands and snippets, run as a new user would: on an events file of a small shop,
with the README's own sleuth.yaml, its notify block and its Python snippet. A command the README
shows that fails here fails the suite, so the front page cannot drift from what sleuth does."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sleuth.config import parse_config
from sleuth.datasets.shop import generate_shop

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCKS if k == kind]


def commands() -> list[list[str]]:
    """Every ``sleuth …`` line of the README's bash blocks, comments dropped."""
    out = []
    for body in blocks("bash"):
        for line in body.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("sleuth "):
                out.append(shlex.split(line)[1:])
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``events.csv`` (3 weeks of a small shop) and the README's ``sleuth.yaml``, side by side."""
    where = tmp_path_factory.mktemp("readme")
    events, _ = generate_shop(weeks=3, sessions_per_hour=40, seed=2)
    events.sort_values("timestamp").to_csv(where / "events.csv", index=False)
    [config] = [b for b in blocks("yaml") if "granularity:" in b]
    (where / "sleuth.yaml").write_text(config, encoding="utf-8")
    return where


def sleuth(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sleuth.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_the_readme_shows_the_steps_a_new_user_takes():
    verbs = [c[0] for c in commands()]
    for verb in ("metrics", "detect", "run", "dashboard"):
        assert verb in verbs, verb


def test_every_readme_command_on_your_own_data_runs(folder):
    ran = 0
    for args in commands():
        if any(".sleuth/demo" in a for a in args) or args[0] == "dashboard":
            continue  # the demo's own paths and the long-running server: tested in test_cli / test_dashboard
        proc = sleuth(args, folder)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        ran += 1
    assert ran >= 3  # metrics, detect, run --once
    stored = sleuth(["report", "--store", "sqlite:///.sleuth/sleuth.db", "--out", "stored.html"], folder)
    assert stored.returncode == 0, stored.stderr  # run --once stored its run where the README says


def test_the_dashboard_commands_parse(folder):
    for args in commands():
        if args[0] == "dashboard":
            proc = sleuth([*args, "--help"], folder)
            assert proc.returncode == 0, proc.stderr


def test_the_notify_block_is_a_valid_config():
    [notify] = [b for b in blocks("yaml") if "notify:" in b]
    cfg = parse_config(yaml.safe_load(notify))
    assert len(cfg.notify) == 2 and cfg.dashboard_url


def test_the_python_snippet_runs(folder, monkeypatch, capsys):
    [snippet] = blocks("python")
    monkeypatch.chdir(folder)
    exec(compile(snippet, "README.md", "exec"), {})  # noqa: S102 - the README's own code
    assert capsys.readouterr().out.strip(), "the snippet prints the incidents"
