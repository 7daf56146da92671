"""The sessions stage through the pipeline and the CLI: its findings are incidents of the cube
(bot share, cluster shares, page metrics), Contract 8's records, no look-ahead, exclude_bots, and
sessions built from a flat event stream."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sleuth.config import parse_config
from sleuth.datasets.sessions import generate_sessions
from sleuth.datasets.shop import write_shop
from sleuth.pipeline import detect
from sleuth.sessions.output import page_records, records, shift_records

CONFIG = {"granularity": "1h", "exclude_bots": True, "dimensions": ["device", "browser", "page"]}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Six weeks of a GA360 export with the injected bot burst, slow page and behaviour shift."""
    path = tmp_path_factory.mktemp("ga") / "ga_sessions.parquet"
    table, injected, truth = generate_sessions(weeks=6, sessions_per_day=350, seed=3)
    pq.write_table(table, path)
    return path, {e.kind: e for e in injected}, truth


@pytest.fixture(scope="module")
def found(export):
    path, _, _ = export
    return detect(path, parse_config(CONFIG), sessions="only")


def _within(rec, event) -> bool:
    return pd.Timestamp(rec["start"]) < pd.Timestamp(event.end, tz="UTC") and pd.Timestamp(event.start, tz="UTC") < pd.Timestamp(rec["end"])


def test_bots_are_labelled_from_behaviour_with_reasons(export, found):
    _, _, truth = export
    f = found.sessions.frame.merge(pd.DataFrame({"key": truth["key"], "bot": truth["bot"]}), on="key")
    is_bot, flagged = (f["bot"] != "").to_numpy(), (f["label"] == "bot").to_numpy()
    assert (is_bot & flagged).sum() / flagged.sum() >= 0.9 and (is_bot & flagged).sum() / is_bot.sum() >= 0.9
    assert all(r for r in f.loc[flagged, "reasons"])


def test_the_bot_burst_is_an_incident_of_bot_share(export, found):
    _, injected, _ = export
    burst = injected["bot_burst"]
    hits = [i for i in found.incidents if i.metric == "bot_share" and i.direction == "up"
            and _within({"start": i.start, "end": i.end}, burst)]
    assert hits and hits[0].actual > 2 * hits[0].expected


def test_a_slow_page_is_a_page_record_and_an_incident(export, found):
    _, injected, _ = export
    slow = injected["page_latency"]
    recs = [r for r in page_records(found) if r["metric"] == "latency" and r["page"] == slow.page and _within(r, slow)]
    assert recs
    assert {r["incident"] for r in recs} <= {i.id for i in found.incidents}
    assert all(r["actual"] > 2 * r["expected"] for r in recs if r["segment"] == {"page": slow.page})


def test_contract_8_lines(found):
    lines = records(found)
    assert lines[0]["kind"] == "summary" and "parallel analysis" in lines[0]["reduction"]["why"]
    kinds = {r["kind"] for r in lines}
    assert {"session", "page"} <= kinds
    for r in lines:
        json.dumps(r, default=str)
        if r["kind"] == "session":
            assert isinstance(r["session_id"], str) and r["label"] in ("bot", "outlier")
            assert 0 <= r["score"] <= 1 and r["reasons"] and r["cluster"]
        elif r["kind"] == "page":
            assert {"page", "metric", "start", "end", "actual", "expected", "root_causes"} <= set(r)
            assert r["start"].endswith("Z") and r["start"] < r["end"]
        elif r["kind"] == "cluster_shift":
            assert {"cluster", "start", "end", "share", "expected_share", "description", "session_ids"} <= set(r)


def test_the_behaviour_shift_is_a_rise_of_new_behaviour(export, found):
    _, injected, _ = export
    shift = injected["behaviour_shift"]
    recs = [r for r in shift_records(found) if r["direction"] == "up" and _within(r, shift)]
    assert recs and recs[0]["session_ids"]
    assert "pages" in recs[0]["description"]


def test_session_metrics_at_t_use_nothing_after_t(export, found):
    path, _, _ = export
    cut = found.cube.buckets[-1] - pd.Timedelta(days=6)
    early = detect(path, parse_config(CONFIG), sessions="only", until=cut)
    for metric in ("bot_share", "cluster_share.new_behaviour", "page_latency_ms", "conversion_vs_expected"):
        a = found.cube.value[found.cube.index("default", metric)]
        b = early.cube.value[early.cube.index("default", metric)]
        n = len(early.cube.buckets) - 1  # the last bucket may be cut short
        assert np.allclose(a[:n], b[:n], equal_nan=True), metric


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop")
    return write_shop(out, fmt="parquet", weeks=3, sessions_per_hour=10.0, seed=5)["events"]


def test_flat_events_make_sessions_and_exclude_bots_says_how_many(shop):
    cfg = {"granularity": "1h", "dimensions": ["device", "country"], "sessions": {"enabled": True,
                                                                               "bot_pages_per_minute": 10}}
    kept = detect(shop, parse_config(cfg))
    left = detect(shop, parse_config({**cfg, "exclude_bots": True}))
    bots = int((kept.sessions.frame["label"] == "bot").sum())
    assert bots > 0 and any("built from the event stream" in n for n in kept.notes)
    note = next(n for n in left.notes if n.startswith("exclude_bots"))
    assert f"{bots:,} sessions" in note
    total = lambda d: np.nansum(d.cube.value[(d.cube.keys.metric == "sessions").to_numpy()  # noqa: E731
                                             & (d.cube.keys.dimension == "").to_numpy()])
    assert total(kept) - total(left) == bots
    assert "bot_share" in left.cube.metrics and "page_latency_ms" not in left.cube.metrics  # no page data here


def test_cli_sessions_json_and_a_bad_nested_field(tmp_path, run_cli):
    path = tmp_path / "small.parquet"
    table, _, _ = generate_sessions(weeks=2, sessions_per_day=150, seed=4, inject=False)
    pq.write_table(table, path)
    cfg = tmp_path / "sleuth.yaml"
    cfg.write_text(json.dumps(CONFIG))
    done = run_cli("sessions", path, "--config", cfg, "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert lines[0]["kind"] == "summary" and any(r["kind"] == "session" for r in lines)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"visitId": 1, "visitStartTime": 1775037600, "hits": "oops"}) + "\n")
    done = run_cli("sessions", bad)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "'hits'" in done.stderr
