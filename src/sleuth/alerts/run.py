"""One alerting run (detect, explain, store, notify) and the watch loop that repeats it.

A run is safe to repeat and safe to kill: incidents are upserted by key, notifications are claimed
in the store before they are sent, and whatever a dead run left pending is done by the next one.
"""
from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from ..config import Config
from ..errors import ConfigError, SleuthError
from ..incidents import MAX_GAP
from ..redact import redact_channel, redact_source, redact_text
from . import liveness
from . import notify as nt
from .deliver import Sender, send
from .store import Store, StoreError, open_store

#: a notification left 'sending' this long by a run that died is taken over (at-least-once there)
CLAIM_TIMEOUT = 300.0
#: on a source's first run, incidents that ended more than this many buckets before the end of the
#: data are stored as history and not announced
BACKFILL = 24


#: exit code of ``run`` (and ``watch --max-runs``) when a message could not be delivered: it stays
#: pending in the store and the next run tries again (2 is bad input or config, as everywhere)
EXIT_UNDELIVERED = 3
#: seconds between a live run's heartbeats; a run on another host that missed ``claim_timeout``
#: seconds of them is taken for dead
HEARTBEAT = 15.0


@dataclass
class RunReport:
    """What one run did, for the CLI and for tests."""

    run: int
    incidents: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    held: int = 0  # incidents whose message waits for the end of quiet hours or of a cool-down
    messages: dict[str, int] = field(default_factory=dict)  # status -> count
    deferred: int = 0  # messages left for the next run: the channel's deadline for this run passed
    timeouts: int = 0  # attempts cut off at their timeout
    abandoned: int = 0  # earlier runs found dead (killed) and marked abandoned by this one
    data_end: dt.datetime | None = None
    notify_from: dt.datetime | None = None
    notes: list[str] = field(default_factory=list)
    learning: dict[str, Any] = field(default_factory=dict)  # metrics still learning: how many, until when

    @property
    def undelivered(self) -> int:
        """Messages this run owed but could not deliver (failed, dead letter or out of time)."""
        return self.messages.get("failed", 0) + self.messages.get("dead_letter", 0) + self.deferred

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "incidents": self.incidents, "actions": self.actions, "closed": self.closed,
                "messages": self.messages, "held": self.held, "deferred": self.deferred,
                "timeouts": self.timeouts, "undelivered": self.undelivered, "abandoned": self.abandoned,
                "data_end": self.data_end.isoformat() if self.data_end else None, "notes": self.notes,
                "learning": self.learning}

    def line(self) -> str:
        acts = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items())) or "none"
        msgs = ", ".join(f"{n} {s}" for s, n in sorted(self.messages.items())) or "none"
        extra = [f"{self.held} held back"] if self.held else []
        if self.deferred:
            extra.append(f"{self.deferred} left for the next run (channel deadline)")
        if self.timeouts:
            extra.append(f"{self.timeouts} attempts timed out")
        if self.abandoned:
            extra.append(f"{self.abandoned} killed earlier runs marked abandoned")
        if self.learning.get("metrics"):
            extra.append(f"{self.learning['metrics']} of {self.learning['of']} metrics still learning (wider bands; "
                         f"all mature by {self.learning['mature_by']})")
        noun = "incident" if self.incidents == 1 else "incidents"
        return (f"run {self.run}: {self.incidents} {noun} in data up to {self.data_end:%Y-%m-%d %H:%M} UTC ({acts}); "
                f"{self.closed} auto-closed; messages: {msgs}" + "".join(f"; {x}" for x in extra))


def stored_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as kept with the run: channel URLs by their redacted names."""
    d = cfg.to_dict()
    for route in d.get("notify", []):
        route["url"] = redact_channel(route["url"])
    d.pop("store", None)
    return d


def store_url(cfg: Config, store: str | None) -> str | None:
    """``--store`` wins over ``store:`` in the config; ``None`` means the default SQLite file."""
    return store or cfg.store


def run_once(source: Any, config: Config | dict | str | Path | None = None, *, store: str | Store | None = None,
             until: Any = None, backfill: int = BACKFILL, claim_timeout: float = CLAIM_TIMEOUT,
             progress: Callable[[str], None] | None = None) -> RunReport:
    """Detect, explain, store and notify once (Contract 7).

    Earlier runs that were killed are marked ``abandoned`` first, and what they left in flight is
    taken over at once. The store is told the run is alive every :data:`HEARTBEAT` seconds.
    """
    from ..pipeline import as_config, detect

    cfg = as_config(config)
    chans = nt.channels(cfg.notify)
    name = redact_source(source)
    db = store if isinstance(store, Store) else open_store(store_url(cfg, store))
    try:
        abandoned = db.abandon_dead_runs(liveness.alive, claim_timeout)
        run_id = db.start_run(name, stored_config(cfg), liveness.Process.me())
        with liveness.Heartbeat(lambda: db.heartbeat(run_id), HEARTBEAT):
            try:
                result = detect(source, cfg, until=until, progress=progress, expected=db.expected_patterns())
                report = _record(db, run_id, name, result, backfill)
                report.abandoned = abandoned
                report.notes = list(result.notes)
                _notify_all(db, run_id, chans, claim_timeout, cfg, report)
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
        db.finish_run(run_id, "failed", error=redact_text(f"{type(e).__name__}: {e}")[:500])
    except SleuthError:
        pass


def _record(db: Store, run_id: int, source: str, result, backfill: int) -> RunReport:
    cube = result.cube
    step = cube.config.step
    end = cube.complete_until if cube.complete_until is not None else cube.buckets[-1] + step
    data_end = end.to_pydatetime()
    previous = db.last_data_end(source)
    notify_from = data_end - step * backfill
    report = RunReport(run=run_id, incidents=len(result.incidents), data_end=data_end, notify_from=notify_from)
    young = result.learning()
    if young:
        left = max(m.full_days - m.days for m in young.values())
        report.learning = {"metrics": len(young), "of": len(cube.totals()),
                           "mature_by": f"{data_end + dt.timedelta(days=left):%Y-%m-%d}"}
    if previous is not None:
        notify_from = min(notify_from, previous)
    open_from = data_end - step * MAX_GAP  # the detector still bridges a gap this long
    from ..snapshot import Snapshot

    snap = Snapshot.from_detection(result, source)
    db.save_snapshot(source, run_id, snap.meta(), snap.blob())
    seen = set()
    for inc in result.incidents:
        done = db.upsert({**inc.to_dict(), "chart": snap.charts.get(inc.id)}, run_id, open_from, notify_from)
        seen.add(done.key)
        report.actions[done.action] = report.actions.get(done.action, 0) + 1
    report.closed = db.close_recovered(seen, set(cube.keys.property.astype(str)), set(cube.metrics), run_id,
                                       open_from)
    return report


@dataclass
class _Sent:
    """What one channel's thread did: merged into the run's report."""

    held: int = 0
    messages: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    timeouts: int = 0


def _notify_all(db: Store, run_id: int, chans: list[nt.Channel], claim_timeout: float, cfg: Config,
                report: RunReport) -> None:
    """Every channel at once, each in its own thread within its own deadline: a hung channel delays
    no other. A channel seen for the first time is owed only what ends after ``--backfill``."""
    if not chans:
        return
    since = {ch.key: db.register_channel(ch.key, ch.name, report.notify_from, run_id) for ch in chans}
    with ThreadPoolExecutor(max_workers=len(chans), thread_name_prefix="sleuth-notify") as pool:
        done = list(pool.map(lambda ch: _notify(db, run_id, ch, claim_timeout, cfg, since[ch.key]), chans))
    for sent in done:
        report.held += sent.held
        report.deferred += sent.deferred
        report.timeouts += sent.timeouts
        for status, n in sent.messages.items():
            report.messages[status] = report.messages.get(status, 0) + n


def _notify(db: Store, run_id: int, ch: nt.Channel, claim_timeout: float, cfg: Config,
            since: dt.datetime | None) -> _Sent:
    """Send what this channel is owed, except what quiet hours, the cool-down or the daily digest
    hold back: that stays pending and goes out with a later run."""
    until = time.monotonic() + ch.route.deadline
    now = dt.datetime.now(dt.timezone.utc)
    local = now.astimezone(ZoneInfo(cfg.timezone))
    stale = now.replace(tzinfo=None) - dt.timedelta(seconds=claim_timeout)
    owed = db.pending(ch.key, ch.route.min_severity, ch.route.metrics, stale, since)
    pending = owed
    if ch.route.quiet_at(local.time()):
        pending = [i for i in pending if i["severity"] == "high"]
    if ch.route.cooldown_minutes:
        since_ = now.replace(tzinfo=None) - dt.timedelta(minutes=ch.route.cooldown_minutes)
        recent = db.recently_notified(ch.key, since_)
        pending = [i for i in pending if (i["property"], i["metric"], i["segment"]) not in recent]
    digest: list[dict] = []
    if ch.route.digest_at:
        slot = ch.route.last_digest(local).astimezone(dt.timezone.utc).replace(tzinfo=None)
        later = [i for i in pending if i["severity"] != "high"]
        pending = [i for i in pending if i["severity"] == "high"]
        if later and not db.digest_sent(ch.key, slot):
            digest = later
    sent = _Sent(held=len(owed) - len(pending) - len(digest))
    batches = [(g, False) for g in nt.group_linked(pending)] + ([(digest, True)] if digest else [])
    with Sender(ch.route.url) as sender:
        if batches:
            sender.start()  # the process imports apprise while the first claim is written
        for k, (group, is_digest) in enumerate(batches):
            if time.monotonic() >= until:  # out of time for this run: the rest stays pending
                sent.deferred += len(batches) - k
                break
            _deliver(db, run_id, ch, sender, group, stale, sent, is_digest, until, link=cfg.dashboard_url)
    return sent


def _deliver(db: Store, run_id: int, ch: nt.Channel, sender: Sender, group: list[dict], stale: dt.datetime,
             sent: _Sent, digest: bool, until: float, link: str | None = None) -> None:
    """Claim, send and record one message (with a link to the dashboard when one is configured)."""
    mine = db.claim(group, ch.key, run_id, stale)
    if not mine:
        return
    title, body, kind = nt.digest(mine, link) if digest else nt.message(mine, link)
    mid = ("digest-" if digest else "") + nt.message_id(mine)
    r = ch.route
    ok, attempts, timeouts = send(sender, title, f"{body}\n\nmessage {mid}", kind, retries=r.retries,
                                  backoff=r.backoff, timeout=r.timeout, until=until)
    sent.timeouts += timeouts
    status = db.mark(mine, ch.key, ok, attempts, r.dead_letter_after, mid)
    sent.messages[status] = sent.messages.get(status, 0) + 1


@dataclass
class WatchSummary:
    """What a bounded ``watch`` did: runs, runs that failed, and messages the last run left undelivered."""

    runs: int = 0
    failed: int = 0
    undelivered: int = 0

    @property
    def exit_code(self) -> int:
        if self.runs and self.failed == self.runs:
            return 2
        return EXIT_UNDELIVERED if self.undelivered else 0


def watch(source: Any, config: Config | dict | str | Path | None = None, *, store: str | None = None,
          every: float | None = None, max_runs: int | None = None, on_run: Callable[[RunReport], None] | None = None,
          on_error: Callable[[SleuthError], None] | None = None, sleep: Callable[[float], None] = time.sleep,
          **kwargs: Any) -> WatchSummary:
    """Run every ``every`` seconds (default: one granularity step) until ``max_runs``.

    Each run reads all the data and announces whatever is new since the last finished run, so a
    watch that was down catches up on its next run. A failing run is reported and the loop goes on:
    the database away, or input that cannot be read yet (a file being rewritten, say). Only a bad
    config stops it, since no later run could do better.
    """
    from ..pipeline import as_config

    cfg = as_config(config)
    period = every if every is not None else cfg.step.total_seconds()
    summary = WatchSummary()
    while max_runs is None or summary.runs < max_runs:
        t0 = time.monotonic()
        try:
            report = run_once(source, cfg, store=store, **kwargs)
            summary.undelivered = report.undelivered
            if on_run:
                on_run(report)
        except ConfigError:
            raise
        except SleuthError as e:
            summary.failed += 1
            if on_error:
                on_error(e)
        summary.runs += 1
        if max_runs is not None and summary.runs >= max_runs:
            break
        sleep(max(0.0, period - (time.monotonic() - t0)))
    return summary
