"""Readable terminal output (rich): incident tables and the demo's comparison with the truth."""
from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from .console import fmt_number, narrow
from .incidents import Incident, lead_key, segment_text


def _fmt(x: float | None, ratio: bool, digits: int = 2) -> str:
    if x is None:
        return "-"
    if ratio and abs(x) < 1:
        return f"{x:.{digits}%}"
    return fmt_number(x)


def _span(inc: Incident) -> str:
    hours = (inc.end_time() - inc.start_time()) / pd.Timedelta(hours=1)
    return f"+{hours:.0f}h" if hours < 48 else f"+{hours / 24:.0f}d"


def _when(inc: Incident) -> str:
    return f"{inc.start_time():%a %b %d %H:%M} {_span(inc)}"


def cause_text(inc: Incident) -> str:
    if not inc.root_causes:
        return "site-wide" if not inc.segment else "-"
    rc = inc.root_causes[0]
    seg = segment_text(rc["segment"], "")
    return f"{seg} ({min(max(rc['explains'], 0), 1):.0%})"


def _severity(inc: Incident, text: str | None = None) -> str:
    color = {"high": "red", "medium": "yellow", "low": "cyan"}[inc.severity]
    return f"[{color}]{text or inc.severity}[/]"


def incidents_table(incidents: list[Incident], ratio_metrics: set[str], title: str = "Incidents",
                    small: bool | None = None) -> Table:
    """One row per incident; in a narrow terminal (< 110 columns, or ``small``) four columns that fit 80."""
    table = Table(title=title, title_justify="left", show_lines=False)
    if narrow() if small is None else small:  # 4 columns: the severity colours the change, the property goes with the metric
        for col, kw in [("when (UTC)", {"no_wrap": True}), ("what", {"overflow": "fold", "min_width": 20}),
                        ("change", {"justify": "right", "no_wrap": True}), ("cause", {"overflow": "fold"})]:
            table.add_column(col, **kw)
        for inc in incidents:
            ratio = inc.metric in ratio_metrics
            change = f"{inc.change:+.0%}" if inc.change is not None else "new"
            what = f"{inc.metric} · {inc.property}" + (f"\n{segment_text(inc.segment, '')}" if inc.segment else "")
            moved = f"{_severity(inc, change + ' ' + inc.severity)}\n{_fmt(inc.actual, ratio, 1)} vs {_fmt(inc.expected, ratio, 1)}"
            table.add_row(f"{inc.start_time():%b %d %H:%M}\n{_span(inc)}", what, moved, cause_text(inc))
        return table
    for col, kw in [("when (UTC)", {}), ("property", {}), ("metric", {}), ("segment", {}),
                    ("actual", {"justify": "right", "no_wrap": True}), ("expected", {"justify": "right", "no_wrap": True}),
                    ("change", {"justify": "right", "no_wrap": True}), ("sev", {}), ("shape", {}),
                    ("top root cause", {})]:
        table.add_column(col, **({"overflow": "fold"} | kw))
    for inc in incidents:
        ratio = inc.metric in ratio_metrics
        change = f"{inc.change:+.0%}" if inc.change is not None else "new"
        seg = segment_text(inc.segment, "(all)")
        table.add_row(_when(inc), inc.property, inc.metric, seg, _fmt(inc.actual, ratio), _fmt(inc.expected, ratio),
                      change, _severity(inc), inc.shape, cause_text(inc))
    return table


def _evidence_kinds(group: list[Incident]) -> str:
    """Which kinds of evidence join a group: overlap, root cause, metric tree, event network."""
    kinds = {"windows overlap": "time", "same root cause": "root cause", "same metric": "metric tree",
             "metric tree": "metric tree", "event network": "event network"}
    seen = {label for inc in group for why in inc.link_evidence.values() for reason in why
            for prefix, label in kinds.items() if reason.startswith(prefix)}
    return ", ".join(k for k in dict.fromkeys(kinds.values()) if k in seen)


def _label(inc: Incident) -> str:
    return f"{inc.metric} [{segment_text(inc.segment, '')}]" if inc.segment else inc.metric


def groups_table(incidents: list[Incident], title: str = "Alerts: linked incidents go out together",
                 small: bool | None = None) -> Table:
    """The grouped report: one row per alert (a group of linked incidents), led by its worst; in a
    narrow terminal (or ``small``) without the property column."""
    table = Table(title=title, title_justify="left")
    small = narrow() if small is None else small
    cols = ("when (UTC)", "lead incident", "also", "linked by") if small else \
        ("when (UTC)", "property", "lead incident", "also", "linked by")
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col == "when (UTC)")
    by_id = {i.id: i for i in incidents}
    seen: set[str] = set()
    for inc in incidents:
        if inc.id in seen:
            continue
        group = [inc, *(by_id[k] for k in inc.linked if k in by_id)]
        seen.update(g.id for g in group)
        group.sort(key=lambda x: lead_key(x.severity, x.change, x.id))
        lead = group[0]
        change = f" {lead.change:+.0%}" if lead.change is not None else ""
        also = ", ".join(sorted({_label(g) for g in group[1:]})) or "-"
        if small:
            table.add_row(f"{lead.start_time():%b %d %H:%M}\n{_span(lead)}", f"{lead.property}: {_label(lead)}{change}",
                          also, _evidence_kinds(group) or "-")
        else:
            table.add_row(_when(lead), lead.property, _label(lead) + change, also, _evidence_kinds(group) or "-")
    return table


def truth_table(evaluation: dict[str, Any], truth: list[Any]) -> Table:
    table = Table(title="Injected incidents vs what sleuth found", title_justify="left")
    small = narrow()
    for col in ("injected incident", "when (UTC)", "found", "metrics flagged", "delay", "root cause named",
                "explained by"):
        table.add_column({"root cause named": "cause named", "metrics flagged": "metrics"}.get(col, col) if small
                         else col, overflow="fold", min_width=15 if col == "injected incident" else None)
    for t, r in zip(truth, evaluation["per_incident"]):
        seg = segment_text(t.segment, "")
        name = f"{t.kind} ({t.property}{', ' + seg if seg else ''})"
        when = f"{t.start:%a %b %d %H:%M}–{t.end:%H:%M}"
        found = "[green]yes[/]" if r["found"] else "[red]no[/]"
        delay = "-" if r["delay_hours"] is None else f"{r['delay_hours']:+.0f} h"
        rc = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a (site-wide)"}[r["root_cause_ok"]]
        table.add_row(name, when, found, ", ".join(r["metrics_found"]) or "-", delay, rc,
                      ", ".join(r["explained_by"]) or "[red]none[/]")
    return table


#: a note that starts with this is a warning: something in the input a person should look at
WARNING = "warning: "


def print_notes(console: Console, notes: list[str], warnings_only: bool = False) -> None:
    """Notes dim, warnings (``"warning: …"``) in yellow, each on its own line."""
    from rich.text import Text

    for n in notes:
        if n.startswith(WARNING):
            console.print(Text(n, style="yellow"), soft_wrap=True)
        elif not warnings_only:
            console.print(Text(f"note: {n}", style="dim"), soft_wrap=True)
