"""The Sessions page of the dashboard and the sessions section of the HTML report: the reduced
space as a scatter (clusters coloured, bots marked), cluster profiles, bot share over time, the
slowest pages, shifts in the mix of behaviour. Frames and figures here; ``render`` only lays
them out in Streamlit."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..pipeline import Detection

NOT_RUN = ("The sessions stage did not run on this source: it runs by itself on nested session exports "
           "(GA360 ga_sessions); for an event stream set `sessions: {enabled: true}` in sleuth.yaml.")
BOT_COLOR = "#d62728"


def reduced_scatter(det: Detection, sample: int = 4000, seed: int = 0) -> go.Figure:
    """Sessions in the first two reduced dimensions, coloured by cluster, bots as red crosses."""
    a = det.sessions
    f = a.frame
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(f), min(sample, len(f)), replace=False))
    s = f.iloc[rows]
    axis = [n.split(": ", 1)[1] if ": " in n else n for n in a.reduction.names]
    fig = go.Figure()
    people = s[s["label"] != "bot"]
    for name, part in people.groupby("cluster_name", sort=True):
        fig.add_trace(go.Scattergl(x=part["c1"], y=part["c2"], mode="markers", name=str(name),
                                   marker={"size": 4, "opacity": 0.6}))
    bots = s[s["label"] == "bot"]
    fig.add_trace(go.Scattergl(x=bots["c1"], y=bots["c2"], mode="markers", name="bots",
                               marker={"symbol": "x", "size": 6, "color": BOT_COLOR},
                               text=["; ".join(r or []) for r in bots["reasons"]], hoverinfo="text"))
    fig.update_layout(title=f"Sessions in the reduced space ({a.reduction.method}; a sample of {len(s):,})",
                      xaxis_title=axis[0] if axis else "1", yaxis_title=axis[1] if len(axis) > 1 else "2",
                      height=460, margin={"l": 40, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


def cluster_frame(det: Detection) -> pd.DataFrame:
    """Cluster profiles: share now and while training, conversion rate, what sets each apart."""
    return det.sessions.cluster_profiles()


def bot_frame(det: Detection, n: int = 50) -> pd.DataFrame:
    """The sessions flagged as bots or outliers, most unusual first, with their reasons."""
    f = det.sessions.flagged().head(n)
    return pd.DataFrame({"session": f["session_id"].astype(str), "start": f["start"], "label": f["label"],
                         "score": f["score"].round(3), "cluster": f["cluster_name"],
                         "reasons": ["; ".join(r or []) for r in f["reasons"]]})


def share_figure(det: Detection, metric: str = "bot_share") -> go.Figure | None:
    """A session metric (bot share by default) over time with its expected band."""
    if metric not in det.cube.metrics:
        return None
    from ..snapshot import Snapshot
    from . import data as d

    return d.metric_figure(Snapshot.from_detection(det), metric)


def slowest_pages(det: Detection, metric: str = "page_latency_ms", days: int = 7, n: int = 10) -> pd.DataFrame:
    """Pages by their mean over the last ``days`` (weighted by views), against the weeks before."""
    cube = det.cube
    if metric not in cube.metrics:
        return pd.DataFrame(columns=["page", "last days", "before", "change", "incidents"])
    k = cube.keys
    rows = np.flatnonzero(((k.metric == metric) & (k.dimension == "page")).to_numpy())
    cut = cube.buckets[-1] - pd.Timedelta(days=days)
    recent = (cube.buckets > cut)
    incidents: dict[str, int] = {}
    for inc in det.incidents:
        if inc.metric == metric and "page" in inc.segment:
            incidents[inc.segment["page"]] = incidents.get(inc.segment["page"], 0) + 1
    out = []
    for i in rows:
        num, den = np.nan_to_num(cube.numerator[i]), np.nan_to_num(cube.denominator[i])
        now = num[recent].sum() / den[recent].sum() if den[recent].sum() > 0 else np.nan
        before = num[~recent].sum() / den[~recent].sum() if den[~recent].sum() > 0 else np.nan
        page = str(k.segment.iat[i])
        out.append({"page": page, "last days": now, "before": before,
                    "change": now / before - 1 if before and np.isfinite(before) else np.nan,
                    "incidents": incidents.get(page, 0)})
    frame = pd.DataFrame(out, columns=["page", "last days", "before", "change", "incidents"])
    return frame.sort_values("last days", ascending=False, na_position="last").head(n).reset_index(drop=True)


def shift_frame(det: Detection) -> pd.DataFrame:
    """Shifts in the mix of behaviour: the cluster-share incidents, described."""
    from ..sessions.output import shift_records

    recs = shift_records(det)
    cols = ["cluster", "start", "end", "share", "expected share", "what the sessions did"]
    return pd.DataFrame([[r["cluster"], r["start"], r["end"], r["share"], r["expected_share"], r["description"]]
                         for r in recs], columns=cols)


def reduction_text(det: Detection) -> list[str]:
    """How the behaviour was reduced and why, then each component in words."""
    a = det.sessions
    return [f"{a.reduction.why}.", *a.reduction.names, f"Clusters: {a.clusters.chosen_by}."]


def summary_text(det: Detection) -> str:
    s = det.sessions.summary()
    return (f"{s['sessions']:,} sessions; {s['bots']:,} look like bots and {s['outliers']:,} more are outliers "
            f"({det.sessions.method} scores); models learned on the sessions before {s['train_until']}.")


# --------------------------------------------------------------------------- the HTML report

def report_section(det: Detection) -> str:
    """The sessions section of ``sleuth report`` (empty when the stage did not run); it comes
    first on the page, so its first chart carries plotly's JavaScript."""
    if det.sessions is None:
        return ""
    from .report import _table

    parts = ["<section id='sessions'><h2>Sessions and pages</h2>", f"<p>{html.escape(summary_text(det))}</p>",
             "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in reduction_text(det)) + "</ul>",
             "<h3>Behaviour clusters</h3>", _table(cluster_frame(det), percent=("share", "training share", "conversion rate")),
             reduced_scatter(det, sample=1500).to_html(full_html=False, include_plotlyjs=True)]
    fig = share_figure(det)
    if fig is not None:
        parts += ["<h3>Bot share</h3>", fig.to_html(full_html=False, include_plotlyjs=False)]
    parts += ["<h3>Shifts in the mix of behaviour</h3>", _table(shift_frame(det), percent=("share", "expected share")),
              "<h3>Slowest pages (mean load time, ms)</h3>", _table(slowest_pages(det), percent=("change",)),
              "<h3>Bots and outliers (the most unusual)</h3>", _table(bot_frame(det, 20)), "</section>"]
    return "\n".join(parts)


# --------------------------------------------------------------------------- the Streamlit page

def render(det: Detection) -> Any:
    """Lay the page out (called by the dashboard app)."""
    import streamlit as st

    st.header("Sessions")
    if det.sessions is None:
        st.info(NOT_RUN)
        return
    st.write(summary_text(det))
    with st.expander("How the behaviour was reduced, and why", expanded=False):
        for line in reduction_text(det):
            st.write(line)
    st.plotly_chart(reduced_scatter(det), width="stretch")
    st.subheader("Behaviour clusters")
    st.dataframe(cluster_frame(det), hide_index=True, width="stretch")
    fig = share_figure(det)
    if fig is not None:
        st.subheader("Bot share")
        st.plotly_chart(fig, width="stretch")
    st.subheader("Shifts in the mix of behaviour")
    shifts = shift_frame(det)
    if len(shifts):
        st.dataframe(shifts, hide_index=True, width="stretch")
    else:
        st.write("None: the mix of behaviour stayed within its usual range.")
    st.subheader("Slowest pages")
    st.dataframe(slowest_pages(det), hide_index=True, width="stretch")
    st.subheader("Bots and outliers")
    st.dataframe(bot_frame(det), hide_index=True, width="stretch")
    return None


__all__ = ["reduced_scatter", "cluster_frame", "bot_frame", "share_figure", "slowest_pages", "shift_frame",
           "reduction_text", "report_section", "render", "NOT_RUN"]
