"""The Streamlit dashboard (`sleuth dashboard`): widgets only; every frame and figure comes from
:mod:`sleuth.dashboard.data`, every write goes through the alert store's API."""
from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import streamlit as st

from sleuth.alerts import open_store
from sleuth.alerts.store import LABELS, STATES
from sleuth.incidents import SEVERITY_RANK
from sleuth.dashboard import data as d
from sleuth.dashboard import sessions as sessions_page
from sleuth.dashboard.source import Settings
from sleuth.pipeline import detect

PAGES = ("Overview", "Metric", "Incident", "Sessions", "Alerts")
ALL = "(all)"

st.set_page_config(page_title="sleuth", layout="wide")


@st.cache_resource(show_spinner="Detecting and explaining anomalies…")
def detection(source: str, config: str | None):
    """One detection per source and config for the server's life (it holds a DuckDB connection,
    so it is a shared resource, not pickled data)."""
    return detect(source, config)


@st.cache_data(show_spinner="Training the classifier…")
def classifier_view(source: str, config: str | None, incident_id: str) -> dict:
    """The classifier view of one incident, once per incident (it takes seconds)."""
    det = detection(source, config)
    return d.classifier_view(det, next(i for i in det.incidents if i.id == incident_id))


def store_rows(url: str) -> list[dict]:
    db = open_store(url)
    try:
        return db.incidents()
    finally:
        db.close()


def pick(label: str, options: list[str], key: str) -> str | None:
    """A selectbox with an '(all)' choice that means no filter."""
    choice = st.selectbox(label, [ALL, *options], key=key)
    return None if choice == ALL else choice


def overview(det, rows: list[dict]) -> None:
    st.header("Overview")
    frame = d.overview_frame(det, rows)
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
    incs = [i for i in d.filter_incidents(det, prop, metric, severity) if not state or states.get(i.id) == state]
    st.subheader(f"{len(incs)} incidents")
    for inc in incs:
        st.write(f"**{inc.severity}** · {states.get(inc.id, 'not in the store')} · "
                 f"{d.incident_summary(inc, det.config.timezone)} · `{inc.id}`")


def metric_page(det) -> None:
    st.header("Metric")
    keys = det.cube.keys
    c1, c2, c3 = st.columns(3)
    with c1:
        prop = st.selectbox("property", sorted(keys.property.unique()), key="m_property")
    with c2:
        metric = st.selectbox("metric", list(det.cube.metrics), key="m_metric")
    with c3:
        dims = sorted(x for x in keys.dimension.unique() if x)
        drill = st.selectbox("drill into", ["(none)", *dims], key="m_drill")
    first, last = det.cube.buckets[0].date(), det.cube.buckets[-1].date()
    span = st.date_input("range (UTC days)", value=(max(first, last - dt.timedelta(days=14)), last),
                         min_value=first, max_value=last, key="m_range")
    since, until = (None, None)
    if len(span) == 2:  # while the user is still picking the second date, show everything
        since, until = pd.Timestamp(span[0]), pd.Timestamp(span[1]) + pd.Timedelta(days=1)
    st.plotly_chart(d.metric_figure(det, metric, prop, dimension=None if drill == "(none)" else drill,
                                    since=since, until=until), width="stretch")


def chart_and_table(fig, frame, empty: str) -> None:
    """A chart with its table under it, or ``empty`` said when there is no chart."""
    if fig is not None:
        st.plotly_chart(fig, width="stretch")
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.write(empty)


def incident_page(det, settings: Settings) -> None:
    st.header("Incident")
    if not det.incidents:
        st.info("No incidents in this data.")
        return
    tz = det.config.timezone
    ranked = sorted(det.incidents, key=lambda i: -i.score)
    wanted = st.query_params.get("incident")  # a link from an alert message
    if wanted and "i_incident" not in st.session_state:
        st.session_state["i_incident"] = next((i for i in ranked if i.id == wanted), ranked[0])
    inc = st.selectbox("incident", ranked, format_func=lambda i: f"{i.id} · {d.incident_summary(i, tz)}",
                       key="i_incident")
    st.subheader(d.incident_summary(inc, tz))
    ctx = d.incident_context(det, inc)
    cols = st.columns(4)
    for col, (k, v) in zip(cols, ctx.items()):
        col.metric(k, f"{v:+,.0f}" if isinstance(v, float) else ("-" if v is None else str(v)))
    st.plotly_chart(d.incident_figure(det, inc), width="stretch")
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
    chart_and_table(d.linked_figure(det, inc), d.link_frame(det, inc), "None: this incident stands alone.")
    st.subheader("Classifier view")
    view = classifier_view(settings.source, settings.config, inc.id)
    st.write(d.classifier_summary(view))
    if view["features"]:
        st.plotly_chart(d.classifier_figure(view), width="stretch")


def alerts_page(url: str) -> None:
    st.header("Alerts inbox")
    rows = store_rows(url)
    if not rows:
        st.info(f"The store {url} has no incidents yet: `sleuth run SOURCE` fills it.")
        return
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
        label = c4.selectbox("feedback", [x for x in LABELS if x != "mute"], key="a_label",
                             label_visibility="collapsed")
        if c5.button("Send feedback", key="a_feedback"):
            done = db.add_feedback(key, label)
        if done is not None:
            st.success(f"{done['key']}: {done['state']}" + (f" (quiet: {done['quiet']})" if done.get("quiet") else ""))
            rows = db.incidents()
    finally:
        db.close()
    state = pick("state", list(STATES), "a_state")
    st.dataframe(d.store_frame(rows, state=state), hide_index=True, width="stretch")


def main() -> None:
    settings = Settings.from_env()
    if "page" not in st.session_state:  # a link from an alert message opens its page
        asked = "Incident" if st.query_params.get("incident") else st.query_params.get("page")
        if asked in PAGES:
            st.session_state["page"] = asked
    page = st.sidebar.radio("page", PAGES, key="page")
    st.sidebar.caption(f"source: {settings.source}\n\nstore: {settings.store}")
    t0 = time.perf_counter()
    if page == "Alerts":
        alerts_page(settings.store)
    else:
        det = detection(settings.source, settings.config)
        if page == "Overview":
            overview(det, store_rows(settings.store))
        elif page == "Metric":
            metric_page(det)
        elif page == "Sessions":
            sessions_page.render(det)
        else:
            incident_page(det, settings)
    st.sidebar.caption(f"rendered in {time.perf_counter() - t0:.2f} s")


main()
