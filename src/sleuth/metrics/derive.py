"""Metrics sleuth derives when the config names none: sessions, users, frequent events, shop KPIs."""
from __future__ import annotations

import re

import ibis

from ..config import Aggregate, Config, Metric
from ..errors import ConfigError, did_you_mean
from ..ingest import Events, numeric_column

#: e-commerce event names: (purchase, add to cart, begin checkout) for GA4, Segment and Snowplow
ECOMMERCE_NAMES = {
    "ga4": ("purchase", "add_to_cart", "begin_checkout"),
    "segment": ("Order Completed", "Product Added", "Checkout Started"),
    "snowplow": ("transaction", "add_to_cart", "begin_checkout"),
}
MAX_EVENT_METRICS = 8
MIN_EVENT_SHARE = 0.01


def metric_name(event: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z]+", "_", event).strip("_").lower()
    return name if name and name[0].isalpha() else f"event_{name}"


def derive_metrics(events: Events) -> list[Metric]:
    t = events.table
    counts = t.group_by("event").aggregate(n=t.count()).order_by([t.count().desc()]).execute()
    total = int(counts["n"].sum())
    names = set(counts["event"])
    has_session = events.mapping["session_id"] is not None or events.sessions_derived
    has_user = events.mapping["user_id"] is not None
    has_revenue = events.mapping["revenue"] is not None

    out: list[Metric] = []
    if has_session:
        out.append(Metric(name="sessions", type="distinct", column="session_id", description="sessions with any event"))
    if has_user:
        out.append(Metric(name="users", type="distinct", column="user_id", description="distinct users"))

    shop = next((v for v in ECOMMERCE_NAMES.values() if v[0] in names), None)
    used_events: set[str] = set()
    if shop:
        purchase, cart, checkout = shop
        used_events.add(purchase)
        out.append(Metric(name="orders", type="count", event=purchase, description=f"'{purchase}' events"))
        if has_revenue:
            out.append(Metric(name="revenue", type="sum", column="revenue", event=purchase,
                              description=f"revenue of '{purchase}' events"))
            out.append(Metric(
                name="average_order_value", type="ratio",
                numerator=Aggregate(type="sum", column="revenue", event=purchase),
                denominator=Aggregate(type="count", event=purchase),
                description="revenue per order",
            ))
        if has_session:
            out.append(Metric(
                name="conversion_rate", type="ratio",
                numerator=Aggregate(type="distinct", column="session_id", event=purchase),
                denominator=Aggregate(type="distinct", column="session_id"),
                description="share of sessions with an order",
            ))
            if cart in names:
                out.append(Metric(
                    name="cart_abandonment_rate", type="ratio", invert=True,
                    numerator=Aggregate(type="distinct", column="session_id", event=purchase),
                    denominator=Aggregate(type="distinct", column="session_id", event=cart),
                    description="share of sessions with a cart but no order",
                ))
    if not shop and has_revenue:  # revenue on events sleuth does not know as orders: its total
        out.append(Metric(name="revenue", type="sum", column="revenue", description="revenue of all events"))
    taken = {m.name for m in out}
    for _, row in counts.iterrows():
        ev, n = str(row["event"]), int(row["n"])
        if len([m for m in out if m.type == "count" and m.name not in ("orders",)]) >= MAX_EVENT_METRICS:
            break
        if ev in used_events or n < MIN_EVENT_SHARE * total:
            continue
        name = metric_name(ev)
        if name in taken:
            name = f"{name}_events"
        if name in taken:
            continue
        taken.add(name)
        out.append(Metric(name=name, type="count", event=ev, description=f"'{ev}' events"))
    return out


def resolve_metrics(config: Config, events: Events) -> list[Metric]:
    """The configured metrics, checked against the data (a typo is an error, not a metric that
    stays zero), or derived ones."""
    if config.metrics is None:
        return derive_metrics(events)
    check_metrics(config.metrics, events)
    for m in config.metrics:
        for agg in filter(None, m.parts()):
            if agg.type == "sum" and agg.column and not events.table[agg.column].type().is_numeric():
                parsed = numeric_column(events.table, agg.column, events.source, f"metric {m.name!r} sums it, so it")
                events.table = events.table.mutate(**{agg.column: parsed}).cache()
    return list(config.metrics)


def check_metrics(metrics: list[Metric], events: Events) -> None:
    """Every ``column:`` a metric names is a column and every ``event:`` occurs in the data;
    otherwise a :class:`ConfigError` names the metric, the value and the closest match."""
    cols = list(events.columns)
    standard = {"session_id", "user_id", "revenue"}
    names: list[str] | None = None
    known: set[str] = set()
    for m in metrics:
        for part, agg in zip(("numerator", "denominator") if m.is_ratio else ("",), m.parts()):
            where = f"metric {m.name!r}" + (f" ({part})" if part else "")
            if agg is None:
                continue
            if agg.column and agg.column not in cols:
                hint = (f"; the source has no {agg.column} column (map yours under 'columns:')"
                        if agg.column in standard else f"; columns are: {', '.join(sorted(cols)[:30])}")
                raise ConfigError(f"{where}: column {agg.column!r} is not a column of {events.source}"
                                  f"{did_you_mean(agg.column, cols)}{hint}")
            if agg.events:
                if names is None:
                    t = events.table
                    counts = t.group_by("event").aggregate(n=t.count()).order_by([ibis.desc("n"), "event"]).execute()
                    names = [str(e) for e in counts["event"]]
                    known = set(names)
                missing = [e for e in agg.events if e not in known]
                if missing:
                    raise ConfigError(
                        f"{where}: event {missing[0]!r} does not occur in {events.source}{did_you_mean(missing[0], names)}; "
                        f"the most frequent events are: {', '.join(names[:10])}. Fix 'event' in sleuth.yaml")
