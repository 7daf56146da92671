"""What the dashboard and the report show: the store's snapshot of a source (no detection), or a
detection when the store has never seen the source (the demo without a store, a first look)."""
from __future__ import annotations

from typing import Any

from ..alerts import open_store
from ..errors import InputError
from ..redact import redact_source
from ..snapshot import Snapshot


def stored_snapshot(store: str, source: str | None) -> Snapshot | None:
    """The store's latest snapshot of ``source`` (any source's with None), with every stored
    incident of its properties; None when the store has none."""
    db = open_store(store)
    try:
        row = db.snapshot_row(redact_source(source) if source else None)
        if row is None:
            return None
        snap = Snapshot.load(row["meta"], row["data"], run=row["run"], created=f"{row['created']:%Y-%m-%d %H:%M}")
        return snap.with_store_incidents(db.incidents())
    finally:
        db.close()


def live_snapshot(source: str, config: Any = None, since: Any = None, until: Any = None,
                  progress=None) -> Snapshot:
    from ..pipeline import detect

    det = detect(source, config, since=since, until=until, progress=progress)
    return Snapshot.from_detection(det)


def latest_run(store: str) -> int | None:
    db = open_store(store)
    try:
        return db.latest_run()
    finally:
        db.close()


def in_period(snap: Snapshot, since: Any = None, until: Any = None) -> Snapshot:
    """Only the incidents that start in ``[since, until)`` (ISO times, naive UTC or with a zone)."""
    from ..pipeline import parse_time

    a, b = parse_time(since, "since"), parse_time(until, "until")
    snap.incidents = [i for i in snap.incidents
                      if (a is None or i.start_time() >= a) and (b is None or i.start_time() < b)]
    return snap


def events_for(source: str, config: Any = None):
    """The events and metric definitions of ``source``, for the classifier view (on demand)."""
    from ..ingest import load_events
    from ..metrics.derive import resolve_metrics
    from ..pipeline import as_config

    if not source:
        raise InputError("the classifier view reads the events: give the source (sleuth report SOURCE …)")
    cfg = as_config(config)
    events = load_events(source, cfg)
    return events, {m.name: m for m in resolve_metrics(cfg, events)}


def incident_rows(store: str) -> list[dict]:
    db = open_store(store)
    try:
        return db.incidents()
    finally:
        db.close()


__all__ = ["events_for", "in_period", "incident_rows", "latest_run", "live_snapshot", "stored_snapshot"]
