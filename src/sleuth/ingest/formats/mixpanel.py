"""Mixpanel's raw export: ``{"event": ..., "properties": {"time": ..., "distinct_id": ..., ...}}``.

``time`` is epoch seconds, or milliseconds when exported with ``time_in_ms`` (the unit is read
from the magnitude); projects created before 2023 may export it shifted to the project's time
zone, which sleuth cannot see. ``distinct_id`` is the user. Mixpanel exports no sessions: sleuth derives them from the user by
inactivity, as Mixpanel's own reports do. Every other property becomes a column
``properties.<name>`` (``properties.$current_url``).
"""
from __future__ import annotations

import ibis.expr.datatypes as dt

from ._common import Format, Parts, Source, text

DIMENSIONS = (
    ("device", ("properties.$device",)),
    ("os", ("properties.$os",)),
    ("browser", ("properties.$browser",)),
    ("country", ("properties.mp_country_code",)),
    ("source", ("properties.utm_source",)),
    ("medium", ("properties.utm_medium",)),
    ("campaign", ("properties.utm_campaign",)),
    ("platform", ("properties.mp_lib",)),
)


class Mixpanel(Format):
    name = "mixpanel"
    title = "Mixpanel export"

    def matches(self, src: Source) -> bool:
        if src.top != {"event", "properties"}:  # the whole of a line of Mixpanel's export
            return False
        typ = src.table.properties.type()
        if isinstance(typ, dt.Map):  # DuckDB reads an object whose keys vary as a map
            return True
        return isinstance(typ, dt.Struct) and {"time", "distinct_id"} <= set(typ.names)

    def normalise(self, src: Source) -> Parts:
        parts = Parts(standard={
            "timestamp": text(src.get("properties.time")).try_cast("float64"),
            "event": text(src.table.event),
            "user_id": text(src.get("properties.distinct_id")),
        }, consumed={"event", "properties.time", "properties.distinct_id"})
        paths, revenue = src.coalesce_number("properties.revenue", "properties.$revenue", "properties.amount")
        if revenue is not None:
            parts.standard["revenue"] = revenue
            parts.consumed |= set(paths)
        parts.take_dimensions(src, DIMENSIONS)
        parts.said.append("users are distinct_id, sessions derived from them")
        return parts
