"""A demo shop: realistic e-commerce events with injected incidents and their recorded truth.

:func:`generate_shop` simulates GA4-style events (``session_start``, ``page_view``,
``view_item``, ``add_to_cart``, ``begin_checkout``, ``purchase``) of a shop with a web site
and an app: daily and weekly rhythm, a slight trend, returning users, a conversion funnel,
and six incidents in the last two weeks, each recorded as an :class:`InjectedIncident`.
:func:`write_shop` saves both to disk and :func:`evaluate` scores a detector's findings
against the truth. Everything is vectorised with numpy and deterministic for a seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

#: (values, probabilities) of one categorical choice
Choice = tuple[tuple[str, ...], tuple[float, ...]]

PROPERTIES: Choice = (("web", "app"), (0.7, 0.3))
DEVICES = MappingProxyType({
    "web": (("desktop", "mobile", "tablet"), (0.55, 0.38, 0.07)),
    "app": (("mobile", "tablet"), (0.85, 0.15)),
})
OPERATING_SYSTEMS = MappingProxyType({
    "desktop": (("Windows", "macOS", "Linux"), (0.68, 0.27, 0.05)),
    "mobile": (("iOS", "Android"), (0.5, 0.5)),
    "tablet": (("iOS", "Android"), (0.65, 0.35)),
})
BROWSERS = MappingProxyType({
    "Windows": (("Chrome", "Edge", "Firefox"), (0.7, 0.2, 0.1)),
    "macOS": (("Safari", "Chrome", "Firefox"), (0.55, 0.4, 0.05)),
    "Linux": (("Chrome", "Firefox"), (0.65, 0.35)),
    "iOS": (("Safari", "Chrome"), (0.85, 0.15)),
    "Android": (("Chrome", "Samsung Internet"), (0.75, 0.25)),
})
COUNTRIES: Choice = (("US", "GB", "DE", "FR", "CA", "IN", "BR", "AU"),
                     (0.36, 0.12, 0.10, 0.07, 0.06, 0.13, 0.09, 0.07))
CHANNELS: Choice = (("organic", "paid_search", "social", "email", "direct", "referral"),
                    (0.30, 0.20, 0.16, 0.07, 0.21, 0.06))
SPIKE_CAMPAIGN = "insta_reels"
CAMPAIGNS = MappingProxyType({
    "paid_search": (("(none)", "brand_search", "spring_sale"), (0.2, 0.45, 0.35)),
    "social": (("(none)", SPIKE_CAMPAIGN), (0.3, 0.7)),
    "email": (("(none)", "newsletter_weekly"), (0.15, 0.85)),
})
#: product category -> mean order value
CATEGORY_PRICE = MappingProxyType({"electronics": 250.0, "apparel": 60.0, "home": 90.0,
                                   "beauty": 35.0, "toys": 40.0})
CATEGORY_SHARE = (0.18, 0.32, 0.20, 0.16, 0.14)
EVENTS = ("session_start", "page_view", "view_item", "add_to_cart", "begin_checkout", "purchase")
PURCHASE = EVENTS.index("purchase")

# funnel: P(view_item), P(cart | view), P(checkout | cart), P(purchase | checkout)
P_VIEW, P_CART, P_CHECKOUT, P_PURCHASE = 0.6, 0.3, 0.55, 0.6
#: the demo shop's config (Contract 2), written next to its events by ``sleuth demo``
DEMO_CONFIG = """\
# The demo shop's config (Contract 2). Metrics are derived from the data when 'metrics' is absent.
granularity: 1h
timezone: UTC
holidays: [US]
dimensions: [device, os, browser, country, channel, campaign, category]
"""
DEVICE_INTENT = MappingProxyType({"desktop": 1.0, "tablet": 0.9, "mobile": 0.8})
WEEKEND_TRAFFIC, WEEKEND_INTENT = 1.15, 0.85
#: diurnal traffic anchors (UTC hour -> relative level): trough 04:00, peak 20:00, ratio 5
DIURNAL_HOURS = (0, 4, 8, 12, 16, 20, 24)
DIURNAL_LEVELS = (0.6, 0.25, 0.55, 0.85, 0.95, 1.25, 0.6)
TREND, DAILY_SIGMA = 0.10, 0.05
#: user pool size = expected sessions / SESSIONS_PER_USER; activity ~ Gamma(USER_ACTIVITY_SHAPE)
SESSIONS_PER_USER, USER_ACTIVITY_SHAPE = 2.0, 0.5
PAGE_VIEWS_MEAN, BOT_PAGE_VIEWS_MEAN = 3.0, 10.0
EVENT_GAP_S, BOT_EVENT_GAP_S = 40.0, 4.0
REVENUE_SIGMA = 0.5


@dataclass(frozen=True)
class InjectedIncident:
    """One incident injected into the demo data: what, where, when, and what should alarm."""

    kind: str
    property: str
    start: pd.Timestamp  # UTC, tz-naive, on an hour boundary: the first affected hour
    end: pd.Timestamp  # exclusive
    segment: dict[str, str] = field(hash=False)
    metrics: dict[str, str] = field(hash=False)  # metric -> "up" | "down"
    description: str = ""

    def to_dict(self) -> dict:
        """JSON-friendly form, times as ISO strings with ``Z``."""
        return {"kind": self.kind, "property": self.property,
                "start": _iso(self.start), "end": _iso(self.end),
                "segment": dict(self.segment), "metrics": dict(self.metrics),
                "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "InjectedIncident":
        """Inverse of :meth:`to_dict` (reads ``truth.json`` entries)."""
        return cls(d["kind"], d["property"], _utc(d["start"]), _utc(d["end"]),
                   dict(d.get("segment") or {}), dict(d.get("metrics") or {}),
                   d.get("description", ""))


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: Any) -> pd.Timestamp:
    """A timestamp (string, datetime, Timestamp) as a tz-naive UTC Timestamp."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


# ----------------------------------------------------------------------------- incidents

def _plan_incidents(t0: pd.Timestamp, weeks: int) -> list[InjectedIncident]:
    """The six incidents, placed on different days of the last two weeks of the period."""
    web_drop = {"conversion_rate": "down", "orders": "down", "revenue": "down"}
    visits_up = {"sessions": "up", "users": "up", "page_view": "up"}
    visits_down = {"sessions": "down", "users": "down", "page_view": "down"}
    specs = [  # kind, property, day in last 2 weeks, start hour, hours, segment, metrics, text
        ("segment_conversion_drop", "web", 1, 10, 8, {"os": "iOS"}, web_drop,
         "A broken payment button on iOS web cuts iOS purchases by 80%."),
        ("campaign_spike", "web", 3, 17, 4, {"campaign": SPIKE_CAMPAIGN}, visits_up,
         f"The social campaign {SPIKE_CAMPAIGN} goes viral: six times its usual, low-intent traffic."),
        ("tracking_outage", "app", 5, 13, 3, {}, visits_down,
         "The app's analytics SDK stops sending: no app events at all."),
        ("bot_flood", "web", 7, 9, 6, {"browser": "HeadlessChrome"},
         {"sessions": "up", "page_view": "up", "conversion_rate": "down"},
         "A scraper of headless Chrome sessions from the US adds 150% web sessions."),
        ("funnel_break", "web", 9, 14, 5, {},
         {"orders": "down", "revenue": "down", "conversion_rate": "down",
          "cart_abandonment_rate": "up"},
         "A checkout deploy breaks the payment step: 95% of web checkouts fail."),
        ("price_glitch", "web", 11, 8, 6, {"category": "electronics"},
         {"revenue": "down", "average_order_value": "down"},
         "A pricing bug sells electronics at a tenth of their price."),
    ]
    first_day = t0 + pd.Timedelta(days=7 * (weeks - 2))
    out = []
    for kind, prop, day, hour, hours, segment, metrics, text in specs:
        begin = first_day + pd.Timedelta(days=day, hours=hour)
        out.append(InjectedIncident(kind, prop, begin, begin + pd.Timedelta(hours=hours),
                                    segment, metrics, text))
    return out


def _window(inc: InjectedIncident, t0: pd.Timestamp) -> tuple[float, float]:
    """The incident's time range in seconds since the start of the period."""
    return (inc.start - t0).total_seconds(), (inc.end - t0).total_seconds()


def _extra_per_hour(rng: np.random.Generator, rate: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Session start times (s) of Poisson(rate[h]) extra sessions in each hour of [lo, hi)."""
    hours = np.arange(int(lo // 3600), int(hi // 3600))
    counts = rng.poisson(rate[hours])
    return np.repeat(hours, counts) * 3600.0 + rng.uniform(0, 3600, counts.sum())


def _apply_session_effect(rng: np.random.Generator, sessions: pd.DataFrame, inc: InjectedIncident,
                          rates: np.ndarray, t0: pd.Timestamp) -> pd.DataFrame:
    """Incidents that change who visits or how they convert (before the funnel is simulated)."""
    lo, hi = _window(inc, t0)
    inside = (sessions["t"] >= lo) & (sessions["t"] < hi) & (sessions["property"] == inc.property)
    rate = rates[:, PROPERTIES[0].index(inc.property)]
    if inc.kind == "segment_conversion_drop":
        for dim, value in inc.segment.items():
            inside &= sessions[dim] == value
        sessions.loc[inside, "purchase_mult"] *= 0.2
    elif inc.kind == "funnel_break":
        sessions.loc[inside, "purchase_mult"] *= 0.05
    elif inc.kind == "campaign_spike":  # x6 the campaign's sessions, converting at half rate
        campaign = inc.segment["campaign"]
        t = _extra_per_hour(rng, 5.0 * _campaign_share(campaign) * rate, lo, hi)
        extra = _sample_users(rng, inc.property, len(t)).assign(
            t=t, property=inc.property, channel="social", campaign=campaign, intent_mult=0.5)
        sessions = _append_fresh(sessions, extra)
    elif inc.kind == "bot_flood":  # +150% sessions of page-viewing bots
        t = _extra_per_hour(rng, 1.5 * rate, lo, hi)
        bots = pd.DataFrame({"t": t, "property": inc.property, "device": "desktop", "os": "Linux",
                             "browser": inc.segment["browser"], "country": "US",
                             "channel": "direct", "campaign": "(none)", "bot": True})
        sessions = _append_fresh(sessions, bots)
    return sessions


def _append_fresh(sessions: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """Append extra sessions, each by a new user, with default funnel settings where unset."""
    first = sessions["user"].max() + 1
    defaults = {"intent_mult": 1.0, "purchase_mult": 1.0, "bot": False}
    extra = extra.assign(user=np.arange(first, first + len(extra)),
                         **{col: value for col, value in defaults.items() if col not in extra})
    return pd.concat([sessions, extra[sessions.columns]], ignore_index=True)


def _apply_event_effect(ev: pd.DataFrame, sessions: pd.DataFrame, inc: InjectedIncident,
                        t0: pd.Timestamp) -> pd.DataFrame:
    """Incidents that change the recorded events (after the funnel is simulated)."""
    lo, hi = _window(inc, t0)
    prop = sessions["property"].to_numpy()[ev["sess"]] == inc.property
    inside = prop & (ev["t"] >= lo) & (ev["t"] < hi)
    if inc.kind == "price_glitch":
        cat = list(CATEGORY_PRICE).index(inc.segment["category"])
        hit = inside & (ev["event"] == PURCHASE) & (ev["category"] == cat)
        ev.loc[hit, "revenue"] = (ev.loc[hit, "revenue"] * 0.1).round(2)
    elif inc.kind == "tracking_outage":
        t_start = sessions["t"].to_numpy()[ev["sess"]]
        started_inside = prop & (t_start >= lo) & (t_start < hi)
        ev = ev[~(inside | started_inside)]
    return ev


# ----------------------------------------------------------------------------- sessions

def _pick(rng: np.random.Generator, choice: Choice, n: int) -> np.ndarray:
    values, probs = choice
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=probs)]


def _pick_given(rng: np.random.Generator, parent: np.ndarray, table, default: str) -> np.ndarray:
    """For each parent value, a child value drawn from ``table[parent]`` (else ``default``)."""
    out = np.full(len(parent), default, dtype=object)
    for value, choice in table.items():
        mask = parent == value
        out[mask] = _pick(rng, choice, int(mask.sum()))
    return out


def _campaign_share(campaign: str) -> float:
    """Expected share of a property's sessions that come from ``campaign``."""
    return sum(p_channel * dict(zip(*CAMPAIGNS[channel])).get(campaign, 0.0)
               for channel, p_channel in zip(*CHANNELS) if channel in CAMPAIGNS)


def _sample_users(rng: np.random.Generator, prop: str, n: int) -> pd.DataFrame:
    """Device, OS, browser and country of ``n`` users of a property."""
    device = _pick(rng, DEVICES[prop], n)
    os_ = _pick_given(rng, device, OPERATING_SYSTEMS, "")
    browser = np.full(n, "app", dtype=object) if prop == "app" else _pick_given(rng, os_, BROWSERS, "")
    return pd.DataFrame({"device": device, "os": os_, "browser": browser,
                         "country": _pick(rng, COUNTRIES, n)})


def _hourly_rates(rng: np.random.Generator, t0: pd.Timestamp, n_hours: int,
                  per_hour: float) -> np.ndarray:
    """Expected sessions per hour and property, shape (n_hours, 2) for (web, app)."""
    times = t0 + pd.to_timedelta(np.arange(n_hours), unit="h")
    diurnal = np.interp(np.arange(24), DIURNAL_HOURS, DIURNAL_LEVELS)
    weekly = np.where(np.arange(7) >= 5, WEEKEND_TRAFFIC, 1.0)
    shape = diurnal[times.hour] / diurnal.mean() * weekly[times.dayofweek] / weekly.mean()
    trend = 1.0 + TREND * (np.arange(n_hours) / n_hours - 0.5)
    day = np.arange(n_hours) // 24
    noise = rng.lognormal(0.0, DAILY_SIGMA, size=(day[-1] + 1, 2))[day]
    return per_hour * (shape * trend)[:, None] * noise * np.asarray(PROPERTIES[1])


def _baseline_sessions(rng: np.random.Generator, rates: np.ndarray) -> pd.DataFrame:
    """Ordinary sessions: Poisson counts per hour, by returning users of a pool per property.

    Users' activity levels are Gamma distributed: some come once, loyal ones come often.
    """
    frames, next_user = [], 0
    for j, prop in enumerate(PROPERTIES[0]):
        counts = rng.poisson(rates[:, j])
        n = int(counts.sum())
        pool = max(1, int(rates[:, j].sum() / SESSIONS_PER_USER))
        activity = rng.gamma(USER_ACTIVITY_SHAPE, size=pool)
        who = rng.choice(pool, size=n, p=activity / activity.sum())
        frame = _sample_users(rng, prop, pool).iloc[who].reset_index(drop=True)
        frame["user"] = who + next_user
        frame["property"] = prop
        frame["t"] = np.repeat(np.arange(len(counts)), counts) * 3600.0 + rng.uniform(0, 3600, n)
        frames.append(frame)
        next_user += pool
    sessions = pd.concat(frames, ignore_index=True)
    sessions["channel"] = _pick(rng, CHANNELS, len(sessions))
    sessions["campaign"] = _pick_given(rng, sessions["channel"].to_numpy(), CAMPAIGNS, "(none)")
    return sessions.assign(intent_mult=1.0, purchase_mult=1.0, bot=False)


# ----------------------------------------------------------------------------- events

def _simulate_funnel(rng: np.random.Generator, s: pd.DataFrame, t0: pd.Timestamp) -> pd.DataFrame:
    """One row per event: session index, event code, time (s), revenue, category code."""
    n, bot = len(s), s["bot"].to_numpy(bool)
    weekend = ((t0.dayofweek + (s["t"].to_numpy() // 86400).astype(int)) % 7) >= 5
    intent = (s["device"].map(DEVICE_INTENT).to_numpy() * s["intent_mult"].to_numpy()
              * np.where(weekend, WEEKEND_INTENT, 1.0))
    n_pv = rng.geometric(1.0 / np.where(bot, BOT_PAGE_VIEWS_MEAN, PAGE_VIEWS_MEAN))
    view = ~bot & (rng.random(n) < P_VIEW)
    cart = view & (rng.random(n) < P_CART * intent)
    checkout = cart & (rng.random(n) < P_CHECKOUT)
    purchase = checkout & (rng.random(n) < P_PURCHASE * s["purchase_mult"].to_numpy())
    per_session = 1 + n_pv + view + cart + checkout + purchase
    sess = np.repeat(np.arange(n), per_session)
    first = np.cumsum(per_session) - per_session
    pos = np.arange(len(sess)) - first[sess]
    stage = pos - n_pv[sess]  # 1..4 for the funnel events after the page views
    code = np.where(pos == 0, 0, np.where(stage <= 0, 1, stage + 1))
    gaps = rng.exponential(np.where(bot, BOT_EVENT_GAP_S, EVENT_GAP_S)[sess])
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[first][sess]
    category = rng.choice(len(CATEGORY_SHARE), size=n, p=CATEGORY_SHARE)[sess]
    revenue = np.full(len(sess), np.nan)
    buy = code == PURCHASE
    price = np.asarray(list(CATEGORY_PRICE.values()))[category[buy]]
    z = rng.standard_normal(int(buy.sum()))
    revenue[buy] = np.round(price * np.exp(REVENUE_SIGMA * z - REVENUE_SIGMA ** 2 / 2), 2)
    return pd.DataFrame({"sess": sess, "event": code, "t": s["t"].to_numpy()[sess] + elapsed,
                         "revenue": revenue, "category": np.where(code >= 2, category, -1)})


def _to_frame(ev: pd.DataFrame, s: pd.DataFrame, t0: pd.Timestamp) -> pd.DataFrame:
    """The public events frame, sorted by time, with string columns."""
    ev = ev.sort_values("t", kind="stable")
    sess = ev["sess"].to_numpy()
    session_ids = ("s" + pd.Series(np.arange(len(s))).astype(str).str.zfill(7)).to_numpy(object)
    user_ids = ("u" + s["user"].astype(str).str.zfill(7)).to_numpy(object)
    categories = np.asarray([*CATEGORY_PRICE, None], dtype=object)  # code -1 -> None
    out = {"timestamp": t0 + pd.to_timedelta(np.round(ev["t"].to_numpy(), 3), unit="s"),
           "event": np.asarray(EVENTS, dtype=object)[ev["event"].to_numpy()],
           "session_id": session_ids[sess], "user_id": user_ids[sess],
           "revenue": ev["revenue"].to_numpy()}
    for col in ("property", "device", "os", "browser", "country", "channel", "campaign"):
        out[col] = s[col].to_numpy(object)[sess]
    out["category"] = categories[ev["category"].to_numpy()]
    return pd.DataFrame(out)


def generate_shop(weeks: int = 6, sessions_per_hour: float = 150.0, seed: int = 7,
                  start: str = "2026-03-02", incidents: bool = True
                  ) -> tuple[pd.DataFrame, list[InjectedIncident]]:
    """Simulate ``weeks`` of shop events from ``start`` (UTC), with the incidents' truth.

    ``sessions_per_hour`` is the average over the period of both properties together.
    Incidents need ``weeks >= 3`` (they sit in the last two weeks, after a clean history).
    """
    if weeks < 1 or (incidents and weeks < 3):
        raise ValueError(f"weeks must be >= 3 with incidents (>= 1 without), got {weeks}")
    if sessions_per_hour <= 0:
        raise ValueError(f"sessions_per_hour must be > 0, got {sessions_per_hour}")
    rng = np.random.default_rng(seed)
    t0, n_hours = _utc(start).floor("h"), weeks * 7 * 24
    rates = _hourly_rates(rng, t0, n_hours, sessions_per_hour)
    truth = _plan_incidents(t0, weeks) if incidents else []
    sessions = _baseline_sessions(rng, rates)
    for inc in truth:
        sessions = _apply_session_effect(rng, sessions, inc, rates, t0)
    sessions = sessions.sort_values("t", kind="stable").reset_index(drop=True)
    events = _simulate_funnel(rng, sessions, t0)
    for inc in truth:
        events = _apply_event_effect(events, sessions, inc, t0)
    events = events[events["t"] < n_hours * 3600.0]  # the export ends with the period
    return _to_frame(events, sessions, t0), truth


def write_shop(directory, fmt: str = "parquet", **kwargs) -> dict:
    """Generate a shop (``kwargs`` go to :func:`generate_shop`) and write events + truth.json."""
    writers = {"parquet": lambda df, p: df.to_parquet(p, index=False),
               "csv": lambda df, p: df.to_csv(p, index=False),
               "jsonl": lambda df, p: df.to_json(p, orient="records", lines=True,
                                                 date_format="iso", date_unit="ms")}
    if fmt not in writers:
        raise ValueError(f"fmt must be one of {sorted(writers)}, got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    events, truth = generate_shop(**kwargs)
    events_path, truth_path = directory / f"events.{fmt}", directory / "truth.json"
    writers[fmt](events, events_path)
    truth_path.write_text(json.dumps([inc.to_dict() for inc in truth], indent=2) + "\n")
    return {"events": str(events_path), "truth": str(truth_path), "rows": len(events)}


# ----------------------------------------------------------------------------- evaluation

def _matches(det: dict, inc: InjectedIncident, slack: pd.Timedelta, check_direction: bool,
             any_metric: bool = False) -> bool:
    """Same property (None matches any), a metric of the incident, overlapping (widened) times.

    With ``any_metric`` every metric counts: the same incident seen on a linked metric.
    """
    if det.get("property") not in (None, inc.property):
        return False
    if not any_metric and det.get("metric") not in inc.metrics:
        return False
    if any_metric:
        return _overlaps(det, inc, slack)
    if check_direction and det.get("direction") not in (None, inc.metrics[det["metric"]]):
        return False
    return _overlaps(det, inc, slack)


def _overlaps(det: dict, inc: InjectedIncident, slack: pd.Timedelta) -> bool:
    start = _utc(det["start"])
    end = _utc(det["end"]) if det.get("end") is not None else start + pd.Timedelta(hours=1)
    return start < inc.end + slack and end > inc.start - slack


def _segment_of(cause: Any) -> dict:
    seg = cause.get("segment", cause) if isinstance(cause, dict) else {}
    return {str(k): str(v) for k, v in seg.items()} if isinstance(seg, dict) else {}


def _root_cause_ok(inc: InjectedIncident, hits: list[dict]) -> bool | None:
    """True if a hit's top-3 root causes name a segment containing all of the truth's pairs."""
    if not inc.segment:
        return None
    want = {str(k): str(v) for k, v in inc.segment.items()}.items()
    return any(want <= _segment_of(cause).items()
               for det in hits for cause in (det.get("root_causes") or [])[:3])


#: the funnel step an incident breaks, which the event-path method should name
BROKEN_STEP = MappingProxyType({"funnel_break": ("begin_checkout", "purchase"),
                                "segment_conversion_drop": ("begin_checkout", "purchase")})


#: the methods that name a cause; ``links`` only says which incidents are one
CAUSE_METHODS = ("segments", "paths")


def _explained_by(inc: InjectedIncident, hits: list[dict], seen: list[dict]) -> list[str]:
    """The methods that explain ``inc`` correctly: ``segments`` (the root cause names the
    injected segment, or most hits call a change with no segment cause site-wide), ``paths``
    (a hit's event-path change names the broken step, going down), ``links`` (everything
    flagged during it, on two or more metrics, goes out as one alert)."""
    out = []
    ok = _root_cause_ok(inc, hits)
    site_wide = sum(not d.get("root_causes") for d in hits)
    if ok or (ok is None and hits and site_wide * 2 >= len(hits)):
        out.append("segments")
    step = BROKEN_STEP.get(inc.kind)
    if step and any((t.get("from"), t.get("to")) == step and t.get("during", 0) < t.get("baseline", 0)
                    for d in hits for t in d.get("transitions") or []):
        out.append("paths")
    if len({d["metric"] for d in seen}) > 1 and _groups(seen) == 1:
        out.append("links")
    return out


def _score(inc: InjectedIncident, hits: list[dict], seen: list[dict]) -> dict:
    first = min((_utc(d["start"]) for d in hits), default=None)
    return {"kind": inc.kind, "found": bool(hits), "explained_by": _explained_by(inc, hits, seen),
            "metrics_found": sorted({d["metric"] for d in hits}),
            "first_detection": _iso(first) if first is not None else None,
            "delay_hours": (first - inc.start) / pd.Timedelta(hours=1) if first is not None else None,
            "root_cause_ok": _root_cause_ok(inc, hits)}


def evaluate(detected: list[dict], truth: list[InjectedIncident], slack_hours: int = 2,
             check_direction: bool = False) -> dict:
    """Score detections against the injected truth.

    Returns found/total, ``related`` (detections on other metrics of a property during one of
    its injected incidents: the same incident seen on a linked metric) and ``false_alarms``
    (detections that overlap no injected incident of their property).

    A detection matches an incident when the property agrees (``None`` matches any), its
    metric is one of the incident's metrics, and its [start, end) overlaps the incident
    widened by ``slack_hours`` each side; with ``check_direction`` a given ``direction``
    must also agree. ``delay_hours`` is negative when the first hit starts early.
    """
    truth = [t if isinstance(t, InjectedIncident) else InjectedIncident.from_dict(t) for t in truth]
    slack = pd.Timedelta(hours=slack_hours)
    hits = [[d for d in detected if _matches(d, inc, slack, check_direction)] for inc in truth]
    unmatched = [d for d in detected
                 if not any(_matches(d, inc, slack, check_direction) for inc in truth)]
    # during an injected incident, an alert on another metric of the same property is the same
    # incident seen elsewhere (grouping them into one alert is the linking step's job)
    related = [d for d in unmatched if any(_matches(d, inc, slack, False, any_metric=True) for inc in truth)]
    false = [d for d in unmatched if d not in related]
    # what people would receive: one alert per group of linked detections (Contract 3 `linked`)
    seen = [[d for d in detected if _matches(d, inc, slack, False, any_metric=True)] for inc in truth]
    per_incident = [_score(inc, h, s) for inc, h, s in zip(truth, hits, seen)]
    before = sum(len(x) for x in seen)
    after = sum(_groups(x) for x in seen)
    return {"found": sum(p["found"] for p in per_incident), "total": len(truth),
            "explained": sum(any(m in CAUSE_METHODS for m in p["explained_by"]) for p in per_incident),
            "false_alarms": len(false), "related": len(related), "per_incident": per_incident,
            "false_alarm_list": false,
            "alerts": {"detections": before, "alerts": after,
                       "saved": round(1 - after / before, 3) if before else 0.0}}


def _groups(detections: list[dict]) -> int:
    """How many alerts ``detections`` make once linked ones are sent together."""
    keys = [d.get("id", f"#{k}") for k, d in enumerate(detections)]  # detections without ids stand alone
    by_id = dict(zip(keys, detections))
    groups = 0
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            continue
        groups += 1
        todo = [key]
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo += [o for o in by_id[k].get("linked", []) if o in by_id]
    return groups
