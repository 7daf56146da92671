"""Notifications through apprise: routing, one message per group of linked incidents, retries.

A channel is known to the store by a hash of its URL and to people by its redacted name
(:func:`sleuth.redact.redact_channel`); the URL itself is never printed or logged (apprise's own log
names URLs, so its logger is silenced).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from ..config import NotifyRoute
from ..errors import ConfigError
from ..incidents import lead_key, segment_text
from ..redact import redact_channel, url_hash

logging.getLogger("apprise").addHandler(logging.NullHandler())
logging.getLogger("apprise").propagate = False


#: a channel is known to the store by this hash of its URL, never by the URL
channel_hash = url_hash


@dataclass
class Channel:
    """One ``notify:`` route, ready to send."""

    route: NotifyRoute
    index: int

    @property
    def key(self) -> str:
        return channel_hash(self.route.url)

    @property
    def name(self) -> str:
        return redact_channel(self.route.url)

    def apprise(self):
        """An apprise object for this URL; an unreadable URL is a config error (redacted)."""
        import apprise

        app = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
        if not app.add(self.route.url):
            raise ConfigError(f"notify[{self.index}].url: apprise cannot use {self.name}; see "
                              "https://github.com/caronc/apprise/wiki for URL formats")
        return app


def channels(routes: list[NotifyRoute]) -> list[Channel]:
    out = [Channel(r, i) for i, r in enumerate(routes)]
    for ch in out:
        ch.apprise()  # validate every URL before any work is done
    return out


def group_linked(incs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One message per group of linked incidents: the link step's groups (each incident's
    ``linked`` lists the ids of the others, see :mod:`sleuth.explain.links`). ``incs`` must be
    sorted by start; groups come in the order of their first incident and keep that order."""
    parent = list(range(len(incs)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    ids = {inc["data"]["id"]: k for k, inc in enumerate(incs)}
    for k, inc in enumerate(incs):
        for other in inc["data"].get("linked", []):
            if other in ids:
                parent[root(ids[other])] = root(k)
    groups: dict[int, list[dict]] = {}
    for k, inc in enumerate(incs):
        groups.setdefault(root(k), []).append(inc)
    return list(groups.values())


def _num(x: Any) -> str:
    from ..console import fmt_number

    return fmt_number(x)


def _when(inc: dict) -> str:
    start, end = inc["start_at"], inc["end_at"]
    span = end - start
    hours = span.total_seconds() / 3600
    dur = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"
    state = "ongoing" if inc["state"] in ("open", "acknowledged") else "over"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({dur}, {state})"


def describe(inc: dict) -> list[str]:
    """The lines a person needs to act on one incident."""
    d = inc["data"]
    change = f"{d['change']:+.0%}" if d.get("change") is not None else "n/a"
    shape = f" ({d['shape']})" if d.get("shape") else ""
    lines = [f"{d['metric']} ({inc['property']}, {segment_text(d['segment'])}) went {d['direction']}: {change}{shape}",
             f"  when: {_when(inc)}",
             f"  actual {_num(d.get('actual'))} vs expected {_num(d.get('expected'))} "
             f"(normal band {_num(d.get('lower'))} to {_num(d.get('upper'))}); severity {d['severity']}, "
             f"score {d['score']}"]
    causes = [f"{segment_text(rc['segment'])} (explains {rc.get('explains', 0):.0%})" for rc in d.get("root_causes", [])[:3]]
    if causes:
        lines.append("  top root causes: " + "; ".join(causes))
    steps = [f"{t['from']} -> {t['to']} {t['baseline']:.0%} -> {t['during']:.0%}" for t in d.get("transitions", [])[:2]]
    if steps:
        lines.append("  event paths changed: " + "; ".join(steps))
    disrupted = d.get("disrupted_event") or {}
    if disrupted:
        lines.append(f"  most disrupted event: {disrupted['event']} ({disrupted['moved']:,} of its "
                     f"{disrupted['moves']:,} next steps went elsewhere than usual)")
    moved = [f"{p} {c:+.0%}" for p, c in (d.get("peers") or {}).items() if c is not None]
    if moved:
        lines.append("  other properties, same hours: " + ", ".join(moved))
    if d.get("holiday"):
        lines.append(f"  holiday: {d['holiday']}")
    young = d.get("learning")
    if young:
        lines.append(f"  still learning: {young['days']:g} of the {young['full_days']:g} days of history it needs; "
                     "its band is wider than it will be")
    lines.append(f"  id {inc['key']} (revision {inc['revision']}): sleuth alerts show {inc['key']}")
    return lines


def dashboard_link(link: str, key: str | None = None) -> str:
    """The dashboard's page for one incident (or its alerts inbox)."""
    return f"{link.rstrip('/')}/?incident={key}" if key else f"{link.rstrip('/')}/?page=Alerts"


def message(group: list[dict], link: str | None = None) -> tuple[str, str, str]:
    """``(title, body, notify type)`` for a group: the worst incident first, the rest as linked,
    and where to look closer when ``link`` (the dashboard's address) is given."""
    ordered = sorted(group, key=lambda i: lead_key(i["severity"], i["data"].get("change"), i["key"]))
    head = ordered[0]["data"]
    change = f" {head['change']:+.0%}" if head.get("change") is not None else ""
    title = f"[sleuth {head['severity']}] {head['metric']} {head['direction']}{change} on {ordered[0]['property']}"
    if len(group) > 1:
        title += f" (+{len(group) - 1} linked)"
    body = describe(ordered[0])
    if len(ordered) > 1:
        body += ["", "Linked anomalies in the same hours:"]
        for inc in ordered[1:]:
            body += describe(inc)
            why = head.get("link_evidence", {}).get(inc["data"].get("id"))
            if why:
                body.append(f"  linked because: {'; '.join(why)}")
    if link:
        body += ["", f"Open in the dashboard: {dashboard_link(link, ordered[0]['key'])}"]
    kind = {"high": "failure", "medium": "warning"}.get(ordered[0]["severity"], "info")
    return title, "\n".join(body), kind


def digest(incs: list[dict], link: str | None = None) -> tuple[str, str, str]:
    """``(title, body, notify type)`` of the daily digest: every held incident, oldest first."""
    props = sorted({i["property"] for i in incs})
    title = f"[sleuth digest] {len(incs)} anomalies on {', '.join(props)}"
    body: list[str] = []
    for inc in incs:
        body += [*describe(inc), ""]
    if link:
        body.append(f"Open the alerts inbox: {dashboard_link(link)}")
    return title, "\n".join(body).rstrip(), "info"


def message_id(group: list[dict]) -> str:
    """The same group at the same revisions gets the same id: receivers can drop a repeat by it."""
    key = "|".join(f"{i['key']}@{i['revision']}" for i in sorted(group, key=lambda i: i["key"]))
    return hashlib.sha1(key.encode()).hexdigest()[:16]
