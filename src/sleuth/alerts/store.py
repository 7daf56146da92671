"""The alert store (Contract 7): runs, incidents, notifications and feedback in SQLAlchemy Core.

SQLite by default, PostgreSQL by URL. Exactly-once rests on the database, not on the process:
an incident's key is the primary key, a notification is claimed by inserting a row that is unique
per (incident, channel, revision), and every change is one short transaction. A run that dies keeps
what it committed; the next run finds the rest still pending and finishes it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..errors import InputError, SleuthError
from ..incidents import SEVERITY_RANK
from ..redact import redact_source, redact_url

DEFAULT_STORE = "sqlite:///.sleuth/sleuth.db"
STATES = ("open", "acknowledged", "resolved", "auto_closed")
LABELS = ("confirmed", "expected", "false_alarm", "mute")

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", sa.DateTime, nullable=False),
    sa.Column("finished", sa.DateTime),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("config", sa.JSON, nullable=False),   # resolved config, channel URLs redacted
    sa.Column("status", sa.String(16), nullable=False),  # running | finished | failed | abandoned
    sa.Column("data_end", sa.DateTime),             # end of the last complete bucket the run saw
    sa.Column("summary", sa.JSON),
    sa.Column("error", sa.Text),
    # who runs it, to tell a live run from one killed with kill -9 (see :mod:`.liveness`)
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("process", sa.String(64)),            # the process's start time: a reused pid is not it
    sa.Column("heartbeat", sa.DateTime),            # refreshed while the run lives
)

snapshots = sa.Table(
    "snapshots", metadata,
    # the latest snapshot of each source (see sleuth.snapshot): what the surfaces read instead of detecting
    sa.Column("source", sa.String(500), primary_key=True),   # the source's redacted name
    sa.Column("run", sa.Integer),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),       # compressed float32 arrays
)

channels = sa.Table(
    "channels", metadata,
    sa.Column("key", sa.String(16), primary_key=True),     # hash of the URL, never the URL
    sa.Column("name", sa.String(300), nullable=False),     # the redacted URL
    sa.Column("added", sa.DateTime, nullable=False),
    sa.Column("added_run", sa.Integer),
    # incidents that ended at or before this are not owed to the channel: a channel added later
    # starts from what arrives after it (NULL: owed everything, as for channels older than this table)
    sa.Column("since", sa.DateTime),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("key", sa.String(40), primary_key=True),  # the Incident.id of its first sighting
    sa.Column("property", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("segment", sa.String(500), nullable=False),  # canonical JSON, '{}' for the total
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("start_at", sa.DateTime, nullable=False),
    sa.Column("end_at", sa.DateTime, nullable=False),      # exclusive
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("change", sa.Float),
    sa.Column("data", sa.JSON, nullable=False),            # Contract 3 JSON with its explanation
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("quiet", sa.String(16)),  # why not notified: muted | expected | false_alarm | history | None
    sa.Column("revision", sa.Integer, nullable=False),      # +1 each time it grows materially
    sa.Column("first_run", sa.Integer, nullable=False),
    sa.Column("last_run", sa.Integer, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
    sa.Index("ix_incidents_series", "property", "metric", "segment"),
)

notifications = sa.Table(
    "notifications", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident", sa.String(40), sa.ForeignKey("incidents.key"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),    # hash of the URL, never the URL
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),     # sending | sent | failed | dead_letter
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("run", sa.Integer),
    sa.Column("claimed", sa.DateTime, nullable=False),
    sa.Column("sent", sa.DateTime),
    sa.Column("message", sa.String(40)),                    # the group message this went out in
    sa.UniqueConstraint("incident", "channel", "revision", name="uq_notification_once"),
)

feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident", sa.String(40), sa.ForeignKey("incidents.key")),
    sa.Column("property", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("segment", sa.String(500), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("label", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created", sa.DateTime, nullable=False),
)


class StoreError(SleuthError):
    """The store cannot be opened or went away; the message carries the redacted URL."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def redact_db_url(url: str) -> str:
    """The store URL with its password (and secret query values) hidden: see :mod:`sleuth.redact`."""
    return redact_url(url)


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` (and ``postgres://``) means psycopg 3; SQLite paths get their folder."""
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    return url


def _engine(url: str) -> sa.Engine:
    safe = redact_db_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(f"store {safe}: not a database URL; use sqlite:///path.db or "
                         "postgresql://user@host/db") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60})
        _sqlite_write_locks(engine)
        return engine
    if backend != "postgresql":
        raise StoreError(f"store {safe}: unsupported database {backend!r}; use sqlite:// or postgresql://")
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    except ModuleNotFoundError:
        raise StoreError(f"store {safe}: the PostgreSQL driver is missing; install sleuth[postgres]") from None


def _sqlite_write_locks(engine: sa.Engine) -> None:
    """Every SQLite transaction takes the write lock at BEGIN, so concurrent runs queue up instead of
    failing with 'database is locked' when two readers both try to write (pysqlite's recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA secure_delete = ON")  # a value overwritten (a redacted URL) leaves no trace

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def segment_key(segment: dict[str, str]) -> str:
    return json.dumps(dict(sorted(segment.items())), ensure_ascii=False)


def _ts(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None)


@dataclass
class Upsert:
    """What storing one detected incident did: ``new``, ``grown``, ``updated`` or ``same``."""

    key: str
    action: str


class Store:
    """One database: open it with :func:`open_store`; every method is one transaction."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.safe_url = redact_db_url(self.url)
        self.engine = _engine(self.url)
        with self.tx("opening") as c:
            if c.dialect.name == "postgresql":  # two first runs at once must not both create the tables
                c.execute(sa.text("SELECT pg_advisory_xact_lock(7201551)"))
            metadata.create_all(c)
            _upgrade(c)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Database failures become one line that names the redacted URL (never the password)."""
        try:
            yield
        except sa_exc.IntegrityError:
            raise  # a unique key doing its job: the caller decides (another run got there first)
        except sa_exc.DBAPIError as e:
            text = str(getattr(e, "orig", e)).strip()
            reason = text.splitlines()[0] if text else type(e).__name__
            raise StoreError(f"store {self.safe_url}: {doing} failed: {reason}") from None

    @contextmanager
    def tx(self, doing: str) -> Iterator[sa.Connection]:
        with self.guard(doing), self.engine.begin() as conn:
            yield conn

    # -- runs -------------------------------------------------------------------------------------
    def start_run(self, source: str, config: dict[str, Any], me: Any = None) -> int:
        """Record a new run as ``running``; ``me`` is the :class:`~.liveness.Process` running it."""
        who = {"host": me.host, "pid": me.pid, "process": me.start} if me is not None else {}
        with self.tx("starting a run") as c:
            t = now()
            return c.execute(runs.insert().values(started=t, heartbeat=t, source=source, config=config,
                                                  status="running", **who)).inserted_primary_key[0]

    def heartbeat(self, run_id: int) -> None:
        with self.tx("refreshing the run's heartbeat") as c:
            c.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running").values(heartbeat=now()))

    def abandon_dead_runs(self, alive: Any, stale_after: float) -> int:
        """Mark ``abandoned`` the runs still ``running`` whose process is gone: on this host, its pid
        no longer runs the same process; elsewhere, no heartbeat for ``stale_after`` seconds.
        ``alive(host, pid, process)`` says True, False or None (cannot tell from here)."""
        cutoff = now() - dt.timedelta(seconds=stale_after)
        with self.tx("reading runs") as c:
            rows = c.execute(sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.process, runs.c.heartbeat,
                                       runs.c.started).where(runs.c.status == "running")).all()
        dead = []
        for r in rows:
            verdict = alive(r.host, r.pid, r.process) if r.pid is not None else None
            if verdict is False or (verdict is None and (r.heartbeat or r.started) < cutoff):
                dead.append(r.id)
        if dead:
            with self.tx("marking abandoned runs") as c:
                c.execute(runs.update().where(runs.c.id.in_(dead), runs.c.status == "running").values(
                    status="abandoned", finished=now(), error="the process ended without finishing the run"))
        return len(dead)

    def finish_run(self, run_id: int, status: str, data_end: dt.datetime | None = None,
                   summary: dict | None = None, error: str | None = None) -> None:
        with self.tx("finishing the run") as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(
                finished=now(), status=status, data_end=data_end, summary=summary, error=error))

    def register_channel(self, key: str, name: str, since: dt.datetime, run_id: int) -> dt.datetime | None:
        """Remember a channel the first time a run sends to it; returns its ``since`` (see the
        ``channels`` table). A channel that already has notifications predates the table: owed all."""
        with self.tx("registering channels") as c:
            row = c.execute(sa.select(channels.c.since, channels.c.name).where(channels.c.key == key)).first()
            if row is not None:
                if row.name != name:
                    c.execute(channels.update().where(channels.c.key == key).values(name=name))
                return row.since
            old = c.execute(sa.select(notifications.c.id).where(notifications.c.channel == key).limit(1)).first()
            since_ = None if old is not None else since
            try:
                with c.begin_nested():
                    c.execute(channels.insert().values(key=key, name=name, added=now(), added_run=run_id,
                                                       since=since_))
            except sa_exc.IntegrityError:  # another run registered it meanwhile
                return c.execute(sa.select(channels.c.since).where(channels.c.key == key)).scalar()
            return since_

    def channels(self) -> list[dict]:
        with self.tx("reading channels") as c:
            return [dict(r._mapping) for r in c.execute(sa.select(channels).order_by(channels.c.added))]

    # -- snapshots --------------------------------------------------------------------------------
    def save_snapshot(self, source: str, run_id: int | None, meta: dict[str, Any], blob: bytes) -> None:
        """Keep ``source``'s latest snapshot (one row a source, replaced by each run)."""
        with self.tx("storing the snapshot") as c:
            c.execute(snapshots.delete().where(snapshots.c.source == source))
            c.execute(snapshots.insert().values(source=source, run=run_id, created=now(), meta=meta, data=blob))

    def snapshot_row(self, source: str | None = None) -> dict | None:
        """The latest snapshot of ``source`` (or of whichever source was run last): ``meta``, ``data``,
        ``run``, ``created``; None when there is none."""
        q = sa.select(snapshots).order_by(snapshots.c.created.desc()).limit(1)
        if source is not None:
            q = q.where(snapshots.c.source == source)
        with self.tx("reading the snapshot") as c:
            row = c.execute(q).first()
        return dict(row._mapping) if row is not None else None

    def latest_run(self) -> int | None:
        """The id of the last finished run: a surface that shows the store is fresh while it is the same."""
        with self.tx("reading runs") as c:
            return c.execute(sa.select(sa.func.max(runs.c.id)).where(runs.c.status == "finished")).scalar()

    def last_data_end(self, source: str) -> dt.datetime | None:
        """The end of the data the last finished run of ``source`` saw: where catching up starts."""
        with self.tx("reading runs") as c:
            return c.execute(sa.select(sa.func.max(runs.c.data_end)).where(
                runs.c.source == source, runs.c.status == "finished")).scalar()

    def runs(self) -> list[dict]:
        with self.tx("reading runs") as c:
            return [dict(r._mapping) for r in c.execute(sa.select(runs).order_by(runs.c.id))]

    # -- incidents --------------------------------------------------------------------------------
    def upsert(self, inc: dict[str, Any], run_id: int, open_from: dt.datetime,
               notify_from: dt.datetime) -> Upsert:
        """Store one detected incident; a continuation of a stored one updates it (see :func:`_match`).

        An incident that ends at or after ``open_from`` is still open; one that ended at or before
        ``notify_from`` and is new is history. Retried once on a unique-key clash: another run
        inserted the same incident meanwhile.
        """
        try:
            with self.tx("storing incidents") as c:
                return self._upsert(c, inc, run_id, open_from, notify_from)
        except sa_exc.IntegrityError:  # inserted by another run meanwhile: now it is an update
            with self.tx("storing incidents") as c:
                return self._upsert(c, inc, run_id, open_from, notify_from)

    def _upsert(self, c: sa.Connection, inc: dict, run_id: int, open_from: dt.datetime,
                notify_from: dt.datetime) -> Upsert:
        seg = segment_key(inc["segment"])
        start, end = _ts(inc["start"]), _ts(inc["end"])
        ongoing = end >= open_from
        row = _match(c, inc, seg, start, end)
        quiet = _suppression(c, inc["property"], inc["metric"], seg, inc["direction"], inc["severity"])
        t = now()
        if row is None:
            if quiet is None and end <= notify_from:
                quiet = "history"  # over before this deployment was watching: stored, not announced
            c.execute(incidents.insert().values(
                key=inc["id"], property=inc["property"], metric=inc["metric"], segment=seg,
                direction=inc["direction"], start_at=start, end_at=end, severity=inc["severity"],
                score=inc["score"], change=inc.get("change"), data=inc,
                state="open" if ongoing else "auto_closed", quiet=quiet, revision=1,
                first_run=run_id, last_run=run_id, updated=t))
            return Upsert(inc["id"], "new")
        grew = SEVERITY_RANK[inc["severity"]] > SEVERITY_RANK[row.severity]
        reopened = row.state in ("auto_closed", "resolved") and ongoing and end > row.end_at
        state = row.state
        if reopened:
            state = "open"
        elif not ongoing and state in ("open", "acknowledged"):
            state = "auto_closed"
        if row.quiet == "false_alarm" or (row.quiet == "history" and not (grew or reopened)):
            quiet = quiet or row.quiet  # the incident's own reasons outlive the series' rules
        data = {**inc, "id": row.key}
        changed = (end, inc["severity"], state, quiet) != (row.end_at, row.severity, row.state, row.quiet)
        c.execute(incidents.update().where(incidents.c.key == row.key).values(
            start_at=min(start, row.start_at), end_at=max(end, row.end_at), severity=inc["severity"],
            score=inc["score"], change=inc.get("change"), data=data, state=state, quiet=quiet,
            revision=row.revision + (1 if grew or reopened else 0), last_run=run_id, updated=t))
        return Upsert(row.key, "grown" if grew or reopened else "updated" if changed else "same")

    def close_recovered(self, seen: set[str], properties: set[str], metrics: set[str], run_id: int,
                        open_from: dt.datetime) -> int:
        """Open incidents of this run's series that the run no longer finds: back in band."""
        with self.tx("closing recovered incidents") as c:
            q = incidents.update().where(
                incidents.c.state.in_(("open", "acknowledged")), incidents.c.end_at < open_from,
                incidents.c.property.in_(properties), incidents.c.metric.in_(metrics),
                incidents.c.key.not_in(seen) if seen else sa.true(),
            ).values(state="auto_closed", last_run=run_id, updated=now())
            return c.execute(q).rowcount

    def incidents(self, state: str | None = None, limit: int | None = None) -> list[dict]:
        with self.tx("reading incidents") as c:
            q = sa.select(incidents).order_by(incidents.c.start_at.desc(), incidents.c.key)
            if state:
                q = q.where(incidents.c.state == state)
            if limit:
                q = q.limit(limit)
            return [dict(r._mapping) for r in c.execute(q)]

    def get(self, key: str) -> dict:
        """One incident by its key or an unambiguous prefix of it, with its notifications and feedback."""
        with self.tx("reading incidents") as c:
            rows = c.execute(sa.select(incidents).where(incidents.c.key.startswith(key, autoescape=True))
                             .limit(2)).all()
            if len(rows) != 1:
                what = "no incident" if not rows else "more than one incident starts with"
                raise InputError(f"{what} {key!r} in the store; `sleuth alerts list` shows the ids")
            out = dict(rows[0]._mapping)
            out["notifications"] = [dict(r._mapping) for r in c.execute(
                sa.select(notifications).where(notifications.c.incident == out["key"]).order_by(notifications.c.id))]
            out["feedback"] = [dict(r._mapping) for r in c.execute(
                sa.select(feedback).where(feedback.c.incident == out["key"]).order_by(feedback.c.id))]
            return out

    def set_state(self, key: str, state: str) -> dict:
        if state not in STATES:
            raise InputError(f"state must be one of {', '.join(STATES)}; got {state!r}")
        row = self.get(key)
        with self.tx("changing an incident") as c:
            c.execute(incidents.update().where(incidents.c.key == row["key"]).values(state=state, updated=now()))
        return {**row, "state": state}

    def add_feedback(self, key: str, label: str, note: str | None = None) -> dict:
        """Record a label. ``mute`` and ``expected`` quieten this incident and its pattern from now on;
        ``false_alarm`` resolves this incident and keeps it quiet; ``confirmed`` only records."""
        if label not in LABELS:
            raise InputError(f"feedback label must be one of {', '.join(LABELS)}; got {label!r}")
        row = self.get(key)
        with self.tx("recording feedback") as c:
            c.execute(feedback.insert().values(
                incident=row["key"], property=row["property"], metric=row["metric"], segment=row["segment"],
                direction=row["direction"], severity=row["severity"], label=label, note=note, created=now()))
            values: dict[str, Any] = {"updated": now()}
            if label != "confirmed":
                values["quiet"] = {"mute": "muted", "expected": "expected", "false_alarm": "false_alarm"}[label]
            if label == "false_alarm":
                values["state"] = "resolved"
            c.execute(incidents.update().where(incidents.c.key == row["key"]).values(**values))
        return self.get(row["key"])

    # -- notifications ----------------------------------------------------------------------------
    def pending(self, channel: str, min_severity: str, metrics: list[str] | None,
                stale_before: dt.datetime, since: dt.datetime | None = None) -> list[dict]:
        """Incidents this channel still owes a message for (current revision), oldest first; with
        ``since``, only those that ended after it (a channel added later)."""
        n = notifications
        join = incidents.outerjoin(n, sa.and_(n.c.incident == incidents.c.key, n.c.channel == channel,
                                              n.c.revision == incidents.c.revision))
        sev = [s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[min_severity]]
        q = (sa.select(incidents).select_from(join)
             .where(incidents.c.quiet.is_(None), incidents.c.state != "resolved", incidents.c.severity.in_(sev),
                    sa.or_(n.c.id.is_(None), n.c.status == "failed", _takeover(n, stale_before)))
             .order_by(incidents.c.start_at, incidents.c.key))
        if metrics is not None:
            q = q.where(incidents.c.metric.in_(metrics))
        if since is not None:
            q = q.where(incidents.c.end_at > since)
        with self.tx("reading pending notifications") as c:
            return [dict(r._mapping) for r in c.execute(q)]

    def expected_patterns(self) -> list[dict]:
        """Windows of incidents people labelled ``expected``: later runs widen the band at the
        same hours of the following weeks (see :func:`sleuth.pipeline.detect`)."""
        q = (sa.select(incidents.c.property, incidents.c.metric, incidents.c.segment,
                       incidents.c.start_at, incidents.c.end_at)
             .select_from(feedback.join(incidents, feedback.c.incident == incidents.c.key))
             .where(feedback.c.label == "expected").distinct())
        with self.tx("reading feedback") as c:
            return [{"property": r.property, "metric": r.metric, "segment": json.loads(r.segment),
                     "start": pd.Timestamp(r.start_at), "end": pd.Timestamp(r.end_at)} for r in c.execute(q)]

    def recently_notified(self, channel: str, since: dt.datetime) -> set[tuple[str, str, str]]:
        """The series (property, metric, segment) this channel got a message about since ``since``."""
        q = (sa.select(incidents.c.property, incidents.c.metric, incidents.c.segment).distinct()
             .select_from(incidents.join(notifications, notifications.c.incident == incidents.c.key))
             .where(notifications.c.channel == channel, notifications.c.status == "sent",
                    notifications.c.sent >= since))
        with self.tx("reading notifications") as c:
            return {tuple(r) for r in c.execute(q)}

    def digest_sent(self, channel: str, since: dt.datetime) -> bool:
        """Whether this channel got its digest since ``since``."""
        q = sa.select(notifications.c.id).where(
            notifications.c.channel == channel, notifications.c.status == "sent",
            notifications.c.message.startswith("digest-"), notifications.c.sent >= since).limit(1)
        with self.tx("reading notifications") as c:
            return c.execute(q).first() is not None

    def claim(self, group: list[dict], channel: str, run_id: int, stale_before: dt.datetime) -> list[dict]:
        """Claim the group's notifications in one transaction; returns those this run now owns.

        A claim is a row in state ``sending``: inserting it is unique per (incident, channel,
        revision), so of two concurrent runs only one gets it. A failed one, or one left ``sending``
        by a run that is no longer running (abandoned: killed mid-send) or claimed more than the
        claim timeout ago, is taken over by an update.
        """
        mine = []
        with self.tx("claiming notifications") as c:
            for inc in group:
                where = sa.and_(notifications.c.incident == inc["key"], notifications.c.channel == channel,
                                notifications.c.revision == inc["revision"])
                try:
                    with c.begin_nested():
                        c.execute(notifications.insert().values(
                            incident=inc["key"], channel=channel, revision=inc["revision"], status="sending",
                            attempts=0, run=run_id, claimed=now()))
                    mine.append(inc)
                    continue
                except sa_exc.IntegrityError:
                    pass
                taken = c.execute(notifications.update().where(where, sa.or_(
                    notifications.c.status == "failed", _takeover(notifications, stale_before)))
                    .values(status="sending", run=run_id, claimed=now())).rowcount
                if taken == 1:
                    mine.append(inc)
        return mine

    def mark(self, group: list[dict], channel: str, ok: bool, attempts: int, dead_letter_after: int,
             message: str) -> str:
        """Record the outcome of sending a claimed group; returns the status written."""
        with self.tx("recording notifications") as c:
            status = "sent"
            for inc in group:
                where = sa.and_(notifications.c.incident == inc["key"], notifications.c.channel == channel,
                                notifications.c.revision == inc["revision"])
                total = (c.execute(sa.select(notifications.c.attempts).where(where)).scalar() or 0) + attempts
                status = "sent" if ok else ("dead_letter" if total >= dead_letter_after else "failed")
                c.execute(notifications.update().where(where).values(
                    status=status, attempts=total, sent=now() if ok else None, message=message))
        return status

    def notifications(self) -> list[dict]:
        with self.tx("reading notifications") as c:
            return [dict(r._mapping) for r in c.execute(sa.select(notifications).order_by(notifications.c.id))]


def _takeover(n: sa.Table, stale_before: dt.datetime) -> sa.ColumnElement:
    """A ``sending`` claim another run may take over: its run is no longer running (it was killed
    mid-send and found abandoned), or it was claimed before ``stale_before``."""
    gone = sa.select(runs.c.id).where(runs.c.status != "running")
    return sa.and_(n.c.status == "sending", sa.or_(n.c.claimed < stale_before, n.c.run.in_(gone)))


#: columns added since the first release: (table, column), created on open when missing
_ADDED_COLUMNS = (("runs", "host"), ("runs", "pid"), ("runs", "process"), ("runs", "heartbeat"))


def _upgrade(c: sa.Connection) -> None:
    """Bring a store written by an older sleuth up to date, keeping every row: add missing columns
    and redact event-source URLs that older runs stored with their password."""
    have = {t: {col["name"] for col in sa.inspect(c).get_columns(t)} for t in {t for t, _ in _ADDED_COLUMNS}}
    for table, column in _ADDED_COLUMNS:
        if column not in have[table]:
            col = metadata.tables[table].c[column]
            c.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {col.type.compile(c.dialect)}"))
    for rid, source in c.execute(sa.select(runs.c.id, runs.c.source).where(runs.c.source.contains("@"))).all():
        safe = redact_source(source)
        if safe != source:
            c.execute(runs.update().where(runs.c.id == rid).values(source=safe))


def _match(c: sa.Connection, inc: dict, seg: str, start: dt.datetime, end: dt.datetime):
    """The stored incident this detection continues, locked for update.

    The same key (an incident's id comes from where it starts, so a growing incident keeps it), or
    else the same series and direction with a window that overlaps or touches the stored one: the
    first key wins, so an incident whose start moved is not stored twice.
    """
    by_key = c.execute(sa.select(incidents).where(incidents.c.key == inc["id"]).with_for_update()).first()
    if by_key is not None:
        return by_key
    return c.execute(sa.select(incidents).where(
        incidents.c.property == inc["property"], incidents.c.metric == inc["metric"],
        incidents.c.segment == seg, incidents.c.direction == inc["direction"],
        incidents.c.start_at <= end, incidents.c.end_at >= start,
    ).order_by(incidents.c.start_at).limit(1).with_for_update()).first()


def _suppression(c: sa.Connection, prop: str, metric: str, seg: str, direction: str, severity: str) -> str | None:
    """``muted`` when the series was muted; ``expected`` when a change this way and no more severe
    was labelled expected; else ``None`` (notify)."""
    rules = c.execute(sa.select(feedback.c.label, feedback.c.direction, feedback.c.severity).where(
        feedback.c.property == prop, feedback.c.metric == metric, feedback.c.segment == seg,
        feedback.c.label.in_(("mute", "expected")))).all()
    if any(r.label == "mute" for r in rules):
        return "muted"
    if any(r.direction == direction and SEVERITY_RANK[severity] <= SEVERITY_RANK[r.severity] for r in rules):
        return "expected"
    return None


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default ``sqlite:///.sleuth/sleuth.db``), tables created if needed."""
    return Store(url or DEFAULT_STORE)
