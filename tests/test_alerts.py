"""Alerts end to end with real parts: SQLite and PostgreSQL stores, a webhook receiver on 127.0.0.1,
subprocess runs killed with SIGKILL or racing each other, a database that goes away mid-run."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alerts_support import FAST, Proxy, fresh_postgres, postgres_url, sleuth, spawn, write_config

from sleuth.alerts import open_store, run_once
from sleuth.alerts.notify import group_linked
from sleuth.redact import redact_channel as redact_url
from sleuth.alerts.store import metadata, normalise_url, redact_db_url
from sleuth.config import parse_config
from sleuth.errors import ConfigError
from sleuth.incidents import Incident


def counts(url: str) -> tuple[int, int]:
    db = open_store(url)
    try:
        return len(db.incidents()), len(db.notifications())
    finally:
        db.close()


def wait_for(check, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def test_repeat_is_quiet_growth_renotifies_recovery_closes(data, receiver, store_url, tmp_path):
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    first = run_once(data["events"], cfg, store=store_url, until=data["mild"])
    assert first.actions == {"new": 2} and first.messages == {"sent": 1}
    [msg] = receiver.delivered()
    title, body = msg["body"]["title"], msg["body"]["message"]
    assert "medium" in title and "down" in title and "(+1 linked)" in title
    for text in ("views", "sessions", "expected", "normal band", "when: ", "Linked anomalies"):
        assert text in body, text
    stored = open_store(store_url).incidents()
    keys = {r["key"] for r in stored}
    assert all(k in body for k in keys)
    assert all(f"went down: {r['change']:+.0%}" in body for r in stored)

    again = run_once(data["events"], cfg, store=store_url, until=data["mild"])
    assert again.actions == {"same": 2} and again.messages == {}
    assert len(receiver.requests) == 1 and counts(store_url) == (2, 2)

    grown = run_once(data["events"], cfg, store=store_url, until=data["deep"])
    assert grown.actions == {"grown": 2} and grown.messages == {"sent": 1}
    assert "[sleuth high]" in receiver.delivered()[1]["body"]["title"]
    db = open_store(store_url)
    rows = db.incidents()
    assert {r["key"] for r in rows} == keys and {r["revision"] for r in rows} == {2}
    assert {r["state"] for r in rows} == {"open"}

    after = run_once(data["events"], cfg, store=store_url, until=data["after"])
    assert after.messages == {} and len(receiver.requests) == 2
    assert {r["state"] for r in db.incidents()} == {"auto_closed"}
    assert [n["status"] for n in db.notifications()] == ["sent"] * 4
    assert [r["status"] for r in db.runs()] == ["finished"] * 4
    db.close()


def test_channel_500_then_recovers_and_a_dead_channel_ends_in_dead_letter(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    receiver.plan["/flaky"] = [500, 500]
    receiver.down.add("/down")
    cfg = write_config(tmp_path / "sleuth.yaml", [
        {"url": receiver.url("/flaky"), "retries": 3, "backoff": 0.01},
        {"url": receiver.url("/down"), "retries": 1, "backoff": 0.01, "dead_letter_after": 4}])
    first = run_once(data["events"], cfg, store=url, until=data["mild"])
    assert first.messages == {"sent": 1, "failed": 1}
    assert [r["status"] for r in receiver.requests if r["path"] == "/flaky"] == [500, 500, 200]
    db = open_store(url)
    by_channel = {}
    for n in db.notifications():
        by_channel.setdefault(n["attempts"], set()).add(n["status"])
    assert by_channel == {3: {"sent"}, 2: {"failed"}}

    second = run_once(data["events"], cfg, store=url, until=data["mild"])  # the failed one is tried again
    assert second.messages == {"dead_letter": 1}
    third = run_once(data["events"], cfg, store=url, until=data["mild"])   # a dead letter is left alone
    assert third.messages == {}
    assert len([r for r in receiver.requests if r["path"] == "/down"]) == 4
    assert len(receiver.delivered("/flaky")) == 1
    assert sorted(n["status"] for n in db.notifications()) == ["dead_letter", "dead_letter", "sent", "sent"]
    db.close()


def test_two_runs_at_once_send_once(data, receiver, store_url, tmp_path):
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    procs = [spawn("run", "--once", data["events"], "--config", cfg, "--store", store_url, "--until", data["mild"])
             for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, stderr
    assert len(receiver.requests) == 1 and len(receiver.delivered()) == 1
    assert counts(store_url) == (2, 2)


def test_the_same_new_incident_stored_by_many_threads_at_once_is_stored_once(store_url, monkeypatch):
    """On PostgreSQL every thread is held after looking the incident up, so all of them try to insert
    it: one wins, the others meet the unique key and update. (SQLite takes its write lock at BEGIN,
    so there the threads queue up instead.)"""
    import sleuth.alerts.store as store_module

    if store_url.startswith("postgresql"):
        looked = threading.Barrier(6, timeout=20)
        match = store_module._match

        def held_match(*args):
            row = match(*args)
            if row is None:
                looked.wait()
            return row

        monkeypatch.setattr(store_module, "_match", held_match)
    inc = Incident(id="abc123abc123", metric="views", segment={}, start="2026-03-01T10:00:00Z",
                   end="2026-03-01T12:00:00Z", direction="down", actual=1.0, expected=2.0, lower=1.5, upper=2.5,
                   score=9.0, severity="medium").to_dict()
    db = open_store(store_url)
    run = db.start_run("events", {})
    end = dt.datetime(2026, 3, 1, 12)
    barrier = threading.Barrier(6)

    def store_it():
        barrier.wait()
        return db.upsert(inc, run, end, end - dt.timedelta(days=1)).action

    with ThreadPoolExecutor(6) as pool:
        actions = sorted(pool.map(lambda _: store_it(), range(6)))
    assert actions == ["new"] + ["same"] * 5
    assert [(r["key"], r["state"]) for r in db.incidents()] == [("abc123abc123", "open")]
    db.close()


def test_a_false_alarm_stays_quiet_when_it_flares_up_but_history_does_not(store_url):
    t = dt.datetime(2026, 3, 1, 12)
    db = open_store(store_url)
    run = db.start_run("events", {})
    for key, label in (("aaaaaaaaaaaa", "false_alarm"), ("bbbbbbbbbbbb", None)):
        inc = Incident(id=key, metric=key, segment={}, start="2026-03-01T08:00:00Z", end="2026-03-01T10:00:00Z",
                       direction="up", actual=3.0, expected=2.0, lower=1.5, upper=2.5, score=5.0,
                       severity="low").to_dict()
        assert db.upsert(inc, run, t, t).action == "new"  # over before the store watched: history
        if label:
            db.add_feedback(key, label)
        flare = {**inc, "end": "2026-03-01T13:00:00Z", "severity": "high"}
        assert db.upsert(flare, run, t, t).action == "grown"
    rows = {r["key"]: r for r in db.incidents()}
    assert (rows["aaaaaaaaaaaa"]["quiet"], rows["bbbbbbbbbbbb"]["quiet"]) == ("false_alarm", None)
    assert {r["state"] for r in rows.values()} == {"open"}
    assert [r["key"] for r in db.pending("chan", "low", None, t)] == ["bbbbbbbbbbbb"]
    db.close()


def test_kill_9_mid_run_then_the_next_run_finishes_without_duplicates(data, receiver, store_url, tmp_path):
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    args = ("run", "--once", data["events"], "--config", cfg, "--store", store_url, "--until", data["mild"])
    receiver.hang = True  # the run is killed while its message is on the wire
    proc = spawn(*args)
    wait_for(lambda: receiver.requests or proc.poll() is not None)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert receiver.requests and receiver.requests[0]["status"] is None
    db = open_store(store_url)
    assert [r["status"] for r in db.runs()] == ["running"]
    assert {n["status"] for n in db.notifications()} == {"sending"}

    done = sleuth(*args, "--claim-timeout", "0")
    assert done.returncode == 0, done.stderr
    assert len(receiver.delivered()) == 1 and len(receiver.requests) == 2
    assert counts(store_url) == (2, 2)
    assert [n["status"] for n in db.notifications()] == ["sent", "sent"]
    assert sleuth(*args).returncode == 0 and len(receiver.requests) == 2
    db.close()


def test_first_run_keeps_history_quiet_and_a_late_run_catches_up(data, receiver, tmp_path):
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    quiet = f"sqlite:///{tmp_path / 'quiet.db'}"
    report = run_once(data["events"], cfg, store=quiet, until=data["after"], backfill=0)
    assert report.actions == {"new": 2} and report.messages == {}
    assert {r["quiet"] for r in open_store(quiet).incidents()} == {"history"}

    caught = f"sqlite:///{tmp_path / 'caught.db'}"
    before = (data["start"] - pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert run_once(data["events"], cfg, store=caught, until=before, backfill=0).incidents == 0
    late = run_once(data["events"], cfg, store=caught, until=data["after"], backfill=0)  # down for 11 hours
    assert late.messages == {"sent": 1} and len(receiver.delivered()) == 1


def test_feedback_mute_and_expected_are_respected_by_later_runs(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    run_once(data["events"], cfg, store=url, until=data["mild"])
    listed = sleuth("alerts", "list", "--store", url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["metric"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == {"views", "sessions"} and {r["state"] for r in rows.values()} == {"open"}
    views, sessions = rows["views"]["key"], rows["sessions"]["key"]
    assert sleuth("alerts", "mute", views[:8], "--store", url, "--note", "planned").returncode == 0
    fb = sleuth("alerts", "feedback", sessions, "expected", "--store", url)
    assert fb.returncode == 0 and "quiet: expected" in fb.stdout

    grown = run_once(data["events"], cfg, store=url, until=data["deep"])
    assert grown.actions == {"grown": 2}
    [second] = receiver.delivered()[1:]
    # views stays muted; sessions was expected at medium and is now high: that is news
    assert "sessions" in second["body"]["title"] and views not in second["body"]["message"]

    assert "acknowledged" in sleuth("alerts", "ack", sessions, "--store", url).stdout
    shown = sleuth("alerts", "show", views, "--store", url)
    assert shown.returncode == 0 and "quiet: muted" in shown.stdout and "feedback mute" in shown.stdout
    assert "sent after 1 attempt" in shown.stdout
    # views and sessions moved together: one alert, and `show` says why
    assert f"sent with {sessions}: windows overlap" in shown.stdout
    assert "resolved" in sleuth("alerts", "resolve", views, "--store", url).stdout
    detail = json.loads(sleuth("alerts", "show", views, "--store", url, "--json").stdout)
    assert detail["state"] == "resolved" and detail["feedback"][0]["note"] == "planned"
    table = sleuth("alerts", "list", "--store", url)
    assert views in table.stdout and "resolved" in table.stdout
    wrong = sleuth("alerts", "feedback", sessions, "false_alarm", "--store", url, "--note", "bot filter")
    assert "resolved (quiet: false_alarm)" in wrong.stdout
    for bad in (("feedback", views, "great"), ("show", "ffffffffffff")):
        proc = sleuth("alerts", *bad, "--store", url)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_secrets_never_appear_in_output_or_the_store(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    secret, token = "S3cretPass", "T0kenXYZ"
    receiver.down.add(f"/down/{token}")
    cfg = write_config(tmp_path / "sleuth.yaml", [
        {"url": receiver.url(f"/hook/{token}", secret=f"alice:{secret}@"), **FAST},
        {"url": receiver.url(f"/down/{token}", secret=f"alice:{secret}@"), **FAST}], store=url)
    outputs = [sleuth("run", "--once", data["events"], "--config", cfg, "--until", data["mild"], cwd=tmp_path)]
    assert outputs[0].returncode == 3, outputs[0].stderr  # the down channel's message is undelivered
    assert len(receiver.delivered(f"/hook/{token}")) == 1  # the secret URL itself works
    key = open_store(url).incidents()[0]["key"]
    outputs += [sleuth("alerts", "list", "--config", cfg), sleuth("alerts", "show", key, "--config", cfg, "--json")]
    bad_channel = write_config(tmp_path / "bad.yaml", [{"url": f"nonsense://alice:{secret}@host/{token}"}])
    outputs.append(sleuth("run", "--once", data["events"], "--config", bad_channel, "--store", url))
    outputs.append(sleuth("alerts", "list", "--store", f"postgresql://bob:{secret}@127.0.0.1:1/sleuth"))
    for proc in outputs:
        assert secret not in proc.stdout + proc.stderr and token not in proc.stdout + proc.stderr
    for proc in outputs[-2:]:
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "127.0.0.1:1" in outputs[-1].stderr and "***" in outputs[-1].stderr
    engine = sa.create_engine(url)
    with engine.connect() as c:
        dump = json.dumps([list(map(str, r)) for t in metadata.sorted_tables for r in c.execute(sa.select(t))])
    engine.dispose()
    assert secret not in dump and token not in dump and "127.0.0.1" in dump


def test_quiet_hours_and_cooldown_hold_messages_for_a_later_run(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    now = dt.datetime.now(dt.timezone.utc)
    hours = lambda a, b: f"{now + dt.timedelta(hours=a):%H:%M}-{now + dt.timedelta(hours=b):%H:%M}"  # noqa: E731
    route = {"url": receiver.url(), **FAST}
    night = write_config(tmp_path / "night.yaml", [{**route, "quiet_hours": hours(-1, 1)}])
    day = write_config(tmp_path / "day.yaml", [{**route, "quiet_hours": hours(3, 4), "cooldown_minutes": 60}])
    held = run_once(data["events"], night, store=url, until=data["mild"])
    assert held.messages == {} and held.held == 2 and receiver.requests == []
    assert run_once(data["events"], day, store=url, until=data["mild"]).messages == {"sent": 1}
    cooling = run_once(data["events"], day, store=url, until=data["deep"])  # grown, but just announced
    assert cooling.actions == {"grown": 2} and cooling.messages == {} and cooling.held == 2
    urgent = run_once(data["events"], night, store=url, until=data["deep"])  # high goes out in quiet hours
    assert urgent.messages == {"sent": 1} and "[sleuth high]" in receiver.delivered()[1]["body"]["title"]
    assert len(receiver.requests) == 2


def test_the_daily_digest_gathers_what_is_not_urgent_once_a_day(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST, "digest_at": f"{an_hour_ago:%H:%M}"}])
    assert run_once(data["events"], cfg, store=url, until=data["mild"]).messages == {"sent": 1}
    [digest] = receiver.delivered()
    assert digest["body"]["title"].startswith("[sleuth digest] 2 anomalies")
    assert "views (" in digest["body"]["message"] and "sessions (" in digest["body"]["message"]
    db = open_store(url)
    # an incident another source stored after the channel was added (the day before the data's end)
    late = Incident(id="cccccccccccc", metric="views", segment={"country": "US"}, start="2026-03-23T08:00:00Z",
                    end="2026-03-23T10:00:00Z", direction="up", actual=3.0, expected=2.0, lower=1.5, upper=2.5,
                    score=5.0, severity="medium").to_dict()
    db.upsert(late, db.start_run("elsewhere", {}), dt.datetime(2026, 3, 23, 10), dt.datetime(2026, 2, 1))
    waiting = run_once(data["events"], cfg, store=url, until=data["mild"])  # today's digest went out already
    assert waiting.messages == {} and waiting.held == 1
    urgent = run_once(data["events"], cfg, store=url, until=data["deep"])   # high does not wait
    assert urgent.messages == {"sent": 1} and urgent.held == 1
    assert receiver.delivered()[1]["body"]["title"].startswith("[sleuth high]")
    db.close()


def test_watch_repeats_and_reports_each_run(data, receiver, tmp_path):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    proc = sleuth("watch", data["events"], "--config", cfg, "--store", url, "--every", "0", "--max-runs", "2")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == ["run 1", "run 2"]
    assert len(receiver.delivered()) == 1
    assert [r["status"] for r in open_store(url).runs()] == ["finished", "finished"]


def test_the_database_going_away_mid_run_then_coming_back(data, receiver, tmp_path):
    target = sa.engine.make_url(normalise_url(fresh_postgres()))
    proxy = Proxy(target.host, target.port)
    proxy.start()
    url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cfg = write_config(tmp_path / "sleuth.yaml", [{"url": receiver.url(), **FAST}])
    args = ("run", "--once", data["events"], "--config", cfg, "--store", url, "--until", data["mild"])
    proc = spawn(*args)
    direct = open_store(normalise_url(postgres_url()))
    wait_for(lambda: direct.runs() or proc.poll() is not None)
    proxy.stop()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert stderr.startswith("error: store postgresql+psycopg://") and f":{proxy.port}/" in stderr
    assert receiver.requests == []
    proxy.start()
    try:
        done = sleuth(*args)
        assert done.returncode == 0, done.stderr
    finally:
        proxy.stop()
    assert len(receiver.delivered()) == 1 and counts(postgres_url()) == (2, 2)
    assert [r["status"] for r in direct.runs()] == ["abandoned", "finished"]  # the killed run, found dead
    direct.close()


def test_bad_store_urls_and_quiet_hours_are_one_line_errors(tmp_path):
    for store in ("not a url", "mysql://u:Pw9xyz@127.0.0.1/x"):
        proc = sleuth("alerts", "list", "--store", store, cwd=tmp_path)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: store ") and "Pw9xyz" not in proc.stderr
    with pytest.raises(ConfigError, match=r"notify\[0\]\.quiet_hours: use HH:MM-HH:MM"):
        parse_config({"notify": [{"url": "json://127.0.0.1/x", "quiet_hours": "late"}]})
    with pytest.raises(ConfigError, match=r"notify\[0\]\.digest_at: use HH:MM"):
        parse_config({"notify": [{"url": "json://127.0.0.1/x", "digest_at": "9am"}]})


def test_linked_incidents_are_grouped_and_urls_redacted():
    t = pd.Timestamp("2026-01-01")
    h = pd.Timedelta(hours=1)
    links = {"a": ["c", "d"], "b": [], "c": ["a", "d"], "d": ["a", "c"], "e": []}
    incs = [{"property": "web", "start_at": t + k * h, "end_at": t + (k + 2) * h, "key": key,
             "data": {"id": key, "linked": links[key]}} for k, key in enumerate("abcde")]
    assert [[i["key"] for i in g] for g in group_linked(incs)] == [["a", "c", "d"], ["b"], ["e"]]
    assert redact_url("slack://T000/B000/XXXX").startswith("slack:///…#")
    assert redact_url("json://u:pw@10.0.0.1:8080/hook/tok?x=1").startswith("json://10.0.0.1:8080/…#")
    assert "pw" not in redact_db_url("postgresql://u:pw@db.example/x")
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def test_a_message_names_the_shape_and_the_broken_step():
    from sleuth.alerts.notify import describe

    data = {"metric": "orders", "segment": {}, "direction": "down", "change": -0.94, "actual": 16,
            "expected": 248, "lower": 200, "upper": 300, "severity": "high", "score": 9.1,
            "shape": "sustained", "root_causes": [],
            "transitions": [{"from": "begin_checkout", "to": "purchase", "baseline": 0.59, "during": 0.03}]}
    t = pd.Timestamp("2026-04-08 14:00")
    row = {"data": data, "property": "web", "key": "k", "revision": 1,
           "start_at": t, "end_at": t + pd.Timedelta(hours=5), "state": "open"}
    text = "\n".join(describe(row))
    assert "went down: -94% (sustained)" in text
    assert "event paths changed: begin_checkout -> purchase 59% -> 3%" in text
    assert "disrupted" not in text  # an incident stored before the field existed
    data["disrupted_event"] = {"event": "begin_checkout", "distance": 0.56, "moves": 530, "moved": 297, "q": 1e-90}
    assert "most disrupted event: begin_checkout (297 of its 530 next steps" in "\n".join(describe(row))


def test_an_expected_pattern_is_expected_again_the_next_week(tmp_path):
    """A Monday-morning newsletter doubles traffic for three hours. Labelled expected once, the
    next Monday's rise is no incident; without the label it is one."""
    rng = np.random.default_rng(4)
    hours = pd.date_range("2026-03-02", periods=6 * 168, freq="h")
    rate = 300 * (1 + 0.3 * np.sin(2 * np.pi * (np.arange(len(hours)) % 24) / 24))
    mondays = [4 * 168 + 9, 5 * 168 + 9]  # 09:00 on the Mondays of weeks 5 and 6
    for m in mondays:
        rate[m:m + 3] *= 2.0
    n = rng.poisson(rate)
    ts = np.repeat(hours.values, n) + rng.integers(0, 3600, n.sum()).astype("timedelta64[s]")
    events = tmp_path / "events.parquet"
    pd.DataFrame({"timestamp": ts, "event": "page_view", "country": rng.choice(["US", "DE"], n.sum()),
                  "session_id": rng.integers(0, 10**12, n.sum()).astype(str)}
                 ).sort_values("timestamp").to_parquet(events, index=False)
    cfg = write_config(tmp_path / "sleuth.yaml", [])
    second = hours[mondays[1]]

    def incidents_at(url: str, t: pd.Timestamp) -> list[dict]:
        rows = [json.loads(x) for x in sleuth("alerts", "list", "--store", url, "--json").stdout.splitlines()]
        return [r for r in rows if r["metric"] == "views" and abs(pd.Timestamp(r["start_at"]) - t) <= pd.Timedelta(hours=2)]

    labelled = f"sqlite:///{tmp_path / 'labelled.db'}"
    run_once(events, cfg, store=labelled, until=hours[mondays[0] + 12])
    [first] = incidents_at(labelled, hours[mondays[0]])
    assert sleuth("alerts", "feedback", first["key"], "expected", "--store", labelled).returncode == 0
    run_once(events, cfg, store=labelled)
    assert incidents_at(labelled, second) == []

    plain = f"sqlite:///{tmp_path / 'plain.db'}"
    run_once(events, cfg, store=plain)
    assert len(incidents_at(plain, second)) == 1


def test_messages_link_to_the_incident_in_the_dashboard():
    from sleuth.alerts.notify import digest, message

    t = pd.Timestamp("2026-04-08 14:00")
    inc = {"data": {"metric": "orders", "segment": {}, "direction": "down", "change": -0.5, "severity": "high",
                    "score": 5.0}, "property": "web", "key": "abc123", "revision": 1, "severity": "high",
           "start_at": t, "end_at": t + pd.Timedelta(hours=2), "state": "open"}
    assert "Open in the dashboard: http://127.0.0.1:8501/?incident=abc123" in message([inc], "http://127.0.0.1:8501/")[1]
    assert "dashboard" not in message([inc])[1]
    assert "http://127.0.0.1:8501/?page=Alerts" in digest([inc], "http://127.0.0.1:8501")[1]
