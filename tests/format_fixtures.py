"""Small exports in the shapes people already have, made from one set of journeys, so each test
knows how many events, sessions, users and how much revenue the file holds.

The shapes follow the public schemas: GA4's BigQuery export (``event_params`` as key/value
structs, ``event_timestamp`` in microseconds, integers as strings in JSON as BigQuery writes
them), Segment's warehouse tables, Snowplow's atomic events, Amplitude's Export API and
Mixpanel's raw export.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

START = pd.Timestamp("2026-04-01T00:00:00Z")
DEVICES = [("mobile", "iOS", "Safari"), ("desktop", "Windows", "Chrome"), ("desktop", "Macintosh", "Firefox"),
           ("tablet", "Android", "Chrome")]
AGENTS = {
    "Safari": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1",
    "Chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Firefox": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:121.0) Gecko/20100101 Firefox/121.0",
}
COUNTRIES = ["US", "DE", "FR"]
SOURCES = [("google", "organic", "(organic)"), ("newsletter", "email", "spring"), ("(direct)", "(none)", "(direct)")]


@dataclass
class Event:
    at: pd.Timestamp
    name: str
    revenue: float | None = None
    items: list[dict] = field(default_factory=list)


@dataclass
class Journey:
    """One session of one user."""

    user: str
    start: pd.Timestamp
    device: tuple[str, str, str]
    country: str
    source: tuple[str, str, str]
    events: list[Event]


@dataclass
class Truth:
    events: int
    sessions: int
    users: int
    revenue: float


def journeys(n_sessions: int = 60, n_users: int = 12, seed: int = 3) -> list[Journey]:
    """Sessions 37 minutes apart, each under 10 minutes long, so a user's sessions are always more
    than 30 minutes apart (derived sessions then equal the true ones)."""
    rng = random.Random(seed)
    out = []
    for i in range(n_sessions):
        start = START + pd.Timedelta(minutes=37 * i)
        names = ["page_view"] * rng.randint(1, 4)
        if i % 3 == 0:
            names += ["add_to_cart"]
        if i % 6 == 0:
            names += ["begin_checkout", "purchase"]
        events = []
        for k, name in enumerate(names):
            ev = Event(start + pd.Timedelta(seconds=20 * k + rng.randint(0, 9)), name)
            if name in ("add_to_cart", "purchase"):
                ev.items = [{"item_id": "sku1", "item_category": "Shoes", "quantity": 1, "price": 30.0},
                            {"item_id": "sku2", "item_category": "Hats", "quantity": 2, "price": 7.5}]
            if name == "purchase":
                ev.revenue = round(20 + rng.random() * 80, 2)
            events.append(ev)
        out.append(Journey(user=f"u{i % n_users}", start=start, device=DEVICES[i % len(DEVICES)],
                           country=COUNTRIES[i % len(COUNTRIES)], source=SOURCES[i % len(SOURCES)], events=events))
    return out


def truth(js: list[Journey], extra_events: int = 0) -> Truth:
    return Truth(events=sum(len(j.events) for j in js) + extra_events, sessions=len(js),
                 users=len({j.user for j in js}),
                 revenue=round(sum(e.revenue or 0 for j in js for e in j.events), 2))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _us(t: pd.Timestamp) -> int:
    return int(t.value // 1000)


# ---------------------------------------------------------------- GA4 BigQuery export

def _param(key: str, value) -> dict:
    if isinstance(value, str):
        v = {"string_value": value}
    elif isinstance(value, float):
        v = {"double_value": value}
    else:
        v = {"int_value": str(value)}  # BigQuery's JSON export writes INT64 as a string
    return {"key": key, "value": v}


def ga4_rows(js: list[Journey]) -> list[dict]:
    rows = []
    for n, j in enumerate(js):
        sid = int(j.start.timestamp())
        category, os_, browser = j.device
        for k, e in enumerate(j.events):
            params = [_param("ga_session_id", sid), _param("ga_session_number", 1 + n // 12),
                      _param("page_title", "Checkout" if e.name != "page_view" else "Home"),
                      _param("engagement_time_msec", 100 * (k + 1)),
                      # a key with text in some events and numbers in others becomes text
                      _param("variant", "b" if n % 2 else 2)]
            if e.revenue is not None:
                # GA4 sends 'value' as a whole number or a double, as the site set it
                params.append(_param("value", int(e.revenue) if n % 12 == 0 else e.revenue))
            row = {
                "event_date": e.at.strftime("%Y%m%d"), "event_timestamp": str(_us(e.at)),
                "event_name": e.name, "event_params": params,
                "user_pseudo_id": f"{j.user}.1711", "user_id": f"member-{j.user}" if n % 2 else None,
                "user_properties": [{"key": "plan", "value": {"string_value": "pro" if n % 4 else "free",
                                                              "set_timestamp_micros": str(_us(j.start))}}],
                "device": {"category": category, "operating_system": os_, "web_info": {"browser": browser}},
                "geo": {"country": j.country, "city": "Springfield"},
                "traffic_source": {"source": j.source[0], "medium": j.source[1], "name": j.source[2]},
                "stream_id": "4321" if n % 5 else "8765", "platform": "WEB" if n % 5 else "ANDROID",
                "items": e.items,
            }
            if e.revenue is not None:
                row["ecommerce"] = {"purchase_revenue": e.revenue, "transaction_id": f"T{n}",
                                    "total_item_quantity": str(sum(i["quantity"] for i in e.items))}
            rows.append(row)
    return rows


def write_ga4_parquet(path: Path, rows: list[dict]) -> Path:
    """The same rows with BigQuery's types (integers as integers), as a Parquet export has them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def typed(v):
        if isinstance(v, dict):
            return {k: int(x) if k in ("int_value", "set_timestamp_micros", "event_timestamp") and x is not None
                    else typed(x) for k, x in v.items()}
        if isinstance(v, list):
            return [typed(x) for x in v]
        return v

    fixed = [typed(r) for r in rows]
    for r in fixed:
        r["ecommerce"] = r.get("ecommerce")
    pq.write_table(pa.Table.from_pylist(fixed), path)
    return path


# ---------------------------------------------------------------- Segment warehouse tables

def segment_tables(js: list[Journey]) -> dict[str, list[dict]]:
    """``tracks``, ``pages``, ``identifies`` and the per-event table ``order_completed`` (which
    repeats the Order Completed calls of ``tracks`` with their properties, as Segment writes them)."""
    names = {"add_to_cart": "Product Added", "begin_checkout": "Checkout Started", "purchase": "Order Completed"}
    tables: dict[str, list[dict]] = {"tracks": [], "pages": [], "identifies": [], "order_completed": []}
    for n, j in enumerate(js):
        common = lambda e, k: {  # noqa: E731
            "id": f"m{n}-{k}", "anonymous_id": f"anon-{j.user}", "user_id": f"member-{j.user}" if n % 2 else None,
            "timestamp": e.at.isoformat(), "received_at": (e.at + pd.Timedelta(seconds=1)).isoformat(),
            "context_user_agent": AGENTS[j.device[2]], "context_campaign_source": j.source[0],
            "context_campaign_medium": j.source[1], "context_library_name": "analytics.js",
        }
        for k, e in enumerate(j.events):
            if e.name == "page_view":
                tables["pages"].append({**common(e, k), "path": "/", "url": "https://shop.example/", "title": "Home"})
                continue
            track = {**common(e, k), "event": names[e.name].lower().replace(" ", "_"), "event_text": names[e.name]}
            tables["tracks"].append(track)
            if e.name == "purchase":
                tables["order_completed"].append({**track, "revenue": e.revenue, "currency": "USD"})
        if n % 10 == 0:
            at = j.events[0].at + pd.Timedelta(seconds=5)
            tables["identifies"].append({**common(Event(at, "identify"), 99), "email": f"{j.user}@example.com"})
    return tables


def segment_truth(js: list[Journey]) -> Truth:
    extra = sum(1 for n in range(len(js)) if n % 10 == 0)  # identify calls
    return truth(js, extra_events=extra)


# ---------------------------------------------------------------- Snowplow atomic events

def snowplow_frame(js: list[Journey]) -> pd.DataFrame:
    rows = []
    for n, j in enumerate(js):
        category, os_, browser = j.device
        for k, e in enumerate(j.events):
            name = {"purchase": "transaction", "add_to_cart": "add_to_cart"}.get(e.name, e.name)
            kind = {"page_view": "page_view", "purchase": "transaction", "begin_checkout": "struct"}.get(e.name, "unstruct")
            rows.append({
                "app_id": "shop-web" if n % 5 else "shop-app", "platform": "web" if n % 5 else "mob",
                "collector_tstamp": (e.at + pd.Timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "derived_tstamp": e.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "event": kind, "event_id": f"ev-{n}-{k}",
                "event_name": "event" if kind == "struct" else name,
                "se_category": "checkout" if kind == "struct" else None,
                "se_action": "begin_checkout" if kind == "struct" else None,
                "user_id": f"member-{j.user}" if n % 2 else None,
                "domain_userid": f"cookie-{j.user}", "domain_sessionid": f"sess-{n}",
                "geo_country": j.country, "br_family": browser, "os_family": os_, "dvce_type": category.title(),
                "page_urlpath": "/checkout" if e.name != "page_view" else "/",
                "mkt_source": j.source[0], "mkt_medium": j.source[1], "mkt_campaign": j.source[2],
                "refr_medium": "search" if j.source[0] == "google" else "unknown",
                "tr_total": e.revenue,
            })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Amplitude export

def amplitude_rows(js: list[Journey]) -> tuple[list[dict], int]:
    """Rows, and how many of them belong to no session (``session_id: -1``)."""
    rows = []
    for n, j in enumerate(js):
        category, os_, browser = j.device
        for k, e in enumerate(j.events):
            props = {"page": "/" if e.name == "page_view" else "/checkout"}
            if e.name == "purchase":
                props["$revenue"] = e.revenue
                props["items"] = len(e.items)
            rows.append({
                "$insert_id": f"i{n}-{k}", "event_type": e.name, "amplitude_id": 1000 + int(j.user[1:]),
                "device_id": f"dev-{j.user}", "user_id": f"member-{j.user}" if n % 2 else None,
                "event_time": e.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "client_event_time": e.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "session_id": int(j.start.value // 10**6), "app": 123456 if n % 5 else 654321,
                "event_properties": props, "user_properties": {"plan": "pro" if n % 4 else "free"},
                "country": j.country, "platform": "Web" if n % 5 else "iOS", "os_name": browser,
                "device_family": category, "city": "Springfield",
            })
    # a server-side event outside any session
    rows.append({"$insert_id": "srv-1", "event_type": "subscription_renewed", "amplitude_id": 1000,
                 "device_id": "dev-u0", "user_id": "member-u0", "session_id": -1, "app": 123456,
                 "event_time": (js[-1].start + pd.Timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                 "event_properties": {}, "user_properties": {}, "country": "US", "platform": "Web",
                 "os_name": "Chrome", "device_family": "desktop"})
    return rows, 1


# ---------------------------------------------------------------- Mixpanel export

def mixpanel_rows(js: list[Journey], sparse_keys: int = 0) -> list[dict]:
    """``sparse_keys`` > 0 adds that many rarely used custom properties, so DuckDB reads
    ``properties`` as a map (as it does for real exports) rather than a struct."""
    rng = random.Random(5)
    rows = []
    for n, j in enumerate(js):
        category, os_, browser = j.device
        for k, e in enumerate(j.events):
            props = {"time": int(e.at.timestamp()), "distinct_id": j.user, "$insert_id": f"i{n}-{k}",
                     "$browser": browser, "$os": os_, "$device_id": f"dev-{j.user}", "mp_country_code": j.country,
                     "$city": "Springfield", "mp_lib": "web" if n % 5 else "iphone",
                     "utm_source": j.source[0], "$current_url": "https://shop.example/"}
            if e.revenue is not None:
                props["revenue"] = e.revenue
            if sparse_keys:
                props[f"custom_{rng.randrange(sparse_keys)}"] = rng.random()
            rows.append({"event": e.name, "properties": props})
    return rows
