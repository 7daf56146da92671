"""The demo shop generator: data shape, funnel, traffic, incidents and the evaluator."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sleuth.datasets.shop import InjectedIncident, evaluate, generate_shop, write_shop

COLUMNS = ["timestamp", "event", "session_id", "user_id", "revenue", "property", "device",
           "os", "browser", "country", "channel", "campaign", "category"]
FUNNEL = ["session_start", "page_view", "view_item", "add_to_cart", "begin_checkout", "purchase"]
KINDS = {"segment_conversion_drop", "campaign_spike", "tracking_outage", "bot_flood",
         "funnel_break", "price_glitch"}


@pytest.fixture(scope="module")
def small():
    return generate_shop(weeks=3, sessions_per_hour=40, seed=1)


@pytest.fixture(scope="module")
def big():
    """Enough traffic that segment-level incidents stand clearly out of the noise."""
    return generate_shop(weeks=3, sessions_per_hour=300, seed=3)


@pytest.fixture(scope="module")
def clean():
    return generate_shop(weeks=3, sessions_per_hour=80, seed=2, incidents=False)[0]


def incident(truth, kind):
    return next(i for i in truth if i.kind == kind)


def sessions_of(df):
    """One row per session: its start, attributes and which funnel events it had."""
    s = df[df["event"] == "session_start"].set_index("session_id")
    for event in FUNNEL[1:]:
        s[event] = s.index.isin(df.loc[df["event"] == event, "session_id"])
    return s


def same_hours_elsewhere(ts: pd.Series, inc: InjectedIncident) -> tuple[pd.Series, pd.Series]:
    """Masks: inside the incident window, and at the same hours of day on other days."""
    inside = (ts >= inc.start) & (ts < inc.end)
    hours = set(pd.date_range(inc.start, inc.end, freq="h", inclusive="left").hour)
    other = ts.dt.hour.isin(hours) & (ts.dt.normalize() != inc.start.normalize())
    return inside, other


# ----------------------------------------------------------------------------- data shape

def test_columns_and_dtypes(small):
    df, _ = small
    assert list(df.columns) == COLUMNS
    assert pd.api.types.is_datetime64_dtype(df["timestamp"]) and df["timestamp"].dt.tz is None
    assert df["timestamp"].is_monotonic_increasing
    period = pd.Timestamp("2026-03-02"), pd.Timestamp("2026-03-23")
    assert df["timestamp"].iloc[0] >= period[0] and df["timestamp"].iloc[-1] < period[1]
    assert df["revenue"].dtype == np.float64
    for col in COLUMNS[1:4] + COLUMNS[5:12]:
        assert df[col].map(type).eq(str).all(), col
    assert set(df["event"]) == set(FUNNEL)
    assert set(df["property"]) == {"web", "app"}
    is_purchase = df["event"] == "purchase"
    assert df["revenue"].isna().eq(~is_purchase).all()
    assert (df.loc[is_purchase, "revenue"] > 0).all()
    has_category = df["event"].isin(FUNNEL[2:])
    assert df["category"].notna().eq(has_category).all()
    assert df.loc[has_category, "category"].nunique() == 5


def test_session_attributes_constant_and_consistent(small):
    df, _ = small
    attrs = ["user_id", "property", "device", "os", "browser", "country", "channel", "campaign"]
    assert (df.groupby("session_id")[attrs].nunique() == 1).all().all()
    s = sessions_of(df)
    mobile = s["device"].isin(["mobile", "tablet"])
    assert s.loc[mobile, "os"].isin(["iOS", "Android"]).all()
    assert s.loc[~mobile, "os"].isin(["Windows", "macOS", "Linux"]).all()
    app = s["property"] == "app"
    assert (s.loc[app, "browser"] == "app").all() and mobile[app].all()
    assert (s.loc[~app, "browser"] != "app").all()
    safari = s.loc[s["browser"] == "Safari", "os"]
    assert safari.isin(["iOS", "macOS"]).all()
    assert set(s.loc[s["campaign"] != "(none)", "channel"]) <= {"paid_search", "social", "email"}
    assert (s["campaign"] == "(none)").mean() > 0.5
    assert 0.65 < (~app).mean() < 0.75


def test_users_return(clean):
    per_user = clean.loc[clean["event"] == "session_start", "user_id"].value_counts()
    assert (per_user >= 2).mean() > 0.4
    assert (per_user == 1).mean() > 0.1


def test_deterministic_for_a_seed():
    a, ta = generate_shop(weeks=3, sessions_per_hour=20, seed=5)
    b, tb = generate_shop(weeks=3, sessions_per_hour=20, seed=5)
    c, _ = generate_shop(weeks=3, sessions_per_hour=20, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert [t.to_dict() for t in ta] == [t.to_dict() for t in tb]
    assert len(a) != len(c) or not a["session_id"].equals(c["session_id"])


# ----------------------------------------------------------------------------- funnel and traffic

def test_funnel_order_within_sessions(small):
    df, _ = small
    rank = df["event"].map({e: i for i, e in enumerate(FUNNEL)})
    by_session = df.assign(rank=rank).sort_values("session_id", kind="stable")
    same = by_session["session_id"].eq(by_session["session_id"].shift())
    assert (by_session["rank"].diff()[same] >= 0).all()
    assert (by_session["timestamp"].diff()[same] >= pd.Timedelta(0)).all()
    assert (by_session.loc[~same, "event"] == "session_start").all()
    s = sessions_of(df)
    for later, earlier in zip(FUNNEL[3:], FUNNEL[2:]):
        assert not (s[later] & ~s[earlier]).any(), f"{later} without {earlier}"


def test_conversion_and_revenue_levels(clean):
    s = sessions_of(clean)
    assert 0.035 < s["purchase"].mean() < 0.07
    desktop, mobile = (s.loc[s["device"] == d, "purchase"].mean() for d in ("desktop", "mobile"))
    assert mobile < desktop
    weekend = s["timestamp"].dt.dayofweek >= 5
    assert s.loc[weekend, "purchase"].mean() < s.loc[~weekend, "purchase"].mean()
    aov = clean[clean["event"] == "purchase"].groupby("category")["revenue"].mean()
    assert aov["electronics"] > 150 and aov["beauty"] < 60 and aov.idxmax() == "electronics"


def test_traffic_shape(clean):
    starts = clean.loc[clean["event"] == "session_start", "timestamp"]
    by_hour = starts.dt.hour.value_counts()
    assert by_hour.idxmax() in (19, 20, 21) and by_hour.idxmin() in (3, 4, 5)
    assert 3.5 < by_hour.max() / by_hour.min() < 7
    days = starts.dt.normalize().value_counts()
    weekend = days.index.dayofweek >= 5
    assert days[weekend].mean() > 1.05 * days[~weekend].mean()
    weeks = starts.dt.to_period("W").value_counts().sort_index()
    assert weeks.iloc[-1] > weeks.iloc[0]


# ----------------------------------------------------------------------------- incidents

@pytest.mark.parametrize("weeks", [3, 5])
def test_incidents_in_last_two_weeks_apart(weeks):
    _, truth = generate_shop(weeks=weeks, sessions_per_hour=5, seed=1)
    assert {t.kind for t in truth} == KINDS and len(truth) == 6
    period_end = pd.Timestamp("2026-03-02") + pd.Timedelta(weeks=weeks)
    ordered = sorted(truth, key=lambda t: t.start)
    for t in ordered:
        assert period_end - pd.Timedelta(weeks=2) <= t.start < t.end <= period_end
        assert t.start == t.start.floor("h") and t.property in ("web", "app")
        assert pd.Timedelta(hours=3) <= t.end - t.start <= pd.Timedelta(hours=8)
        assert 8 <= t.start.hour and t.end.hour <= 22
        assert set(t.metrics.values()) <= {"up", "down"} and t.description
    for a, b in zip(ordered, ordered[1:]):
        assert b.start - a.end >= pd.Timedelta(hours=12)
    assert len({t.start.date() for t in truth}) == 6


def test_no_incidents_when_disabled(clean):
    assert "HeadlessChrome" not in set(clean["browser"])
    assert generate_shop(weeks=1, sessions_per_hour=5, incidents=False)[1] == []
    with pytest.raises(ValueError):
        generate_shop(weeks=2)


def test_tracking_outage_removes_app_events(small):
    df, truth = small
    inc = incident(truth, "tracking_outage")
    inside, other = same_hours_elsewhere(df["timestamp"], inc)
    app = df["property"] == "app"
    assert not (inside & app).any()
    assert (inside & ~app).sum() > 100
    assert (other & app).sum() > 100


def test_bot_flood_only_in_its_window(small):
    df, truth = small
    inc = incident(truth, "bot_flood")
    bots = df[df["browser"] == "HeadlessChrome"]
    starts = bots.loc[bots["event"] == "session_start", "timestamp"]
    assert len(starts) > 50 and starts.between(inc.start, inc.end, inclusive="left").all()
    assert set(bots["event"]) == {"session_start", "page_view"}
    assert bots["user_id"].nunique() == len(starts)
    assert set(bots["user_id"]).isdisjoint(df.loc[df["browser"] != "HeadlessChrome", "user_id"])
    assert (bots[["os", "device", "country", "channel"]].drop_duplicates().values.tolist()
            == [["Linux", "desktop", "US", "direct"]])
    assert 7 < (bots["event"] == "page_view").sum() / len(starts) < 13


def web_sessions_per_hour(df, inc):
    web = df[(df["event"] == "session_start") & (df["property"] == "web")]
    inside, other = same_hours_elsewhere(web["timestamp"], inc)
    weekday = web["timestamp"].dt.dayofweek < 5
    days = web.loc[other & weekday, "timestamp"].dt.normalize().nunique()
    return inside.sum(), (other & weekday).sum() / days


def test_bot_flood_and_campaign_spike_raise_web_sessions(big):
    df, truth = big
    got, usual = web_sessions_per_hour(df, incident(truth, "bot_flood"))
    assert got > 2.2 * usual
    got, usual = web_sessions_per_hour(df, incident(truth, "campaign_spike"))
    assert got > 1.4 * usual


def conversion(s, mask):
    return s.loc[mask, "purchase"].mean()


def test_ios_conversion_drop_visible(big):
    df, truth = big
    inc = incident(truth, "segment_conversion_drop")
    s = sessions_of(df)
    inside, other = same_hours_elsewhere(s["timestamp"], inc)
    web = s["property"] == "web"
    ios = web & (s["os"] == "iOS")
    assert conversion(s, ios & inside) < 0.5 * conversion(s, ios & other)
    assert conversion(s, web & ~ios & inside) > 0.6 * conversion(s, web & ~ios & other)


def test_funnel_break_blocks_checkouts(big):
    df, truth = big
    s = sessions_of(df)
    inside, other = same_hours_elsewhere(s["timestamp"], incident(truth, "funnel_break"))
    checkout = (s["property"] == "web") & s["begin_checkout"]
    assert conversion(s, checkout & inside) < 0.2 * conversion(s, checkout & other)


def test_price_glitch_lowers_electronics_aov(big):
    df, truth = big
    inc = incident(truth, "price_glitch")
    buys = df[(df["event"] == "purchase") & (df["property"] == "web")]
    inside, other = same_hours_elsewhere(buys["timestamp"], inc)
    elec = buys["category"] == "electronics"
    assert elec[inside].sum() >= 5
    assert buys.loc[elec & inside, "revenue"].mean() < 0.3 * buys.loc[elec & other, "revenue"].mean()
    assert buys.loc[~elec & inside, "revenue"].mean() > 0.6 * buys.loc[~elec & other, "revenue"].mean()


# ----------------------------------------------------------------------------- evaluate

def make_truth():
    t = pd.Timestamp
    return [
        InjectedIncident("bot_flood", "web", t("2026-04-01 10:00"), t("2026-04-01 16:00"),
                         {"browser": "HeadlessChrome"},
                         {"sessions": "up", "page_view": "up", "conversion_rate": "down"}, "bots"),
        InjectedIncident("tracking_outage", "app", t("2026-04-03 13:00"), t("2026-04-03 16:00"),
                         {}, {"sessions": "down"}, "outage"),
        InjectedIncident("price_glitch", "web", t("2026-04-05 08:00"), t("2026-04-05 14:00"),
                         {"category": "electronics"}, {"revenue": "down"}, "glitch"),
    ]


def test_evaluate_counts_hits_and_false_alarms():
    detected = [
        # bot flood: found 1 h late with a right root cause among the top 3, and again later
        {"metric": "sessions", "property": "web", "start": "2026-04-01T11:00:00Z",
         "end": "2026-04-01T13:00:00Z",
         "root_causes": [{"segment": {"country": "US"}},
                         {"segment": {"browser": "HeadlessChrome", "os": "Linux"}}]},
        {"metric": "conversion_rate", "property": None, "start": pd.Timestamp("2026-04-01 15:00"),
         "end": pd.Timestamp("2026-04-01 17:00")},
        # outage: within the 2 h slack before it starts
        {"metric": "sessions", "property": "app", "start": "2026-04-03T10:00:00Z",
         "end": "2026-04-03T11:30:00Z"},
        # price glitch, wrong root cause (right one only 4th)
        {"metric": "revenue", "property": "web", "start": "2026-04-05T09:00:00Z",
         "end": "2026-04-05T10:00:00Z",
         "root_causes": [{"segment": {"os": "iOS"}}, {"segment": {"device": "mobile"}},
                         {"segment": {"country": "DE"}}, {"segment": {"category": "electronics"}}]},
        # related: another metric of the property during an injected incident
        {"metric": "revenue", "property": "web", "start": "2026-04-01T11:00:00Z",
         "end": "2026-04-01T12:00:00Z"},
        # false alarms: wrong property, outside the slack
        {"metric": "sessions", "property": "web", "start": "2026-04-03T13:00:00Z",
         "end": "2026-04-03T14:00:00Z"},
        {"metric": "sessions", "property": "app", "start": "2026-04-03T18:00:00Z",
         "end": "2026-04-03T19:00:00Z"},
    ]
    result = evaluate(detected, make_truth())
    assert (result["found"], result["total"], result["false_alarms"], result["related"]) == (3, 3, 2, 1)
    assert result["false_alarm_list"] == detected[5:]
    bots, outage, glitch = result["per_incident"]
    assert bots == {"kind": "bot_flood", "found": True, "explained_by": ["segments"],
                    "metrics_found": ["conversion_rate", "sessions"],
                    "first_detection": "2026-04-01T11:00:00Z", "delay_hours": 1.0,
                    "root_cause_ok": True}
    assert outage["delay_hours"] == -3.0 and outage["root_cause_ok"] is None
    assert outage["explained_by"] == ["segments"]  # no root cause listed: called site-wide, rightly
    assert glitch["found"] and glitch["root_cause_ok"] is False and glitch["explained_by"] == []
    assert result["explained"] == 2

    result = evaluate(detected, make_truth(), slack_hours=0)
    assert result["found"] == 2 and result["false_alarms"] == 3 and result["related"] == 1
    assert result["per_incident"][1] == {"kind": "tracking_outage", "found": False, "explained_by": [],
                                         "metrics_found": [], "first_detection": None,
                                         "delay_hours": None, "root_cause_ok": None}

    # alerts people receive: linked detections of one incident go out together
    assert evaluate(detected, make_truth())["alerts"] == {"detections": 5, "alerts": 5, "saved": 0.0}
    ids = [dict(d, id=f"d{k}", linked=[]) for k, d in enumerate(detected)]
    for k, others in {0: ["d1", "d4"], 1: ["d0", "d4"], 4: ["d0", "d1"]}.items():
        ids[k]["linked"] = others
    linked = evaluate(ids, make_truth())
    assert linked["alerts"] == {"detections": 5, "alerts": 3, "saved": 0.4}
    # the bot flood's three metrics now go out as one alert: the link step explains it too
    assert linked["per_incident"][0]["explained_by"] == ["segments", "links"]


def test_evaluate_credits_the_path_method_for_a_broken_funnel_step():
    start, end = pd.Timestamp("2026-04-01 10:00"), pd.Timestamp("2026-04-01 14:00")
    truth = [InjectedIncident("funnel_break", "web", start, end, {}, {"orders": "down"})]
    hit = {"metric": "orders", "property": "web", "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T14:00:00Z",
           "root_causes": [{"segment": {"os": "iOS"}}]}
    broke = dict(hit, transitions=[{"from": "begin_checkout", "to": "purchase", "baseline": 0.6, "during": 0.05}])
    rose = dict(hit, transitions=[{"from": "begin_checkout", "to": "purchase", "baseline": 0.6, "during": 0.7}])
    assert evaluate([hit], truth)["per_incident"][0]["explained_by"] == []
    assert evaluate([rose], truth)["per_incident"][0]["explained_by"] == []
    assert evaluate([broke], truth)["per_incident"][0]["explained_by"] == ["paths"]


def test_evaluate_empty_and_direction():
    truth = make_truth()
    result = evaluate([], truth)
    assert (result["found"], result["false_alarms"]) == (0, 0)
    assert result["per_incident"][0]["root_cause_ok"] is False
    wrong_way = [{"metric": "sessions", "property": "web", "direction": "down",
                  "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T11:00:00Z"}]
    assert evaluate(wrong_way, truth)["found"] == 1
    strict = evaluate(wrong_way, truth, check_direction=True)
    assert strict["found"] == 0 and strict["related"] == 1 and strict["false_alarms"] == 0
    as_dicts = [t.to_dict() for t in truth]
    assert evaluate(wrong_way, as_dicts) == evaluate(wrong_way, truth)


# ----------------------------------------------------------------------------- write_shop

@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_write_shop_round_trip(tmp_path, fmt):
    out = write_shop(tmp_path / "shop", fmt=fmt, weeks=3, sessions_per_hour=5, seed=4)
    df, truth = generate_shop(weeks=3, sessions_per_hour=5, seed=4)
    reader = {"parquet": pd.read_parquet, "csv": pd.read_csv,
              "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt]
    back = reader(out["events"])
    assert out["rows"] == len(back) == len(df)
    assert list(back.columns) == COLUMNS
    assert (pd.to_datetime(back["timestamp"]) == df["timestamp"]).all()
    assert back["revenue"].sum() == pytest.approx(df["revenue"].sum())
    assert back["category"].isna().sum() == df["category"].isna().sum()
    saved = json.loads(open(out["truth"]).read())
    assert saved == [t.to_dict() for t in truth]
    assert [InjectedIncident.from_dict(d) for d in saved] == truth


def test_write_shop_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError):
        write_shop(tmp_path, fmt="xlsx", weeks=3, sessions_per_hour=5)


def test_grouping_alone_names_no_cause_and_site_wide_needs_most_hits():
    start, end = pd.Timestamp("2026-04-01 10:00"), pd.Timestamp("2026-04-01 14:00")
    truth = [InjectedIncident("tracking_outage", "app", start, end, {}, {"sessions": "down", "page_view": "down"})]
    hit = {"property": "app", "start": "2026-04-01T10:00:00Z", "end": "2026-04-01T14:00:00Z"}
    wrong = {"root_causes": [{"segment": {"os": "iOS"}}]}
    a = dict(hit, id="a", metric="sessions", linked=["b"], **wrong)
    b = dict(hit, id="b", metric="page_view", linked=["a"], **wrong)
    grouped = evaluate([a, b], truth)
    assert grouped["per_incident"][0]["explained_by"] == ["links"] and grouped["explained"] == 0
    c = dict(hit, id="c", metric="sessions", linked=[])
    assert evaluate([a, c], truth)["per_incident"][0]["explained_by"] == ["segments"]  # one of two site-wide
    d = dict(b, id="d", linked=[])
    assert evaluate([a, c, d], truth)["per_incident"][0]["explained_by"] == []  # one of three
