"""Snowplow enriched events: the ``atomic.events`` table with its named columns.

The time is ``derived_tstamp`` (the device's clock corrected for its skew) or, where it is
missing, ``collector_tstamp``. The event is ``event_name`` (``page_view``, ``add_to_cart``, a
self-describing event's name), or ``se_action`` for a structured event, or the ``event`` type.
Sessions are ``domain_sessionid``, users ``domain_userid`` (the first-party cookie), the
property is ``app_id`` and revenue is a transaction's ``tr_total``.
"""
from __future__ import annotations

import ibis

from ._common import Format, Parts, Source, text

DIMENSIONS = (
    ("device", ("dvce_type",)),
    ("os", ("os_family",)),
    ("browser", ("br_family",)),
    ("country", ("geo_country",)),
    ("source", ("mkt_source",)),
    ("medium", ("mkt_medium",)),
    ("campaign", ("mkt_campaign",)),
    ("referrer", ("refr_medium",)),
    ("platform", ("platform",)),
)


class Snowplow(Format):
    name = "snowplow"
    title = "Snowplow enriched events"

    def matches(self, src: Source) -> bool:
        return {"collector_tstamp", "domain_userid"} <= src.top and bool({"event", "event_name"} & src.top)

    def normalise(self, src: Source) -> Parts:
        t = src.table
        ts_paths, timestamp = src.coalesce_time("derived_tstamp", "collector_tstamp")
        names = []
        if "se_action" in src.top and "event" in src.top:
            names.append(ibis.ifelse(text(t.event) == "struct", text(t.se_action), ibis.null().cast("string")))
        names += [text(t[c]) for c in ("event_name", "event") if c in src.top]
        event = names[0] if len(names) == 1 else ibis.coalesce(*names)
        _, user = src.coalesce_text("domain_userid", "network_userid")
        parts = Parts(standard={"timestamp": timestamp, "event": event, "user_id": user},
                      consumed={*ts_paths, "event_name", "domain_userid"})
        if "domain_sessionid" in src.top:
            parts.standard["session_id"] = text(t.domain_sessionid)
            parts.consumed.add("domain_sessionid")
            parts.said.append("sessions are domain_sessionid")
        if "tr_total" in src.top:
            parts.standard["revenue"] = t.tr_total
            parts.consumed.add("tr_total")
        if "app_id" in src.top:
            parts.standard["property"] = text(t.app_id)
            parts.consumed.add("app_id")
        parts.take_dimensions(src, DIMENSIONS)
        return parts
