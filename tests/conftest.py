"""Shared test helpers: run the real CLI in a subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: the alert tests' fixtures (data, receiver, store_url) for every test module that asks for them
pytest_plugins = ["alerts_support"]


def _run_cli(*args: str | Path, cwd: str | Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m sleuth.cli ARGS`` with this interpreter (the project's .venv); text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )


@pytest.fixture(scope="session")
def run_cli():
    return _run_cli
