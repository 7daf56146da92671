"""Frames, sentences and plotly figures behind the dashboard and the HTML report.

The Streamlit script only lays out widgets; everything it shows comes from here, so it can be
unit-tested without a browser and reused by ``sleuth report``.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..calendar import holiday_names, local_dates, local_time
from ..config import Config
from ..console import fmt_number
from ..incidents import Incident, lead_key, segment_text
from ..metrics.cube import TOTAL
from ..snapshot import Snapshot, incident_from

#: how many buckets of each metric the overview's sparkline shows (a week of hours)
SPARK_BUCKETS = 168
ANOMALY_COLOR = "#d62728"


def metric_label(name: str) -> str:
    """``conversion_rate`` -> ``Conversion rate``."""
    text = name.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------------------------- overview

def overview_frame(snap: Snapshot, store_rows: list[dict] | None = None) -> pd.DataFrame:
    """One row per metric of every property: latest value, a sparkline of the last week, incidents.

    ``incidents`` counts the snapshot's incidents; ``open`` counts the store's incidents still
    open or acknowledged (0 without a store), so the overview shows what still needs someone.
    """
    found: dict[tuple[str, str], int] = {}
    for inc in snap.incidents:
        found[(inc.property, inc.metric)] = found.get((inc.property, inc.metric), 0) + 1
    still_open: dict[tuple[str, str], int] = {}
    for r in store_rows or []:
        if r["state"] in ("open", "acknowledged"):
            still_open[(r["property"], r["metric"])] = still_open.get((r["property"], r["metric"]), 0) + 1
    rows = []
    block = snap.totals
    for i in range(len(block.keys)):
        prop, metric = str(block.keys.property.iat[i]), str(block.keys.metric.iat[i])
        values = block.data[i, :, 0].astype(float)
        seen = values[np.isfinite(values)]
        young = snap.learning.get(f"{prop}|{metric}")
        rows.append({
            "property": prop, "metric": metric,
            "learning": f"{young['stage']}: {young['days']:g} of {young['full_days']:g} days" if young else "",
            "latest": float(seen[-1]) if len(seen) else np.nan,
            "sparkline": [float(v) for v in np.nan_to_num(values[-SPARK_BUCKETS:])],
            "incidents": found.get((prop, metric), 0),
            "open": still_open.get((prop, metric), 0),
        })
    return pd.DataFrame(rows, columns=["property", "metric", "learning", "latest", "sparkline", "incidents", "open"])


def filter_incidents(snap: Snapshot, property: str | None = None, metric: str | None = None,
                     severity: str | None = None) -> list[Incident]:
    """The snapshot's incidents narrowed by any of property, metric and severity (None: all)."""
    return [i for i in snap.incidents
            if (property is None or i.property == property) and (metric is None or i.metric == metric)
            and (severity is None or i.severity == severity)]


def store_frame(rows: list[dict], state: str | None = None, severity: str | None = None) -> pd.DataFrame:
    """The store's incidents as a table for the inbox, newest first."""
    cols = ["key", "state", "quiet", "property", "metric", "segment", "start", "end", "direction", "change",
            "severity"]
    out = []
    for r in rows:
        if (state and r["state"] != state) or (severity and r["severity"] != severity):
            continue
        seg = segment_text(json.loads(r["segment"]), "all")
        out.append({"key": r["key"], "state": r["state"], "quiet": r["quiet"] or "", "property": r["property"],
                    "metric": r["metric"], "segment": seg, "start": r["start_at"], "end": r["end_at"],
                    "direction": r["direction"], "change": r["change"], "severity": r["severity"]})
    return pd.DataFrame(out, columns=cols)


def alert_groups(rows: list[dict]) -> list[list[dict]]:
    """The store's incidents as people received them: one group per alert (linked incidents
    together), each led by its worst (the one the message was titled by), the newest alert first."""
    from ..alerts.notify import group_linked

    ordered = sorted(rows, key=lambda r: (r["start_at"], r["key"]))
    groups = [sorted(g, key=lambda r: lead_key(r["severity"], r["change"], r["key"])) for g in group_linked(ordered)]
    return sorted(groups, key=lambda g: (max(r["start_at"] for r in g), g[0]["key"]), reverse=True)


def alerts_frame(groups: list[list[dict]], timezone: str = "UTC") -> pd.DataFrame:
    """One row per alert: its lead incident's sentence, how many linked incidents it carries, the
    worst severity, its state and whether it went out."""
    rows = []
    for g in groups:
        lead = g[0]
        inc = incident_from({**lead["data"], "id": lead["key"]})
        rows.append({"key": lead["key"], "severity": lead["severity"], "state": lead["state"],
                     "alert": incident_summary(inc, timezone), "linked": len(g) - 1,
                     "quiet": lead["quiet"] or "", "start": lead["start_at"]})
    return pd.DataFrame(rows, columns=["key", "severity", "state", "alert", "linked", "quiet", "start"])


# ---------------------------------------------------------------------------------- metric page

def calendar_spans(config: Config, buckets: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """``(start, end, label)`` of the weekend and holiday days (local dates) inside ``buckets``,
    in UTC, for shading: a change on a Saturday or on Christmas is read differently."""
    if not len(buckets):
        return []
    names = holiday_names(pd.DatetimeIndex(buckets), config.holidays, config.timezone) if config.holidays \
        else [None] * len(buckets)
    labels = {}
    for day_local, name in zip(local_dates(buckets, config.timezone), names):
        if name:
            labels[day_local] = name
        elif day_local.dayofweek >= 5 and day_local not in labels:
            labels[day_local] = "weekend"
    spans = []
    for day_local, label in sorted(labels.items()):
        start = pd.Timestamp(day_local).tz_localize(config.timezone).tz_convert("UTC").tz_localize(None)
        spans.append((start, start + pd.Timedelta(days=1), label))
    return spans


def _window(frame: pd.DataFrame, since: Any, until: Any) -> pd.DataFrame:
    if since is not None:
        frame = frame[frame.bucket >= pd.Timestamp(since)]
    if until is not None:
        frame = frame[frame.bucket < pd.Timestamp(until)]
    return frame


def band_figure(frame: pd.DataFrame, title: str, config: Config) -> go.Figure:
    """A series with its expected value and band, anomalies marked, weekends and holidays shaded."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame.bucket, y=frame.upper, mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip", name="upper"))
    fig.add_trace(go.Scatter(x=frame.bucket, y=frame.lower, mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(31,119,180,0.15)", name="expected band"))
    fig.add_trace(go.Scatter(x=frame.bucket, y=frame.expected, mode="lines", name="expected",
                             line={"dash": "dot", "color": "#1f77b4"}))
    fig.add_trace(go.Scatter(x=frame.bucket, y=frame.value, mode="lines", name="actual", line={"color": "#222"}))
    odd = frame[frame.is_anomaly.astype(bool)]
    fig.add_trace(go.Scatter(x=odd.bucket, y=odd.value, mode="markers", name="anomaly",
                             marker={"color": ANOMALY_COLOR, "size": 7}))
    return _finish(fig, title, config, pd.DatetimeIndex(frame.bucket))


def _finish(fig: go.Figure, title: str, config: Config, buckets: pd.DatetimeIndex) -> go.Figure:
    for start, end, label in calendar_spans(config, buckets):
        named = {} if label == "weekend" else {"annotation_text": label, "annotation_position": "top left"}
        fig.add_vrect(x0=start, x1=end, fillcolor="#999" if label == "weekend" else "#ff7f0e", opacity=0.12,
                      line_width=0, **named)
    fig.update_layout(title=title, height=380, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      hovermode="x unified", legend={"orientation": "h", "y": -0.15})
    return fig


def metric_figure(snap: Snapshot, metric: str, property: str | None = None, *, dimension: str | None = None,
                  segment: dict[str, str] | None = None, since: Any = None, until: Any = None) -> go.Figure:
    """The series (the total, or one ``segment`` such as ``{"os": "iOS"}``) with its expected value
    and band, anomalies marked, weekends and holidays shaded.

    With ``dimension`` it drills down instead: one line per value of that dimension (no band: a
    dozen bands on one chart are unreadable).
    """
    prop = property or (snap.properties[0] if snap.properties else "")
    if dimension:
        fig = go.Figure()
        buckets = pd.DatetimeIndex([])
        for value in snap.segment_values(prop, metric, dimension):
            s = _window(snap.series(metric, prop, dimension, value), since, until)
            fig.add_trace(go.Scatter(x=s.bucket, y=s.value, mode="lines", name=value))
            buckets = pd.DatetimeIndex(s.bucket)
        return _finish(fig, f"{metric_label(metric)} by {dimension} ({prop})", snap.config, buckets)
    dim, seg = next(iter(segment.items())) if segment else (TOTAL, TOTAL)
    frame = _window(snap.series(metric, prop, dim, seg), since, until)
    return band_figure(frame, f"{metric_label(metric)} ({prop}{', ' + dim + '=' + seg if segment else ''})",
                       snap.config)


# ---------------------------------------------------------------------------------- incident page

def _segment_text(segment: dict[str, str]) -> str:
    return ", ".join(str(v) for v in segment.values())


def _clock(ts: pd.Timestamp) -> str:
    return f"{ts:%H:%M}"


def incident_summary(inc: Incident, timezone: str = "UTC") -> str:
    """What happened, in one sentence, e.g. "Conversion rate fell 54 % below expected on iOS
    from 09:00 to 15:00 on Tue 03 Mar; iOS explains 87 % of the drop"."""
    start = local_time(inc.start_time(), timezone)
    end = local_time(inc.end_time(), timezone)
    down = inc.direction == "down"
    what = metric_label(inc.metric)
    if inc.change is not None and np.isfinite(inc.change):
        moved = f"{'fell' if down else 'rose'} {abs(inc.change):.0%} {'below' if down else 'above'} expected"
        moved = moved.replace("%", " %")
    else:
        moved = f"went {'down' if down else 'up'} to {fmt_number(inc.actual)} (expected {fmt_number(inc.expected)})"
    where = f"on {_segment_text(inc.segment)}" if inc.segment else f"on {inc.property}"
    if end - start <= pd.Timedelta(days=1):
        when = f"from {_clock(start)} to {_clock(end)} on {start:%a %d %b}"
    else:
        when = f"from {start:%a %d %b %H:%M} to {end:%a %d %b %H:%M}"
    text = f"{what} {moved} {where} {when}"
    if inc.root_causes:
        rc = inc.root_causes[0]
        share = min(max(float(rc.get("explains") or 0.0), 0.0), 1.0)
        text += f"; {_segment_text(rc['segment'])} explains {share:.0%} of the {'drop' if down else 'rise'}".replace("%", " %")
    return text


def incident_context(inc: Incident, timezone: str = "UTC") -> dict[str, Any]:
    """Day of week, holiday, time of day (local) and revenue at stake: what a reader weighs first."""
    start = local_time(inc.start_time(), timezone)
    end = local_time(inc.end_time(), timezone)
    hour = start.hour
    part = "night" if hour < 6 else "morning" if hour < 12 else "afternoon" if hour < 18 else "evening"
    return {"day of week": f"{start:%A}", "holiday": inc.holiday or "none",
            "time of day": f"{part}, {start:%H:%M}–{end:%H:%M} ({timezone})",
            "revenue at stake": inc.revenue_at_stake}


def root_cause_frame(inc: Incident) -> pd.DataFrame:
    """The root-cause segments, strongest first: what each explains of the change."""
    rows = [{"segment": segment_text(rc["segment"], ""),
             "explains": rc.get("explains"), "actual": rc.get("actual"), "expected": rc.get("expected"),
             "score": rc.get("score")} for rc in inc.root_causes]
    return pd.DataFrame(rows, columns=["segment", "explains", "actual", "expected", "score"])


def contribution_frame(inc: Incident, dimension: str) -> pd.DataFrame:
    """One dimension's values: expected vs actual and their share of the change (the drill-down)."""
    rows = inc.contributions.get(dimension, [])
    return pd.DataFrame([{"segment": str(r["segment"]), "expected": r.get("expected"), "actual": r.get("actual"),
                          "share": r.get("share"), "explains": r.get("explains")} for r in rows],
                        columns=["segment", "expected", "actual", "share", "explains"])


def root_cause_figure(inc: Incident, dimension: str | None = None) -> go.Figure:
    """Bars of how much of the change each root cause (or each value of ``dimension``) explains."""
    frame = contribution_frame(inc, dimension) if dimension else root_cause_frame(inc)
    frame = frame.iloc[::-1]  # strongest on top
    fig = go.Figure(go.Bar(x=frame.explains, y=frame.segment, orientation="h", marker_color=ANOMALY_COLOR,
                           text=[f"{x:.0%}" if x is not None and np.isfinite(x) else "" for x in frame.explains]))
    fig.update_layout(title="share of the change explained" + (f" by {dimension}" if dimension else ""),
                      xaxis_tickformat=".0%", height=120 + 28 * max(len(frame), 1),
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def path_frame(inc: Incident) -> pd.DataFrame:
    """The event-path change: share of sessions taking each next step, usually vs during."""
    return pd.DataFrame([{"step": f"{t['from']} → {t['to']}", "usually": t["baseline"], "during": t["during"],
                          "change": t["change"], "moves": t["moves"]} for t in inc.transitions],
                        columns=["step", "usually", "during", "change", "moves"])


def path_figure(inc: Incident) -> go.Figure:
    """Usual vs during share for every transition that changed significantly."""
    frame = path_frame(inc).iloc[::-1]
    fig = go.Figure([go.Bar(x=frame.usually, y=frame.step, orientation="h", name="usually", marker_color="#999"),
                     go.Bar(x=frame.during, y=frame.step, orientation="h", name="during", marker_color=ANOMALY_COLOR)])
    fig.update_layout(title="event-path change (share of sessions taking each next step)", barmode="group",
                      xaxis_tickformat=".0%", height=140 + 40 * max(len(frame), 1),
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig


def linked_figure(snap: Snapshot, inc: Incident) -> go.Figure | None:
    """The incident and those linked to it as a network: an edge per direct link, thicker the
    more evidence it has (overlap, shared root cause, metric tree, event network; hover for
    which); None when it stands alone."""
    import networkx as nx

    group = [inc] + [i for i in snap.incidents if i.id in inc.linked]
    if len(group) < 2:
        return None
    graph = nx.Graph()
    graph.add_nodes_from(range(len(group)))
    for a in range(len(group)):
        for b in range(a + 1, len(group)):
            why = group[a].link_evidence.get(group[b].id)
            if why:
                graph.add_edge(a, b, weight=len(why), why="; ".join(why))
    pos = nx.circular_layout(graph)
    traces = [go.Scatter(x=[pos[a][0], pos[b][0]], y=[pos[a][1], pos[b][1]], mode="lines", hoverinfo="text",
                         hovertext=d["why"], line={"width": 1.5 * d["weight"], "color": "#bbb"}, showlegend=False)
              for a, b, d in graph.edges(data=True)]
    colors = {"high": ANOMALY_COLOR, "medium": "#ff7f0e", "low": "#1f77b4"}
    traces.append(go.Scatter(
        x=[pos[k][0] for k in graph.nodes], y=[pos[k][1] for k in graph.nodes], mode="markers+text",
        text=[f"{metric_label(g.metric)}<br>{_segment_text(g.segment)} {(g.change or 0):+.0%}" for g in group],
        textposition="top center", hovertext=[g.id for g in group], showlegend=False,
        marker={"size": [28 if k == 0 else 18 for k in graph.nodes], "color": [colors.get(g.severity, "#999") for g in group],
                "line": {"width": [3 if k == 0 else 0 for k in graph.nodes], "color": "black"}}))
    fig = go.Figure(traces)
    fig.update_layout(title=f"linked anomalies: {len(group)} incidents, one alert", height=420,
                      xaxis={"visible": False}, yaxis={"visible": False},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def disrupted_text(inc: Incident) -> str | None:
    """One sentence on the event whose next steps changed most, or None."""
    d = inc.disrupted_event
    if not d:
        return None
    return (f"Most disrupted event: **{d['event']}**: {d['moved']:,} of its {d['moves']:,} next steps went "
            f"elsewhere than in the same hours of earlier weeks (distance {d['distance']:.0%}).")


def link_frame(snap: Snapshot, inc: Incident) -> pd.DataFrame:
    """The incidents sent in one alert with this one, and why each is linked to it directly
    (an empty reason: linked through others in the group)."""
    rows = [{"incident": i.id, "metric": metric_label(i.metric), "segment": segment_text(i.segment, "all"),
             "change": i.change, "why": "; ".join(inc.link_evidence.get(i.id, [])) or "through others in the group"}
            for i in snap.incidents if i.id in inc.linked]
    return pd.DataFrame(rows, columns=["incident", "metric", "segment", "change", "why"])


def peer_frame(inc: Incident) -> pd.DataFrame:
    """Whether the other properties moved too in the same window (relative change each)."""
    return pd.DataFrame([{"property": p, "change": c} for p, c in inc.peers.items()], columns=["property", "change"])


def incident_figure(snap: Snapshot, inc: Incident) -> go.Figure:
    """The incident's own series a few days either side (its stored chart), its window shaded."""
    seg = f", {segment_text(inc.segment, '')}" if inc.segment else ""
    fig = band_figure(snap.chart(inc), f"{metric_label(inc.metric)} ({inc.property}{seg})", snap.config)
    fig.add_vrect(x0=inc.start_time(), x1=inc.end_time(), fillcolor=ANOMALY_COLOR, opacity=0.12, line_width=0)
    return fig


def classifier_view(events, metrics: dict, inc: Incident) -> dict[str, Any]:
    """The classifier view of an incident (random forest + SHAP) over the ``events`` it was found
    in, computed on demand: it takes seconds, so detection and the store leave it out."""
    from ..explain.classifier import classify_incident

    return classify_incident(events, inc, metrics.get(inc.metric))


def classifier_summary(view: dict[str, Any]) -> str:
    """The verdict in a sentence: the causes, or why there is none, with the model's fit."""
    from ..explain.classifier import fit_text

    fit = fit_text(view)
    if view["causes"]:
        return "; ".join(c["text"] for c in view["causes"]) + f" ({fit})"
    return f"Unknown: {view['reason']} ({fit})"


def classifier_figure(view: dict[str, Any], top: int = 12) -> go.Figure:
    """Bars of each feature's mean |SHAP|, red when it makes an event more likely to be one of
    the incident's, blue when less; the noise feature RANDOM in grey as the yardstick."""
    from ..explain.classifier import NOISE

    rows = view["features"][:top]
    rows += [r for r in view["features"][top:] if r["feature"] == NOISE]  # the yardstick is always shown
    rows = rows[::-1]  # most important on top
    colors = ["#999" if r["feature"] == NOISE else ANOMALY_COLOR if r["direction"] > 0 else "#1f77b4" for r in rows]
    fig = go.Figure(go.Bar(x=[r["importance"] for r in rows], y=[r["feature"] for r in rows], orientation="h",
                           marker_color=colors,
                           hovertext=[{1: "more likely in the incident", -1: "less likely in the incident"}
                                      .get(r["direction"], "no direction") for r in rows]))
    auc = f"AUC {view['auc']:.2f}" if view.get("auc") is not None else "no model"
    fig.update_layout(title=f"classifier view: {view['verdict']} ({auc}); red = over-represented, blue = under",
                      xaxis_title="mean |SHAP|", height=140 + 26 * max(len(rows), 1),
                      margin={"l": 10, "r": 10, "t": 40, "b": 30})
    return fig
