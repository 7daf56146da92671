"""`sleuth report`: one self-contained HTML page about a period's incidents.

Everything is inline (plotly's JavaScript once, the charts as JSON), so the file opens offline and
can be mailed or archived: one section per incident with its sentence, its calendar context,
revenue at stake, root causes, path change, peers and a chart; on request (it takes seconds per
incident), the classifier view of the most severe ones.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..console import fmt_number
from ..incidents import SEVERITY_RANK, Incident
from ..snapshot import Snapshot
from . import data as d
from . import view
from .sessions import report_section as sessions_section

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-top: 1px solid #ddd; padding-top: 1em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.learning { background: #fff6db; border-left: 4px solid #e0a800; padding: .5em 1em; }
.context td:first-child { color: #666; } .high { color: #b00; } .medium { color: #b60; } .low { color: #06a; }
"""


def _percent(signed: bool) -> Callable[[Any], str]:
    return lambda x: "-" if x is None or pd.isna(x) else f"{x:+.0%}" if signed else f"{x:.0%}"


def _table(frame: pd.DataFrame, percent: tuple[str, ...] = ()) -> str:
    """A frame as an HTML table; ``percent`` columns as percentages (``change`` with its sign)."""
    if frame.empty:
        return "<p>none</p>"
    fmt = {c: _percent(c == "change") for c in percent}
    return frame.to_html(index=False, border=0, formatters=fmt, na_rep="-", float_format=fmt_number)


def _context(snap: Snapshot, inc: Incident) -> str:
    rows = []
    for k, v in d.incident_context(inc, snap.config.timezone).items():
        if k == "revenue at stake":
            v = "revenue within its usual band" if v is None else f"{v:+,.0f} against expected"
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>")
    return f"<table class='context'>{''.join(rows)}</table>"


def top_incidents(incidents: list[Incident], n: int) -> list[Incident]:
    """The ``n`` most severe incidents: by severity, then score, then the size of the change."""
    return sorted(incidents, key=lambda i: (-SEVERITY_RANK[i.severity], -i.score, -abs(i.change or 0), i.id))[:n]


def _classifier(view: dict[str, Any] | None) -> list[str]:
    if view is None:
        return []
    chart = d.classifier_figure(view).to_html(full_html=False, include_plotlyjs=False)
    return ["<h3>Classifier view</h3>", f"<p>{html.escape(d.classifier_summary(view))}</p>", chart]


def incident_section(snap: Snapshot, inc: Incident, with_js: bool, classifier: dict[str, Any] | None = None) -> str:
    """One incident: sentence, context, chart, root causes, path change, peers, and its
    ``classifier`` view when it was computed."""
    sentence = d.incident_summary(inc, snap.config.timezone)
    chart = d.incident_figure(snap, inc).to_html(full_html=False, include_plotlyjs=with_js)
    parts = [
        f"<section id='{inc.id}'><h2><span class='{inc.severity}'>{inc.severity}</span> · {html.escape(sentence)}</h2>",
        f"<p>{html.escape(inc.property)} · {html.escape(inc.metric)} · {inc.shape or '-'} · id <code>{inc.id}</code>"
        + (f" · found while its series was still learning ({inc.learning['days']:g} of "
           f"{inc.learning['full_days']:g} days)" if inc.learning else "") + "</p>",
        _context(snap, inc), chart,
        "<h3>Root causes</h3>", _table(d.root_cause_frame(inc), percent=("explains",)),
        "<h3>Event-path change</h3>", _table(d.path_frame(inc), percent=("usually", "during", "change")),
        "<h3>Peer properties in the same hours</h3>", _table(d.peer_frame(inc), percent=("change",)),
        "<h3>Linked anomalies (sent as one alert)</h3>", _table(d.link_frame(snap, inc), percent=("change",)),
        *_classifier(classifier), "</section>",
    ]
    return "\n".join(parts)


def render_report(snap: Snapshot, title: str, classifier: int = 0, events: Any = None) -> str:
    """The whole page; plotly's JavaScript is inlined with the first chart only. The
    ``classifier`` most severe incidents get their classifier view (``events``: the events and
    metric definitions it reads, see :func:`view.events_for`)."""
    incs = sorted(snap.incidents, key=lambda i: i.start)
    views = {}
    if classifier and incs:
        evs, metrics = events
        views = {inc.id: d.classifier_view(evs, metrics, inc) for inc in top_incidents(incs, classifier)}
    det = snap.detection  # the sessions stage's section needs the live analysis (not stored)
    with_sessions = det is not None and getattr(det, "sessions", None) is not None
    sections = [incident_section(snap, inc, with_js=(n == 0 and not with_sessions), classifier=views.get(inc.id))
                for n, inc in enumerate(incs)]
    toc = "".join(f"<li><a href='#{i.id}'>{html.escape(d.incident_summary(i, snap.config.timezone))}</a></li>"
                  for i in incs)
    body = "\n".join(sections) if sections else "<p>No incidents in this period.</p>"
    if with_sessions:
        body = sessions_section(det) + body
    note = f" The classifier view is shown for the {len(views)} most severe." if views else ""
    origin = (f"From the alert store: run {snap.run} ({snap.created} UTC), data up to {snap.data_end}."
              if snap.run else f"Detected over the data up to {snap.data_end}.")
    learning = snap.learning_text()
    banner = f"<p class='learning'>{html.escape(learning)}</p>" if learning else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(incs)} incidents.{note} {html.escape(origin)}</p>{banner}<ol>{toc}</ol>{body}</body></html>")


def write_report(source: Any, out: str | Path, config: Any = None, since: Any = None, until: Any = None,
                 progress: Callable[[str], None] | None = None, classifier: int = 0, store: str | None = None) -> dict:
    """Write the page about the incidents that start in ``[since, until)``: read from ``store``'s
    snapshot of ``source`` when a store is given (no detection), else detected over ``source``
    (data before ``until``), with the classifier view of the ``classifier`` most severe."""
    if store:
        snap = view.stored_snapshot(store, source)
        if snap is None:
            from ..errors import InputError
            from ..redact import redact_source

            what = f"of {redact_source(source)} " if source else ""
            raise InputError(f"the store {redact_source(store)} has no run {what}yet; `sleuth run SOURCE` fills it, "
                             "or leave out --store to detect now")
        snap = view.in_period(snap, since, until)
    else:
        snap = view.live_snapshot(source, config, since=since, until=until, progress=progress)
    events = view.events_for(source, config) if classifier and snap.incidents else None
    span = f"{since or 'the start'} to {until or 'the end'}"
    page = render_report(snap, f"sleuth report: {span}", classifier=classifier, events=events)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"out": str(out), "incidents": len(snap.incidents), "bytes": len(page.encode())}
