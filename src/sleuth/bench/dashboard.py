"""How responsive the dashboard's pages are on a large store (``make bench``, section 4).

A year of hourly data for 50 count metrics (two countries each) is generated, stored by one alert
run, and every page is rendered in-process with Streamlit's AppTest: the first load (which runs the
detection once per server) and then each page switch, which is what a user waits for.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..alerts import run_once
from ..dashboard.source import APP, ENV, Settings

PAGES = ("Overview", "Metric", "Incident", "Alerts")


def year_of_metrics(path: Path, metrics: int = 50, weeks: int = 52, per_hour: float = 4.0, seed: int = 5) -> int:
    """Hourly events of ``metrics`` event types with a daily rhythm; returns the row count."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2025-01-06", periods=weeks * 168, freq="h")
    rhythm = 1.0 + 0.6 * np.sin(2 * np.pi * (np.arange(len(hours)) % 24) / 24)
    counts = rng.poisson(per_hour * rhythm[:, None], size=(len(hours), metrics)).ravel()
    n = int(counts.sum())
    names = np.array([f"event_{k:02d}" for k in range(metrics)])
    ts = np.repeat(np.repeat(hours.values, metrics), counts) + rng.integers(0, 3600, n).astype("timedelta64[s]")
    pd.DataFrame({"timestamp": ts, "event": np.repeat(np.tile(names, len(hours)), counts),
                  "country": rng.choice(["US", "DE"], n), "session_id": rng.integers(0, max(n // 3, 1), n).astype(str)},
                 ).sort_values("timestamp").to_parquet(path, index=False)
    return n


def page_speed(metrics: int = 50, weeks: int = 52, directory: Path | None = None) -> dict:
    """Seconds for the first load and for each page switch (best of two) on generated data."""
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        where = Path(directory or tmp)
        events, cfg = where / "year.parquet", where / "year.yaml"
        rows = year_of_metrics(events, metrics, weeks)
        cfg.write_text(yaml.safe_dump({"granularity": "1h", "dimensions": ["country"], "metrics": [
            {"name": f"event_{k:02d}", "type": "count", "event": f"event_{k:02d}"} for k in range(metrics)]}))
        store = f"sqlite:///{where / 'store.db'}"
        t = time.perf_counter()
        run = run_once(str(events), cfg, store=store)
        run_s = time.perf_counter() - t
        saved = {k: os.environ.get(k) for k in ENV.values()}
        os.environ.update(Settings(str(events), str(cfg), store).env())
        try:
            at = AppTest.from_file(str(APP), default_timeout=1800)
            t = time.perf_counter()
            at.run()
            first = time.perf_counter() - t
            pages: dict[str, float] = {}
            for page in [*PAGES[1:], *PAGES]:  # every page twice, keep the faster
                t = time.perf_counter()
                at.sidebar.radio(key="page").set_value(page).run()
                if at.exception:
                    raise RuntimeError(f"page {page}: {at.exception[0].message}")
                pages[page] = round(min(pages.get(page, np.inf), time.perf_counter() - t), 3)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {"events": rows, "metrics": metrics, "hours": weeks * 168, "stored_incidents": run.incidents,
            "alert_run_s": round(run_s, 2), "first_load_s": round(first, 2), "page_s": pages}
