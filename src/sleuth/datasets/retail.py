"""Daily e-commerce of several stores over years: the retail calendar, the market, injected truth.

:func:`generate_retail` simulates the events of ``stores`` shops (``session_start``,
``add_to_cart``, ``purchase`` with revenue; device and channel of each session) day by day:

- a weekly shape of its own per store, a trend, a yearly shape (January and summer lulls, a
  December ramp), quarter levels and a quarter-end push (the last 3 days of each quarter);
- the retail calendar moving every year (:data:`EFFECTS`: Black Friday, Cyber Monday, Christmas
  Eve, Easter, Mother's Day, ...), each event's size varying by up to ±20 % from year to year
  (for the whole market) and a little more per store; one store's own summer sale ("second
  Tuesday of July", two days), which its config declares;
- noise: Poisson sessions and binomial carts and orders, plus day-to-day swings shared by the
  market and each store's own;
- in the last year, injected incidents with their truth (:class:`InjectedIncident`): store-only
  drops and spikes of 20–60 % over 1–3 days (some with a segment cause), an AOV glitch, a
  conversion drop, one market-wide drop (every store) and one missing Black Friday lift.

Everything is vectorised over (store, day, device, channel) cells and deterministic for a seed.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from ..calendar import calendar_names
from .shop import InjectedIncident

#: store -> average sessions per day (the sizes differ, as in a real portfolio)
STORES = MappingProxyType({"store_a": 2400.0, "store_b": 1800.0, "store_c": 1400.0, "store_d": 1100.0,
                           "store_e": 800.0})
DEVICES = (("desktop", "mobile", "tablet"), (0.45, 0.45, 0.10))
DEVICE_CONVERSION = (1.3, 0.75, 1.0)
CHANNELS = (("organic", "paid_search", "email", "social", "direct"), (0.35, 0.25, 0.10, 0.15, 0.15))
CART_RATE, CONVERSION, AOV, AOV_SIGMA = 0.10, 0.03, 70.0, 0.6
#: (traffic, conversion, order value) multipliers of each named day; the size of each lift
#: (multiplier - 1) varies from year to year (market) and store to store
EFFECTS = MappingProxyType({
    "New Year's Day (US)": (0.75, 0.9, 1.0), "Valentine's Day": (1.15, 1.1, 1.1),
    "Easter Sunday": (0.75, 0.95, 1.0), "Memorial Day (US)": (1.25, 1.15, 0.95),
    "Mother's Day": (0.9, 1.0, 1.0), "Independence Day (US)": (0.8, 1.0, 1.0),
    "Labor Day (US)": (1.2, 1.1, 0.95), "Halloween": (0.9, 1.0, 1.0), "Singles' Day": (1.3, 1.2, 0.95),
    "Thanksgiving Day (US)": (1.3, 1.1, 1.0), "Black Friday": (2.6, 1.5, 0.88),
    "Black Friday Saturday": (1.7, 1.3, 0.92), "Black Friday Sunday": (1.5, 1.25, 0.92),
    "Cyber Monday": (2.1, 1.45, 0.9), "Green Monday": (1.2, 1.1, 1.0), "Christmas Eve": (0.65, 0.85, 1.05),
    "Christmas Day (US)": (0.5, 0.8, 1.0), "Boxing Day": (1.5, 1.3, 0.9), "New Year's Eve": (0.7, 0.9, 1.0),
})
#: the store-specific recurring sale, declared in its config as a user event
STORE_SALE = MappingProxyType({"name": "summer sale", "rule": "second Tuesday of July", "days": 2,
                               "store": "store_c", "effects": ((1.8, 1.4, 0.9), (1.5, 1.3, 0.92))})
EVENT_SIZE_SPREAD, STORE_SIZE_SIGMA = 0.2, 0.07
#: yearly shape (day of year -> traffic level) and quarter levels
YEAR_DAYS = (1, 32, 60, 91, 121, 166, 196, 227, 258, 288, 319, 335, 352, 361, 366)
YEAR_LEVELS = (0.9, 0.92, 0.97, 1.0, 1.0, 0.95, 0.86, 0.88, 0.97, 1.0, 1.05, 1.15, 1.35, 0.95, 0.9)
QUARTER_LEVELS, QUARTER_END_DAYS, QUARTER_END_PUSH = (0.96, 1.0, 0.98, 1.04), 3, (1.12, 1.08)
MARKET_SIGMA, STORE_SIGMA, CONVERSION_SIGMA = 0.03, 0.03, 0.03

RETAIL_CONFIG = """\
# The generated retail stores' config (Contract 2): daily metrics per store (the property).
granularity: 1d
timezone: UTC
holidays: [US]
dimensions: [device, channel]
calendar:
  - name: summer sale
    rule: second Tuesday of July
    days: 2
    properties: [store_c]
metrics:
  - {name: sessions, type: count, event: session_start}
  - {name: orders, type: count, event: purchase}
  - {name: revenue, type: sum, column: revenue, event: purchase}
  - name: conversion_rate
    type: ratio
    numerator: {type: count, event: purchase}
    denominator: {type: count, event: session_start}
  - name: average_order_value
    type: ratio
    numerator: {type: sum, column: revenue, event: purchase}
    denominator: {type: count, event: purchase}
  - name: cart_abandonment_rate
    type: ratio
    invert: true
    numerator: {type: count, event: purchase}
    denominator: {type: count, event: add_to_cart}
"""

TRAFFIC = {"sessions": "", "orders": "", "revenue": ""}
CONVERSION_METRICS = {"conversion_rate": "down", "orders": "down", "revenue": "down", "cart_abandonment_rate": "up"}
#: (kind, store, day of the last year, days, traffic change, conversion change, AOV change, segment)
PLAN = (
    ("traffic_drop", "store_a", 40, 2, -0.20, 0.0, 0.0, {}),
    ("traffic_spike", "store_e", 62, 1, +0.60, 0.0, 0.0, {}),
    ("conversion_drop", "store_d", 83, 3, 0.0, -0.45, 0.0, {"device": "desktop"}),
    ("traffic_drop", "store_b", 110, 1, -0.30, 0.0, 0.0, {}),
    ("traffic_spike", "store_c", 131, 2, +0.40, 0.0, 0.0, {"channel": "social"}),
    ("aov_glitch", "store_b", 160, 2, 0.0, 0.0, -0.40, {}),
    ("traffic_drop", "store_d", 200, 2, -0.20, 0.0, 0.0, {}),
    ("traffic_drop", "store_e", 228, 1, -0.60, 0.0, 0.0, {}),
    ("traffic_spike", "store_a", 250, 3, +0.25, 0.0, 0.0, {}),
    ("traffic_drop", "store_c", 271, 2, -0.25, 0.0, 0.0, {"channel": "paid_search"}),
    ("conversion_drop", "store_a", 292, 2, 0.0, -0.35, 0.0, {}),
    ("market_drop", "*", 305, 2, -0.35, 0.0, 0.0, {}),
)


def _named_days(days: pd.DatetimeIndex, store: str) -> list[str | None]:
    from ..calendar import Event

    sale = Event(STORE_SALE["name"], rule=STORE_SALE["rule"], days=STORE_SALE["days"], properties=(STORE_SALE["store"],))
    return calendar_names(days, ["US"], events=[sale], prop=store)


def _free_day(day: int, busy: set[int], n_days: int) -> int:
    """The first day at or after ``day`` with no named day within 3 days either side."""
    while any(d in busy for d in range(day - 3, day + 4)) and day < n_days - 4:
        day += 1
    return day


def _plan(days: pd.DatetimeIndex, named: dict[str, list[str | None]]) -> list[InjectedIncident]:
    """The injected incidents of the last year, moved off named days, plus the missing lift."""
    n = len(days)
    year_start = n - 365
    busy = {i for names in named.values() for i, x in enumerate(names) if x is not None}
    out = []
    for kind, store, day, length, traffic, conv, aov, segment in PLAN:
        a = _free_day(year_start + day, busy, n)
        busy |= set(range(a - 3, a + length + 3))
        metrics = dict(TRAFFIC) if traffic else dict(CONVERSION_METRICS) if conv else {"average_order_value": "down", "revenue": "down"}
        if traffic:
            metrics = {m: "down" if traffic < 0 else "up" for m in metrics}
        change = traffic or conv or aov
        what = "sessions" if traffic else "conversion" if conv else "average order value"
        where = f" (cause: {', '.join(f'{k}={v}' for k, v in segment.items())})" if segment else ""
        for prop in (STORES if store == "*" else (store,)):
            text = f"{what} {change:+.0%} for {length} day{'s' * (length > 1)}{where}"
            if store == "*":
                text = f"the whole market: {text}"
            out.append(InjectedIncident(kind, prop, days[a], days[a] + pd.Timedelta(days=length), dict(segment),
                                        metrics, text))
    bf = [i for i, x in enumerate(named["store_d"]) if x == "Black Friday" and i >= year_start]
    if bf:
        out.append(InjectedIncident("missing_black_friday", "store_d", days[bf[0]], days[bf[0]] + pd.Timedelta(days=1),
                                    {}, {"sessions": "down", "orders": "down", "revenue": "down"},
                                    "the Black Friday lift is missing: a normal day's traffic and conversion"))
    return out


def _multipliers(rng: np.random.Generator, days: pd.DatetimeIndex, named: dict[str, list[str | None]],
                 truth: list[InjectedIncident]) -> dict[str, np.ndarray]:
    """Per store and day: expected sessions, conversion and order-value multipliers, plus the
    per-cell segment multipliers of injected incidents ([store, day, device, channel])."""
    S, T = len(STORES), len(days)
    doy, dow = days.dayofyear.to_numpy(), days.dayofweek.to_numpy()
    yearly = np.interp(doy, YEAR_DAYS, YEAR_LEVELS)
    quarter = np.asarray(QUARTER_LEVELS)[days.quarter.to_numpy() - 1]
    q_end = (days + pd.offsets.QuarterEnd(0)).normalize()
    push = ((q_end - days).days < QUARTER_END_DAYS)
    years = days.year.to_numpy()
    traffic = np.empty((S, T))
    conv = np.empty((S, T))
    aov = np.ones((S, T))
    market = rng.lognormal(0, MARKET_SIGMA, T)
    event_size = {(name, y): rng.uniform(1 - EVENT_SIZE_SPREAD, 1 + EVENT_SIZE_SPREAD)
                  for name in [*EFFECTS, STORE_SALE["name"]] for y in set(years)}
    for s, (store, size) in enumerate(STORES.items()):
        weekly = 1 + rng.uniform(-0.15, 0.25) * (dow >= 5) + rng.uniform(-0.05, 0.08) * (dow == 0)
        growth = rng.uniform(-0.05, 0.2)
        trend = (1 + growth) ** (np.arange(T) / 365.0)
        traffic[s] = size * weekly * trend * yearly * quarter * np.where(push, QUARTER_END_PUSH[0], 1.0)
        traffic[s] *= market * rng.lognormal(0, STORE_SIGMA, T)
        conv[s] = CONVERSION * np.where(dow >= 5, 0.92, 1.0) * np.where(push, QUARTER_END_PUSH[1], 1.0)
        conv[s] *= rng.lognormal(0, CONVERSION_SIGMA, T)
        for t, name in enumerate(named[store]):
            key = name.split(" (day ")[0] if name else None
            effects = EFFECTS.get(name) if name in EFFECTS else None
            if key == STORE_SALE["name"]:
                k = 0 if name == key else 1
                effects = STORE_SALE["effects"][k]
            if effects is None:
                continue
            scale = event_size[(key, years[t])] * rng.lognormal(0, STORE_SIZE_SIGMA)
            lift = [1 + (m - 1) * scale for m in effects]
            if any(inc.kind == "missing_black_friday" and inc.property == store and inc.start == days[t] for inc in truth):
                lift = [1.0, 1.0, 1.0]
            traffic[s, t] *= lift[0]
            conv[s, t] *= lift[1]
            aov[s, t] *= lift[2]
    cells = np.ones((S, T, len(DEVICES[0]), len(CHANNELS[0]), 2))  # last axis: traffic, conversion
    stores = list(STORES)
    for inc in truth:
        if inc.kind == "missing_black_friday":
            continue
        spec = next(p for p in PLAN if p[0] == inc.kind and (p[1] == inc.property or p[1] == "*"))
        s, a = stores.index(inc.property), days.get_loc(inc.start)
        b = a + (inc.end - inc.start).days
        _, _, _, _, d_traffic, d_conv, d_aov, segment = spec
        aov[s, a:b] *= 1 + d_aov
        dev = slice(None) if "device" not in segment else DEVICES[0].index(segment["device"])
        ch = slice(None) if "channel" not in segment else CHANNELS[0].index(segment["channel"])
        if d_traffic:  # the segment moves by as much as makes the store move by d_traffic
            share = 1.0 if "channel" not in segment else CHANNELS[1][ch]
            cells[s, a:b, dev, ch, 0] *= max(1 + d_traffic / share, 0.0)
        if d_conv:
            dev_share = 1.0 if "device" not in segment else (
                DEVICES[1][dev] * DEVICE_CONVERSION[dev] / np.dot(DEVICES[1], DEVICE_CONVERSION))
            cells[s, a:b, dev, ch, 1] *= max(1 + d_conv / dev_share, 0.0)
    return {"traffic": traffic, "conv": conv, "aov": aov, "cells": cells}


def generate_retail(years: int = 3, seed: int = 11, start: str = "2023-01-02", scale: float = 1.0,
                    incidents: bool = True) -> tuple[pd.DataFrame, list[InjectedIncident]]:
    """Simulate ``years`` of daily store events from ``start`` (``scale`` multiplies the traffic),
    with the injected incidents' truth (in the last year; ``years >= 2`` with incidents)."""
    if years < 1 or (incidents and years < 2):
        raise ValueError(f"years must be >= 2 with incidents (>= 1 without), got {years}")
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=int(round(365 * years)), freq="D")
    named = {store: _named_days(days, store) for store in STORES}
    truth = _plan(days, named) if incidents else []
    m = _multipliers(rng, days, named, truth)
    dev_p, ch_p = np.asarray(DEVICES[1]), np.asarray(CHANNELS[1])
    dev_conv = np.asarray(DEVICE_CONVERSION) / np.dot(dev_p, DEVICE_CONVERSION)
    cells = m["cells"]
    lam = (scale * m["traffic"])[:, :, None, None] * dev_p[None, None, :, None] * ch_p[None, None, None, :] * cells[..., 0]
    sessions = rng.poisson(lam)
    carts = rng.binomial(sessions, CART_RATE)
    p_buy = np.clip(m["conv"][:, :, None, None] * dev_conv[None, None, :, None] * cells[..., 1] / CART_RATE, 0, 1)
    orders = rng.binomial(carts, p_buy)
    return _events(rng, days, sessions, carts, orders, m["aov"]), truth


def _events(rng: np.random.Generator, days: pd.DatetimeIndex, sessions: np.ndarray, carts: np.ndarray,
            orders: np.ndarray, aov: np.ndarray) -> pd.DataFrame:
    """One row per event from the per-cell counts: every session starts, the first ``carts`` of
    a cell add to cart, the first ``orders`` of those buy (revenue ~ lognormal around the AOV)."""
    shape = sessions.shape
    flat = sessions.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    first = np.cumsum(flat) - flat
    rank = np.arange(len(cell)) - first[cell]
    s_idx, t_idx, d_idx, c_idx = np.unravel_index(cell, shape)
    has_cart = rank < carts.ravel()[cell]
    bought = rank < orders.ravel()[cell]
    start = days.to_numpy()[t_idx] + (rng.uniform(0, 86000, len(cell)) * 1e9).astype("timedelta64[ns]")
    stores = np.asarray(list(STORES), dtype=object)
    frames = []
    for event, mask, delay in (("session_start", np.ones(len(cell), bool), 0), ("add_to_cart", has_cart, 60),
                               ("purchase", bought, 300)):
        k = np.flatnonzero(mask)
        revenue = np.full(len(k), np.nan)
        if event == "purchase":
            mean = AOV * aov[s_idx[k], t_idx[k]]
            revenue = np.round(mean * rng.lognormal(-AOV_SIGMA**2 / 2, AOV_SIGMA, len(k)), 2)
        frames.append(pd.DataFrame({
            "timestamp": start[k] + np.timedelta64(delay, "s"), "event": event, "session_id": k,
            "property": stores[s_idx[k]], "device": np.asarray(DEVICES[0], dtype=object)[d_idx[k]],
            "channel": np.asarray(CHANNELS[0], dtype=object)[c_idx[k]], "revenue": revenue}))
    return pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable").reset_index(drop=True)


def write_retail(directory, **kwargs) -> dict:
    """Generate the stores (``kwargs`` go to :func:`generate_retail`) and write ``events.parquet``,
    ``truth.json`` and ``sleuth.yaml``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    events, truth = generate_retail(**kwargs)
    paths = {"events": directory / "events.parquet", "truth": directory / "truth.json", "config": directory / "sleuth.yaml"}
    events.to_parquet(paths["events"], index=False)
    paths["truth"].write_text(json.dumps([inc.to_dict() for inc in truth], indent=2) + "\n")
    paths["config"].write_text(RETAIL_CONFIG, encoding="utf-8")
    return {**{k: str(v) for k, v in paths.items()}, "rows": len(events)}


def special_days(days: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Per store, which days carry a calendar name (public holiday, retail day, its own event)."""
    return {store: np.array([n is not None for n in _named_days(days, store)]) for store in STORES}


__all__ = ["EFFECTS", "RETAIL_CONFIG", "STORES", "generate_retail", "special_days", "write_retail"]
