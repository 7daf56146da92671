"""The CLI end to end, as a user runs it: the demo pipeline and the output contracts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sleuth.datasets.shop import write_shop

CONTRACT3 = {"id": str, "metric": str, "segment": dict, "start": str, "end": str, "direction": str,
             "actual": (float, int, type(None)), "expected": (float, int, type(None)),
             "lower": (float, int, type(None)), "upper": (float, int, type(None)),
             "score": (float, int), "severity": str, "root_causes": list, "transitions": list, "linked": list}


def sleuth(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sleuth.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def check_incident(obj: dict) -> None:
    for key, typ in CONTRACT3.items():
        assert key in obj, key
        assert isinstance(obj[key], typ), (key, obj[key])
    assert obj["direction"] in ("up", "down")
    assert obj["severity"] in ("low", "medium", "high")
    start, end = pd.Timestamp(obj["start"]), pd.Timestamp(obj["end"])
    assert obj["start"].endswith("Z") and obj["end"].endswith("Z") and start < end
    for rc in obj["root_causes"]:
        assert isinstance(rc["segment"], dict) and rc["segment"]
        assert isinstance(rc["score"], float) and isinstance(rc["explains"], float)
    scores = [rc["score"] for rc in obj["root_causes"]]
    assert scores == sorted(scores, reverse=True)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = sleuth("demo", "--json", "--weeks", "5", "--sessions-per-hour", "250", "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    return out, lines[:-1], lines[-1]


def test_demo_pipeline_end_to_end_finds_injected_incidents(demo_run):
    out, incidents, summary = demo_run
    assert (out / "events.parquet").exists() and (out / "truth.json").exists() and (out / "sleuth.yaml").exists()
    for inc in incidents:
        check_incident(inc)
    ev = summary["evaluation"]
    assert ev["total"] == 6
    assert ev["found"] >= 4, ev["per_incident"]
    # every found incident with a known segment names it among its top root causes or its segment
    by_kind = {p["kind"]: p for p in ev["per_incident"]}
    assert by_kind["tracking_outage"]["found"] and by_kind["bot_flood"]["root_cause_ok"]
    # every incident found has its cause named (segments or paths), the funnel break by its path change
    assert ev["explained"] == ev["found"], ev["per_incident"]
    assert "paths" in by_kind["funnel_break"]["explained_by"]
    # the event network of the incidents' own events takes part in linking them
    reasons = [r for inc in incidents for why in inc["link_evidence"].values() for r in why]
    assert any(r.startswith("event network: ") for r in reasons) and any(r.startswith("metric tree: ") for r in reasons)
    assert ev["false_alarms"] <= 12
    # linked incidents go out as one alert: at least 40 % fewer alerts than incidents
    assert ev["alerts"]["saved"] >= 0.4, ev["alerts"]


def test_demo_human_output_shows_the_table_and_the_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # an 80-column terminal: the narrow layout
    proc = sleuth("demo", "--weeks", "5", "--sessions-per-hour", "120", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("Try: ")]  # a command to copy
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    text = " ".join(proc.stdout.split())
    assert "incidents sleuth found" in text and "Injected incidents vs what sleuth found" in text
    assert "tracking_outage" in proc.stdout and "injected incidents found" in text
    assert "1 false alarms" not in text and "1 more incidents" not in text
    assert proc.stderr.startswith("note: ")  # notes come first, on stderr, before the tables


def test_bands_stay_within_what_a_metric_can_take(demo_run):
    _, incidents, _ = demo_run
    for inc in incidents:
        assert inc["lower"] is None or inc["lower"] >= 0, inc  # no negative order value or count
        if inc["metric"] == "conversion_rate":
            assert inc["upper"] is None or inc["upper"] <= 1, inc


def test_numbers_and_plurals_read_as_people_write_them():
    from sleuth.console import fmt_number, plural

    assert [plural(n, "false alarm") for n in (0, 1, 2)] == ["0 false alarms", "1 false alarm", "2 false alarms"]
    assert fmt_number(11510.3) == "11,510" and "e+" not in fmt_number(1.151e4) and fmt_number(None) == "n/a"


def test_detect_json_follows_contract_3_and_is_repeatable(demo_run):
    out, demo_incidents, _ = demo_run
    args = ("detect", out / "events.parquet", "--config", out / "sleuth.yaml", "--json")
    first, second = sleuth(*args), sleuth(*args)
    assert first.returncode == 0, first.stderr
    rows = [json.loads(x) for x in first.stdout.splitlines()]
    assert rows and [r["id"] for r in rows] == [r["id"] for r in demo_incidents]
    assert first.stdout == second.stdout  # stable ids and values: the same data gives the same answer
    for r in rows:
        check_incident(r)


def test_detect_until_replays_history_without_look_ahead(demo_run):
    out, incidents, _ = demo_run
    cut = pd.Timestamp(incidents[len(incidents) // 2]["end"]) + pd.Timedelta(hours=6)
    until = cut.strftime("%Y-%m-%dT%H:%M:%SZ")
    proc = sleuth("detect", out / "events.parquet", "--config", out / "sleuth.yaml", "--until", until, "--json")
    assert proc.returncode == 0, proc.stderr
    replay = {r["id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    finished = [r for r in incidents if pd.Timestamp(r["end"]) < cut - pd.Timedelta(hours=1)]
    assert finished
    for r in finished:  # an incident that ended before the cut is seen the same way without the future
        assert r["id"] in replay
        assert (replay[r["id"]]["end"], replay[r["id"]]["actual"]) == (r["end"], r["actual"])
    assert all(pd.Timestamp(r["end"]) <= cut for r in replay.values())


def test_detect_since_filters_by_start(demo_run):
    out, incidents, _ = demo_run
    since = incidents[-1]["start"]
    proc = sleuth("detect", out / "events.parquet", "--config", out / "sleuth.yaml", "--since", since, "--json")
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert rows and all(r["start"] >= since for r in rows)


def test_metrics_verb_describes_the_source(tmp_path):
    written = write_shop(tmp_path, fmt="csv", weeks=3, sessions_per_hour=20, seed=3)
    proc = sleuth("metrics", written["events"], "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    names = {m["name"] for m in info["metrics"]}
    assert {"sessions", "users", "orders", "revenue", "conversion_rate", "average_order_value",
            "cart_abandonment_rate", "page_view"} <= names
    assert set(info["properties"]) == {"web", "app"}
    assert {"device", "os", "country", "channel"} <= set(info["dimensions"])
    human = sleuth("metrics", written["events"])
    assert "conversion_rate" in human.stdout and human.returncode == 0


def test_score_verb_single_and_many_series(tmp_path):
    rng = np.random.default_rng(0)
    t = pd.date_range("2026-01-05", periods=24 * 7 * 5, freq="h")
    base = 50 + 20 * np.sin(2 * np.pi * np.arange(len(t)) / 24)
    y = rng.poisson(base).astype(float)
    y[-30:-27] = 400  # a spike
    single = tmp_path / "one.csv"
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": y}).to_csv(single, index=False)
    proc = sleuth("score", single, "--out", tmp_path / "scored.csv")
    assert proc.returncode == 0, proc.stderr
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert list(scored.columns) == ["timestamp", "value", "anomaly_score", "is_anomaly", "learning"]
    assert len(scored) == len(y) and scored["anomaly_score"].between(0, 1).all()
    assert scored["is_anomaly"].iloc[-30:-27].all()
    assert scored["is_anomaly"].iloc[:-30].mean() < 0.01

    many = tmp_path / "many.csv"
    frame = pd.concat([pd.DataFrame({"series_id": k, "timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": y * m})
                       for k, m in (("a", 1), ("b", 3))])
    frame.to_csv(many, index=False)
    proc = sleuth("score", many, "--holidays", "US")
    assert proc.returncode == 0, proc.stderr
    from io import StringIO
    out = pd.read_csv(StringIO(proc.stdout))
    assert list(out.columns) == ["series_id", "timestamp", "value", "anomaly_score", "is_anomaly", "learning"]
    assert out.groupby("series_id").is_anomaly.sum().min() >= 3

    head = tmp_path / "head.csv"
    pd.read_csv(single).iloc[:700].to_csv(head, index=False)
    part = pd.read_csv(StringIO(sleuth("score", head).stdout))
    pd.testing.assert_frame_equal(part, scored.iloc[:700])


def test_help_lists_verbs_and_a_missing_source_is_one_line():
    proc = sleuth("--help")
    assert proc.returncode == 0
    for verb in ("demo", "detect", "score", "metrics", "rca", "run", "explain"):
        assert verb in proc.stdout
    proc = sleuth("explain", "0123456789ab", "--source", "no-such-events.csv", "--method", "classifier")
    assert proc.returncode == 2 and "no-such-events.csv" in proc.stderr
    assert "Traceback" not in proc.stderr and "not built yet" not in proc.stderr


def test_python_api_gives_objects_and_a_frame(demo_run):
    import sleuth as api

    out, incidents, _ = demo_run
    result = api.detect(out / "events.parquet", out / "sleuth.yaml")
    assert [i.id for i in result.incidents] == [i["id"] for i in incidents]
    frame = result.frame
    assert list(frame["id"]) == [i["id"] for i in incidents]
    series = result.series("sessions", "web")
    assert {"bucket", "value", "expected", "lower", "upper", "anomaly_score"} <= set(series.columns)


def test_per_metric_sensitivity_and_minimum_changes(demo_run):
    """Two copies of one metric: the copy with its own threshold or minimum change stays quiet
    where the plain copy alerts."""
    import sleuth as api

    out, _, _ = demo_run
    base = {"granularity": "1h", "dimensions": ["device", "os"]}
    plain = {"name": "views", "type": "count", "event": "page_view"}
    cfg = {**base, "metrics": [plain,
                               {**plain, "name": "views_quiet", "threshold": 1e6},
                               {**plain, "name": "views_big_only", "min_change": 5.0},
                               {**plain, "name": "views_abs", "min_abs_change": 1e9},
                               {**plain, "name": "views_keen", "threshold": 2.0}]}
    found = {}
    for inc in api.detect(out / "events.parquet", cfg).incidents:
        found.setdefault(inc.metric, []).append(inc)
    assert len(found.get("views", [])) >= 2
    assert "views_quiet" not in found and "views_abs" not in found
    assert all(abs(i.change) >= 5.0 for i in found.get("views_big_only", []))
    assert len(found.get("views_big_only", [])) < len(found["views"])
    # a lower threshold alerts on more: every plain incident's hours, and more besides
    keen_hours = sum(i.buckets for i in found["views_keen"])
    assert keen_hours > sum(i.buckets for i in found["views"])


def test_the_funnel_break_is_named_by_its_path_change(demo_run):
    out, incidents, _ = demo_run
    truth = json.loads((out / "truth.json").read_text())
    truth = truth["incidents"] if isinstance(truth, dict) else truth
    brk = next(t for t in truth if t["kind"] == "funnel_break")
    start = pd.Timestamp(brk["start"])
    during = [i for i in incidents if i["property"] == brk["property"] and i["metric"] == "orders"
              and abs(pd.Timestamp(i["start"]) - start) <= pd.Timedelta(hours=2)]
    assert during, "the funnel break's orders incident"
    top = during[0]["transitions"][:2]
    assert {(t["from"], t["to"]) for t in top} == {("begin_checkout", "purchase"), ("begin_checkout", "(end)")}
    assert all(t["baseline"] > t["during"] for t in top if t["to"] == "purchase")
    d = during[0]["disrupted_event"]  # a field added to Contract 3
    assert d["event"] == "begin_checkout" and d["distance"] > 0.4 and 0 < d["moved"] <= d["moves"]


def test_explain_shows_the_path_change_and_the_linked_incidents(demo_run):
    out, incidents, _ = demo_run
    inc = next(i for i in incidents if i["metric"] == "orders" and i["transitions"] and i["linked"])
    paths = sleuth("explain", inc["id"], "--source", out / "events.parquet", "--config", out / "sleuth.yaml",
                   "--method", "paths")
    assert paths.returncode == 0, paths.stderr
    assert f"{inc['transitions'][0]['from']}" in paths.stdout and "event-path change" in paths.stdout
    assert f"disrupted event: {inc['disrupted_event']['event']}" in paths.stdout
    links = sleuth("explain", inc["id"], "--source", out / "events.parquet", "--config", out / "sleuth.yaml",
                   "--method", "links")
    assert links.returncode == 0, links.stderr
    assert all(other in links.stdout for other in inc["linked"])
    bad = sleuth("explain", inc["id"], "--source", out / "events.parquet", "--method", "tea-leaves")
    assert bad.returncode == 2 and "unknown method" in bad.stderr and "Traceback" not in bad.stderr


def test_explain_classifier_names_the_bots_behind_the_page_view_flood(demo_run, monkeypatch):
    out, incidents, _ = demo_run
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    flood = next(t for t in truth if t["kind"] == "bot_flood")
    inc = next(i for i in incidents if i["metric"] == "page_view" and i["property"] == flood["property"]
               and not i["segment"] and i["start"] < flood["end"] and i["end"] > flood["start"])
    proc = sleuth("explain", inc["id"], "--source", out / "events.parquet", "--config", out / "sleuth.yaml",
                  "--method", "classifier", "--json")
    assert proc.returncode == 0, proc.stderr
    view = json.loads(proc.stdout)["classifier"]
    assert view["verdict"] == "root cause" and view["auc"] >= 0.65 and view["recall"] >= 0.5
    assert "browser=HeadlessChrome" in {f for c in view["causes"] for f in (c["feature"], *c["same_as"])}
    # the human output of the same view (printing it again through the CLI would detect again)
    from rich.console import Console

    from sleuth import cli

    monkeypatch.setattr(cli, "out", Console(record=True, width=160))
    cli._print_classifier(view)
    text = cli.out.export_text()
    assert "classifier view: root cause" in text and "HeadlessChrome" in text and "RANDOM" in text
    assert f"ROC AUC {view['auc']:.2f}" in text
