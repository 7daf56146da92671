"""Derive sessions from 30 minutes (configurable) of inactivity per user, in the engine."""
from __future__ import annotations

import ibis


def sessionize(table: ibis.Table, timeout_minutes: int = 30) -> ibis.Table:
    """Fill ``session_id`` as ``<user_id>#<n>``: a new session starts after a gap > timeout.

    Events without a user id stay without a session.
    """
    w = ibis.window(group_by=table.user_id, order_by=table.timestamp)
    prev = table.timestamp.lag().over(w)
    gap_s = (table.timestamp.epoch_seconds() - prev.epoch_seconds())
    starts = ibis.ifelse(prev.isnull() | (gap_s > timeout_minutes * 60), 1, 0)
    marked = table.mutate(_new=starts)
    w2 = ibis.window(group_by=marked.user_id, order_by=marked.timestamp, rows=(None, 0))
    numbered = marked.mutate(_n=marked._new.sum().over(w2))
    sid = ibis.ifelse(
        numbered.user_id.isnull(), ibis.null().cast("string"),
        numbered.user_id.concat("#", numbered._n.cast("string")),
    )
    return numbered.mutate(session_id=sid).drop("_new", "_n")
