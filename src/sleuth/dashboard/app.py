"""The Streamlit dashboard (`sleuth dashboard`): widgets only. What it shows is the alert store's
snapshot of the source (no detection: it answers at once and follows each `sleuth watch` run);
only a source the store has never seen is detected, once per server. Every frame and figure comes
from :mod:`sleuth.dashboard.data`; every write goes through the alert store's API."""
from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import streamlit as st

from sleuth.alerts import open_store
from sleuth.alerts.store import LABELS, STATES
from sleuth.dashboard import data as d
from sleuth.dashboard import sessions as sessions_page
from sleuth.dashboard import view
from sleuth.dashboard.source import Settings
from sleuth.incidents import SEVERITY_RANK
from sleuth.redact import redact_source

PAGES = ("Alerts", "Overview", "Metric", "Incident", "Sessions")
ALL = "(all)"
#: seconds between checks for a newer run in the store (the page then shows it)
REFRESH = 30

st.set_page_config(page_title="sleuth", layout="wide")


@st.cache_resource(show_spinner="Reading the alert store…", max_entries=4)
def stored(store: str, source: str, run: int | None):
    """The store's snapshot as of ``run``: a newer run is a new cache entry, so pages follow `watch`."""
    return view.stored_snapshot(store, source)


@st.cache_resource(show_spinner="No run of this source in the store yet: detecting and explaining…")
def detected(source: str, config: str | None):
    """A detection, once per source and config for the server's life (only without a stored run)."""
    return view.live_snapshot(source, config)


def snapshot(settings: Settings):
    snap = stored(settings.store, settings.source, view.latest_run(settings.store))
    return snap if snap is not None else detected(settings.source, settings.config)


@st.cache_resource(show_spinner="Analysing the sessions (reads the events; once per server)…")
def sessions_detection(source: str, config: str | None):
    """The sessions stage's view (the reduced space, clusters, bots) needs the sessions themselves:
    computed when the Sessions page is first opened, like the classifier view."""
    from sleuth.pipeline import detect

    return detect(source, config)


@st.cache_resource(show_spinner="Reading the events for the classifier…")
def events(source: str, config: str | None):
    return view.events_for(source, config)


@st.cache_data(show_spinner="Training the classifier…")
def classifier_view(source: str, config: str | None, incident_id: str, _inc) -> dict:
    """The classifier view of one incident, once per incident (it takes seconds)."""
    evs, metrics = events(source, config)
    return d.classifier_view(evs, metrics, _inc)


@st.fragment(run_every=REFRESH)
def follow(store: str, seen: int | None) -> None:
    """Reload the page when a newer run lands in the store."""
    if view.latest_run(store) != seen:
        st.rerun()


def pick(label: str, options: list[str], key: str) -> str | None:
    """A selectbox with an '(all)' choice that means no filter."""
    choice = st.selectbox(label, [ALL, *options], key=key)
    return None if choice == ALL else choice


def alerts_page(snap, url: str) -> None:
    """The inbox: alerts as people received them (linked incidents together, led by the worst),
    and the buttons that acknowledge, resolve, mute or label them."""
    st.header("Alerts")
    rows = view.incident_rows(url)
    if not rows:
        st.info(f"The store {redact_source(url)} has no incidents yet: `sleuth run SOURCE` fills it.")
        return
    groups = d.alert_groups(rows)
    state = pick("state", list(STATES), "a_state")
    shown = [g for g in groups if not state or g[0]["state"] == state]
    st.subheader(f"{len(shown)} alerts ({sum(len(g) for g in shown)} incidents)")
    st.dataframe(d.alerts_frame(shown, snap.config.timezone), hide_index=True, width="stretch")
    # the label leaves out the state: a label that changes on acknowledge would lose the selection
    label = {r["key"]: f"{r['key']} · {r['property']} {r['metric']} {r['start_at']:%Y-%m-%d %H:%M}" for r in rows}
    key = st.selectbox("incident", list(label), key="a_incident", format_func=label.get)
    c1, c2, c3, c4, c5 = st.columns(5)
    done = None
    db = open_store(url)
    try:
        if c1.button("Acknowledge", key="a_ack"):
            done = db.set_state(key, "acknowledged")
        if c2.button("Resolve", key="a_resolve"):
            done = db.set_state(key, "resolved")
        if c3.button("Mute", key="a_mute"):
            done = db.add_feedback(key, "mute")
        choice = c4.selectbox("feedback", [x for x in LABELS if x != "mute"], key="a_label",
                              label_visibility="collapsed")
        if c5.button("Send feedback", key="a_feedback"):
            done = db.add_feedback(key, choice)
        if done is not None:
            st.success(f"{done['key']}: {done['state']}" + (f" (quiet: {done['quiet']})" if done.get("quiet") else ""))
            rows = db.incidents()
    finally:
        db.close()
    with st.expander("every incident in the store"):
        st.dataframe(d.store_frame(rows, state=state), hide_index=True, width="stretch")


def overview(snap, rows: list[dict]) -> None:
    st.header("Overview")
    frame = d.overview_frame(snap, rows)
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        prop = pick("property", sorted(frame.property.unique()), "ov_property")
    with c2:
        metric = pick("metric", sorted(frame.metric.unique()), "ov_metric")
    with c3:
        severity = pick("severity", sorted(SEVERITY_RANK, key=SEVERITY_RANK.get, reverse=True), "ov_severity")
    with c4:
        state = pick("state", list(STATES), "ov_state")
    shown = frame[(frame.property == prop) if prop else frame.property.notna()]
    shown = shown[(shown.metric == metric) if metric else shown.metric.notna()]
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "sparkline": st.column_config.LineChartColumn("last week"),
        "open": st.column_config.NumberColumn("open in store")})
    states = {r["key"]: r["state"] for r in rows}
    incs = [i for i in d.filter_incidents(snap, prop, metric, severity) if not state or states.get(i.id) == state]
    st.subheader(f"{len(incs)} incidents")
    for inc in sorted(incs, key=lambda i: i.start, reverse=True):
        st.write(f"**{inc.severity}** · {states.get(inc.id, 'not in the store')} · "
                 f"{d.incident_summary(inc, snap.config.timezone)} · `{inc.id}`")


def metric_page(snap) -> None:
    st.header("Metric")
    keys = snap.totals.keys
    c1, c2, c3 = st.columns(3)
    with c1:
        prop = st.selectbox("property", sorted(keys.property.unique()), key="m_property")
    with c2:
        metric = st.selectbox("metric", list(snap.metrics), key="m_metric")
    with c3:
        drill = st.selectbox("drill into", ["(none)", *snap.dimensions], key="m_drill")
    buckets = snap.totals.buckets
    if not len(buckets):
        st.info("No series in this snapshot.")
        return
    first, last = buckets[0].date(), buckets[-1].date()
    span = st.date_input("range (UTC days)", value=(max(first, last - dt.timedelta(days=14)), last),
                         min_value=first, max_value=last, key="m_range")
    since, until = (None, None)
    if len(span) == 2:  # while the user is still picking the second date, show everything
        since, until = pd.Timestamp(span[0]), pd.Timestamp(span[1]) + pd.Timedelta(days=1)
    st.plotly_chart(d.metric_figure(snap, metric, prop, dimension=None if drill == "(none)" else drill,
                                    since=since, until=until), width="stretch")


def chart_and_table(fig, frame, empty: str) -> None:
    """A chart with its table under it, or ``empty`` said when there is no chart."""
    if fig is not None:
        st.plotly_chart(fig, width="stretch")
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.write(empty)


def incident_page(snap, settings: Settings) -> None:
    st.header("Incident")
    if not snap.incidents:
        st.info("No incidents in this data.")
        return
    tz = snap.config.timezone
    ranked = sorted(snap.incidents, key=lambda i: -i.score)
    wanted = st.query_params.get("incident")  # a link from an alert message
    if wanted and "i_incident" not in st.session_state:
        st.session_state["i_incident"] = next((i for i in ranked if i.id == wanted), ranked[0])
    inc = st.selectbox("incident", ranked, format_func=lambda i: f"{i.id} · {d.incident_summary(i, tz)}",
                       key="i_incident")
    st.subheader(d.incident_summary(inc, tz))
    ctx = d.incident_context(inc, tz)
    cols = st.columns(4)
    for col, (k, v) in zip(cols, ctx.items()):
        col.metric(k, f"{v:+,.0f}" if isinstance(v, float) else ("-" if v is None else str(v)))
    st.plotly_chart(d.incident_figure(snap, inc), width="stretch")
    st.subheader("Root causes")
    chart_and_table(d.root_cause_figure(inc) if inc.root_causes else None, d.root_cause_frame(inc),
                    "No segment stands out: the change is spread over everything.")
    if inc.contributions:
        dim = st.selectbox("by dimension", list(inc.contributions), key="i_dimension")
        chart_and_table(d.root_cause_figure(inc, dim), d.contribution_frame(inc, dim), "")
    st.subheader("Event-path change")
    if d.disrupted_text(inc):
        st.write(d.disrupted_text(inc))
    chart_and_table(d.path_figure(inc) if inc.transitions else None, d.path_frame(inc),
                    "No transition between events changed significantly.")
    st.subheader("Peer properties")
    peers = d.peer_frame(inc)
    if len(peers):
        st.dataframe(peers, hide_index=True)
    else:
        st.write("No other property to compare with.")
    st.subheader("Linked anomalies")
    chart_and_table(d.linked_figure(snap, inc), d.link_frame(snap, inc), "None: this incident stands alone.")
    st.subheader("Classifier view")
    if st.toggle("Train a classifier on this incident's events (reads the events; a few seconds)", key="i_classify"):
        result = classifier_view(settings.source, settings.config, inc.id, inc)
        st.write(d.classifier_summary(result))
        if result["features"]:
            st.plotly_chart(d.classifier_figure(result), width="stretch")


def main() -> None:
    settings = Settings.from_env()
    if "page" not in st.session_state:  # a link from an alert message opens its page
        asked = "Incident" if st.query_params.get("incident") else st.query_params.get("page")
        if asked in PAGES:
            st.session_state["page"] = asked
    page = st.sidebar.radio("page", PAGES, key="page")
    st.sidebar.caption(f"source: {redact_source(settings.source)}\n\nstore: {redact_source(settings.store)}")
    t0 = time.perf_counter()
    run = view.latest_run(settings.store)
    snap = snapshot(settings)
    if snap.learning_text():
        st.warning(snap.learning_text(), icon="⏳")
    if page == "Alerts":
        alerts_page(snap, settings.store)
    elif page == "Overview":
        overview(snap, view.incident_rows(settings.store))
    elif page == "Metric":
        metric_page(snap)
    elif page == "Sessions":
        sessions_page.render(sessions_detection(settings.source, settings.config))
    else:
        incident_page(snap, settings)
    where = f"run {snap.run} of {snap.created} UTC" if snap.run else "detected when the server started (no run stored)"
    st.sidebar.caption(f"{where}; data up to {snap.data_end}")
    st.sidebar.caption(f"rendered in {time.perf_counter() - t0:.2f} s")
    follow(settings.store, run)


main()
