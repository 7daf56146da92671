"""Alerts: the durable store, notifications through apprise, and the run / watch loop (Contract 7)."""
from __future__ import annotations

from .run import RunReport, run_once, watch
from .store import DEFAULT_STORE, Store, StoreError, open_store

__all__ = ["DEFAULT_STORE", "RunReport", "Store", "StoreError", "open_store", "run_once", "watch"]
