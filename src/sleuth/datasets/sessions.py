"""A nested session export (Google Analytics 360 ``ga_sessions`` shape) with injected bots,
slow pages and a behaviour shift, and the recorded truth.

One record per session: ``visitId``, ``fullVisitorId``, ``visitStartTime``, ``channelGrouping``,
``device``, ``geoNetwork``, ``trafficSource``, ``totals`` and ``hits[]``. Each hit has GA360's
``hitNumber``, ``time`` (ms since the session started), ``type`` (PAGE, EVENT, TRANSACTION),
``page.pagePath``, ``latencyTracking.pageLoadTime``, ``eventInfo`` and ``transaction``; page hits add
what the seed write-up's export had and GA360 lacks: ``ajaxCalls``, ``bytes``, and nested
``forms[]`` (``fillTime`` ms) and ``clicks[]`` (``time`` ms since the session started).

People come in four modes (bouncers, browsers, engaged readers, buyers); bots (scrapers, form
spammers, click bots) draw their device, country and channel from the same distributions as
people and differ from them only in behaviour. :func:`generate_sessions` returns an Arrow table
(built column-wise with numpy, no per-session Python) and the truth; :func:`write_sessions`
saves Parquet or JSON Lines.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .shop import BROWSERS, CHANNELS, COUNTRIES, DEVICES, DIURNAL_HOURS, DIURNAL_LEVELS, OPERATING_SYSTEMS

PRODUCTS = tuple(f"/product/p{i:02d}" for i in range(1, 16))
CATEGORIES = tuple(f"/category/{c}" for c in ("electronics", "apparel", "home", "beauty", "toys"))
FUNNEL = ("/cart", "/checkout", "/checkout/payment", "/checkout/complete")
PAGES = ("/", "/search", *CATEGORIES, *PRODUCTS, "/blog/1", "/blog/2", "/blog/3", "/contact", "/account", *FUNNEL)
_IDX = {p: i for i, p in enumerate(PAGES)}
#: per page: median load time (ms), mean ajax calls, median bytes
_LATENCY = np.array([900 if p == "/" else 1500 if p.startswith("/checkout") else 1200 if p.startswith("/product")
                     else 1000 for p in PAGES], float)
_AJAX = np.array([6 if p.startswith("/product") else 4 if p.startswith("/checkout") else 3 for p in PAGES], float)
_BYTES = np.array([1.8e6 if p.startswith("/product") else 9e5 for p in PAGES], float)
#: pages people browse (weights), and those with a form people fill in
_BROWSE = np.array([4 if p in ("/", "/search") else 3 if p.startswith("/product") else 2 if p.startswith("/category")
                    else 1 if p.startswith("/blog") or p in ("/contact", "/account") else 0 for p in PAGES], float)
_FORM_PAGES = ("/contact", "/account", "/checkout", "/checkout/payment")

#: people's modes: share, mean extra pages, median dwell (s), clicks per page
MODES = {"bouncer": (0.38, 0.0, 25.0, 1.0), "browser": (0.34, 3.0, 30.0, 2.0),
         "reader": (0.16, 8.0, 60.0, 3.0), "buyer": (0.12, 4.0, 40.0, 2.5)}
BOT_KINDS = {"scraper": 0.4, "form spammer": 0.3, "click bot": 0.3}
BOT_SHARE = 0.025


@dataclass(frozen=True)
class Injected:
    """One injected event: ``kind`` is bot_burst, page_latency, page_ajax or behaviour_shift."""

    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    page: str | None = None
    segment: dict | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": f"{self.start:%Y-%m-%dT%H:%M:%SZ}", "end": f"{self.end:%Y-%m-%dT%H:%M:%SZ}",
                "page": self.page, "segment": self.segment or {}, "description": self.description}


def plan(t0: pd.Timestamp, weeks: int) -> list[Injected]:
    """The four events, in the weeks after the detector's three weeks of history."""
    day = lambda d, h=0: t0 + pd.Timedelta(days=d, hours=h)  # noqa: E731
    last = 7 * weeks
    return [
        Injected("bot_burst", day(last - 18), day(last - 17), description="a one-day burst of scrapers"),
        Injected("page_latency", day(last - 15, 6), day(last - 13, 6), page="/checkout",
                 description="/checkout loads three times slower for two days"),
        Injected("page_ajax", day(last - 9, 3), day(last - 8, 3), page=PRODUCTS[2], segment={"browser": "Safari"},
                 description=f"{PRODUCTS[2]} makes eight times its ajax calls on Safari for a day"),
        Injected("behaviour_shift", day(last - 6), day(last - 3),
                 description="a checkout loop: 8 % of people cycle cart, checkout and payment without buying"),
    ]


def _pick(rng, values, probs, n) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=np.asarray(probs) / np.sum(probs))]


def _given(rng, parent: np.ndarray, table) -> np.ndarray:
    out = np.empty(len(parent), dtype=object)
    for value, (vals, probs) in table.items():
        m = parent == value
        out[m] = _pick(rng, vals, probs, int(m.sum()))
    return out


def _starts(rng, t0: pd.Timestamp, days: int, per_day: float) -> np.ndarray:
    """People's session starts (s since t0): Poisson per hour with a daily and weekly rhythm."""
    hours = np.arange(days * 24)
    times = t0 + pd.to_timedelta(hours, unit="h")
    diurnal = np.interp(np.arange(24), DIURNAL_HOURS, DIURNAL_LEVELS)
    rate = per_day / 24 * diurnal[times.hour] / diurnal.mean() * np.where(times.dayofweek >= 5, 1.1, 0.96)
    counts = rng.poisson(rate)
    return np.repeat(hours, counts) * 3600.0 + rng.uniform(0, 3600, counts.sum())


def _lognormal(rng, median, sigma, n) -> np.ndarray:
    return np.asarray(median, float) * np.exp(sigma * rng.standard_normal(n))


def generate_sessions(weeks: int = 6, sessions_per_day: float = 3000.0, seed: int = 7,
                      start: str = "2026-03-02", inject: bool = True) -> tuple[pa.Table, list[Injected], dict]:
    """The export, the injected events and per-session truth (``bot`` kind or '' by row)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    days = 7 * weeks
    events = plan(t0, weeks) if inject else []
    ev = {e.kind: e for e in events}
    sec = lambda ts: (ts - t0).total_seconds()  # noqa: E731

    people = _starts(rng, t0, days, sessions_per_day)
    n_bots = rng.poisson(BOT_SHARE / (1 - BOT_SHARE) * len(people))
    bots = rng.uniform(0, days * 86400.0, n_bots)
    kinds = _pick(rng, list(BOT_KINDS), list(BOT_KINDS.values()), n_bots)
    if "bot_burst" in ev:
        b = ev["bot_burst"]
        extra = rng.poisson(0.2 * sessions_per_day)
        bots = np.concatenate([bots, rng.uniform(sec(b.start), sec(b.end), extra)])
        kinds = np.concatenate([kinds, np.full(extra, "scraper", dtype=object)])
    t = np.concatenate([people, bots])
    order = np.argsort(t, kind="stable")
    t = t[order]
    bot = np.concatenate([np.full(len(people), "", dtype=object), kinds])[order]
    n = len(t)
    human = bot == ""
    mode = np.where(human, _pick(rng, list(MODES), [m[0] for m in MODES.values()], n), "")
    if "behaviour_shift" in ev:
        s = ev["behaviour_shift"]
        inside = human & (t >= sec(s.start)) & (t < sec(s.end)) & (rng.random(n) < 0.08)
        mode[inside] = "checkout loop"

    # ------------------------------------------------------------------ context (same for bots)
    device = _pick(rng, *DEVICES["web"], n)
    os_ = _given(rng, device, OPERATING_SYSTEMS)
    browser = _given(rng, os_, BROWSERS)
    country = _pick(rng, *COUNTRIES, n)
    channel = _pick(rng, *CHANNELS, n)
    users = max(n // 2, 1)
    visitor = np.where(human, rng.integers(0, users, n), users + np.arange(n))

    # ------------------------------------------------------------------ pages per session
    extra = np.array([MODES.get(m, (0, 0, 0, 0))[1] for m in mode])
    pages = np.where(mode == "bouncer", 1, 1 + rng.poisson(extra) + (mode != "bouncer"))
    pages = np.where(mode == "buyer", np.maximum(pages, 5), pages)
    pages = np.where(mode == "checkout loop", 6 + rng.integers(3, 10, n), pages)
    pages = np.where(bot == "scraper", 15 + rng.poisson(25, n), pages)
    pages = np.where(bot == "form spammer", rng.integers(1, 4, n), pages)
    pages = np.where(bot == "click bot", rng.integers(2, 7, n), pages)
    sess = np.repeat(np.arange(n), pages)
    first = np.cumsum(pages) - pages
    pos = np.arange(len(sess)) - first[sess]
    from_end = pages[sess] - 1 - pos
    page = rng.choice(len(PAGES), size=len(sess), p=_BROWSE / _BROWSE.sum())
    converts = (mode == "buyer") & (rng.random(n) < 0.55 * np.where(device == "desktop", 1.15, 0.85))
    # buyers end in the funnel; converters see the confirmation
    funnel = np.array([_IDX[p] for p in FUNNEL])
    buy = (mode == "buyer")[sess]
    k = np.where(converts[sess], 3 - from_end, 2 - from_end)
    page = np.where(buy & (k >= 0) & (k <= 3), funnel[np.clip(k, 0, 3)], page)
    loop = (mode == "checkout loop")[sess]
    page = np.where(loop & (pos >= 2), funnel[(pos - 2) % 3], page)
    page = np.where((bot == "form spammer")[sess] & (pos == 0), _IDX["/contact"], page)
    page = np.where((bot == "scraper")[sess], rng.choice(len(PAGES) - 4, size=len(sess)), page)

    # ------------------------------------------------------------------ timing
    med = np.array([MODES.get(m, (0, 0, 30.0, 0))[2] for m in mode])
    dwell = _lognormal(rng, med[sess], 0.8, len(sess))
    scrape_gap = rng.uniform(0.8, 2.5, n)
    dwell = np.where((bot == "scraper")[sess], scrape_gap[sess] * (1 + 0.08 * rng.uniform(-1, 1, len(sess))), dwell)
    dwell = np.where((bot == "form spammer")[sess], rng.uniform(3, 10, len(sess)), dwell)
    page_t = np.cumsum(dwell) - dwell
    page_t -= page_t[first][sess]

    load = _lognormal(rng, _LATENCY[page], 0.35, len(sess))
    ajax = rng.poisson(_AJAX[page]).astype(float)
    size = _lognormal(rng, _BYTES[page], 0.3, len(sess))
    at = t[sess] + page_t
    if "page_latency" in ev:
        e = ev["page_latency"]
        load = np.where((page == _IDX[e.page]) & (at >= sec(e.start)) & (at < sec(e.end)), 3 * load, load)
    if "page_ajax" in ev:
        e = ev["page_ajax"]
        hit = (page == _IDX[e.page]) & (browser[sess] == "Safari") & (at >= sec(e.start)) & (at < sec(e.end))
        ajax = np.where(hit, rng.poisson(8 * _AJAX[page]), ajax)

    # clicks: people at random moments of their dwell; click bots on a clock
    cpp = np.array([MODES.get(m, (0, 0, 0, 1.0))[3] for m in mode])
    n_clicks = rng.poisson(cpp[sess])
    n_clicks = np.where((bot == "scraper")[sess], 1, n_clicks)
    period = rng.uniform(0.8, 3.0, n)
    cb = (bot == "click bot")[sess]
    n_clicks = np.where(cb, np.maximum((dwell / period[sess]).astype(int) - 1, 3), n_clicks)
    c_hit = np.repeat(np.arange(len(sess)), n_clicks)
    c_first = np.cumsum(n_clicks) - n_clicks
    c_pos = np.arange(len(c_hit)) - c_first[c_hit]
    c_off = rng.uniform(0, 1, len(c_hit)) * dwell[c_hit]
    c_off = np.where((bot == "scraper")[sess][c_hit], 0.3, c_off)
    c_off = np.where(cb[c_hit], (c_pos + 1 + 0.03 * rng.uniform(-1, 1, len(c_hit))) * period[sess][c_hit], c_off)
    c_order = np.lexsort((c_off, c_hit))
    c_hit, c_off = c_hit[c_order], c_off[c_order]
    click_ms = np.round((page_t[c_hit] + c_off) * 1000).astype(np.int64)

    # forms: people fill the form on a form page (buyers always at checkout), spammers in a blink
    is_form_page = np.isin(page, [_IDX[p] for p in _FORM_PAGES])
    always = (mode == "buyer")[sess] | (mode == "checkout loop")[sess] | ((bot == "form spammer")[sess] & (pos == 0))
    fills = is_form_page & (always | ((bot == "")[sess] & (rng.random(len(sess)) < 0.5)))
    fill_s = _lognormal(rng, 25.0, 0.6, len(sess))
    autofill = rng.random(len(sess)) < 0.03
    fill_s = np.where(autofill, _lognormal(rng, 3.0, 0.3, len(sess)), fill_s)
    fill_s = np.where((bot == "form spammer")[sess], rng.uniform(0.2, 0.9, len(sess)), fill_s)
    fill_s = np.minimum(fill_s, 0.9 * dwell)
    fill_s = np.where((bot == "form spammer")[sess], np.minimum(fill_s, 0.9), fill_s)

    # events: about one per page view, at random moments; checkout steps and carts by name
    n_ev = rng.poisson(np.where((bot == "")[sess], 1.2, 0.0))
    e_hit = np.repeat(np.arange(len(sess)), n_ev)
    e_off = page_t[e_hit] + rng.uniform(0, 1, len(e_hit)) * dwell[e_hit]
    e_page = page[e_hit]
    action = _pick(rng, ["scroll", "video_play", "share", "filter"], [0.6, 0.15, 0.05, 0.2], len(e_hit))
    action = np.where(np.isin(e_page, [_IDX[p] for p in PRODUCTS]) & (rng.random(len(e_hit)) < 0.3), "add_to_cart", action)
    action = np.where(e_page == _IDX["/checkout"], "begin_checkout", action)
    category = np.where(np.isin(action, ["add_to_cart", "begin_checkout"]), "ecommerce", "engagement")

    # ------------------------------------------------------------------ hits in time order
    last_t = page_t[first + pages - 1]
    conv_s = np.flatnonzero(converts)
    revenue = np.round(_lognormal(rng, 80.0, 0.6, len(conv_s)), 2)
    h_sess = np.concatenate([sess, sess[e_hit], conv_s])
    h_off = np.concatenate([page_t, e_off, last_t[conv_s] + 1.0])
    h_kind = np.concatenate([np.zeros(len(sess), int), np.ones(len(e_hit), int), np.full(len(conv_s), 2)])
    h_src = np.concatenate([np.arange(len(sess)), e_hit, first[conv_s] + pages[conv_s] - 1])
    h_ev = np.concatenate([np.full(len(sess), -1), np.arange(len(e_hit)), np.full(len(conv_s), -1)])
    order = np.lexsort((h_kind, h_off, h_sess))
    h_sess, h_off, h_kind, h_src, h_ev = (a[order] for a in (h_sess, h_off, h_kind, h_src, h_ev))
    per_session = np.bincount(h_sess, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(per_session)]).astype(np.int32)
    hit_number = np.arange(len(h_sess)) - offsets[:-1][h_sess] + 1
    is_page, is_ev, is_tx = h_kind == 0, h_kind == 1, h_kind == 2
    page_idx = np.where(is_ev, e_page[np.clip(h_ev, 0, None)] if len(e_hit) else 0, page[h_src])
    tx_rev = np.zeros(len(h_sess))
    tx_rev[is_tx] = revenue[np.searchsorted(conv_s, h_sess[is_tx])]

    # nested clicks and forms per hit (page hits only)
    clicks_per_hit = np.zeros(len(h_sess), int)
    clicks_per_hit[is_page] = np.bincount(c_hit, minlength=len(sess))[h_src[is_page]]
    # clicks were generated in page order, and page hits keep that order inside a session
    c_offsets = np.concatenate([[0], np.cumsum(clicks_per_hit)]).astype(np.int32)
    clicks = pa.ListArray.from_arrays(
        pa.array(c_offsets), pa.StructArray.from_arrays([pa.array(click_ms)], names=["time"]),
        mask=pa.array(~is_page))
    forms_per_hit = np.where(is_page, fills[h_src], False).astype(int)
    f_src = h_src[forms_per_hit > 0]
    f_offsets = np.concatenate([[0], np.cumsum(forms_per_hit)]).astype(np.int32)
    form_ids = np.asarray(PAGES, dtype=object)[page[f_src]]
    forms = pa.ListArray.from_arrays(
        pa.array(f_offsets), pa.StructArray.from_arrays(
            [pa.array(np.char.add("form:", form_ids.astype(str))), pa.array(np.round(fill_s[f_src] * 1000).astype(np.int64))],
            names=["formId", "fillTime"]), mask=pa.array(~is_page))

    def col(values, mask=None, typ=None):
        return pa.array(values, mask=mask, type=typ)

    ev_action = np.where(is_ev, action[np.clip(h_ev, 0, None)] if len(e_hit) else "", None)
    ev_cat = np.where(is_ev, category[np.clip(h_ev, 0, None)] if len(e_hit) else "", None)
    hit_struct = pa.StructArray.from_arrays([
        col(hit_number.astype(np.int64)),
        col(np.round(h_off * 1000).astype(np.int64)),
        col(np.asarray(["PAGE", "EVENT", "TRANSACTION"], dtype=object)[h_kind]),
        pa.StructArray.from_arrays([col(np.asarray(PAGES, dtype=object)[page_idx])], names=["pagePath"]),
        pa.StructArray.from_arrays([col(np.round(load[h_src]).astype(np.int64), mask=~is_page)], names=["pageLoadTime"]),
        pa.StructArray.from_arrays([col(ev_cat, typ=pa.string()), col(ev_action, typ=pa.string())],
                                   names=["eventCategory", "eventAction"]),
        pa.StructArray.from_arrays([col(np.round(tx_rev * 1e6).astype(np.int64), mask=~is_tx)], names=["transactionRevenue"]),
        col(ajax[h_src].astype(np.int64), mask=~is_page),
        col(np.round(size[h_src]).astype(np.int64), mask=~is_page),
        forms, clicks,
    ], names=["hitNumber", "time", "type", "page", "latencyTracking", "eventInfo", "transaction", "ajaxCalls",
              "bytes", "forms", "clicks"])
    hits = pa.ListArray.from_arrays(pa.array(offsets), hit_struct)

    start_s = np.floor(t).astype(np.int64) + int(t0.timestamp())
    tx_count = np.bincount(h_sess[is_tx], minlength=n)
    tx_total = np.bincount(h_sess, weights=tx_rev, minlength=n)
    table = pa.table({
        "visitId": start_s, "fullVisitorId": pa.array([f"{v:019d}" for v in (visitor * 7919 + 10**17)]),
        "visitNumber": np.ones(n, np.int64), "visitStartTime": start_s,
        "date": pd.to_datetime(start_s, unit="s").strftime("%Y%m%d").to_numpy(object),
        "channelGrouping": channel,
        "totals": pa.StructArray.from_arrays([
            col(np.ones(n, np.int64)), col(per_session.astype(np.int64)), col(pages.astype(np.int64)),
            col(np.round(last_t).astype(np.int64)), col(tx_count.astype(np.int64), mask=tx_count == 0),
            col(np.round(tx_total * 1e6).astype(np.int64), mask=tx_count == 0)],
            names=["visits", "hits", "pageviews", "timeOnSite", "transactions", "totalTransactionRevenue"]),
        "trafficSource": pa.StructArray.from_arrays([col(channel)], names=["source"]),
        "device": pa.StructArray.from_arrays([col(device), col(browser), col(os_)],
                                             names=["deviceCategory", "browser", "operatingSystem"]),
        "geoNetwork": pa.StructArray.from_arrays([col(country)], names=["country"]),
        "hits": hits,
    })
    truth = {"bot": bot.astype(str), "mode": mode.astype(str),
             "key": np.char.add(np.char.add(table["fullVisitorId"].to_numpy(zero_copy_only=False).astype(str), "."),
                                start_s.astype(str))}
    return table, events, truth


def write_sessions(out_dir: str | Path, fmt: str = "parquet", **kwargs: Any) -> dict[str, Any]:
    """Write ``ga_sessions.<fmt>`` and ``truth.json`` (injected events) to ``out_dir``."""
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, events, truth = generate_sessions(**kwargs)
    path = out / f"ga_sessions.{'jsonl' if fmt == 'jsonl' else 'parquet'}"
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for batch in table.to_batches(max_chunksize=20000):
                for row in batch.to_pylist():
                    f.write(json.dumps(row) + "\n")
    else:
        pq.write_table(table, path)
    (out / "truth.json").write_text(json.dumps([e.to_dict() for e in events], indent=1), encoding="utf-8")
    return {"sessions": str(path), "truth": str(out / "truth.json"), "rows": table.num_rows,
            "hits": int(table["hits"].combine_chunks().value_lengths().to_numpy().sum()),
            "bots": int((truth["bot"] != "").sum())}
