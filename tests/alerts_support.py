"""Real parts for the alert tests: a webhook receiver and a TCP proxy on 127.0.0.1, and small data."""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from sleuth.alerts.store import metadata, normalise_url

#: notify route options for tests: no retries, no waiting
FAST = {"retries": 0, "backoff": 0.01}


def alert_data(folder: Path) -> dict:
    """The events (see :func:`make_events`) and the times of interest: during the mild drop, during
    the deep one, after it, and 40 hours after its start (past the end of the data)."""
    path = folder / "events.parquet"
    start = make_events(path)
    fmt = lambda ts: ts.strftime("%Y-%m-%dT%H:%M")  # noqa: E731
    return {"events": path, "start": start, "mild": fmt(start + pd.Timedelta(hours=3)),
            "deep": fmt(start + pd.Timedelta(hours=6)), "after": fmt(start + pd.Timedelta(hours=10)),
            "later": fmt(start + pd.Timedelta(hours=40))}


def postgres_url() -> str:
    """The test PostgreSQL (``.ci/run`` starts it); under pytest-xdist each worker gets a database of
    its own on it, so tests that drop sleuth's tables never meet another worker's."""
    url = os.environ.get("SLEUTH_TEST_POSTGRES_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if url and worker:
        return _worker_database(url, worker)
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but SLEUTH_TEST_POSTGRES_URL is unset: .ci/run starts PostgreSQL and sets it")
    pytest.skip("SLEUTH_TEST_POSTGRES_URL is unset (.ci/run sets it): the PostgreSQL variant did not run")


_CREATED: dict[str, str] = {}


def _worker_database(url: str, worker: str) -> str:
    if worker not in _CREATED:
        base = sa.engine.make_url(normalise_url(url))
        name = f"{base.database}_{worker}"
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            if not c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        _CREATED[worker] = sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)
    return _CREATED[worker]


def fresh_postgres() -> str:
    """The test PostgreSQL with sleuth's tables dropped."""
    url = postgres_url()
    engine = sa.create_engine(normalise_url(url))
    metadata.drop_all(engine)
    engine.dispose()
    return url


def sleuth(*args, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    """``python -m sleuth.cli ARGS``, output captured."""
    return subprocess.run([sys.executable, "-m", "sleuth.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def spawn(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sleuth.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def make_events(path: Path, days: int = 23, per_hour: float = 400.0, seed: int = 0) -> pd.Timestamp:
    """Hourly page views in two countries with a drop 20 hours before the end of the data: 3 hours
    at 60 % of normal, then 3 hours at 10 %, then normal again. Returns the hour the drop starts."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-03-02", periods=days * 24, freq="h")
    h = np.arange(len(hours))
    rate = per_hour * (1 + 0.3 * np.sin(2 * np.pi * (h % 24) / 24))
    start = len(hours) - 20
    rate[start:start + 3] *= 0.6
    rate[start + 3:start + 6] *= 0.1
    parts = []
    for country, share in (("US", 0.6), ("DE", 0.4)):
        n = rng.poisson(rate * share)
        ts = np.repeat(hours.values, n) + rng.integers(0, 3600, n.sum()).astype("timedelta64[s]")
        parts.append(pd.DataFrame({"timestamp": ts, "event": "page_view", "country": country,
                                   "session_id": rng.integers(0, 10**12, n.sum()).astype(str)}))
    pd.concat(parts).sort_values("timestamp").to_parquet(path, index=False)
    return hours[start]


def write_config(path: Path, routes: list[dict], store: str | None = None) -> Path:
    """Two metrics that move together (one linked group), one dimension, the given channels."""
    cfg = {"granularity": "1h", "dimensions": ["country"],
           "metrics": [{"name": "views", "type": "count", "event": "page_view"},
                       {"name": "sessions", "type": "distinct", "column": "session_id"}],
           "notify": routes}
    if store:
        cfg["store"] = store
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return alert_data(tmp_path_factory.mktemp("alerts"))


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'alerts.db'}" if request.param == "sqlite" else fresh_postgres()


class Receiver:
    """A webhook receiver: records every POST and answers 200, or what ``plan[path]`` says next
    (``500``), or always 500 for paths in ``down``; with ``hang`` set it never answers the next request.
    Paths in ``stall`` never answer; paths in ``drip`` answer one byte every half second and never
    finish (both until :meth:`close`): a channel that hangs, and one whose every read succeeds."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: dict[str, list[int]] = {}
        self.down: set[str] = set()
        self.stall: set[str] = set()
        self.drip: set[str] = set()
        self.hang = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    hang, receiver.hang = receiver.hang, False
                    hang = hang or self.path in receiver.stall
                    drip = self.path in receiver.drip
                    plan = receiver.plan.get(self.path, [])
                    status = 500 if self.path in receiver.down else (plan.pop(0) if plan else 200)
                    record = {"path": self.path, "body": body, "status": None if hang or drip else status}
                    receiver.requests.append(record)
                if hang:  # the sender is killed while it waits: this message was never acknowledged
                    receiver.release.wait(60)
                    return
                if drip:  # every read gets a byte in time; the answer never ends
                    try:
                        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 10000:
                            if receiver.release.wait(0.5):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    except OSError:
                        return
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", secret: str = "") -> str:
        return f"json://{secret}127.0.0.1:{self.server.server_address[1]}{path}"

    def delivered(self, path: str | None = None) -> list[dict]:
        """Requests answered 200: messages the channel accepted."""
        return [r for r in self.requests if r["status"] == 200 and (path is None or r["path"] == path)]

    def message_ids(self, path: str | None = None) -> list[str]:
        """The ``message`` ids of the accepted messages (the last line of every body), in order."""
        return [r["body"]["message"].rsplit("message ", 1)[-1] for r in self.delivered(path)]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a database: ``stop()`` makes the database go away
    (listener and every open connection closed), ``start()`` brings it back on the same port."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = 0
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []
