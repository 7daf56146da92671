"""GA4's BigQuery export (``events_YYYYMMDD`` tables, as JSON Lines or Parquet).

One row is one event. Parameters live in ``event_params``, a list of ``{key, value:
{string_value, int_value, float_value, double_value}}``; each key that occurs becomes a column
``param.<key>`` typed by the value fields it uses. Sessions are ``user_pseudo_id`` plus the
``ga_session_id`` parameter (GA4's own definition); ``event_timestamp`` is in microseconds.
``items`` is summarised per event (how many, their quantity, the first item's category), never
exploded: exploding it, or ``event_params``, would repeat the event once per element.
"""
from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt

from ._common import Format, Parts, Source, key_lists, key_value_bag, number, text

PURCHASE_EVENTS = ("purchase", "in_app_purchase")
#: (friendly name, source paths in order of preference)
DIMENSIONS = (
    ("device", ("device.category",)),
    ("os", ("device.operating_system",)),
    ("browser", ("device.web_info.browser", "device.browser")),
    ("country", ("geo.country",)),
    # the session's last-click source (exports since 2024) before the user's first-touch source
    ("source", ("session_traffic_source_last_click.manual_campaign.source", "traffic_source.source")),
    ("medium", ("session_traffic_source_last_click.manual_campaign.medium", "traffic_source.medium")),
    ("campaign", ("session_traffic_source_last_click.manual_campaign.campaign_name", "traffic_source.name")),
)


class GA4(Format):
    name = "ga4"
    title = "GA4 BigQuery export"

    def matches(self, src: Source) -> bool:
        return {"event_name", "event_timestamp", "user_pseudo_id"} <= src.top

    def prepare(self, table: ibis.Table) -> ibis.Table:
        return key_lists(table, ["event_params", "user_properties"])

    def normalise(self, src: Source) -> Parts:
        t = src.table
        parts = Parts(standard={
            "timestamp": t.event_timestamp,
            "event": text(t.event_name),
            "user_id": text(t.user_pseudo_id),
        }, consumed={"event_timestamp", "event_name", "user_pseudo_id", "event_params", "user_properties"})

        params, left = key_value_bag(t, "event_params", "param.") if "event_params" in src.top else ({}, 0)
        props, _ = key_value_bag(t, "user_properties", "user.", limit=20) if "user_properties" in src.top else ({}, 0)
        parts.extra.update(params)
        parts.extra.update(props)

        sid = params.get("param.ga_session_id")
        if sid is None and "ga_session_id" in src.top:  # an export flattened already
            sid = t.ga_session_id
        if sid is not None:
            key = text(sid.cast("int64") if sid.type().is_numeric() else sid)
            parts.standard["session_id"] = ibis.ifelse(
                sid.isnull(), ibis.null().cast("string"), text(t.user_pseudo_id).concat(".", key))
            parts.said.append("sessions are user_pseudo_id + ga_session_id")
        else:
            parts.said.append("no ga_session_id parameter: sessions derived from user_pseudo_id")
        if params:
            parts.said.append(f"{len(params)} event parameters became param.* columns"
                              + (f" ({left} rarer ones left out)" if left else ""))

        revenue, said = [], []
        if src.has("ecommerce.purchase_revenue"):
            revenue.append(number(src.get("ecommerce.purchase_revenue")))
            parts.consumed.add("ecommerce.purchase_revenue")
            said.append("ecommerce.purchase_revenue")
        value = params.get("param.value")
        if value is not None and value.type().is_numeric():
            revenue.append(ibis.ifelse(t.event_name.isin(PURCHASE_EVENTS), value.cast("float64"),
                                       ibis.null().cast("float64")))
            said.append("a purchase's value parameter")
        if revenue:
            parts.standard["revenue"] = revenue[0] if len(revenue) == 1 else ibis.coalesce(*revenue)
            parts.said.append(f"revenue is {' or '.join(said)}")

        if "stream_id" in src.top:
            parts.standard["property"] = text(t.stream_id)
            parts.consumed.add("stream_id")
            if "platform" in src.top:
                parts.dimensions["platform"] = text(t.platform)
                parts.consumed.add("platform")
        elif "platform" in src.top:
            parts.standard["property"] = text(t.platform)
            parts.consumed.add("platform")

        parts.take_dimensions(src, DIMENSIONS)

        if "items" in src.top:
            items = _items(t["items"])
            parts.consumed.add("items")
            if "items.first_category" in items:
                parts.dimensions["item_category"] = items.pop("items.first_category")
            parts.extra.update(items)
        return parts


def _items(items: ibis.Value) -> dict[str, ibis.Value]:
    """One event's items summarised: how many, their quantity, the first item's category."""
    typ = items.type()
    if not isinstance(typ, dt.Array):
        return {}
    out = {"items.count": items.length().fill_null(0)}
    fields = typ.value_type.names if isinstance(typ.value_type, dt.Struct) else ()
    if "quantity" in fields:
        q = items.map(lambda i: i.quantity)
        q = q if typ.value_type["quantity"].is_numeric() else q.map(lambda v: text(v).try_cast("int64"))
        out["items.quantity"] = q.sums()
    if "item_category" in fields:
        out["items.first_category"] = text(items[0].item_category)
    return out
