"""One alerting run (detect, explain, store, notify) and the watch loop that repeats it.

A run is safe to repeat and safe to kill: incidents are upserted by key, notifications are claimed
in the store before they are sent, and whatever a dead run left pending is done by the next one.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from ..config import Config
from ..errors import SleuthError
from ..incidents import MAX_GAP
from . import notify as nt
from .store import Store, StoreError, open_store

#: a notification left 'sending' this long by a run that died is taken over (at-least-once there)
CLAIM_TIMEOUT = 300.0
#: on a source's first run, incidents that ended more than this many buckets before the end of the
#: data are stored as history and not announced
BACKFILL = 24


@dataclass
class RunReport:
    """What one run did, for the CLI and for tests."""

    run: int
    incidents: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    held: int = 0  # incidents whose message waits for the end of quiet hours or of a cool-down
    messages: dict[str, int] = field(default_factory=dict)  # status -> count
    data_end: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "incidents": self.incidents, "actions": self.actions, "closed": self.closed,
                "messages": self.messages, "held": self.held,
                "data_end": self.data_end.isoformat() if self.data_end else None}

    def line(self) -> str:
        acts = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items())) or "none"
        msgs = ", ".join(f"{n} {s}" for s, n in sorted(self.messages.items())) or "none"
        return (f"run {self.run}: {self.incidents} incidents in data up to {self.data_end:%Y-%m-%d %H:%M} UTC ({acts}); "
                f"{self.closed} auto-closed; messages: {msgs}" + (f"; {self.held} held back" if self.held else ""))


def stored_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as kept with the run: channel URLs by their redacted names."""
    d = cfg.to_dict()
    for route in d.get("notify", []):
        route["url"] = nt.redact_url(route["url"])
    d.pop("store", None)
    return d


def store_url(cfg: Config, store: str | None) -> str | None:
    """``--store`` wins over ``store:`` in the config; ``None`` means the default SQLite file."""
    return store or cfg.store


def run_once(source: Any, config: Config | dict | str | Path | None = None, *, store: str | Store | None = None,
             until: Any = None, backfill: int = BACKFILL, claim_timeout: float = CLAIM_TIMEOUT,
             progress: Callable[[str], None] | None = None) -> RunReport:
    """Detect, explain, store and notify once (Contract 7)."""
    from ..pipeline import as_config, detect

    cfg = as_config(config)
    chans = nt.channels(cfg.notify)
    db = store if isinstance(store, Store) else open_store(store_url(cfg, store))
    try:
        run_id = db.start_run(str(source), stored_config(cfg))
        try:
            result = detect(source, cfg, until=until, progress=progress, expected=db.expected_patterns())
            report = _record(db, run_id, str(source), result, backfill)
            for ch in chans:
                _notify(db, run_id, ch, claim_timeout, cfg, report)
        except BaseException as e:
            _fail(db, run_id, e)
            raise
        db.finish_run(run_id, "finished", report.data_end, report.to_dict())
        return report
    finally:
        if not isinstance(store, Store):
            db.close()


def _fail(db: Store, run_id: int, e: BaseException) -> None:
    """Mark the run failed when the store is still there to say so."""
    try:
        db.finish_run(run_id, "failed", error=f"{type(e).__name__}: {e}"[:500])
    except SleuthError:
        pass


def _record(db: Store, run_id: int, source: str, result, backfill: int) -> RunReport:
    cube = result.cube
    step = cube.config.step
    end = cube.complete_until if cube.complete_until is not None else cube.buckets[-1] + step
    data_end = end.to_pydatetime()
    previous = db.last_data_end(source)
    notify_from = data_end - step * backfill
    if previous is not None:
        notify_from = min(notify_from, previous)
    report = RunReport(run=run_id, incidents=len(result.incidents), data_end=data_end)
    open_from = data_end - step * MAX_GAP  # the detector still bridges a gap this long
    seen = set()
    for inc in result.incidents:
        done = db.upsert(inc.to_dict(), run_id, open_from, notify_from)
        seen.add(done.key)
        report.actions[done.action] = report.actions.get(done.action, 0) + 1
    report.closed = db.close_recovered(seen, set(cube.keys.property.astype(str)), set(cube.metrics), run_id,
                                       open_from)
    return report


def _notify(db: Store, run_id: int, ch: nt.Channel, claim_timeout: float, cfg: Config,
            report: RunReport) -> None:
    """Send what this channel is owed, except what quiet hours, the cool-down or the daily digest
    hold back: that stays pending and goes out with a later run."""
    now = dt.datetime.now(dt.timezone.utc)
    local = now.astimezone(ZoneInfo(cfg.timezone))
    stale = now.replace(tzinfo=None) - dt.timedelta(seconds=claim_timeout)
    owed = db.pending(ch.key, ch.route.min_severity, ch.route.metrics, stale)
    pending = owed
    if ch.route.quiet_at(local.time()):
        pending = [i for i in pending if i["severity"] == "high"]
    if ch.route.cooldown_minutes:
        since = now.replace(tzinfo=None) - dt.timedelta(minutes=ch.route.cooldown_minutes)
        recent = db.recently_notified(ch.key, since)
        pending = [i for i in pending if (i["property"], i["metric"], i["segment"]) not in recent]
    digest: list[dict] = []
    if ch.route.digest_at:
        slot = ch.route.last_digest(local).astimezone(dt.timezone.utc).replace(tzinfo=None)
        later = [i for i in pending if i["severity"] != "high"]
        pending = [i for i in pending if i["severity"] == "high"]
        if later and not db.digest_sent(ch.key, slot):
            digest = later
    report.held += len(owed) - len(pending) - len(digest)
    for group in nt.group_linked(pending):
        _deliver(db, run_id, ch, group, stale, report, digest=False, link=cfg.dashboard_url)
    if digest:
        _deliver(db, run_id, ch, digest, stale, report, digest=True, link=cfg.dashboard_url)


def _deliver(db: Store, run_id: int, ch: nt.Channel, group: list[dict], stale: dt.datetime,
             report: RunReport, digest: bool, link: str | None = None) -> None:
    """Claim, send and record one message (with a link to the dashboard when one is configured)."""
    mine = db.claim(group, ch.key, run_id, stale)
    if not mine:
        return
    title, body, kind = nt.digest(mine, link) if digest else nt.message(mine, link)
    mid = ("digest-" if digest else "") + nt.message_id(mine)
    ok, attempts = nt.send(ch, title, f"{body}\n\nmessage {mid}", kind)
    status = db.mark(mine, ch.key, ok, attempts, ch.route.dead_letter_after, mid)
    report.messages[status] = report.messages.get(status, 0) + 1


def watch(source: Any, config: Config | dict | str | Path | None = None, *, store: str | None = None,
          every: float | None = None, max_runs: int | None = None, on_run: Callable[[RunReport], None] | None = None,
          on_error: Callable[[StoreError], None] | None = None, sleep: Callable[[float], None] = time.sleep,
          **kwargs: Any) -> int:
    """Run every ``every`` seconds (default: one granularity step) until ``max_runs``.

    Each run reads all the data and announces whatever is new since the last finished run, so a
    watch that was down catches up on its next run. A failing run (the database away, say) is
    reported and the loop goes on; returns the number of runs that failed.
    """
    from ..pipeline import as_config

    cfg = as_config(config)
    period = every if every is not None else cfg.step.total_seconds()
    failed, n = 0, 0
    while max_runs is None or n < max_runs:
        t0 = time.monotonic()
        try:
            report = run_once(source, cfg, store=store, **kwargs)
            if on_run:
                on_run(report)
        except StoreError as e:  # the database away: try again next time; bad config stops the loop
            failed += 1
            if on_error:
                on_error(e)
        n += 1
        if max_runs is not None and n >= max_runs:
            break
        sleep(max(0.0, period - (time.monotonic() - t0)))
    return failed
