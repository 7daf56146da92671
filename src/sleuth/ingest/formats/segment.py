"""Segment's warehouse tables: ``tracks`` (and the per-event tables such as ``order_completed``),
``pages`` and ``identifies``, alone or read together (a glob of several unions them by name).

Segment writes one row per call with ``anonymous_id``, ``user_id``, ``timestamp``,
``received_at`` and ``context_*`` columns. A track row's event is ``event_text`` (the name as
sent, "Order Completed"); a page row (``path``/``url``) becomes a ``page`` event and any other
row an ``identify`` event. Segment has no sessions: sleuth derives them from the user by
inactivity. A user is ``anonymous_id`` (the device), or ``user_id`` on server-side calls
without one, as Segment's own session models do.
"""
from __future__ import annotations

import ibis

from ._common import Format, Parts, Source, browser_from_agent, device_from_agent, os_from_agent, text

DIMENSIONS = (
    ("device", ("context_device_type",)),
    ("os", ("context_os_name",)),
    ("country", ("context_location_country",)),
    ("source", ("context_campaign_source",)),
    ("medium", ("context_campaign_medium",)),
    ("campaign", ("context_campaign_name",)),
    ("platform", ("context_library_name",)),
)


class Segment(Format):
    name = "segment"
    title = "Segment warehouse tables"

    def matches(self, src: Source) -> bool:
        return ({"anonymous_id", "received_at", "timestamp"} <= src.top
                and ("event_text" in src.top or "uuid_ts" in src.top
                     or any(c.startswith("context_") for c in src.top)))

    def normalise(self, src: Source) -> Parts:
        t = src.table
        page = [t[c].notnull() for c in ("path", "url") if c in src.top]
        is_page = page[0] if len(page) == 1 else (page[0] | page[1]) if page else ibis.literal(False)
        other = ibis.ifelse(is_page, "page", "identify")
        _, tracked = src.coalesce_text("event_text", "event")
        event = other if tracked is None else ibis.coalesce(tracked, other)
        _, user = src.coalesce_text("anonymous_id", "user_id")
        parts = Parts(standard={"timestamp": t.timestamp, "event": event, "user_id": user},
                      consumed={"timestamp", "event_text", "event", "anonymous_id"})
        kinds = ["tracks" if tracked is not None else None, "pages" if page else None]
        parts.said.append(f"{' and '.join(k for k in kinds if k) or 'identifies'} rows; "
                          "users are anonymous_id, sessions derived from them")

        if "id" in src.top:
            parts.unique_on = "id"
        path, revenue = src.first("revenue", "total")
        if revenue is not None:
            parts.standard["revenue"] = revenue
            parts.consumed.add(path)

        parts.take_dimensions(src, DIMENSIONS)
        if "context_user_agent" in src.top:
            ua = text(t.context_user_agent)
            parts.dimensions["browser"] = browser_from_agent(ua)
            # mobile libraries send the OS and device type; web rows have only the user agent
            for name, guess in (("os", os_from_agent(ua)), ("device", device_from_agent(ua))):
                given = parts.dimensions.get(name)
                parts.dimensions[name] = guess if given is None else ibis.coalesce(given, guess)
        return parts
