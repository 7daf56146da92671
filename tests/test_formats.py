"""Formats people already have, recognised by their columns without config (GA4's BigQuery export,
Segment's warehouse tables, Snowplow's atomic events, Amplitude and Mixpanel exports).

Every fixture is made here from one set of journeys (``format_fixtures``), so each test knows
how many events, sessions, users and how much revenue the file holds, and checks that sleuth
sees exactly those: no format may repeat or lose an event.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import format_fixtures as ff
from sleuth.config import Config, parse_config
from sleuth.errors import ConfigError
from sleuth.ingest import load_events
from sleuth.ingest.formats import FORMATS
from sleuth.metrics.derive import resolve_metrics

JOURNEYS = ff.journeys()


def _ga4_jsonl(d):
    return ff.write_jsonl(d / "events_20260401.jsonl", ff.ga4_rows(JOURNEYS)), ff.truth(JOURNEYS)


def _ga4_parquet(d):
    return ff.write_ga4_parquet(d / "events_20260401.parquet", ff.ga4_rows(JOURNEYS)), ff.truth(JOURNEYS)


def _segment(d):
    for name, rows in ff.segment_tables(JOURNEYS).items():
        ff.write_jsonl(d / f"segment_{name}.jsonl", rows)
    return d / "segment_*.jsonl", ff.segment_truth(JOURNEYS)


def _snowplow(d):
    path = d / "atomic_events.csv"
    ff.snowplow_frame(JOURNEYS).to_csv(path, index=False)
    return path, ff.truth(JOURNEYS)


def _amplitude(d):
    rows, outside = ff.amplitude_rows(JOURNEYS)
    return ff.write_jsonl(d / "amplitude.jsonl", rows), ff.truth(JOURNEYS, extra_events=outside)


def _mixpanel(d):
    return ff.write_jsonl(d / "mixpanel.jsonl", ff.mixpanel_rows(JOURNEYS)), ff.truth(JOURNEYS)


def _mixpanel_map(d):
    return ff.write_jsonl(d / "mixpanel.jsonl", ff.mixpanel_rows(JOURNEYS, sparse_keys=400)), ff.truth(JOURNEYS)


#: name -> (writer, format sleuth must say, dimensions it must find)
CASES = {
    "ga4_jsonl": (_ga4_jsonl, "ga4", {"device", "os", "browser", "country", "source", "medium", "platform"}),
    "ga4_parquet": (_ga4_parquet, "ga4", {"device", "os", "browser", "country", "source", "medium", "platform"}),
    "segment": (_segment, "segment", {"device", "os", "browser", "source", "medium"}),
    "snowplow": (_snowplow, "snowplow", {"device", "os", "browser", "country", "source", "platform"}),
    "amplitude": (_amplitude, "amplitude", {"device", "os", "country", "platform"}),
    "mixpanel": (_mixpanel, "mixpanel", {"os", "browser", "country", "source", "platform"}),
    "mixpanel_map": (_mixpanel_map, "mixpanel", {"os", "browser", "country", "source", "platform"}),
}


def _totals(events) -> dict:
    t = events.table
    row = t.aggregate(events=t.count(), sessions=t.session_id.nunique(), users=t.user_id.nunique(),
                      revenue=t.revenue.sum()).execute().iloc[0]
    return {"events": int(row["events"]), "sessions": int(row["sessions"]), "users": int(row["users"]),
            "revenue": round(float(row["revenue"]), 2)}


@pytest.mark.parametrize("case", list(CASES))
def test_each_format_is_recognised_and_keeps_every_event(tmp_path, case):
    write, name, dims = CASES[case]
    path, truth = write(tmp_path)
    events = load_events(str(path), Config())
    assert events.format == name
    assert _totals(events) == {"events": truth.events, "sessions": truth.sessions, "users": truth.users,
                               "revenue": truth.revenue}
    assert dims <= set(events.dimensions), events.dimensions
    assert events.notes[0].startswith(f"format {FORMATS[name].title}, recognised by its columns"), events.notes
    # nothing is left as a list or a map for 'explode' to double
    assert not any("list fields left out" in n for n in events.notes), events.notes


def test_plain_events_are_no_known_format(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("timestamp,event,user_id,session_id\n2026-04-01T10:00:00Z,page_view,u1,s1\n")
    assert load_events(str(path), Config()).format is None


# ---------------------------------------------------------------- GA4

@pytest.fixture(scope="module")
def ga4(tmp_path_factory):
    path, truth = _ga4_jsonl(tmp_path_factory.mktemp("ga4"))
    return path, truth


def test_ga4_parameters_become_typed_columns_from_the_keys_that_occur(ga4):
    events = load_events(str(ga4[0]), Config())
    schema = events.table.schema()
    assert schema["param.ga_session_id"].is_integer()       # int_value only (a string in BigQuery's JSON)
    assert schema["param.engagement_time_msec"].is_integer()
    assert schema["param.page_title"].is_string()            # string_value only
    assert schema["param.value"].is_floating()               # int_value in some events, double_value in others
    assert schema["param.variant"].is_string()               # text in some events, numbers in others
    assert schema["user.plan"].is_string()                   # user_properties
    df = events.table.execute()
    rows = ff.ga4_rows(JOURNEYS)
    assert sorted(df["param.variant"].unique()) == ["2", "b"]
    assert df["items.count"].sum() == sum(len(r["items"]) for r in rows)
    assert df["items.quantity"].sum() == sum(i["quantity"] for r in rows for i in r["items"])
    assert set(df["item_category"].dropna()) == {"Shoes"}   # the first item's category
    # the session is the user plus ga_session_id: one per journey, never guessed from gaps
    sid = {(r["user_pseudo_id"], p["value"]["int_value"]) for r in rows for p in r["event_params"]
           if p["key"] == "ga_session_id"}
    assert set(df["session_id"]) == {f"{u}.{s}" for u, s in sid}
    assert not events.sessions_derived
    # GA4's signed-in user_id is kept under another name: sleuth's user_id is the pseudo id
    assert df["ga4.user_id"].notna().any() and df["user_id"].str.endswith(".1711").all()


def test_ga4_explode_of_its_params_no_longer_doubles_the_events(ga4):
    path, truth = ga4
    events = load_events(str(path), parse_config({"explode": ["event_params", "items"]}))
    assert _totals(events)["events"] == truth.events
    assert any("'explode: [event_params, items]' ignored" in n for n in events.notes), events.notes
    assert not any(c.startswith("event_params.") for c in events.columns)


def test_ga4_columns_and_dimensions_from_the_config_still_decide(ga4):
    path, truth = ga4
    cfg = parse_config({"columns": {"user_id": "user_id", "property": "platform"},
                        "dimensions": ["param.page_title", "geo.city"]})
    events = load_events(str(path), cfg)
    df = events.table.execute()
    signed_in = {r["user_id"] for r in ff.ga4_rows(JOURNEYS) if r["user_id"]}
    assert set(df["user_id"].dropna()) == signed_in        # the signed-in id, as the config says
    assert set(df["property"]) == {"WEB", "ANDROID"}
    assert events.dimensions == ["param.page_title", "geo.city"]
    assert set(df["param.page_title"]) == {"Home", "Checkout"}
    with pytest.raises(ConfigError, match=r"columns.session_id names 'param.ga_sesion_id'.*did you mean 'param.ga_session_id'"):
        load_events(str(path), parse_config({"columns": {"session_id": "param.ga_sesion_id"}}))


def test_ga4_flattened_by_a_query_still_uses_ga_session_id(tmp_path):
    """An export someone flattened already (a CSV with ga_session_id as a column)."""
    path = tmp_path / "ga4_flat.csv"
    path.write_text("event_timestamp,event_name,user_pseudo_id,ga_session_id\n"
                    "1775001600000000,page_view,u1,100\n1775001660000000,page_view,u1,100\n"
                    "1775001720000000,page_view,u1,200\n1775001780000000,page_view,u2,100\n")
    events = load_events(str(path), Config())
    assert events.format == "ga4" and not events.sessions_derived
    df = events.table.execute()
    assert (len(df), df["session_id"].nunique(), df["user_id"].nunique()) == (4, 3, 2)
    assert str(df["timestamp"].min()) == "2026-04-01 00:00:00+00:00"   # microseconds since the epoch


def test_ga4_gets_the_shop_kpis(ga4):
    events = load_events(str(ga4[0]), Config())
    names = {m.name for m in resolve_metrics(Config(), events)}
    assert {"sessions", "users", "orders", "revenue", "conversion_rate", "cart_abandonment_rate"} <= names


# ---------------------------------------------------------------- Segment, Amplitude

def test_segment_tables_alone_become_page_and_identify_events(tmp_path):
    tables = ff.segment_tables(JOURNEYS)
    pages = load_events(str(ff.write_jsonl(tmp_path / "pages.jsonl", tables["pages"])), Config())
    assert pages.format == "segment"
    assert set(pages.table.event.execute()) == {"page"}
    assert _totals(pages)["events"] == len(tables["pages"])
    ids = load_events(str(ff.write_jsonl(tmp_path / "identifies.jsonl", tables["identifies"])), Config())
    assert set(ids.table.event.execute()) == {"identify"}
    both = load_events(str(_segment(tmp_path)[0]), Config())
    assert any("10 rows repeat the 'id'" in n for n in both.notes), both.notes  # tracks + order_completed
    assert set(both.table.execute()["event"]) >= {"page", "identify", "Order Completed", "Product Added"}


def test_amplitude_events_outside_a_session_have_none(tmp_path):
    path, _ = _amplitude(tmp_path)
    df = load_events(str(path), Config()).table.execute()
    outside = df[df["event"] == "subscription_renewed"]
    assert len(outside) == 1 and outside["session_id"].isna().all()
    assert df[df["event"] != "subscription_renewed"]["session_id"].notna().all()


# ---------------------------------------------------------------- end to end, through the CLI

def test_cli_metrics_and_detect_see_what_each_fixture_holds(tmp_path, run_cli):
    jobs = {}
    for case in ("ga4_jsonl", "segment", "snowplow", "amplitude", "mixpanel"):
        folder = tmp_path / case
        folder.mkdir()
        jobs[case] = CASES[case][0](folder)
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {case: pool.submit(run_cli, "metrics", str(path), "--json") for case, (path, _) in jobs.items()}
        detect = pool.submit(run_cli, "detect", str(jobs["ga4_jsonl"][0]))
        results = {case: f.result() for case, f in runs.items()}
    for case, proc in results.items():
        assert proc.returncode == 0, (case, proc.stderr)
        info = json.loads(proc.stdout)
        truth = jobs[case][1]
        assert info["format"] == CASES[case][1]
        assert (info["events"], info["sessions"], info["users"], info["revenue"]) == \
            (truth.events, truth.sessions, truth.users, truth.revenue), case
        assert "revenue" in {m["name"] for m in info["metrics"]}, (case, info["metrics"])
    proc = detect.result()
    assert proc.returncode == 0, proc.stderr
    assert "format GA4 BigQuery export, recognised by its columns" in proc.stderr
