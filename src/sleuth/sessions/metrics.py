"""The sessions stage's findings as metrics of the cube, so the one detector finds, explains,
links, stores and alerts them like any other.

Two kinds of rows are added to the event table, each with the session's dimensions, so root
causes work on them as on events:
- ``(session)``: one per session at its start, with ``session.bot``, ``session.counted`` (a person's
  session), one 0/1 column per behaviour cluster, and the conversion model's expectation. The
  session's ``page`` is its landing page.
- ``(page)``: one per page view, with ``page.latency``, ``page.ajax_calls``, ``page.bytes``,
  ``page.events`` (events before the next page view) and ``page.exit``, and ``page.n_<x>`` = 1
  where the view has that measurement (GA360 samples load times).

They carry no ``session_id``, so every metric over sessions or users, every path and every
classifier view ignores them. Cluster shares and page metrics describe people: bots' sessions
and page views are never in them (bots have ``bot_share``). ``exclude_bots`` also removes bots'
events from every event metric; the ``(session)`` rows stay so the bot share is still measured.
"""
from __future__ import annotations

import re

import ibis
import numpy as np
import pandas as pd

from ..config import Aggregate, Metric
from ..ingest import NONE_VALUE, Events
from .analysis import SessionAnalysis
from .source import add_seconds

SESSION_EVENT = "(session)"
PAGE_EVENT = "(page)"
#: page measurements: source column, metric name, short name (Contract 8's "metric"), description
PAGE_MEASURES = (
    ("latency", "page_latency_ms", "latency", "mean page load time (ms) per page view"),
    ("ajax", "page_ajax_calls", "ajax_calls", "mean ajax calls per page view"),
    ("bytes", "page_bytes", "bytes", "mean bytes transferred per page view"),
)
PAGE_COUNTS = (
    ("events", "page_events", "events", "events per page view"),
    ("exit", "page_exit_rate", "exits", "share of page views that end the session"),
)
#: clusters with less than this share of people's training sessions get no metric
MIN_CLUSTER_SHARE = 0.01


def cluster_metric(name: str) -> str:
    """``cluster_share.repeating_pages_many_pages``: a metric name for a cluster's share."""
    slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")[:48] or "cluster"
    return f"cluster_share.{slug}"


def _ratio(name: str, num: Aggregate, den: Aggregate, description: str, threshold: float | None = None) -> Metric:
    return Metric(name=name, type="ratio", numerator=num, denominator=den, description=description, threshold=threshold)


def _sum(column: str, event: str) -> Aggregate:
    return Aggregate(type="sum", column=column, event=event)


#: cluster shares alert at this multiple of the configured threshold: the shares of one hour's
#: sessions move together (they add up to one) and small clusters are noisy hour to hour, while
#: the shifts worth an alert (a new mode at several percent of traffic) are far beyond it
SHARE_THRESHOLD = 1.5


def session_metrics(analysis: SessionAnalysis, threshold: float = 4.0) -> list[Metric]:
    """Bot share, each cluster's share (and new behaviour's), conversions against the model's
    expectation, and the page metrics the source has data for (``threshold``: the config's)."""
    people = _sum("session.counted", SESSION_EVENT)
    share_threshold = SHARE_THRESHOLD * threshold
    out = _page_metrics(analysis)  # first: the cube keeps each dimension's values with most of its first aggregate
    out.append(_ratio("bot_share", _sum("session.bot", SESSION_EVENT), Aggregate(type="count", event=SESSION_EVENT),
                      "share of sessions flagged as bots"))
    for c, name in enumerate(_kept_clusters(analysis)):
        if name is None:
            continue
        out.append(_ratio(cluster_metric(name), _sum(f"session.cluster.{c}", SESSION_EVENT), people,
                          f"share of people's sessions in the behaviour cluster '{name}'", share_threshold))
    out.append(_ratio("cluster_share.new_behaviour", _sum("session.cluster.new", SESSION_EVENT), people,
                      "share of people's sessions unlike every behaviour cluster", share_threshold))
    if np.isfinite(analysis.frame["expected_conversion"]).any():
        out.append(_ratio("conversion_vs_expected", _sum("session.converted_modelled", SESSION_EVENT),
                          _sum("session.expected_conversion", SESSION_EVENT),
                          "converting sessions over those the conversion model expected from this traffic"))
    return out


def _page_metrics(analysis: SessionAnalysis) -> list[Metric]:
    has, out = analysis.tables.has, []
    if "page" not in has:
        return out
    for col, metric, _, text in PAGE_COUNTS[:1] + PAGE_MEASURES + PAGE_COUNTS[1:]:
        den = (_sum(f"page.n_{col}", PAGE_EVENT) if any(col == c for c, *_ in PAGE_MEASURES)
               else Aggregate(type="count", event=PAGE_EVENT))
        if col in has or den.type == "count":
            out.append(_ratio(metric, _sum(f"page.{col}", PAGE_EVENT), den, text))
    return out


def _kept_clusters(analysis: SessionAnalysis) -> list[str | None]:
    """Cluster names with a metric (``None`` for clusters too small among people's sessions)."""
    f = analysis.frame
    people = f["train"] & (f["label"] != "bot")
    labels = f.loc[people, "cluster"].to_numpy()
    shares = np.bincount(labels[labels >= 0], minlength=analysis.clusters.k)[: analysis.clusters.k]
    shares = shares / max(people.sum(), 1)
    return [n if s >= MIN_CLUSTER_SHARE else None for n, s in zip(analysis.clusters.names, shares)]


def page_metric_names() -> dict[str, str]:
    """Metric name -> Contract 8's short name (latency, ajax_calls, bytes, events, exits)."""
    return {m: short for _, m, short, _ in (*PAGE_MEASURES, *PAGE_COUNTS)}


def _session_rows(analysis: SessionAnalysis) -> pd.DataFrame:
    f = analysis.frame
    bot = (f["label"] == "bot").to_numpy()
    person = (~bot).astype(float)
    out = pd.DataFrame({
        "sid": f["sid"].to_numpy(),
        "timestamp": pd.to_datetime(f["start"]).dt.tz_localize("UTC"),
        "session.bot": bot.astype(float), "session.counted": person,
        "session.converted_modelled": np.where(np.isfinite(f["expected_conversion"]),
                                               (f["conversions"] > 0).astype(float), 0.0) * person,
        "session.expected_conversion": np.nan_to_num(f["expected_conversion"].to_numpy(float)) * person,
        "landing": f["landing"].fillna(NONE_VALUE).astype(str).to_numpy(),
    })
    label = f["cluster"].to_numpy()
    for c in range(analysis.clusters.k):
        out[f"session.cluster.{c}"] = (label == c) * person
    out["session.cluster.new"] = (label == -1) * person
    return out


def augment(events: Events, analysis: SessionAnalysis, exclude_bots: bool = False, only: bool = False) -> Events:
    """A new :class:`Events` with the ``(session)`` and ``(page)`` rows added (``only``: instead of
    the events), bots' events removed when ``exclude_bots``, and ``page`` among the dimensions."""
    con = events.con
    rows = _session_rows(analysis)
    labels = con.create_table(ibis.util.gen_name("session_rows"), rows, temp=True)
    s = analysis.tables.sessions
    base = events.table
    dims = list(events.dimensions)
    if "page" in analysis.tables.has and "page" not in dims:
        dims.append("page")
    ctx = {d: (s[d].cast("string").fill_null(NONE_VALUE) if d in s.columns else ibis.literal(NONE_VALUE)) for d in dims
           if d != "page"}
    j = labels.join(s, "sid")
    session_rows = j.select(timestamp=j.timestamp, event=ibis.literal(SESSION_EVENT), property=j.property,
                            page=j.landing, **{d: j[d] if d in s.columns else v for d, v in ctx.items()},
                            **{c: j[c] for c in rows.columns if c.startswith("session.")})
    parts = [session_rows]
    if "page" in analysis.tables.has:
        pf = analysis.page_facts()
        bots = analysis.frame.loc[analysis.frame["label"] == "bot", ["sid"]]
        bot_sids = con.create_table(ibis.util.gen_name("bot_sids"), bots, temp=True)
        pj = pf.anti_join(bot_sids, "sid")  # pages as people meet them
        measures = {}
        for col, *_ in PAGE_MEASURES:
            if col in analysis.tables.has:
                measures[f"page.{col}"] = pj[col].fill_null(0)
                measures[f"page.n_{col}"] = pj[col].notnull().cast("float64")
        for col, *_ in PAGE_COUNTS:
            measures[f"page.{col}"] = pj[col]
        parts.append(pj.select(timestamp=add_seconds(pj.start, pj.off), event=ibis.literal(PAGE_EVENT),
                               property=pj.property, page=pj.page, **{d: pj[d] if d in s.columns else v
                                                                     for d, v in ctx.items()}, **measures,
                               **{"page.sid": pj.sid}))
    notes = []
    if exclude_bots and not only:
        bots = analysis.frame.loc[analysis.frame["label"] == "bot", "key"]
        bot_keys = con.create_table(ibis.util.gen_name("bot_keys"), pd.DataFrame({"key": bots.astype(str)}), temp=True)
        before = int(base.count().execute())
        base = base.anti_join(bot_keys, base.session_id == bot_keys.key)
        removed = before - int(base.count().execute())
        notes.append(f"exclude_bots: {len(bots):,} sessions flagged as bots ({len(bots) / max(len(analysis.frame), 1):.1%}) "
                     f"and their {removed:,} events left out of every metric but bot_share")
    if not only:
        if "page" not in base.columns:
            base = base.mutate(page=ibis.literal(NONE_VALUE))
        elif "page" not in events.dimensions:
            base = base.mutate(page=base.page.cast("string").fill_null(NONE_VALUE))
        parts.insert(0, base)
    std = {"session_id": ibis.null().cast("string"), "user_id": ibis.null().cast("string"),
           "revenue": ibis.null().cast("float64")}
    parts = [p.mutate(**{k: v for k, v in std.items() if k not in p.columns}) for p in parts]
    table = _union(parts).cache()
    if "page" in analysis.tables.has:  # people's page views, as the cube sees them, for describing windows
        pages = table.filter(table.event == PAGE_EVENT)
        analysis.pages = pages.select(sid=pages["page.sid"], page=pages.page)
    if analysis.tables.nested:
        analysis.tables.release()  # the hits live on in the features and these rows
    return Events(con=con, table=table, source=events.source, dimensions=dims, mapping=events.mapping,
                  sessions_derived=events.sessions_derived, notes=[*events.notes, *notes], nested=events.nested)


def _union(parts: list[ibis.Table]) -> ibis.Table:
    """UNION ALL by column name: a column a part lacks is NULL there."""
    schema: dict[str, object] = {}
    for p in parts:
        for name, typ in p.schema().items():
            schema.setdefault(name, typ)
    aligned = [p.select(**{c: (p[c].cast(t) if c in p.columns else ibis.null().cast(t)).name(c) for c, t in schema.items()})
               for p in parts]
    return aligned[0] if len(aligned) == 1 else ibis.union(*aligned, distinct=False)


def page_incidents(cube, scores, incidents: list, since=None) -> list:
    """Each page's own incidents on the page metrics, besides those of the metric's total.

    A page metric's total (the mean over all pages) moves little when one small page slows
    down, and while it alerts the detector keeps a segment's overlapping incident as part of the
    total's; for pages that hides how long the page itself was slow. So every run of a page's own
    series that the stricter segment test flags is an incident too (unless it already is one).
    """
    from ..incidents import SEGMENT_MIN_VOLUME, _find, segment_flags

    page_metrics = set(page_metric_names())
    keys = cube.keys
    rows = np.flatnonzero(keys.metric.isin(page_metrics).to_numpy() & (keys.dimension == "page").to_numpy())
    if not len(rows):
        return incidents
    found = _find(cube, scores, rows, segment_flags(cube, scores), since, min_volume=SEGMENT_MIN_VOLUME)
    have = {i.id for i in incidents}
    extra = [i for i in found if i.id not in have]
    return sorted([*incidents, *extra], key=lambda x: (x.start, x.property, x.metric))


def conversion_metric(metric: Metric) -> bool:
    """Whether a metric counts conversions (orders, conversion rate, revenue of purchases...)."""
    from .source import CONVERSIONS

    if metric.name == "conversion_vs_expected":
        return True
    num = metric.parts()[0]
    return bool(num.events and set(num.events) & set(CONVERSIONS))


def attach_traffic_mix(analysis: SessionAnalysis, incidents: list, metrics: dict[str, Metric], weeks: int = 4) -> None:
    """Fill ``traffic_mix`` of incidents on conversion metrics: did these sessions convert as the
    model expected of sessions like them (the traffic changed), or worse (the site did)?"""
    f = analysis.frame
    ok = np.isfinite(f["expected_conversion"].to_numpy()) & (f["label"] != "bot").to_numpy()
    start = f["start"].to_numpy()
    for inc in incidents:
        m = metrics.get(inc.metric)
        if m is None or not conversion_metric(m):
            continue
        rows = ok & (f["property"] == inc.property).to_numpy() if "property" in f else ok.copy()
        for dim, value in inc.segment.items():
            if dim in f.columns and dim != "page":
                rows &= (f[dim].astype(str) == value).to_numpy()
        a, b = inc.start_time(), inc.end_time()
        now = rows & (start >= np.datetime64(a)) & (start < np.datetime64(b))
        before = np.zeros(len(f), bool)
        for k in range(1, weeks + 1):
            shift = pd.Timedelta(days=7 * k)
            before |= rows & (start >= np.datetime64(a - shift)) & (start < np.datetime64(b - shift))
        if now.sum() < 20 or before.sum() < 20:
            continue
        conv = (f["conversions"].to_numpy() > 0).astype(float)
        exp = f["expected_conversion"].to_numpy()
        vals = {"sessions": int(now.sum()), "actual": float(conv[now].mean()), "expected": float(exp[now].mean()),
                "baseline_actual": float(conv[before].mean()), "baseline_expected": float(exp[before].mean())}
        from .conversion import mix_verdict

        vals["verdict"] = mix_verdict(vals["actual"], vals["baseline_actual"], vals["expected"], vals["baseline_expected"])
        inc.traffic_mix = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in vals.items()}
