"""Dashboard and report: the library's frames and figures, each Streamlit page (AppTest), the HTML
report, and one real headless Chromium against `sleuth dashboard` on a loopback port."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("streamlit", reason="the dashboard extra is not installed (make install adds it)")

from sleuth.alerts import open_store, run_once  # noqa: E402
from sleuth.datasets.shop import write_shop  # noqa: E402
from sleuth.datasets.shop import DEMO_CONFIG  # noqa: E402
from sleuth.dashboard import data as d  # noqa: E402
from sleuth.dashboard.report import top_incidents  # noqa: E402
from sleuth.dashboard.source import ENV, prepare  # noqa: E402
from sleuth.incidents import SEVERITY_RANK, Incident  # noqa: E402
from sleuth.pipeline import detect  # noqa: E402
from sleuth.snapshot import Snapshot  # noqa: E402

APP = Path(__file__).parents[1] / "src" / "sleuth" / "dashboard" / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A small demo shop (5 weeks, 150 sessions an hour, injected incidents), detected once."""
    out = tmp_path_factory.mktemp("shop")
    written = write_shop(out, fmt="parquet", weeks=5, sessions_per_hour=150, seed=3)
    cfg = out / "sleuth.yaml"
    cfg.write_text(DEMO_CONFIG, encoding="utf-8")
    det = detect(written["events"], cfg)
    assert det.incidents, "the generated shop has injected incidents"
    return {"dir": out, "events": written["events"], "config": str(cfg), "det": det,
            "snap": Snapshot.from_detection(det)}


@pytest.fixture(scope="module")
def store_db(shop):
    """An SQLite store filled by one real alert run over the shop."""
    path = shop["dir"] / "store.db"
    run_once(shop["events"], shop["config"], store=f"sqlite:///{path}")
    return path


def _store_copy(store_db: Path, tmp_path: Path) -> str:
    """Tests that write to the store get their own copy of it."""
    path = tmp_path / "store.db"
    shutil.copy(store_db, path)
    return f"sqlite:///{path}"


def _rows(url: str) -> dict[str, dict]:
    db = open_store(url)
    try:
        return {r["key"]: r for r in db.incidents()}
    finally:
        db.close()


# ------------------------------------------------------------------------------ library functions

def test_overview_has_every_metric_of_every_property_with_sparkline_and_counts(shop, store_db):
    det, snap = shop["det"], shop["snap"]
    rows = list(_rows(f"sqlite:///{store_db}").values())
    frame = d.overview_frame(snap, rows)
    expected = {(p, m) for p in det.cube.keys.property.unique() for m in det.cube.metrics}
    assert set(zip(frame.property, frame.metric)) == expected and len(frame) == len(expected)
    assert all(len(s) == min(d.SPARK_BUCKETS, len(det.cube.buckets)) for s in frame.sparkline)
    i = det.cube.index("web", "sessions")
    row = frame[(frame.property == "web") & (frame.metric == "sessions")].iloc[0]
    assert row.sparkline == pytest.approx(list(np.nan_to_num(det.cube.value[i, -d.SPARK_BUCKETS:])), rel=1e-6)
    assert frame.incidents.sum() == len(det.incidents)
    open_rows = [r for r in rows if r["state"] in ("open", "acknowledged")]
    assert frame.open.sum() == len(open_rows)


def test_metric_figure_has_band_marks_anomalies_and_shades_weekends(shop):
    det, snap = shop["det"], shop["snap"]
    inc = max((i for i in det.incidents if not i.segment), key=lambda i: i.score)
    since, until = inc.start_time() - pd.Timedelta(days=7), inc.end_time() + pd.Timedelta(days=2)
    fig = d.metric_figure(snap, inc.metric, inc.property, since=since, until=until)
    names = [t.name for t in fig.data]
    assert {"expected band", "expected", "actual", "anomaly"} <= set(names)
    series = det.series(inc.metric, inc.property)
    window = series[(series.bucket >= since) & (series.bucket < until)]
    marks = fig.data[names.index("anomaly")]
    assert len(marks.x) == int(window.is_anomaly.sum()) > 0
    days = pd.DatetimeIndex(window.bucket).normalize().unique()
    weekend_days = int((days.dayofweek >= 5).sum())
    assert len(fig.layout.shapes) == weekend_days > 0


def test_metric_figure_drills_down_one_line_per_value(shop):
    det = shop["det"]
    keys = det.cube.keys
    prop, metric = "web", "sessions"
    values = set(keys.segment[(keys.property == prop) & (keys.metric == metric) & (keys.dimension == "device")])
    fig = d.metric_figure(shop["snap"], metric, prop, dimension="device")
    assert {t.name for t in fig.data} == values and len(values) >= 2


def test_holidays_are_shaded_and_named(shop):
    det = shop["det"]
    buckets = pd.date_range("2026-07-03", "2026-07-06", freq="h", inclusive="left")  # Fri .. Sun, US
    spans = d.calendar_spans(det.config, buckets)
    # Friday is the observed holiday, Saturday the holiday itself (named, not just a weekend), Sunday a weekend
    assert [label for _, _, label in spans] == ["Independence Day (observed) (US)", "Independence Day (US)", "weekend"]
    assert [start for start, _, _ in spans] == list(pd.date_range("2026-07-03", periods=3, freq="D"))


def test_incident_summary_is_one_sentence_with_segment_time_and_cause():
    inc = Incident(id="x", metric="conversion_rate", segment={"os": "iOS"}, start="2026-03-03T09:00:00Z",
                   end="2026-03-03T15:00:00Z", direction="down", actual=0.01, expected=0.022, lower=0.018,
                   upper=0.026, score=9.0, severity="high", change=-0.54,
                   root_causes=[{"segment": {"os": "iOS"}, "explains": 0.87, "score": 0.9}])
    assert d.incident_summary(inc) == ("Conversion rate fell 54 % below expected on iOS from 09:00 to 15:00 "
                                       "on Tue 03 Mar; iOS explains 87 % of the drop")
    assert "from 10:00 to 16:00" in d.incident_summary(inc, "Europe/Berlin")
    inc.direction, inc.change, inc.root_causes, inc.segment = "up", 1.2, [], {}
    assert d.incident_summary(inc) == "Conversion rate rose 120 % above expected on default from 09:00 to 15:00 on Tue 03 Mar"


def test_root_causes_paths_and_peers_frames_match_the_incident(shop):
    det = shop["det"]
    inc = next(i for i in sorted(det.incidents, key=lambda i: -i.score) if i.root_causes and i.transitions)
    rc = d.root_cause_frame(inc)
    assert list(rc.explains) == [r["explains"] for r in inc.root_causes]
    bars = d.root_cause_figure(inc).data[0]
    assert list(bars.x) == list(rc.explains[::-1])
    dim = next(iter(inc.contributions))
    assert len(d.root_cause_figure(inc, dim).data[0].y) == len(inc.contributions[dim])
    paths = d.path_frame(inc)
    assert list(paths.during) == [t["during"] for t in inc.transitions]
    usual, during = d.path_figure(inc).data
    assert list(during.x) == list(paths.during[::-1]) and list(usual.x) == list(paths.usually[::-1])
    assert dict(zip(d.peer_frame(inc).property, d.peer_frame(inc).change)) == inc.peers
    # an incident with significant transitions names its most disrupted event
    assert inc.disrupted_event and f"**{inc.disrupted_event['event']}**" in d.disrupted_text(inc)
    assert d.disrupted_text(dataclasses.replace(inc, disrupted_event={})) is None


def test_classifier_view_is_a_shap_bar_chart_coloured_by_direction(shop):
    det = shop["det"]
    inc = next(i for i in det.incidents if i.metric == "page_view" and i.property == "web" and not i.segment
               and i.direction == "up" and i.root_causes and i.root_causes[0]["segment"].get("browser") == "HeadlessChrome")
    view = d.classifier_view(det.events, det.cube.metrics, inc)
    fig = d.classifier_figure(view)
    bars = fig.data[0]
    shown = [f for f in view["features"] if f["feature"] in bars.y]
    assert [f["feature"] for f in shown] == list(bars.y)[::-1] and len(shown) >= 2
    assert "RANDOM" in bars.y and "#999" in bars.marker.color
    colors = dict(zip(bars.y, bars.marker.color))
    for f in shown:
        if f["feature"] != "RANDOM":
            assert colors[f["feature"]] == (d.ANOMALY_COLOR if f["direction"] > 0 else "#1f77b4")
    assert view["verdict"] in fig.layout.title.text
    summary = d.classifier_summary(view)
    assert ("HeadlessChrome" in summary) if view["verdict"] == "root cause" else summary.startswith("Unknown")


def test_linked_anomalies_are_drawn_as_a_network(shop):
    det = shop["det"]
    inc = max(det.incidents, key=lambda i: len(i.linked))
    assert len(inc.linked) >= 2
    fig = d.linked_figure(shop["snap"], inc)
    nodes = fig.data[-1]
    assert list(nodes.hovertext) == [inc.id] + [i.id for i in det.incidents if i.id in inc.linked]
    assert len(fig.data) - 1 >= len(inc.linked)  # at least a spanning set of edges
    # each edge says why on hover, and the table lists every linked incident with its reason
    assert all(t.hovertext and "windows overlap" in t.hovertext for t in fig.data[:-1])
    frame = d.link_frame(shop["snap"], inc)
    assert sorted(frame["incident"]) == sorted(inc.linked)
    direct = frame[frame["incident"].isin(inc.link_evidence)]
    assert len(direct) >= 1 and direct["why"].str.startswith("windows overlap").all()
    alone = next((i for i in det.incidents if not i.linked), None)
    if alone is not None:
        assert d.linked_figure(shop["snap"], alone) is None


def test_context_names_day_time_and_revenue_at_stake(shop):
    det = shop["det"]
    revenue = [i for i in det.incidents if i.metric == "revenue" and not i.segment]
    assert revenue, "the shop injects a checkout break that moves revenue"
    inc = revenue[0]
    ctx = d.incident_context(inc, det.config.timezone)
    assert ctx["day of week"] == inc.start_time().day_name()
    stake = ctx["revenue at stake"]
    assert stake is not None and np.sign(stake) == (1 if inc.direction == "up" else -1)
    assert stake == pytest.approx(inc.actual - inc.expected, rel=1e-3)
    quiet = [i for i in det.incidents if i.property != inc.property or i.end_time() <= inc.start_time() - pd.Timedelta(days=1)]
    assert any(d.incident_context(i)["revenue at stake"] is None for i in quiet)


def test_store_frame_filters_by_state(shop, store_db):
    rows = list(_rows(f"sqlite:///{store_db}").values())
    frame = d.store_frame(rows)
    assert len(frame) == len(rows) and set(frame.key) == {r["key"] for r in rows}
    closed = d.store_frame(rows, state="auto_closed")
    assert set(closed.state) <= {"auto_closed"} and len(closed) == sum(r["state"] == "auto_closed" for r in rows)


def test_no_source_means_the_demo_with_a_filled_store(tmp_path):
    demo = tmp_path / "demo"
    first = prepare(None, None, None, demo_dir=demo, weeks=5, sessions_per_hour=60)
    assert Path(first.source).exists() and Path(first.config).exists()
    assert _rows(first.store), "the demo store is filled by one run"
    stamp = Path(first.source).stat().st_mtime_ns
    again = prepare(None, None, None, demo_dir=demo)
    assert again == first and Path(first.source).stat().st_mtime_ns == stamp  # not regenerated


# ------------------------------------------------------------------------------ Streamlit pages

@pytest.fixture
def app(shop, store_db, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    url = _store_copy(store_db, tmp_path)
    monkeypatch.setenv(ENV["source"], shop["events"])
    monkeypatch.setenv(ENV["config"], shop["config"])
    monkeypatch.setenv(ENV["store"], url)

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        if page != "Alerts":
            at.sidebar.radio(key="page").set_value(page).run()
        assert not at.exception, at.exception
        assert at.header[0].value.startswith(page)
        return at

    open_page.url = url
    return open_page


def _traces(at) -> list[list[str]]:
    return [[t.get("name") for t in json.loads(c.proto.spec)["data"]] for c in at.get("plotly_chart")]


def test_overview_page_lists_metrics_and_filters_incidents(app, shop):
    det = shop["det"]
    at = app("Overview")
    assert at.subheader[0].value == f"{len(det.incidents)} incidents"
    at.selectbox(key="ov_severity").set_value("high").run()
    assert at.subheader[0].value == f"{sum(i.severity == 'high' for i in det.incidents)} incidents"
    at.selectbox(key="ov_state").set_value("acknowledged").run()
    assert at.subheader[0].value == "0 incidents"


def test_metric_page_charts_and_drills_down(app):
    at = app("Metric")
    assert "actual" in _traces(at)[0]
    at.selectbox(key="m_drill").set_value("device").run()
    assert not at.exception and "actual" not in _traces(at)[0] and len(_traces(at)[0]) >= 2


def test_incident_page_tells_the_story(app, shop):
    det = shop["det"]
    top = max(det.incidents, key=lambda i: i.score)
    at = app("Incident")
    heads = [s.value for s in at.subheader]
    assert heads[0] == d.incident_summary(top, det.config.timezone)
    assert {"Root causes", "Event-path change", "Peer properties", "Classifier view"} <= set(heads)
    assert not any("Not yet" in c.value for c in at.caption)
    charts = len(at.get("plotly_chart"))
    assert charts >= 2
    at.toggle(key="i_classify").set_value(True).run()  # on demand: reads the events, trains the forest
    assert not at.exception, at.exception
    assert any(("represented" in m.value or m.value.startswith("Unknown")) for m in at.markdown)


def test_a_link_from_an_alert_opens_its_incident(app, shop):
    from streamlit.testing.v1 import AppTest

    app("Alerts")  # sets the environment up
    det = shop["det"]
    wanted = min(det.incidents, key=lambda i: i.score)  # not the page's default choice
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["incident"] = wanted.id
    at.run()
    assert not at.exception, at.exception
    assert at.header[0].value.startswith("Incident")
    assert at.subheader[0].value == d.incident_summary(wanted, det.config.timezone)


def test_alerts_page_writes_acknowledge_mute_and_feedback_to_the_store(app):
    at = app("Alerts")
    key = at.selectbox(key="a_incident").value
    at.button(key="a_ack").click().run()
    assert _rows(app.url)[key]["state"] == "acknowledged"
    at.button(key="a_mute").click().run()
    assert _rows(app.url)[key]["quiet"] == "muted"
    at.selectbox(key="a_label").set_value("false_alarm").run()
    at.button(key="a_feedback").click().run()
    assert _rows(app.url)[key]["state"] == "resolved"
    db = open_store(app.url)
    assert [f["label"] for f in db.get(key)["feedback"]] == ["mute", "false_alarm"]
    db.close()


# ------------------------------------------------------------------------------ HTML report

def test_report_is_self_contained_and_tells_each_incident(shop, run_cli, tmp_path):
    det = shop["det"]
    since = det.incidents[len(det.incidents) // 2].start
    out = tmp_path / "report.html"
    proc = run_cli("report", shop["events"], "--config", shop["config"], "--since", since, "--out", out,
                   "--classifier", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page), "no external script"
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page), "no external stylesheet"
    assert "Plotly.newPlot" in page
    expected = [i for i in det.incidents if i.start >= since]
    assert expected and f"{len(expected)} incidents." in page
    for inc in expected:
        assert escape(d.incident_summary(inc, det.config.timezone)) in page
    assert "day of week" in page and "revenue at stake" in page
    # --classifier 1: the most severe incident, and only it, has its classifier view
    assert page.count("<h3>Classifier view</h3>") == 1 and "The classifier view is shown for the 1 most severe." in page
    top = top_incidents(expected, 1)[0]
    section = page.split(f"<section id='{top.id}'>")[1].split("</section>")[0]
    assert "<h3>Classifier view</h3>" in section and ("Unknown:" in section or "represented" in section)
    # each incident's section lists the incidents sent with it and why
    linked = next(i for i in expected if i.link_evidence)
    section = page.split(f"<section id='{linked.id}'>")[1].split("</section>")[0]
    assert "<h3>Linked anomalies (sent as one alert)</h3>" in section
    assert all(other in section for other in linked.linked) and "windows overlap" in section


def test_the_most_severe_incidents_come_first_for_the_report():
    incs = [Incident(id=i, metric="m", segment={}, start="2026-03-09T10:00:00Z", end="2026-03-09T11:00:00Z",
                     direction="up", actual=1.0, expected=1.0, lower=None, upper=None, score=score, severity=sev)
            for i, sev, score in [("a", "low", 0.99), ("b", "high", 0.7), ("c", "high", 0.9), ("d", "medium", 0.95)]]
    assert [i.id for i in top_incidents(incs, 3)] == ["c", "b", "d"] and top_incidents(incs, 0) == []


# ------------------------------------------------------------------------------ real browser

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(shop, store_db, tmp_path):
    """`sleuth dashboard` on a free loopback port; always stopped at the end."""
    url = _store_copy(store_db, tmp_path)
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sleuth.cli", "dashboard", shop["events"], "--config",
                             shop["config"], "--store", url, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("dashboard did not start:\n" + (tmp_path / "server.log").read_text())
                time.sleep(0.3)
        yield {"url": f"http://127.0.0.1:{port}/", "store": url}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it in CI)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                                    headless=True, viewport={"width": 1400, "height": 1000})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_opens_every_page_renders_charts_and_acknowledges(server, browser):
    page = browser
    page.goto(server["url"])
    page.get_by_role("heading", name="Alerts", exact=True).wait_for(timeout=90_000)
    page.get_by_text("alerts (", exact=False).first.wait_for()
    page.get_by_text("Overview", exact=True).first.click()
    page.get_by_role("heading", name="Overview").wait_for(timeout=30_000)
    page.get_by_text("Metric", exact=True).first.click()
    page.get_by_role("heading", name="Metric").wait_for(timeout=30_000)
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
    page.get_by_text("Incident", exact=True).first.click()
    page.get_by_role("heading", name="Root causes").wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 2
    page.get_by_text("Alerts", exact=True).first.click()
    page.get_by_role("heading", name="Alerts", exact=True).wait_for(timeout=30_000)
    before = _rows(server["store"])
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_text(": acknowledged").wait_for(timeout=30_000)
    after = _rows(server["store"])
    changed = [k for k in after if after[k]["state"] != before[k]["state"]]
    assert len(changed) == 1 and after[changed[0]]["state"] == "acknowledged"


def test_page_benchmark_renders_every_page_on_generated_data(tmp_path):
    from sleuth.bench.dashboard import PAGES, page_speed

    result = page_speed(metrics=3, weeks=5, directory=tmp_path)
    assert result["events"] == len(pd.read_parquet(tmp_path / "year.parquet"))
    assert set(result["page_s"]) == set(PAGES) and all(s > 0 for s in result["page_s"].values())
    assert result["first_load_s"] > 0 and ENV["source"] not in os.environ  # the environment is restored


def test_the_store_answers_every_surface_without_the_events(shop, store_db, tmp_path, run_cli, monkeypatch):
    """`run` stored each incident with its explanation and each series' recent values: explain,
    report --store, alerts show and the dashboard read that, and work with the events gone."""
    from streamlit.testing.v1 import AppTest

    url = _store_copy(store_db, tmp_path)
    rows = _rows(url)
    lead = max(rows.values(), key=lambda r: (len(r["data"]["linked"]), r["key"]))
    events = Path(shop["events"])
    hidden = events.with_suffix(".away")
    events.rename(hidden)
    try:
        shown = run_cli("explain", lead["key"][:8], "--store", url)
        assert shown.returncode == 0, shown.stderr
        assert lead["metric"] in shown.stdout and f"linked incidents (sent as one alert): {len(lead['data']['linked'])}" \
            in shown.stdout and all(k in shown.stdout for k in lead["data"]["linked"])
        as_json = json.loads(run_cli("explain", lead["key"], "--store", url, "--json").stdout)
        assert as_json["root_causes"] == lead["data"]["root_causes"] and "chart" not in as_json
        need = run_cli("explain", lead["key"], "--store", url, "--method", "classifier")
        assert need.returncode == 2 and "add --source" in need.stderr
        out = tmp_path / "stored.html"
        made = run_cli("report", "--store", url, "--out", out)
        assert made.returncode == 0, made.stderr
        page = out.read_text(encoding="utf-8")
        assert f"{len(rows)} incidents." in page and "From the alert store: run 1" in page
        assert all(f"<section id='{k}'>" in page for k in rows)
        monkeypatch.setenv(ENV["source"], shop["events"])
        monkeypatch.setenv(ENV["config"], shop["config"])
        monkeypatch.setenv(ENV["store"], url)
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert not at.exception, at.exception
        groups = d.alert_groups(list(rows.values()))
        assert at.subheader[0].value == f"{len(groups)} alerts ({len(rows)} incidents)" and len(groups) < len(rows)
        for page_name in ("Overview", "Metric", "Incident"):
            at.sidebar.radio(key="page").set_value(page_name).run()
            assert not at.exception, (page_name, at.exception)
        assert len(at.get("plotly_chart")) >= 2  # the incident's stored chart and its root causes
    finally:
        hidden.rename(events)


def test_each_alert_is_led_by_its_worst_incident(store_db):
    rows = list(_rows(f"sqlite:///{store_db}").values())
    groups = d.alert_groups(rows)
    assert sorted(r["key"] for g in groups for r in g) == sorted(r["key"] for r in rows)
    for g in groups:
        keys = {r["key"] for r in g}
        for r in g:  # a group holds exactly what its incidents say they were sent with
            assert set(r["data"]["linked"]) <= keys
        lead = g[0]
        assert all((SEVERITY_RANK[lead["severity"]], abs(lead["change"] or 0)) >= (SEVERITY_RANK[r["severity"]],
                   abs(r["change"] or 0)) for r in g)
    frame = d.alerts_frame(groups)
    assert list(frame.linked) == [len(g) - 1 for g in groups]
