"""The fault suite: sleuth's alert path and its input under the faults an operator meets, with real
parts (SQLite and PostgreSQL stores, webhook receivers on 127.0.0.1 that refuse, hang, drip bytes or
are down, runs killed with SIGKILL). Every test that sends asserts 0 lost and 0 duplicated messages:
every incident's current revision is delivered once to every channel, and no message id reaches a
channel twice.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alerts_support import FAST, Receiver, fresh_postgres, postgres_url, sleuth, spawn, write_config

from sleuth.alerts import open_store, run_once
from sleuth.alerts.store import metadata, normalise_url
from sleuth.pipeline import detect

SECRET, TOKEN = "Pw9Secret", "Tok3nXYZ"


def wait_for(check, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_once_each(url: str, receiver: Receiver, paths: list[str]) -> None:
    """0 lost, 0 duplicated: every stored incident's current revision was sent once to each channel
    (one notification row, status sent) and no message id reached a channel twice."""
    db = open_store(url)
    try:
        incidents = {(r["key"], r["revision"]) for r in db.incidents() if r["quiet"] is None}
        sent = [(n["incident"], n["revision"], n["channel"]) for n in db.notifications() if n["status"] == "sent"]
        channels = {n["channel"] for n in db.notifications()}
        assert len(channels) == len(paths)
        for ch in channels:
            got = {(i, r) for i, r, c in sent if c == ch}
            assert got == incidents, (ch, incidents - got)
        assert not [r for r in db.runs() if r["status"] == "running"]
    finally:
        db.close()
    for path in paths:
        ids = receiver.message_ids(path)
        assert ids and len(ids) == len(set(ids)), (path, ids)


# ------------------------------------------------------------------------------ secrets

def test_secrets_stay_out_of_every_output_page_and_stored_row(data, receiver, tmp_path):
    """A password in the events URL and the store URL, tokens in every part of the channel URLs:
    none of them in any output, the report, the dashboard's page or any row of the store."""
    pg = sa.engine.make_url(normalise_url(fresh_postgres()))
    engine = sa.create_engine(pg)
    pd.read_parquet(data["events"]).to_sql("events_secret", engine, if_exists="replace", index=False)
    engine.dispose()
    with_pw = pg.set(password=SECRET)  # the CI server trusts loopback: any password gets in
    source = with_pw.set(drivername="postgres").render_as_string(hide_password=False) + "#events_secret"
    store = with_pw.set(drivername="postgresql").render_as_string(hide_password=False)
    cfg = write_config(tmp_path / "sleuth.yaml", [
        {"url": receiver.url(f"/hook/{TOKEN}?token={TOKEN}", secret=f"alice:{SECRET}@"), **FAST},
        {"url": f"json://{TOKEN}@127.0.0.1:{closed_port()}/{TOKEN}", **FAST}])
    outputs = [sleuth("run", "--once", source, "-c", cfg, "--store", store, "--until", data["mild"]),
               sleuth("detect", source, "-c", cfg, "--until", data["mild"]),
               sleuth("metrics", source, "-c", cfg),
               sleuth("report", source, "-c", cfg, "--until", data["mild"], "--out", tmp_path / "r.html"),
               sleuth("alerts", "list", "--store", store),
               sleuth("detect", source.replace("#events_secret", "#nope"), "-c", cfg),
               sleuth("run", "--once", source, "-c", cfg, "--store", store.replace(str(pg.port), "1"))]
    assert outputs[0].returncode == 3, outputs[0].stderr  # the closed port's message is undelivered
    assert len(receiver.delivered()) == 1  # the secret URL itself works
    key = open_store(store).incidents()[0]["key"]
    outputs.append(sleuth("alerts", "show", key, "--store", store, "--json"))
    dash = subprocess.Popen([sys.executable, "-m", "sleuth.cli", "dashboard", source, "-c", cfg, "--store", store,
                             "--port", str(closed_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        started = "".join(dash.stdout.readline() for _ in range(2))
    finally:
        os.killpg(dash.pid, signal.SIGKILL)
        dash.wait()
    assert "dashboard on http://127.0.0.1:" in started and "***" in started
    texts = [p.stdout + p.stderr for p in outputs] + [started, (tmp_path / "r.html").read_text(encoding="utf-8")]
    texts.append(dashboard_page_text(source, str(cfg), store))
    for text in texts:
        assert SECRET not in text and TOKEN not in text
    assert outputs[5].returncode == 2 and "no table 'nope'" in outputs[5].stderr and "***" in outputs[5].stderr
    assert outputs[6].returncode == 2 and ":1/" in outputs[6].stderr
    dump = sa.create_engine(normalise_url(postgres_url()))
    with dump.connect() as c:
        rows = json.dumps([list(map(str, r)) for t in metadata.sorted_tables for r in c.execute(sa.select(t))])
    dump.dispose()
    assert SECRET not in rows and TOKEN not in rows and "events_secret" in rows


def dashboard_page_text(source: str, config: str, store: str) -> str:
    """Everything the dashboard's first page shows (Streamlit AppTest), as one text."""
    from streamlit.testing.v1 import AppTest

    from sleuth.dashboard.source import ENV

    app = Path(__file__).parents[1] / "src" / "sleuth" / "dashboard" / "app.py"
    old = {k: os.environ.get(k) for k in ENV.values()}
    os.environ.update({ENV["source"]: source, ENV["config"]: config, ENV["store"]: store})
    try:
        at = AppTest.from_file(str(app), default_timeout=120).run()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert not at.exception, at.exception
    parts = [str(getattr(e, "value", "")) for kind in ("caption", "markdown", "info", "title", "header", "text")
             for e in getattr(at, kind, [])] + [str(getattr(e, "value", "")) for e in at.sidebar.caption]
    text = "\n".join(parts)
    assert "***" in text  # the source and the store are named, their password hidden
    return text


# ------------------------------------------------------------------------------ bounded input

def test_a_stray_timestamp_in_2036_or_1971_allocates_nothing(tmp_path):
    """One event dated 2036 and one dated 1971 next to 3 weeks of data: both are counted, named and
    left out; the grid spans the 3 weeks, not 65 years (before: 12 GB and no end)."""
    rng = np.random.default_rng(1)
    ts = pd.Timestamp("2026-03-02") + pd.to_timedelta(np.sort(rng.integers(0, 21 * 86400, 20000)), unit="s")
    frame = pd.DataFrame({"timestamp": ts, "event": "page_view", "country": rng.choice(["US", "DE"], len(ts))})
    stray = pd.DataFrame({"timestamp": pd.to_datetime(["2036-01-01 03:00", "1971-06-01 00:00"]), "event": "page_view",
                          "country": "US"})
    path = tmp_path / "events.csv"
    pd.concat([frame, stray]).to_csv(path, index=False)
    det = detect(path, {"dimensions": ["country"]})
    assert len(det.cube.buckets) <= 21 * 24
    [warning] = [n for n in det.notes if "left out" in n]
    assert "left out 2 events dated between 1971-06-01 and 2036-01-01" in warning and "max_gap_days" in warning
    near = pd.DataFrame({"timestamp": pd.to_datetime(["2026-04-15 00:00"]), "event": "page_view", "country": "US"})
    pd.concat([frame, near]).to_csv(path, index=False)
    kept = detect(path, {"dimensions": ["country"]})  # 3 weeks after the rest: within max_gap_days, kept
    assert len(kept.cube.buckets) > 40 * 24 and not [n for n in kept.notes if "left out" in n]


def test_warnings_for_future_dates_empty_revenue_and_latin_1(tmp_path):
    rng = np.random.default_rng(2)
    ts = pd.Timestamp.now().normalize() + pd.DateOffset(years=10) + pd.to_timedelta(
        np.sort(rng.integers(0, 3 * 86400, 3000)), unit="s")
    frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "event": "purchase",
                          "city": rng.choice(["Köln", "Zürich", "Paris"], len(ts)), "revenue": np.nan})
    path = tmp_path / "events.csv"
    path.write_bytes(frame.to_csv(index=False).encode("cp1252"))
    proc = sleuth("metrics", path)
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "is not UTF-8 (first at line " in err and "Windows-1252" in err
    assert "warning:" in err and "days after today" in err and "unit and time zone" in err
    assert "column 'revenue' (revenue) is empty in every row" in err
    info = json.loads(sleuth("metrics", path, "--json").stdout)
    assert info["dimensions"] == {"city": 3}  # read as text: Köln and Zürich intact


def test_watch_reads_complete_lines_and_the_rest_next_time(data, tmp_path):
    """A writer that appends in two halves: the first run reads the complete lines and says it
    left the partial one; the next run reads it."""
    frame = pd.read_parquet(data["events"])
    frame = frame[frame.timestamp < pd.Timestamp(data["mild"])]
    path = tmp_path / "events.csv"
    text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    last = frame.timestamp.max() + pd.Timedelta(minutes=1)
    row = f"{last:%Y-%m-%dT%H:%M:%SZ},page_view,US,s-last\n"
    path.write_text(text + row[:20], encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    cfg = write_config(tmp_path / "sleuth.yaml", [])
    first = run_once(path, cfg, store=store)
    assert any("last line has no line feed yet" in n for n in first.notes)
    with path.open("a", encoding="utf-8") as f:
        f.write(row[20:])
    second = run_once(path, cfg, store=store)
    assert not any("line feed" in n for n in second.notes)
    assert [r["status"] for r in open_store(store).runs()] == ["finished", "finished"]
    missing = tmp_path / "not-yet.csv"
    proc = sleuth("watch", missing, "-c", cfg, "--store", store, "--every", "0", "--max-runs", "2")
    assert proc.returncode == 2 and proc.stderr.count("the next run tries again") == 2, proc.stderr


# ------------------------------------------------------------------------------ slow and dead channels

def test_hung_dripping_refusing_and_down_channels_cost_at_most_their_deadline(data, receiver, tmp_path):
    """Five channels: one never answers, one drips a byte every half second, one answers 500, one
    is a closed port, one is healthy. The healthy one gets its message; each other costs at most its
    timeout per attempt, in parallel; the run exits 3. Once they recover, the next run delivers each
    message once."""
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    receiver.stall.add("/stall")
    receiver.drip.add("/drip")
    receiver.down.add("/refuse")
    route = {"retries": 1, "backoff": 0.1, "timeout": 1.5, "deadline": 6}
    paths = ["/stall", "/drip", "/refuse", "/ok"]
    dead = f"json://127.0.0.1:{closed_port()}/down"
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(p), **route} for p in paths]
                       + [{"url": dead, **route}])
    t0 = time.monotonic()
    proc = sleuth("run", "--once", data["events"], "-c", cfg, "--store", store, "--until", data["mild"], "--json")
    took = time.monotonic() - t0
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["messages"] == {"sent": 1, "failed": 4} and summary["undelivered"] == 4
    assert summary["timeouts"] == 4  # the stalled and the dripping channel, 2 attempts each
    assert len(receiver.delivered("/ok")) == 1
    # each channel got at most its own 2 attempts x 1.5 s, all at once: without deadlines the stalled
    # channel alone would hold the run for minutes (the liveness of the run, not a speed target)
    assert took < 90, took
    receiver.stall.clear()
    receiver.drip.clear()
    receiver.down.clear()
    again = sleuth("run", "--once", data["events"], "-c", cfg, "--store", store, "--until", data["mild"], "--json")
    assert again.returncode == 3 and json.loads(again.stdout)["messages"] == {"sent": 3, "failed": 1}
    db = open_store(store)
    dead_key = [c["key"] for c in db.channels() if c["name"].startswith("json://127.0.0.1:") and "down" not in c["name"]]
    db.close()
    assert dead_key
    conn = sqlite3.connect(tmp_path / "alerts.db")  # the dead channel leaves the books: then all is owed-once
    conn.execute("DELETE FROM notifications WHERE status = 'failed'")
    conn.commit()
    conn.close()
    assert_once_each(store, receiver, paths)


# ------------------------------------------------------------------------------ kill -9

@pytest.mark.parametrize("point", ["while detecting", "while sending", "between watch runs"])
def test_kill_9_at_any_point_loses_and_repeats_nothing(data, receiver, store_url, tmp_path, point):
    """A run killed with SIGKILL is marked abandoned by the next, which takes over what it left in
    flight at once (no claim timeout to wait out) and sends it once."""
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    args = ("--config", cfg, "--store", store_url, "--until", data["mild"])
    db = open_store(store_url)
    if point == "between watch runs":  # watch reads all the data: give it the data up to the mild drop
        events = tmp_path / "events.parquet"
        frame = pd.read_parquet(data["events"])
        frame[frame.timestamp < pd.Timestamp(data["mild"])].to_parquet(events)
        proc = spawn("watch", events, *args[:-2], "--every", "600")
        wait_for(lambda: [r["status"] for r in db.runs()] == ["finished"])
    else:
        receiver.hang = point == "while sending"
        proc = spawn("run", "--once", data["events"], *args)
        wait_for((lambda: receiver.requests) if receiver.hang else (lambda: db.runs()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    done = sleuth("run", "--once", data["events"], *args)  # the default claim timeout: 300 s
    assert done.returncode == 0, done.stderr
    statuses = [r["status"] for r in db.runs()]
    assert statuses[-1] == "finished" and set(statuses[:-1]) <= {"finished", "abandoned"}
    assert statuses.count("abandoned") == (point != "between watch runs")
    db.close()
    assert len(receiver.delivered()) == 1
    assert_once_each(store_url, receiver, ["/hook"])


# ------------------------------------------------------------------------------ channels and exit codes

def test_a_channel_added_later_starts_from_what_arrives_after_it(data, receiver, tmp_path):
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    one = write_config(tmp_path / "one.yaml", [{"url": receiver.url("/a"), **FAST}])
    both = write_config(tmp_path / "both.yaml", [{"url": receiver.url("/a"), **FAST},
                                                 {"url": receiver.url("/b"), **FAST}])
    assert run_once(data["events"], one, store=store, until=data["after"]).messages == {"sent": 1}
    # /b is added later: the incident ended 14 hours before the data's end, before its --backfill of 5
    late = run_once(data["events"], both, store=store, until=data["later"], backfill=5)
    assert late.messages == {} and receiver.delivered("/b") == []
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    run_once(data["events"], one, store=fresh, until=data["after"])
    caught_up = run_once(data["events"], both, store=fresh, until=data["later"], backfill=24)
    assert caught_up.messages == {"sent": 1} and len(receiver.delivered("/b")) == 1  # --backfill governs it


def test_undelivered_messages_exit_3_and_watch_goes_on(data, tmp_path):
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": f"json://127.0.0.1:{closed_port()}/x", **FAST}])
    proc = sleuth("watch", data["events"], "-c", cfg, "--store", store, "--every", "0", "--max-runs", "2")
    assert proc.returncode == 3, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["run 1", "run 2"]
    assert "1 failed" in proc.stdout.splitlines()[1]


# ------------------------------------------------------------------------------ the store itself

def test_a_corrupted_emptied_or_read_only_sqlite_store(data, tmp_path):
    cfg = write_config(tmp_path / "sleuth.yaml", [])
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    before = corrupt.read_bytes()
    proc = sleuth("run", "--once", data["events"], "-c", cfg, "--store", f"sqlite:///{corrupt}", "--until", data["mild"])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: store sqlite:///") and corrupt.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert run_once(data["events"], cfg, store=f"sqlite:///{empty}", until=data["mild"]).incidents == 2
    frozen = tmp_path / "frozen.db"
    run_once(data["events"], cfg, store=f"sqlite:///{frozen}", until=data["mild"])
    before = frozen.read_bytes()
    proc = sleuth("run", "--once", data["events"], "-c", cfg, "--store", f"sqlite:///file:{frozen}?mode=ro&uri=true",
                  "--until", data["after"])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "readonly" in proc.stderr.replace(" ", "").lower() and frozen.read_bytes() == before


def test_a_store_from_an_older_sleuth_is_upgraded_in_place(tmp_path):
    """Old runs rows keep their data; the new columns and table appear; an events URL that an
    older sleuth stored with its password is redacted."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, started DATETIME NOT NULL, finished DATETIME, "
                 "source TEXT NOT NULL, config JSON NOT NULL, status VARCHAR(16) NOT NULL, data_end DATETIME, "
                 "summary JSON, error TEXT)")
    conn.execute("INSERT INTO runs (started, source, config, status, data_end) VALUES (?, ?, '{}', 'finished', ?)",
                 ("2026-03-01 00:00:00", f"postgres://bob:{SECRET}@127.0.0.1/db#events", "2026-03-01 00:00:00"))
    conn.commit()
    conn.close()
    db = open_store(f"sqlite:///{path}")
    [run] = db.runs()
    assert run["source"] == "postgres://bob:***@127.0.0.1/db#events" and run["status"] == "finished"
    assert run["heartbeat"] is None and db.channels() == []
    assert db.last_data_end(run["source"]) == dt.datetime(2026, 3, 1)
    db.close()
    assert SECRET.encode() not in path.read_bytes()  # not even in a free page (secure_delete)
