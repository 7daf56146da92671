"""Ingest (Contract 1): formats, timestamps, nesting, column names, sessions, properties,
dimensions, derived metrics and ibis URL sources all give the same normalised events."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from sleuth.config import Config, parse_config
from sleuth.errors import InputError
from sleuth.ingest import DEFAULT_PROPERTY, NONE_VALUE, load_events
from sleuth.metrics.derive import resolve_metrics

STANDARD = ["timestamp", "event", "session_id", "user_id", "revenue", "property"]
T0 = pd.Timestamp("2026-04-01T10:00:00Z")
EPOCH_S = int(T0.timestamp())  # 1775037600


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load(source, **config) -> pd.DataFrame:
    """Load with a config given as sleuth.yaml keys; rows in a stable order."""
    events = load_events(source, parse_config(config))
    df = events.table.execute()
    return df.sort_values(["timestamp", "event"], kind="stable").reset_index(drop=True)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


# ---------------------------------------------------------------- formats

EVENTS = pd.DataFrame({
    "timestamp": ["2026-04-01T10:00:00Z", "2026-04-01T12:05:00+02:00", "2026-04-01T10:30:00",
                  "2026-04-01T11:00:00.250Z"],
    "event": ["page_view", "add_to_cart", "purchase", "page_view"],
    "session_id": ["s1", "s1", "s1", "s2"],
    "user_id": ["u1", "u1", "u1", "u2"],
    "revenue": [None, None, 19.99, None],
    "property": ["web", "web", "web", None],
    "device": ["mobile", "mobile", "mobile", None],
})
EXPECTED = pd.DataFrame({
    "timestamp": [ts("2026-04-01T10:00:00Z"), ts("2026-04-01T10:05:00Z"), ts("2026-04-01T10:30:00Z"),
                  ts("2026-04-01T11:00:00.250Z")],
    "event": ["page_view", "add_to_cart", "purchase", "page_view"],
    "session_id": ["s1", "s1", "s1", "s2"],
    "user_id": ["u1", "u1", "u1", "u2"],
    "revenue": [float("nan"), float("nan"), 19.99, float("nan")],
    "property": ["web", "web", "web", DEFAULT_PROPERTY],
    "device": ["mobile", "mobile", "mobile", NONE_VALUE],
})


def write_format(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        write_jsonl(path, [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in df.to_dict("records")])
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_formats_give_the_same_normalised_rows(tmp_path, fmt):
    path = write_format(EVENTS, tmp_path / f"events.{fmt}", fmt)
    got = load(path, dimensions=["device"])
    assert list(got.columns) == STANDARD + ["device"]
    assert str(got["timestamp"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(
        got.astype({"timestamp": "datetime64[ns, UTC]"}), EXPECTED.astype({"timestamp": "datetime64[ns, UTC]"}),
        check_dtype=False,
    )


def test_frame_source_matches_file_source(tmp_path):
    from_frame = load(EVENTS, dimensions=["device"])
    from_csv = load(write_format(EVENTS, tmp_path / "e.csv", "csv"), dimensions=["device"])
    pd.testing.assert_frame_equal(from_frame, from_csv, check_dtype=False)


# ---------------------------------------------------------------- timestamps

TIMESTAMP_CASES = {
    "iso_z": ("2026-04-01T10:00:00Z", T0),
    "offset_plus_2": ("2026-04-01T12:00:00+02:00", T0),
    "offset_minus_5": ("2026-04-01T05:00:00-05:00", T0),
    "naive_is_utc": ("2026-04-01T10:00:00", T0),
    "naive_with_space": ("2026-04-01 10:00:00", T0),
    "nanoseconds": ("2026-04-01T10:00:00.123456789Z", T0 + pd.Timedelta(nanoseconds=123456789)),
    "date_only": ("2026-04-01", pd.Timestamp("2026-04-01T00:00:00Z")),
    "epoch_seconds": (EPOCH_S, T0),
    "epoch_seconds_fraction": (EPOCH_S + 0.5, T0 + pd.Timedelta(milliseconds=500)),
    "epoch_millis": (EPOCH_S * 1000 + 250, T0 + pd.Timedelta(milliseconds=250)),
    "epoch_seconds_text": (str(EPOCH_S), T0),
    "epoch_millis_text": (str(EPOCH_S * 1000 + 250), T0 + pd.Timedelta(milliseconds=250)),
}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("case", list(TIMESTAMP_CASES))
def test_timestamp_parses_to_the_right_instant(tmp_path, case, fmt):
    value, expected = TIMESTAMP_CASES[case]
    rows = [{"timestamp": value, "event": "a"}, {"timestamp": value, "event": "b"}]
    if fmt == "jsonl":  # JSON keeps numbers and numeric strings apart
        path = write_jsonl(tmp_path / "t.jsonl", rows)
    else:
        path = tmp_path / "t.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
    got = load(path)["timestamp"]
    assert len(got) == 2
    for t in got:
        # engines keep microseconds: nanoseconds may be cut, never more
        assert abs(t - expected) < pd.Timedelta(microseconds=1), (case, t, expected)


def test_numeric_text_timestamps_in_a_frame():
    df = pd.DataFrame({"timestamp": [str(EPOCH_S * 1000), str(EPOCH_S * 1000 + 60_000)], "event": ["a", "b"]})
    got = load(df)["timestamp"].tolist()
    assert got == [T0, T0 + pd.Timedelta(minutes=1)]


def test_mixed_iso_forms_in_one_column(tmp_path):
    values = ["2026-04-01T10:00:00Z", "2026-04-01T12:00:00+02:00", "2026-04-01T10:00:00",
              "2026-04-01 10:00:00.000000", "2026-04-01T03:00:00-07:00"]
    path = tmp_path / "mixed.csv"
    pd.DataFrame({"timestamp": values, "event": list("abcde")}).to_csv(path, index=False)
    got = load(path)
    assert (got["timestamp"] == T0).all(), got["timestamp"].tolist()


def test_native_time_types_in_a_frame():
    naive = pd.DataFrame({"timestamp": pd.to_datetime(["2026-04-01 10:00"] * 2), "event": ["a", "b"]})
    berlin = naive.assign(timestamp=pd.to_datetime(["2026-04-01 12:00"] * 2).tz_localize("Europe/Berlin"))
    assert (load(naive)["timestamp"] == T0).all()
    assert (load(berlin)["timestamp"] == T0).all()


def test_rows_without_a_timestamp_are_dropped(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("timestamp,event\n2026-04-01T10:00:00Z,a\n,b\n2026-04-01T11:00:00Z,c\n")
    assert load(path)["event"].tolist() == ["a", "c"]


def test_all_timestamps_empty_is_an_error_naming_the_column(tmp_path):
    path = tmp_path / "no_times.csv"
    path.write_text("timestamp,event\n,a\n,b\n")
    with pytest.raises(InputError, match=r"column 'timestamp' is empty in every row"):
        load_events(path, Config())


def test_file_of_blank_lines_asks_for_a_header(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\n\n\n")
    with pytest.raises(InputError, match=r"blank\.csv: no named columns.*header"):
        load_events(path, Config())


# ---------------------------------------------------------------- nested JSON Lines

def test_nested_objects_flatten_to_dotted_names_without_known_keys(tmp_path):
    path = write_jsonl(tmp_path / "nested.jsonl", [
        {"timestamp": "2026-04-01T10:00:00Z", "event": "purchase", "user_id": "u1",
         "properties": {"revenue": 10.5, "currency": "EUR"}, "context": {"page": {"path": "/cart"}}},
        {"timestamp": "2026-04-01T10:05:00Z", "event": "signup", "user_id": "u2",
         "properties": {"plan": "pro"}, "context": {"os": "iOS"}, "tags": ["a", "b"]},
    ])
    events = load_events(path, Config())
    df = events.table.execute().sort_values("timestamp").reset_index(drop=True)
    for col in ("properties.currency", "properties.plan", "context.page.path", "context.os"):
        assert col in df.columns, df.columns
    assert not any(isinstance(t, dict) for t in df.iloc[0])
    assert df["properties.plan"].tolist() == [None, "pro"]
    assert df["context.os"].tolist() == [None, "iOS"]
    assert df["context.page.path"].tolist() == ["/cart", None]
    assert df["properties.currency"].tolist() == ["EUR", None]
    # properties.revenue is a known revenue alias
    assert events.mapping["revenue"] == "properties.revenue"
    assert df["revenue"].iloc[0] == 10.5 and pd.isna(df["revenue"].iloc[1])
    # a list that is not exploded is left out, with a note naming it
    assert "tags" not in df.columns
    assert any("tags" in n and "explode" in n for n in events.notes), events.notes


def test_explode_lists_of_objects_into_rows(tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", [
        {"timestamp": "2026-04-01T10:00:00Z", "event": "purchase", "session_id": "s1",
         "items": [{"sku": "A", "price": 3.0, "meta": {"color": "red"}}, {"sku": "B", "price": 4.5}]},
        {"timestamp": "2026-04-01T11:00:00Z", "event": "purchase", "session_id": "s2",
         "items": [{"sku": "C", "price": 1.0}]},
        {"timestamp": "2026-04-01T12:00:00Z", "event": "view_cart", "session_id": "s3", "items": []},
        {"timestamp": "2026-04-01T13:00:00Z", "event": "page_view", "session_id": "s4"},
    ])
    events = load_events(path, parse_config({"explode": ["items"]}))
    df = events.table.execute()
    assert "items" not in df.columns
    assert {"items.sku", "items.price", "items.meta.color"} <= set(df.columns)
    # one row per element; events without elements are kept once, not lost
    assert len(df) == 5
    by_session = df.groupby("session_id")["items.sku"].apply(lambda s: sorted(s.dropna())).to_dict()
    assert by_session == {"s1": ["A", "B"], "s2": ["C"], "s3": [], "s4": []}
    a = df[df["items.sku"] == "A"].iloc[0]
    assert a["items.price"] == 3.0 and a["items.meta.color"] == "red"
    assert df.loc[df["items.sku"] == "B", "items.price"].item() == 4.5


def test_explode_of_a_field_that_is_not_a_list_names_it(tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [{"timestamp": "2026-04-01T10:00:00Z", "event": "a", "hits": [1, 2]}])
    with pytest.raises(InputError, match=r"'explode' names 'items'.*list fields are: hits"):
        load_events(path, parse_config({"explode": ["items"]}))


# ---------------------------------------------------------------- column names

def test_columns_mapping_from_config(tmp_path):
    path = tmp_path / "mapped.csv"
    pd.DataFrame({
        "ts": ["2026-04-01T10:00:00Z", "2026-04-01T11:00:00Z"],
        "name": ["page_view", "purchase"],
        "visitor": ["v1", "v2"],
    }).to_csv(path, index=False)
    events = load_events(path, parse_config({"columns": {"timestamp": "ts", "event": "name", "user_id": "visitor"}}))
    df = events.table.execute().sort_values("timestamp")
    assert events.mapping["timestamp"] == "ts" and events.mapping["event"] == "name"
    assert df["event"].tolist() == ["page_view", "purchase"]
    assert df["user_id"].tolist() == ["v1", "v2"]
    assert df["timestamp"].tolist() == [T0, T0 + pd.Timedelta(hours=1)]


def test_mapping_wins_over_a_column_with_the_standard_name():
    """'event' holds something else here; events come from 'name' and nothing breaks."""
    df = pd.DataFrame({"received_at": ["2026-04-01T10:00:00Z"] * 40, "name": ["a", "b"] * 20,
                       "event": ["x", "y", "z", "w"] * 10, "device": ["mobile", "desktop"] * 20})
    events = load_events(df, parse_config({"columns": {"event": "name"}}))
    out = events.table.execute()
    assert sorted(out["event"].unique()) == ["a", "b"]
    assert "device" in events.dimensions and "event" not in events.dimensions


def test_mapping_to_a_missing_column_suggests_one():
    df = pd.DataFrame({"ts": ["2026-04-01T10:00:00Z"], "event": ["a"]})
    with pytest.raises(InputError, match=r"columns\.timestamp names 'tss'.*did you mean 'ts'"):
        load_events(df, parse_config({"columns": {"timestamp": "tss"}}))


def test_automatic_aliases(tmp_path):
    path = tmp_path / "aliases.csv"
    pd.DataFrame({
        "event_time": ["2026-04-01T10:00:00Z", "2026-04-01T10:10:00Z"],
        "event_name": ["page_view", "purchase"],
        "userId": ["u1", "u1"],
        "sessionId": ["s1", "s1"],
        "value": [None, 42.0],
        "site_id": ["shop.example", "shop.example"],
    }).to_csv(path, index=False)
    events = load_events(path, Config())
    assert events.mapping == {"timestamp": "event_time", "event": "event_name", "session_id": "sessionId",
                              "user_id": "userId", "revenue": "value", "property": "site_id"}
    df = events.table.execute().sort_values("timestamp")
    assert df["event"].tolist() == ["page_view", "purchase"]
    assert df["session_id"].tolist() == ["s1", "s1"] and not events.sessions_derived
    assert df["revenue"].iloc[1] == 42.0
    assert df["property"].tolist() == ["shop.example"] * 2


def test_unnamed_leading_index_column_is_dropped(tmp_path):
    path = tmp_path / "indexed.csv"
    pd.DataFrame({"timestamp": ["2026-04-01T10:00:00Z", "2026-04-01T11:00:00Z"], "event": ["a", "b"],
                  "device": ["x", "y"]}).to_csv(path, index=True)
    assert path.read_text().startswith(",timestamp,event")
    events = load_events(path, Config())
    assert list(events.table.columns) == STANDARD + ["device"]
    assert events.table.execute().sort_values("timestamp")["event"].tolist() == ["a", "b"]


# ---------------------------------------------------------------- sessions

def _visits() -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": ["2026-04-01T10:00:00Z", "2026-04-01T10:20:00Z", "2026-04-01T11:00:00Z",
                      "2026-04-01T10:10:00Z", "2026-04-01T10:15:00Z", "2026-04-01T10:30:00Z"],
        "event": ["page_view"] * 6,
        "user_id": ["u1", "u1", "u1", "u2", "u2", None],
    })


def _sessions(df: pd.DataFrame) -> dict[str, list[str]]:
    df = df.sort_values("timestamp")
    return {u: g["session_id"].tolist() for u, g in df.groupby("user_id")}


def test_sessions_split_after_30_minutes_of_inactivity_per_user():
    events = load_events(_visits(), Config())
    assert events.sessions_derived
    df = events.table.execute()
    s = _sessions(df)
    assert s["u1"][0] == s["u1"][1] != s["u1"][2]      # 10:00, 10:20 | 11:00
    assert s["u2"][0] == s["u2"][1]                     # 10:10, 10:15
    assert not set(s["u1"]) & set(s["u2"])              # users never share a session
    assert df["session_id"].nunique() == 3
    assert df.loc[df["user_id"].isna(), "session_id"].isna().all()  # no user, no session


@pytest.mark.parametrize("minutes, u1_sessions", [(60, 1), (30, 2), (10, 3)])
def test_session_timeout_is_configurable(minutes, u1_sessions):
    df = load_events(_visits(), parse_config({"session_timeout_minutes": minutes})).table.execute()
    assert len(set(_sessions(df)["u1"])) == u1_sessions


def test_given_session_ids_are_kept():
    df = _visits().assign(session_id=["a", "b", "c", "d", "e", "f"])
    events = load_events(df, Config())
    assert not events.sessions_derived
    assert sorted(events.table.execute()["session_id"]) == list("abcdef")


# ---------------------------------------------------------------- property

def test_property_column_splits_properties():
    df = pd.DataFrame({"timestamp": ["2026-04-01T10:00:00Z"] * 4, "event": ["a"] * 4,
                       "property": ["web", "app", "web", None]})
    got = load(df)["property"].value_counts().to_dict()
    assert got == {"web": 2, "app": 1, DEFAULT_PROPERTY: 1}


def test_no_property_column_means_default():
    df = pd.DataFrame({"timestamp": ["2026-04-01T10:00:00Z"] * 3, "event": ["a", "b", "c"]})
    assert load(df)["property"].tolist() == [DEFAULT_PROPERTY] * 3


# ---------------------------------------------------------------- dimensions

def _wide(n: int = 120) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.date_range("2026-04-01", periods=n, freq="min", tz="UTC").astype(str),
        "event": ["page_view", "click", "purchase"] * (n // 3),
        "user_id": [f"u{i % 7}" for i in range(n)],
        "device": (["mobile", "desktop", "tablet"] * n)[:n],
        "country": [["US", "DE", "FR", "GB", None][i % 5] for i in range(n)],
        "is_paid": ["yes" if i % 4 == 0 else "no" for i in range(n)],
        "email": [f"person{i}@example.com" for i in range(n)],      # high cardinality
        "campaign_id": [f"c{i % 3}" for i in range(n)],               # id-like, low cardinality
        "orderId": [f"o{i % 4}" for i in range(n)],                   # id-like (camelCase)
        "page_url": [f"/p/{i % 5}" for i in range(n)],                # a URL
        "clicks": list(range(n)),                                     # numbers are not dimensions
    })


def test_auto_dimensions_pick_low_cardinality_text():
    events = load_events(_wide(), Config())
    assert sorted(events.dimensions) == ["country", "device", "is_paid"]
    assert any("dimensions found automatically" in n for n in events.notes)


def test_configured_dimensions_are_used_as_given():
    events = load_events(_wide(), parse_config({"dimensions": ["email", "device"]}))
    assert events.dimensions == ["email", "device"]
    df = events.table.execute()
    assert df["email"].nunique() == 120


def test_null_dimension_values_become_none_marker():
    df = load_events(_wide(), parse_config({"dimensions": ["country"]})).table.execute()
    counts = df["country"].value_counts().to_dict()
    assert counts[NONE_VALUE] == 24 and df["country"].notna().all()
    assert set(counts) == {"US", "DE", "FR", "GB", NONE_VALUE}


def test_unknown_configured_dimension_suggests_a_close_name():
    with pytest.raises(InputError, match=r"dimension 'contry' is not a column \(did you mean 'country'\?\)"):
        load_events(_wide(), parse_config({"dimensions": ["contry"]}))


# ---------------------------------------------------------------- derived metrics

def _shop(names: dict[str, str], n_sessions: int = 40) -> pd.DataFrame:
    rows = []
    start = pd.Timestamp("2026-04-01T10:00:00Z")
    for s in range(n_sessions):
        t = start + pd.Timedelta(minutes=3 * s)
        funnel = ["view", "cart", "checkout", "purchase"][: 1 + s % 4]
        for k, step in enumerate(funnel):
            rows.append({"timestamp": (t + pd.Timedelta(seconds=k)).isoformat(), "event": names[step],
                         "session_id": f"s{s}", "user_id": f"u{s % 9}",
                         "revenue": 25.0 if step == "purchase" else None})
    return pd.DataFrame(rows)


SHOP_KPIS = {"orders", "revenue", "average_order_value", "conversion_rate", "cart_abandonment_rate"}


@pytest.mark.parametrize("names", [
    {"view": "page_view", "cart": "add_to_cart", "checkout": "begin_checkout", "purchase": "purchase"},
    {"view": "Product Viewed", "cart": "Product Added", "checkout": "Checkout Started", "purchase": "Order Completed"},
], ids=["ga4", "segment"])
def test_ecommerce_kpis_are_derived(names):
    metrics = {m.name: m for m in resolve_metrics(Config(), load_events(_shop(names), Config()))}
    assert SHOP_KPIS | {"sessions", "users"} <= set(metrics)
    purchase = names["purchase"]
    assert metrics["orders"].type == "count" and metrics["orders"].event == purchase
    assert metrics["revenue"].type == "sum" and metrics["revenue"].column == "revenue"
    assert metrics["revenue"].event == purchase
    conv = metrics["conversion_rate"]
    assert conv.is_ratio and conv.numerator.event == purchase and conv.denominator.event is None
    aband = metrics["cart_abandonment_rate"]
    assert aband.is_ratio and aband.invert and aband.denominator.event == names["cart"]
    assert metrics["average_order_value"].is_ratio


def test_segment_nested_export_gets_the_kpis(tmp_path):
    """Segment's shape: userId, properties.revenue, no session_id (sessions are derived)."""
    rows = [{"timestamp": r["timestamp"], "event": r["event"], "userId": r["user_id"],
             "properties": {"revenue": r["revenue"], "currency": "USD"}}
            for r in _shop({"view": "Product Viewed", "cart": "Product Added",
                            "checkout": "Checkout Started", "purchase": "Order Completed"}).to_dict("records")]
    events = load_events(write_jsonl(tmp_path / "segment.jsonl", rows), Config())
    assert events.sessions_derived and events.mapping["revenue"] == "properties.revenue"
    names = {m.name for m in resolve_metrics(Config(), events)}
    assert SHOP_KPIS | {"sessions", "users"} <= names


def test_plain_events_give_sessions_users_and_frequent_counts():
    n = 300
    df = pd.DataFrame({
        "timestamp": pd.date_range("2026-04-01", periods=n, freq="min", tz="UTC").astype(str),
        "event": ["page_view", "page_view", "scroll"] * (n // 3),
        "session_id": [f"s{i // 10}" for i in range(n)],
        "user_id": [f"u{i // 30}" for i in range(n)],
    })
    df.loc[0, "event"] = "rare_thing"  # 1 of 300: below the 1% share
    metrics = resolve_metrics(Config(), load_events(df, Config()))
    assert {m.name for m in metrics} == {"sessions", "users", "page_view", "scroll"}
    assert not SHOP_KPIS & {m.name for m in metrics}
    counts = {m.name: m.event for m in metrics if m.type == "count"}
    assert counts == {"page_view": "page_view", "scroll": "scroll"}


# ---------------------------------------------------------------- ibis URL source

def test_duckdb_url_source(tmp_path):
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute("""
        CREATE TABLE events AS
        SELECT TIMESTAMP '2026-04-01 10:00:00' + i * INTERVAL 10 MINUTE AS ts,
               CASE WHEN i % 3 = 0 THEN 'purchase' ELSE 'page_view' END AS event_name,
               'u' || (i % 2) AS user_id,
               CASE WHEN i % 3 = 0 THEN 10.0 + i END AS revenue
        FROM range(12) t(i)
    """)
    con.close()
    events = load_events(f"duckdb:///{db}#events", Config())
    df = events.table.execute().sort_values("timestamp").reset_index(drop=True)
    assert len(df) == 12
    assert events.mapping["timestamp"] == "ts" and events.mapping["event"] == "event_name"
    assert df["timestamp"].iloc[0] == T0 and df["timestamp"].iloc[-1] == T0 + pd.Timedelta(minutes=110)
    assert (df["event"] == "purchase").sum() == 4
    assert df["revenue"].sum() == pytest.approx(4 * 10.0 + 0 + 3 + 6 + 9)
    assert events.sessions_derived and df["session_id"].notna().all()


def test_duckdb_url_with_unknown_table_says_so(tmp_path):
    db = tmp_path / "x.duckdb"
    duckdb.connect(str(db)).close()
    with pytest.raises(InputError, match=r"no table 'nope'"):
        load_events(f"duckdb:///{db}#nope", Config())
