"""Amplitude's export (the Export API's JSON Lines, one event per line).

The event is ``event_type`` at ``event_time`` (UTC). Amplitude counts users by
``amplitude_id`` and keys a session by the session's start in epoch milliseconds,
``session_id``, per user; ``-1`` means the event belongs to no session. The property is the
project, ``app``. ``event_properties`` and ``user_properties`` become dotted columns
(``event_properties.plan``).
"""
from __future__ import annotations

import ibis

from ._common import Format, Parts, Source, text

DIMENSIONS = (
    ("device", ("device_family", "device_type")),
    ("os", ("os_name",)),
    ("country", ("country",)),
    ("platform", ("platform",)),
)


class Amplitude(Format):
    name = "amplitude"
    title = "Amplitude export"

    def matches(self, src: Source) -> bool:
        return ({"event_type", "event_time"} <= src.top
                and ("amplitude_id" in src.top or {"device_id", "session_id"} <= src.top))

    def normalise(self, src: Source) -> Parts:
        t = src.table
        ts_paths, timestamp = src.coalesce_time("event_time", "client_event_time")
        user_paths, user = src.coalesce_text("amplitude_id", "device_id", "user_id")
        parts = Parts(standard={"timestamp": timestamp,
                                "event": text(t.event_type), "user_id": user},
                      consumed={*ts_paths, "event_type", "amplitude_id"})
        if "session_id" in src.top:
            sid = t.session_id
            sid = sid.cast("int64") if sid.type().is_numeric() else text(sid).try_cast("int64")
            parts.standard["session_id"] = ibis.ifelse(
                sid.isnull() | (sid < 0), ibis.null().cast("string"), user.concat("-", sid.cast("string")))
            parts.consumed.add("session_id")
            parts.said.append(f"sessions are {user_paths[0]} + session_id (-1: no session)")
        paths, revenue = src.coalesce_number("revenue", "event_properties.$revenue", "event_properties.revenue")
        if revenue is not None:
            parts.standard["revenue"] = revenue
            parts.consumed |= set(paths)
        if "app" in src.top:
            parts.standard["property"] = text(t.app)
            parts.consumed.add("app")
        parts.take_dimensions(src, DIMENSIONS)
        return parts
