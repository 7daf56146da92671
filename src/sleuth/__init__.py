"""sleuth: watch the metrics of a website or app, alert on anomalies and explain why.

>>> import sleuth
>>> result = sleuth.detect("events.parquet", "sleuth.yaml")   # doctest: +SKIP
>>> result.frame                                              # doctest: +SKIP

The heavy modules are imported on first use, so ``sleuth --help`` stays quick.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import ConfigError, InputError, NotYetError, SleuthError

__version__ = "0.1.0"

_LAZY = {
    "detect": "sleuth.pipeline",
    "describe": "sleuth.pipeline",
    "Detection": "sleuth.pipeline",
    "load_events": "sleuth.ingest",
    "load_config": "sleuth.config",
    "parse_config": "sleuth.config",
    "Config": "sleuth.config",
    "Incident": "sleuth.incidents",
    "score_frame": "sleuth.score",
    "generate_shop": "sleuth.datasets",
    "run_once": "sleuth.alerts",
    "open_store": "sleuth.alerts",
    "analyse_sessions": "sleuth.sessions",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sleuth' has no attribute {name!r}")


__all__ = ["ConfigError", "InputError", "NotYetError", "SleuthError", *_LAZY]
