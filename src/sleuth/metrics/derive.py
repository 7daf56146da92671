"""Metrics sleuth derives when the config names none: sessions, users, frequent events, shop KPIs."""
from __future__ import annotations

import re

from ..config import Aggregate, Config, Metric
from ..errors import InputError
from ..ingest import Events, numeric_column

#: e-commerce event names: (purchase, add to cart, begin checkout) for GA4 and Segment
ECOMMERCE_NAMES = {
    "ga4": ("purchase", "add_to_cart", "begin_checkout"),
    "segment": ("Order Completed", "Product Added", "Checkout Started"),
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
    """The configured metrics, checked against the columns, or derived ones."""
    if config.metrics is None:
        return derive_metrics(events)
    cols = set(events.columns)
    standard = {"session_id", "user_id", "revenue"}
    for m in config.metrics:
        for agg in filter(None, m.parts()):
            if agg.column and agg.column not in cols:
                hint = ""
                if agg.column in standard:
                    hint = f"; the source has no {agg.column} column (map yours under 'columns:')"
                raise InputError(
                    f"{events.source}: metric {m.name!r} uses column {agg.column!r}, which is not in the events"
                    f"{hint or '; columns are: ' + ', '.join(sorted(cols)[:30])}"
                )
            if agg.type == "sum" and agg.column and not events.table[agg.column].type().is_numeric():
                parsed = numeric_column(events.table, agg.column, events.source, f"metric {m.name!r} sums it, so it")
                events.table = events.table.mutate(**{agg.column: parsed}).cache()
    return list(config.metrics)
