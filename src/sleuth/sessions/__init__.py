"""Sessions and pages: behaviour features, PCA or factor analysis, k-means clusters, bots and
outliers, a conversion model, and per-page metrics, fed into the cube like every metric.

>>> from sleuth.sessions import analyse_sessions
>>> result = analyse_sessions("ga_sessions.parquet")      # doctest: +SKIP
>>> result.cluster_profiles()                              # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any


def analyse_sessions(source: Any, config: Any = None):
    """Load ``source`` (a nested session export or an event stream) and run the sessions stage."""
    from ..ingest import load_events
    from ..pipeline import as_config
    from .analysis import analyse

    cfg = as_config(config)
    return analyse(load_events(source, cfg), cfg)


__all__ = ["analyse_sessions"]
