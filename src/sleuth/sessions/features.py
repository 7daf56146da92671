"""Per-session features and per-page-view facts, computed in the engine (group-bys and window
functions over the hits, forms and clicks tables; no per-row Python).

Behaviour features describe how a session moved; outcomes (conversions, revenue) are kept apart,
so a cluster's conversion rate is a finding rather than an input.
"""
from __future__ import annotations

import ibis
import numpy as np
import pandas as pd

from .source import SessionTables

#: behaviour features and what a high or a low value reads as (for cluster names and reasons)
BEHAVIOUR = {
    "pages": ("many pages", "a single page", "pages"),
    "unique_page_share": ("new pages each step", "repeating pages", "share of pages seen for the first time"),
    "events": ("many events", "few events", "events"),
    "clicks": ("many clicks", "few clicks", "clicks"),
    "time_on_site": ("long visits", "short visits", "time on site (s)"),
    "dwell": ("slow reading", "quick page turns", "seconds per page"),
    "click_gap": ("unhurried clicks", "rapid clicks", "seconds between clicks"),
    "click_spread": ("irregular clicks", "regular clicks", "spread of click gaps"),
    "forms": ("form fillers", "no forms", "forms"),
    "form_fill": ("slow form filling", "fast form filling", "seconds to fill a form"),
}
#: features kept on a log scale (counts and durations are heavy-tailed)
LOG = ("pages", "events", "clicks", "time_on_site", "dwell", "click_gap", "forms", "form_fill")
OUTCOMES = ("conversions", "revenue")


def fmt_value(v: float) -> str:
    """A feature's value as people read it: 2.35, 38, 1,204 (``-`` when there is none)."""
    if v is None or not np.isfinite(v):
        return "-"
    return f"{v:.2f}" if abs(v) < 10 and v != int(v) else f"{v:,.0f}"


def session_features(tables: SessionTables) -> pd.DataFrame:
    """One row per session: keys, start, context, behaviour features, outcomes and the raw
    quantities the bot rules read (fastest form, click gaps, page span)."""
    h = tables.hits
    is_page = h.kind == "page"
    hits = h.group_by("sid").aggregate(
        pages=is_page.sum().cast("int64"),
        unique_pages=h.page.nunique(where=is_page),
        events=(h.kind == "event").sum().cast("int64"),
        conversions=(h.kind == "conversion").sum().cast("int64"),
        revenue=h.revenue.sum(),
        first_page=h.off.min(where=is_page), last_page=h.off.max(where=is_page),
        first_hit=h.off.min(), last_hit=h.off.max(), landing=h.page.argmin(h.off, where=is_page),
    )
    s = tables.sessions
    out = s.join(hits, "sid")  # a session without hits has no behaviour: counted in a note below
    if tables.clicks is not None:
        c = tables.clicks
        w = ibis.window(group_by=c.sid, order_by=c.off)
        gaps = c.mutate(gap=c.off - c.off.lag().over(w))
        clicks = gaps.group_by("sid").aggregate(
            clicks=gaps.count(), click_gap=gaps.gap.median(), gap_q1=gaps.gap.quantile(0.25),
            gap_q3=gaps.gap.quantile(0.75), n_gaps=gaps.gap.count(), last_click=gaps.off.max())
        out = out.left_join(clicks, "sid").drop("sid_right")
    if tables.forms is not None:
        f = tables.forms
        forms = f.group_by("sid").aggregate(forms=f.count(), form_fill=f.fill.median(), fastest_form=f.fill.min())
        out = out.left_join(forms, "sid").drop("sid_right")
    frame = out.to_pyarrow().to_pandas()
    empty = int(s.count().execute()) - len(frame)
    if empty and not any("without hits" in n for n in tables.notes):
        tables.notes.append(f"{empty:,} sessions without hits skipped (no behaviour to describe)")
    for col in ("clicks", "n_gaps", "forms"):
        if col not in frame:
            frame[col] = 0
    for col in ("click_gap", "gap_q1", "gap_q3", "last_click", "form_fill", "fastest_form"):
        if col not in frame:
            frame[col] = np.nan
    frame = frame.fillna({"pages": 0, "events": 0, "conversions": 0, "revenue": 0.0, "unique_pages": 0,
                          "clicks": 0, "n_gaps": 0, "forms": 0})
    for col in ("pages", "events", "conversions", "clicks", "n_gaps", "forms", "unique_pages"):
        frame[col] = frame[col].astype(np.int64)
    end = np.fmax(frame["last_hit"].to_numpy(float), np.nan_to_num(frame["last_click"].to_numpy(float), nan=-np.inf))
    frame["time_on_site"] = np.clip(end - frame["first_hit"].to_numpy(float), 0, None)
    pages = frame["pages"].to_numpy(float)
    span = (frame["last_page"] - frame["first_page"]).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["dwell"] = np.where(pages >= 2, span / np.maximum(pages - 1, 1), np.nan)
        frame["unique_page_share"] = np.where(pages > 0, frame["unique_pages"] / np.maximum(pages, 1), np.nan)
        # spread of the click gaps: interquartile range over median (a pause between pages does not move it)
        frame["click_spread"] = np.where(frame["click_gap"] > 0, (frame["gap_q3"] - frame["gap_q1"]) / frame["click_gap"], np.nan)
        frame["page_rate"] = np.where((pages >= 2) & (span > 0), (pages - 1) / span * 60.0, np.nan)
    frame["start"] = pd.to_datetime(frame["start"], utc=True).dt.tz_localize(None)
    frame = frame.sort_values(["start", "sid"], kind="stable").reset_index(drop=True)
    return frame


def behaviour_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The behaviour features on the scale the models see: log1p for counts and durations."""
    x = frame[features].to_numpy(float, copy=True)
    for j, f in enumerate(features):
        if f in LOG:
            x[:, j] = np.log1p(np.clip(x[:, j], 0, None))
    return x


def usable_features(frame: pd.DataFrame, train: np.ndarray) -> list[str]:
    """Behaviour features the source has and that vary in the training sessions."""
    out = []
    for f in BEHAVIOUR:
        v = frame.loc[train, f].to_numpy(float)
        v = v[np.isfinite(v)]
        if len(v) >= 10 and np.nanstd(v) > 0 and len(np.unique(v[: 10_000])) > 1:
            out.append(f)
    return out


def page_facts(tables: SessionTables) -> ibis.Table:
    """One row per page view: ``sid``, ``off``, ``page``, ``latency``, ``ajax``, ``bytes``, ``events``
    (hits before the next page view) and ``exit`` (the session's last page view), with the
    session's context.

    Hits are numbered in order within their session (``seq``), so a page view's events are the
    hits between it and the next page view: a window over the page views alone, not all hits.
    Events kept in a list inside each page (``pages[].events[]``) share their page's number and
    are counted per page instead.
    """
    h = tables.hits
    pages = h.filter(h.kind == "page")
    if tables.events_inside:
        ev = h.filter(h.kind != "page")
        per = ev.group_by(["sid", "seq"]).aggregate(n_events=ev.count())
        pages = pages.left_join(per, ["sid", "seq"]).drop("sid_right", "seq_right")
        w = ibis.window(group_by=pages.sid, order_by=pages.seq)
        j = pages.mutate(exit=pages.seq.lead().over(w).isnull().cast("float64"), n_events=pages.n_events.fill_null(0))
    else:
        hits = h.group_by("sid").aggregate(n_hits=h.count(), last_seq=h.seq.max())
        w = ibis.window(group_by=pages.sid, order_by=pages.seq)
        nxt = pages.mutate(next_seq=pages.seq.lead().over(w))
        j = nxt.join(hits, "sid")
        j = j.mutate(exit=j.next_seq.isnull().cast("float64"),
                     n_events=(j.next_seq.fill_null(j.last_seq + 1) - j.seq - 1).clip(lower=0))
    s = tables.sessions.select("sid", "start", "property", *[c for c in tables.context])
    j = j.join(s, "sid")
    return j.select(sid=j.sid, start=j.start, off=j.off, page=j.page.fill_null("(none)"), latency=j.latency,
                    ajax=j.ajax, bytes=j.bytes, events=j.n_events.cast("float64"), exit=j.exit,
                    property=j.property, **{c: j[c] for c in tables.context})
