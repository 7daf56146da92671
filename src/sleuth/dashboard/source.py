"""What the dashboard looks at: a source, its config and the alert store, or the demo shop.

``sleuth dashboard`` resolves these once (generating the demo when no source is given) and hands
them to the Streamlit process through environment variables, so the app script stays a script.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import SleuthError

DEMO_DIR = Path(".sleuth/demo")
ENV = {"source": "SLEUTH_DASHBOARD_SOURCE", "config": "SLEUTH_DASHBOARD_CONFIG", "store": "SLEUTH_DASHBOARD_STORE"}
APP = Path(__file__).with_name("app.py")


@dataclass(frozen=True)
class Settings:
    source: str
    config: str | None
    store: str

    def env(self) -> dict[str, str]:
        out = {ENV["source"]: self.source, ENV["store"]: self.store}
        if self.config:
            out[ENV["config"]] = self.config
        return out

    @classmethod
    def from_env(cls) -> "Settings":
        """What ``sleuth dashboard`` chose; the demo when the app runs on its own."""
        source = os.environ.get(ENV["source"])
        if not source:
            return prepare(None, None, None)
        return cls(source, os.environ.get(ENV["config"]) or None, os.environ[ENV["store"]])


def ensure_demo(directory: Path = DEMO_DIR, weeks: int = 6, sessions_per_hour: float = 1000.0,
                seed: int = 7) -> tuple[Path, Path]:
    """The demo shop's events and config (as `sleuth demo` writes them), generated if absent."""
    from ..datasets.shop import write_shop
    from ..datasets.shop import DEMO_CONFIG

    events, cfg = directory / "events.parquet", directory / "sleuth.yaml"
    if not events.exists():
        write_shop(directory, fmt="parquet", weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
    if not cfg.exists():
        cfg.write_text(DEMO_CONFIG, encoding="utf-8")
    return events, cfg


def prepare(source: str | None, config: str | Path | None, store: str | None,
            demo_dir: Path = DEMO_DIR, **demo_kwargs) -> Settings:
    """Resolve source, config and store URL. Without a source: the demo shop, with its own store
    filled by one alert run when empty, so the inbox has something to act on out of the box."""
    from ..alerts import DEFAULT_STORE, open_store, run_once
    from ..alerts.run import store_url
    from ..config import load_config

    if source:
        cfg = str(config) if config else None
        return Settings(str(source), cfg, store_url(load_config(cfg), store) or DEFAULT_STORE)
    events, cfg_path = ensure_demo(Path(demo_dir), **demo_kwargs)
    url = store or f"sqlite:///{Path(demo_dir).resolve() / 'sleuth.db'}"
    db = open_store(url)
    try:
        if not db.incidents(limit=1):
            run_once(str(events), cfg_path, store=db)
    finally:
        db.close()
    return Settings(str(events), str(cfg_path), url)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the dashboard on this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def streamlit_command(host: str, port: int) -> list[str]:
    """``streamlit run`` on the app, headless, on one loopback address, no telemetry, no file watcher."""
    try:
        import streamlit  # noqa: F401
    except ModuleNotFoundError:
        raise SleuthError("the dashboard needs its extra: pip install 'sleuth[dashboard]'") from None
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none"]
