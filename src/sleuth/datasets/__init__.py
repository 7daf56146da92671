"""Demo data, like ``sklearn.datasets``: generators the demo, the tests and the benchmarks share.

The product (CLI, dashboard) imports these for ``sleuth demo`` and the dashboard's demo; the
benchmarks in :mod:`sleuth.bench` import them too, never the other way round.
"""
from __future__ import annotations

from .shop import DEMO_CONFIG, InjectedIncident, evaluate, generate_shop, write_shop

__all__ = ["DEMO_CONFIG", "InjectedIncident", "evaluate", "generate_shop", "write_shop"]
