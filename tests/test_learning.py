"""Alerts from the first day, as a user sees them after 2 days, 1 week and 3 weeks of history: a
deep drop is caught from the second day; every surface says which metrics are still learning and
what they can catch (the run's summary, the JSON of an incident, the report's banner, the dashboard's
overview); after 3 weeks nothing says so any more."""
from __future__ import annotations

import json

import pytest
from alerts_support import make_events, sleuth, write_config

from sleuth.alerts import run_once
from sleuth.dashboard import data as d
from sleuth.dashboard.view import stored_snapshot


@pytest.fixture(scope="module", params=[2, 8, 23], ids=["2 days", "1 week", "3 weeks"])
def young(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"days{request.param}")
    make_events(folder / "events.parquet", days=request.param)  # a deep drop 20 hours before the end
    cfg = write_config(folder / "sleuth.yaml", [])
    store = f"sqlite:///{folder / 'alerts.db'}"
    report = run_once(folder / "events.parquet", cfg, store=store)
    return {"days": request.param, "folder": folder, "cfg": cfg, "store": store, "report": report}


def test_a_deep_drop_is_caught_from_the_second_day(young):
    assert young["report"].incidents >= 1, young["report"].line()


def test_the_run_says_which_metrics_are_still_learning(young):
    report = young["report"]
    if young["days"] < 21:
        assert report.learning["metrics"] == report.learning["of"] == 2
        assert "2 of 2 metrics still learning" in report.line() and "mature by" in report.line()
    else:
        assert report.learning == {} and "learning" not in report.line()


def test_an_incident_says_it_was_found_while_learning(young):
    proc = sleuth("detect", young["folder"] / "events.parquet", "-c", young["cfg"], "--json")
    assert proc.returncode == 0, proc.stderr
    incidents = [json.loads(x) for x in proc.stdout.splitlines()]
    assert incidents
    for inc in incidents:
        if young["days"] < 21:
            assert inc["learning"]["days"] < inc["learning"]["full_days"] == 21
            assert inc["learning"]["catches"] and inc["learning"]["misses"]
        else:
            assert inc["learning"] is None


def test_the_report_and_the_dashboard_show_it(young):
    snap = stored_snapshot(young["store"], None)
    frame = d.overview_frame(snap)
    out = young["folder"] / "report.html"
    proc = sleuth("report", "--store", young["store"], "--out", out)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    if young["days"] < 21:
        assert "Still learning: sessions, views" in snap.learning_text() and "catches" in snap.learning_text()
        assert "class='learning'" in page and "Still learning" in page
        assert all(frame.learning.str.contains(f"of 21 days"))
    else:
        assert snap.learning_text() is None and "Still learning" not in page and not frame.learning.any()
