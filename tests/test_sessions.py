"""The sessions stage, part by part: nested exports as separate tables (no cross product), GA360
names without config, bad input, features, the reduction, clusters, bots and the conversion model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sleuth.config import Config, SessionsConfig, parse_config
from sleuth.errors import InputError
from sleuth.ingest import load_events
from sleuth.ingest.flatten import list_tables
from sleuth.ingest.readers import open_source
from sleuth.sessions.bots import bot_rules
from sleuth.sessions.clusters import fit_clusters
from sleuth.sessions.conversion import expected_conversions, mix_verdict
from sleuth.sessions.features import session_features
from sleuth.sessions.reduce import GaussianLatent, fit_reduction, parallel_analysis
from sleuth.sessions.source import nested_tables

T0 = 1775037600  # 2026-04-01T10:00:00Z


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def seed_shaped(n: int = 40, seed: int = 1) -> list[dict]:
    """Sessions with pages, each page with sibling lists of events, forms and clicks (the seed
    write-up's export), of random lengths, some empty or missing."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n):
        pages = []
        for p in range(int(rng.integers(0, 4))):
            page = {"url": f"/p{p}", "t": int(p * 10_000)}
            for key, make in (("events", lambda i: {"name": f"e{i}"}), ("forms", lambda i: {"fill_ms": 1000 + i}),
                              ("clicks", lambda i: {"t": i * 500})):
                k = int(rng.integers(0, 4))
                if k or rng.random() < 0.5:
                    page[key] = [make(i) for i in range(k)]
            pages.append(page)
        out.append({"sid": f"s{s}", "ts": T0 + s * 60, "pages": pages})
    return out


# ---------------------------------------------------------------- nesting: tables, never a product

def test_sibling_lists_are_separate_tables_counted_against_the_source(tmp_path):
    rows = seed_shaped()
    path = write_jsonl(tmp_path / "nested.jsonl", rows)
    n_pages = sum(len(r["pages"]) for r in rows)
    n = {k: sum(len(p.get(k) or []) for r in rows for p in r["pages"]) for k in ("events", "forms", "clicks")}
    con, raw, name = open_source(path)
    tables = list_tables(raw, ["pages", "pages.events", "pages.forms", "pages.clicks"], name)
    assert int(tables[""].count().execute()) == len(rows)
    assert int(tables["pages"].count().execute()) == n_pages
    for k, count in n.items():
        assert int(tables[f"pages.{k}"].count().execute()) == count, k
    # the keys join each element to its session and page
    ev = tables["pages.events"].execute()
    assert set(ev.columns) >= {"_row", "pages#", "pages.events#", "pages.url", "pages.events.name"}
    first = rows[int(ev["_row"].iloc[0])]["pages"][int(ev["pages#"].iloc[0])]
    assert ev["pages.url"].iloc[0] == first["url"]


def test_exploding_sibling_lists_gives_each_element_one_row(tmp_path):
    rows = seed_shaped()
    path = write_jsonl(tmp_path / "nested.jsonl", rows)
    events = load_events(path, parse_config({"explode": ["pages", "pages.events", "pages.forms"], "dimensions": [],
                                             "columns": {"timestamp": "ts", "event": "pages.url", "session_id": "sid"}}))
    df = events.table.execute()
    n_events = sum(len(p.get("events") or []) for r in rows for p in r["pages"])
    n_forms = sum(len(p.get("forms") or []) for r in rows for p in r["pages"])
    bare_pages = sum(1 for r in rows for p in r["pages"] if not p.get("events") and not p.get("forms"))
    no_pages = sum(1 for r in rows if not r["pages"])
    assert df["pages.events.name"].notna().sum() == n_events
    assert df["pages.forms.fill_ms"].notna().sum() == n_forms
    assert not (df["pages.events.name"].notna() & df["pages.forms.fill_ms"].notna()).any()  # no event x form rows
    assert len(df) == n_events + n_forms + bare_pages + no_pages


# ---------------------------------------------------------------- GA360 and mapped exports

def ga_session(i: int, hits: list[dict] | None, start: int | None = None) -> dict:
    return {"visitId": 1000 + i, "fullVisitorId": f"v{i % 7}", "visitStartTime": start if start is not None else T0 + 600 * i,
            "channelGrouping": "organic", "device": {"deviceCategory": "mobile", "browser": "Safari", "operatingSystem": "iOS"},
            "geoNetwork": {"country": "DE"}, "hits": hits}


def page_hit(n: int, time_ms: int | None, path: str = "/", forms: list | None = None, clicks: list | None = None) -> dict:
    return {"hitNumber": n, "time": time_ms, "type": "PAGE", "page": {"pagePath": path},
            "latencyTracking": {"pageLoadTime": 900}, "forms": forms or [], "clicks": clicks or []}


def test_ga360_names_need_no_config_and_skipped_rows_are_counted(tmp_path):
    rows = [ga_session(i, [page_hit(1, 0, "/", forms=[{"formId": "f", "fillTime": 800}]),
                           {"hitNumber": 2, "time": 5000, "type": "EVENT", "page": {"pagePath": "/"},
                            "eventInfo": {"eventAction": "scroll"}},
                           page_hit(3, 9000, "/cart", clicks=[{"time": 9500}, {"time": 9900}])]) for i in range(6)]
    rows.append(ga_session(6, []))                       # a session without hits
    rows.append(ga_session(7, [page_hit(1, None), page_hit(2, 4000)]))  # a hit without a time
    path = write_jsonl(tmp_path / "ga_sessions.jsonl", rows)
    events = load_events(path, Config())
    assert events.nested is not None
    df = events.table.execute()
    assert set(df["event"]) == {"page_view", "scroll"}
    assert {"device", "browser", "country", "page"} <= set(df.columns)
    assert df["session_id"].str.startswith("v").all()    # fullVisitorId.visitId: unique
    assert any("1 hits without a time" in n for n in events.notes), events.notes
    frame = session_features(events.nested)
    assert len(frame) == 7                               # the session without hits is skipped ...
    assert any("1 sessions without hits skipped" in n for n in events.nested.notes)  # ... and counted
    one = frame[frame["session_id"] == "1000"].iloc[0]
    assert (one.pages, one.events, one.forms, one.clicks) == (2, 1, 1, 2)
    assert one.fastest_form == pytest.approx(0.8) and one.landing == "/"


def test_mapped_export_with_events_inside_pages(tmp_path):
    rows = [{"sid": f"s{i}", "ts": T0 + 60 * i, "pages": [
        {"url": "/a", "t": 0, "events": [{"name": "scroll"}, {"name": "purchase"}], "forms": [{"fill_ms": 300}]},
        {"url": "/b", "t": 20_000, "events": []}]} for i in range(3)]
    path = write_jsonl(tmp_path / "export.jsonl", rows)
    cfg = parse_config({"sessions": {"fields": {
        "session_id": "sid", "user_id": None, "start": "ts", "hits": "pages", "hit_time": "pages.t", "hit_type": None,
        "page": "pages.url", "events": "pages.events", "event": "pages.events.name", "forms": "pages.forms",
        "form_fill": "pages.forms.fill_ms", "clicks": None, "latency": None, "ajax_calls": None, "bytes": None,
        "revenue": None}}})
    con, raw, name = open_source(path)
    tables = nested_tables(raw, cfg, name, con)
    frame = session_features(tables)
    assert frame[["pages", "events", "conversions", "forms"]].iloc[0].tolist() == [2, 1, 1, 1]
    facts = tables.hits.execute()
    assert sorted(facts.loc[facts.kind != "page", "page"]) == ["/a"] * 6


@pytest.mark.parametrize("row, field", [
    ({"hits": "not a list"}, "'hits'"),
    ({"hits": [{"time": "soon", "type": "PAGE"}]}, "'hits.time'"),
])
def test_a_nested_field_of_the_wrong_type_names_the_field(tmp_path, row, field):
    path = write_jsonl(tmp_path / "bad.jsonl", [{**ga_session(0, None), **row}, ga_session(1, [page_hit(1, 0)])])
    with pytest.raises(InputError, match=field):
        load_events(path, Config())


def test_hits_without_any_time_is_an_error_naming_the_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [ga_session(i, [page_hit(1, None)]) for i in range(3)])
    with pytest.raises(InputError, match=r"'hits.time' is empty in every hit"):
        load_events(path, Config())


# ---------------------------------------------------------------- bots

def test_bot_rules_name_what_no_person_does():
    frame = pd.DataFrame({
        "fastest_form": [0.4, 12.0, np.nan, np.nan, 1.6],
        "click_spread": [np.nan, 0.03, 1.2, 0.05, 0.9],
        "n_gaps": [0, 20, 20, 4, 9],
        "page_rate": [2.0, 3.0, 40.0, 50.0, 8.0],
        "pages": [1, 6, 30, 3, 4],
    })
    bot, reasons = bot_rules(frame, SessionsConfig())
    assert bot.tolist() == [True, True, True, False, False]
    assert reasons[0] == ["form filled in 0.4 s"]
    assert reasons[1] == ["click gaps vary 3% over 20 clicks"]
    assert reasons[2] == ["40 pages a minute over 30 pages"]
    assert reasons[3] is None  # too few clicks and pages to tell


# ---------------------------------------------------------------- reduction and clusters

def two_factor_data(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, 2))
    load = np.array([[0.9, 0.8, 0.7, 0, 0, 0], [0, 0, 0, 0.9, 0.8, 0.7]])
    noise = rng.standard_normal((n, 6)) * np.array([0.3, 0.5, 0.7, 0.3, 0.5, 0.7])
    return f @ load + noise


def test_parallel_analysis_finds_the_number_of_factors():
    z = two_factor_data()
    k, eig, cut = parallel_analysis((z - z.mean(0)) / z.std(0), np.random.default_rng(0))
    assert k == 2 and eig[1] > cut[1] and eig[2] < cut[2]


def test_factor_analysis_from_the_covariance_matches_scikit_learn():
    from sklearn.decomposition import FactorAnalysis

    from sleuth.sessions.analysis import one_thread

    z = two_factor_data(1500)
    ours = GaussianLatent("factor analysis", 2).fit(z)
    with one_thread():
        theirs = FactorAnalysis(2, tol=1e-8, max_iter=5000).fit(z)
    assert ours.score(z) == pytest.approx(theirs.score(z), abs=1e-3)


def test_reduction_is_chosen_and_explained_in_words():
    x = two_factor_data()
    red = fit_reduction(x, ["pages", "clicks", "time_on_site", "dwell", "click_gap", "form_fill"])
    assert red.components == 2 and red.method in ("pca", "factor analysis")
    assert "parallel analysis" in red.why and "held-out log-likelihood" in red.why
    assert red.names[0].split(": ")[1] == "engagement" and red.names[1].split(": ")[1] == "pace"


def test_clusters_k_from_the_data_and_named_by_what_sets_them_apart():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [0, 6]])
    z = np.vstack([c + rng.standard_normal((400, 2)) for c in centres])
    raw = pd.DataFrame({"pages": np.repeat([2.0, 20.0, 2.0], 400), "forms": np.repeat([0.0, 0.0, 3.0], 400)})
    x_std = ((raw - raw.mean()) / raw.std()).to_numpy()
    clusters, labels = fit_clusters(z, x_std, np.zeros(len(z)), ["pages", "forms"], raw)
    assert clusters.k == 3
    named = {clusters.names[labels[i]] for i in (0, 400, 800)}
    assert any(n.startswith("many pages") for n in named) and any(n.startswith("form fillers") for n in named)
    far, _ = clusters.assign(np.array([[30.0, 30.0], [6.0, 0.0]]))
    assert far[0] == -1 and far[1] == labels[400]  # far from all: new behaviour


# ---------------------------------------------------------------- conversion model

def test_conversion_expectations_never_use_later_weeks():
    rng = np.random.default_rng(0)
    n = 6000
    start = pd.Timestamp("2026-03-02") + pd.to_timedelta(rng.uniform(0, 35, n), unit="D")
    x = rng.standard_normal((n, 3))
    conv = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] * 2 - 2)))).astype(int)
    frame = pd.DataFrame({"start": start, "conversions": conv, "device": rng.choice(["a", "b"], n)}).sort_values("start")
    x = x[frame.index]
    frame = frame.reset_index(drop=True)
    p, _ = expected_conversions(frame, x, ["device"])
    week = ((frame["start"] - frame["start"].min()) // pd.Timedelta(days=7)).to_numpy()
    assert np.isnan(p[week == 0]).all() and np.isfinite(p[week >= 1]).all()
    changed = frame.copy()
    changed.loc[week == 3, "conversions"] = 1 - changed.loc[week == 3, "conversions"]
    q, _ = expected_conversions(changed, x, ["device"])
    assert np.allclose(p[week <= 3], q[week <= 3], equal_nan=True)  # week 3's outcomes change nothing up to it
    assert not np.allclose(p[week == 4], q[week == 4])              # ... and the week after learns from them


def test_mix_verdict_says_whether_the_traffic_or_its_conversion_changed():
    assert mix_verdict(0.02, 0.04, 0.021, 0.04).startswith("traffic mix explains the drop")
    assert mix_verdict(0.02, 0.04, 0.039, 0.04).startswith("the same traffic converts worse")


def test_session_config_round_trips_and_rejects_unknown_keys():
    cfg = parse_config({"exclude_bots": True, "sessions": {"fields": {"hits": "pages", "latency": None}, "clusters": 4}})
    again = parse_config(cfg.to_dict())
    assert again == cfg and again.sessions.fields.latency is None and again.sessions.fields.hits == "pages"
    from sleuth.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key 'hit'; allowed here: session_id, user_id"):
        parse_config({"sessions": {"fields": {"hit": "pages"}}})


def test_a_missing_scikit_learn_names_the_extra(monkeypatch):
    import sys

    from sleuth.errors import SleuthError
    from sleuth.sessions.analysis import _require_sklearn

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(SleuthError, match=r"pip install 'sleuth\[sessions\]'"):
        _require_sklearn()
