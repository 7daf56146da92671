"""Daily e-commerce: the retail calendar, learned event effects, the market, market-wide incidents."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sleuth.calendar import RETAIL_DAYS, Event, calendar_names, holiday_reference, parse_rule, rule_date
from sleuth.config import parse_config
from sleuth.detectors.base import SeriesBatch, get_detector
from sleuth.errors import ConfigError
from sleuth.explain.links import link_incidents
from sleuth.explain.segments import label_market
from sleuth.incidents import Incident

STORES = 5


def test_retail_days_move_with_their_rules():
    bf = [RETAIL_DAYS["Black Friday"](y) for y in (2023, 2024, 2025)]
    assert bf == [dt.date(2023, 11, 24), dt.date(2024, 11, 29), dt.date(2025, 11, 28)]
    assert all(d.weekday() == 4 for d in bf)
    assert RETAIL_DAYS["Cyber Monday"](2024) == dt.date(2024, 12, 2)
    assert RETAIL_DAYS["Easter Sunday"](2025) == dt.date(2025, 4, 20)
    assert RETAIL_DAYS["Mother's Day"](2025) == dt.date(2025, 5, 11)
    days = pd.date_range("2024-11-27", periods=8, freq="D")
    sale = Event("winter sale", rule="last Thursday of November", days=2, properties=("store_a",))
    mine = calendar_names(days, ["US"], events=[sale], prop="store_a")
    other = calendar_names(days, ["US"], events=[sale], prop="store_b")
    # the user's event first, then retail days, then public holidays; each day of an event its own name
    assert mine[1:3] == ["winter sale", "winter sale (day 2)"]
    assert other[1:3] == ["Thanksgiving Day (US)", "Black Friday"]
    assert other[5] == "Cyber Monday" and other[0] is None


@pytest.mark.parametrize("rule, year, first", [("second Tuesday of July", 2025, dt.date(2025, 7, 8)),
                                               ("last Friday of November", 2024, dt.date(2024, 11, 29)),
                                               ("ISO week 27", 2024, dt.date(2024, 7, 1)),
                                               ("July 4", 2026, dt.date(2026, 7, 4)),
                                               ("Easter+1", 2024, dt.date(2024, 4, 1)),
                                               ("fifth Monday of February", 2024, None)])
def test_calendar_rules(rule, year, first):
    assert rule_date(rule, year) == first


def test_calendar_config_is_validated_in_one_line():
    cfg = parse_config({"calendar": [{"name": "prime days", "rule": "ISO week 28", "properties": ["a"]}],
                        "peers": [["a", "b", "c"]]})
    (ev,) = cfg.calendar_events()
    assert ev.length == 7 and ev.properties == ("a",)
    with pytest.raises(ConfigError, match=r"calendar\[0\]\.rule: cannot read the rule 'every full moon'; use 'second"):
        parse_config({"calendar": [{"name": "x", "rule": "every full moon"}]})
    with pytest.raises(ConfigError, match="needs either 'dates'"):
        parse_config({"calendar": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="in two groups"):
        parse_config({"peers": [["a", "b"], ["b", "c"]]})
    with pytest.raises(ValueError):
        parse_rule("the day after tomorrow")


def stores(years: int = 3, seed: int = 0, missing_bf: int | None = None, drop: tuple | None = None,
           market_drop: tuple | None = None):
    """Daily sessions of five stores: weekly shape, common and own day-to-day swings, Black Friday
    (x2.6, its lift varying by up to 20 % a year for the whole market), Cyber Monday x2, Christmas
    x0.5. ``missing_bf``: a store flat on the last Black Friday; ``drop``: (store, day, days,
    change) on one store; ``market_drop``: (day, days, change) on all."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-02", periods=365 * years, freq="D")
    names = np.array(calendar_names(days, ["US"]), dtype=object)
    size = {y: rng.uniform(0.8, 1.2) for y in set(days.year)}
    effect = np.ones(len(days))
    for t, n in enumerate(names):
        lift = {"Black Friday": 1.6, "Cyber Monday": 1.0, "Christmas Day (US)": -0.5}.get(n)
        if lift is not None:
            effect[t] = 1 + lift * (size[days.year[t]] if lift > 0 else 1.0)
    weekly = np.where(days.dayofweek >= 5, 1.2, 1.0)
    base = np.array([1500.0, 1200, 1000, 800, 600])[:, None] * weekly * effect
    lam = base * rng.lognormal(0, 0.03, len(days)) * rng.lognormal(0, 0.02, base.shape)
    if missing_bf is not None:
        t = np.flatnonzero(names == "Black Friday")[-1]
        lam[missing_bf, t] /= effect[t]
    if drop is not None:
        s, a, n, change = drop
        lam[s, a:a + n] *= 1 + change
    if market_drop is not None:
        a, n, change = market_drop
        lam[:, a:a + n] *= 1 + change
    y = rng.poisson(lam).astype(float)
    b = SeriesBatch(value=y, weight=np.full_like(y, np.nan), kind=np.full(STORES, "count"), season=7, day=1,
                    holiday=names != None, holiday_ref=holiday_reference(days, list(names)),  # noqa: E711
                    event_names=names, peer_group=np.zeros(STORES, int), time=days)
    return days, names, y, b


def test_recurring_events_are_expected_from_the_second_year_and_a_missing_lift_is_an_anomaly():
    days, names, y, b = stores(missing_bf=3)
    s = get_detector("seasonal").score_batch(b)
    bf = np.flatnonzero(names == "Black Friday")
    first, last = bf[0], bf[-1]
    lifted = [0, 1, 2, 4]
    # the first Black Friday is news; from the second on it is expected, within its yearly spread
    assert np.all(s.expected[lifted, last] / y[lifted, last] > 0.8)
    assert not s.is_anomaly[lifted][:, bf[1:]].any()
    assert s.expected[0, first] < 0.6 * y[0, first]
    # the band on a learned event stays close to an ordinary day's relative width (it adds only the
    # uncertainty of the event's size: a x2.6 day varies by more than an ordinary one)
    ordinary = slice(last - 30, last - 10)
    width = lambda t: (s.upper[0, t] - s.lower[0, t]) / s.expected[0, t]  # noqa: E731
    assert width(last) < 2 * np.median(width(ordinary))
    # the store flat on Black Friday while it usually rises (and its peers do)
    assert s.is_anomaly[3, last] and s.z[3, last] < 0
    assert s.expected[3, last] > 2 * y[3, last]


def test_a_store_departing_from_its_market_is_caught_and_a_market_move_is_seen_by_all():
    T = 365 * 2
    days, names, y, b = stores(years=2, seed=2, drop=(1, T - 60, 2, -0.2), market_drop=(T - 30, 2, -0.35))
    with_market = get_detector("seasonal").score_batch(b)
    alone = get_detector("seasonal", market=False).score_batch(b)
    # the store-only -20 % over two days
    assert with_market.is_anomaly[1, T - 60:T - 58].any()
    assert with_market.is_anomaly[1, T - 61:T - 57].sum() >= alone.is_anomaly[1, T - 61:T - 57].sum()
    # the whole market at -35 %: every store alerts on its own band
    assert with_market.is_anomaly[:, T - 30:T - 28].any(axis=1).all()
    # elsewhere in the last half year, hardly anything (five stores, ~180 days)
    quiet = np.ones(T, bool)
    quiet[T - 62:T - 56] = quiet[T - 32:T - 26] = False
    quiet[:T - 180] = False
    assert with_market.is_anomaly[:, quiet].sum() <= 5


def _incident(prop: str, change: float, peers: dict, start="2025-11-04T00:00:00Z", metric="sessions") -> Incident:
    return Incident(id=f"{prop}-{metric}", metric=metric, segment={}, start=start, end="2025-11-06T00:00:00Z",
                    direction="down" if change < 0 else "up", actual=1.0, expected=1.0, lower=0.9, upper=1.1,
                    score=6.0, severity="high" if abs(change) >= 0.5 else "medium", property=prop, change=change,
                    buckets=2, peers=peers)


def test_market_wide_incidents_are_labelled_grouped_and_less_severe():
    props = [f"store_{c}" for c in "abcde"]
    change = {"store_a": -0.34, "store_b": -0.30, "store_c": -0.36, "store_d": -0.28, "store_e": -0.02}
    incs = [_incident(p, change[p], {q: change[q] for q in props if q != p}) for p in props[:4]]
    for inc in incs:
        label_market(inc)
    assert all(inc.market_wide for inc in incs)
    assert incs[0].severity == "low" and incs[0].market["peers"] == 4 and incs[0].market["moved"] == 3
    assert "properties fell ~" in incs[0].market["text"] and "likely external" in incs[0].market["text"]
    groups = link_incidents(incs, pd.Timedelta(days=1))
    assert len(groups) == 1 and any("market-wide" in r for why in incs[0].link_evidence.values() for r in why)
    # one store down while its market rose: not market-wide, and the text says so
    alone = _incident("store_e", -0.25, {"store_a": 0.08, "store_b": 0.1, "store_c": 0.05, "store_d": 0.12})
    label_market(alone)
    assert not alone.market_wide and alone.severity == "medium"
    assert alone.market["text"] == "its market (4 other properties) moved +9% while store_e fell 25%"
    # a single peer is no market
    pair = _incident("web", -0.4, {"app": -0.38})
    label_market(pair)
    assert not pair.market_wide and pair.market["peers"] == 1


def test_the_generated_stores_follow_the_retail_calendar_and_carry_their_truth():
    from sleuth.datasets.retail import STORES, generate_retail

    events, truth = generate_retail(years=2, scale=0.1, seed=3)
    day = events["timestamp"].dt.floor("D")
    sessions = events[events["event"] == "session_start"].groupby(["property", day]).size().unstack(0)
    kinds = {t.kind for t in truth}
    assert {"traffic_drop", "traffic_spike", "conversion_drop", "aov_glitch", "market_drop",
            "missing_black_friday"} <= kinds
    assert sum(t.kind == "market_drop" for t in truth) == len(STORES)
    names = pd.Series(calendar_names(sessions.index, ["US"]), index=sessions.index)
    bf = names[names == "Black Friday"].index
    week_before = lambda d: sessions.loc[d - pd.Timedelta(days=7)]  # noqa: E731
    assert (sessions.loc[bf[0]] / week_before(bf[0]) > 1.8).all()  # every store's Black Friday lift
    missing = next(t for t in truth if t.kind == "missing_black_friday")
    lift = sessions.loc[bf[-1]] / week_before(bf[-1])
    assert lift[missing.property] < 1.4 and (lift.drop(missing.property) > 1.8).all()
    # the summer sale is store_c's own
    sale = [d for d in sessions.index if rule_date("second Tuesday of July", d.year) == d.date()]
    jump = sessions.loc[sale[0]] / week_before(sale[0])
    assert jump["store_c"] > 1.4 and (jump.drop("store_c") < 1.3).all()


def test_bench_retail_runs_end_to_end(run_cli):
    res = run_cli("bench", "retail", "--years", "2", "--scale", "0.05", "--no-baselines", "--json", timeout=180)
    assert res.returncode == 0, res.stderr
    import json

    out = json.loads(res.stdout.strip().splitlines()[-1])
    m = out["methods"]["sleuth"]
    assert m["injected"] == len(out["truth"]) == 17 and len(m["per_incident"]) == 17
    assert m["false_alarms_special"] + m["false_alarms_other"] == len(m["false_alarm_list"])
    assert set(out["methods"]) == {"sleuth"}


def test_daily_scores_with_calendar_and_market_use_no_later_data():
    """The daily path (weekday shares, yearly move, learned events, the market) is causal: the
    scores of a prefix equal the head of the scores of the whole."""
    from dataclasses import replace

    days, names, y, b = stores(years=2, seed=5, missing_bf=2)
    det = get_detector("seasonal")
    full = det.score_batch(b)
    for cut in (400, 690, 700):  # the last two around Black Friday
        part = det.score_batch(replace(b, value=y[:, :cut], weight=b.weight[:, :cut], holiday=b.holiday[:cut],
                                       holiday_ref=b.holiday_ref[:cut], event_names=names[:cut], time=days[:cut]))
        for field in ("expected", "lower", "upper", "z", "anomaly_score", "is_anomaly"):
            np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[:, :cut], err_msg=f"{field} {cut}")
