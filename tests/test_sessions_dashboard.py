"""The Sessions page (library frames and figures, and the Streamlit page through AppTest) and the
sessions section of the HTML report."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("streamlit", reason="the dashboard extra is not installed (make install adds it)")

from sleuth.config import parse_config  # noqa: E402
from sleuth.dashboard import sessions as page  # noqa: E402
from sleuth.dashboard.report import render_report  # noqa: E402
from sleuth.snapshot import Snapshot  # noqa: E402
from sleuth.dashboard.source import ENV  # noqa: E402
from sleuth.datasets.sessions import generate_sessions  # noqa: E402
from sleuth.pipeline import detect  # noqa: E402

APP = Path(__file__).parents[1] / "src" / "sleuth" / "dashboard" / "app.py"
CONFIG = {"granularity": "1h", "dimensions": ["device", "page"]}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("ga")
    table, _, _ = generate_sessions(weeks=3, sessions_per_day=200, seed=11, inject=False)
    pq.write_table(table, out / "ga_sessions.parquet")
    (out / "sleuth.yaml").write_text(json.dumps(CONFIG), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def det(export):
    return detect(export / "ga_sessions.parquet", parse_config(CONFIG), sessions="only")


def test_scatter_colours_clusters_and_marks_bots(det):
    fig = page.reduced_scatter(det, sample=2000)
    names = [t.name for t in fig.data]
    people = set(det.sessions.frame.loc[det.sessions.frame["label"] != "bot", "cluster_name"])
    assert names[-1] == "bots" and set(names[:-1]) <= people and len(names) >= 3
    assert len(fig.data[-1].x) > 0 and all(t for t in fig.data[-1].text)  # bots with their reasons
    assert fig.layout.xaxis.title.text.startswith("engagement")


def test_frames_for_clusters_bots_and_slow_pages(det):
    clusters = page.cluster_frame(det)
    assert clusters["cluster"].iloc[-1] == "new behaviour" and clusters["share"].sum() == pytest.approx(1.0)
    bots = page.bot_frame(det, 10)
    assert len(bots) == 10 and bots["reasons"].str.len().gt(0).all()
    slow = page.slowest_pages(det)
    assert len(slow) and slow["last days"].is_monotonic_decreasing
    assert slow["page"].iloc[0].startswith("/checkout")  # the slowest pages of the generated site
    assert page.share_figure(det) is not None and page.share_figure(det, "no_such_metric") is None


def test_report_has_a_sessions_section_with_its_charts(det):
    text = render_report(Snapshot.from_detection(det), "report")
    assert "<h2>Sessions and pages</h2>" in text and "Behaviour clusters" in text and "Slowest pages" in text
    assert text.count("plotly.js v") <= 2  # plotly's script once (its banner names the version)
    assert text.index("id='sessions'") < text.index("<h3>Bot share</h3>")


def test_streamlit_sessions_page(export, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(ENV["source"], str(export / "ga_sessions.parquet"))
    monkeypatch.setenv(ENV["config"], str(export / "sleuth.yaml"))
    monkeypatch.setenv(ENV["store"], f"sqlite:///{export / 'store.db'}")
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.sidebar.radio(key="page").set_value("Sessions").run()
    assert not at.exception, at.exception
    assert at.header[0].value == "Sessions"
    heads = [s.value for s in at.subheader]
    assert {"Behaviour clusters", "Bot share", "Slowest pages", "Bots and outliers"} <= set(heads)
    assert len(at.get("plotly_chart")) >= 2
