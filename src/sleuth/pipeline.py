"""The whole job: source -> events -> cube -> scores -> incidents -> explanations."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .calendar import calendar_names, holiday_reference, local_clock, local_times
from .chunks import score_in_slices
from .config import Config, load_config, parse_config
from .detectors.base import Scores, SeriesBatch, get_detector
from .errors import InputError
from .explain.links import event_network_links, link_incidents
from .explain.paths import disrupted_event_for, path_change, transition_counts, transitions_for
from .explain.segments import explain_incident, label_market, peer_changes
from .incidents import Incident, find_incidents, incidents_frame, revenue_at_stake, revenue_metric
from .ingest import Events, load_events
from .metrics.cube import TOTAL, Cube, build_cube
from .metrics.derive import resolve_metrics

Progress = Callable[[str], None]
#: what :func:`detect` reports to its ``progress`` callback, in order
STAGES = ("reading events", "describing sessions", "building the metrics cube", "scoring every series", "grouping incidents",
          "explaining incidents")


@dataclass
class Detection:
    """What :func:`detect` returns: incidents as objects, and everything behind them."""

    incidents: list[Incident]
    cube: Cube
    scores: Scores
    events: Events
    config: Config
    notes: list[str] = field(default_factory=list)
    #: the sessions stage (:class:`sleuth.sessions.analysis.SessionAnalysis`) when it ran
    sessions: Any = None

    @property
    def frame(self) -> pd.DataFrame:
        """The incidents as a frame, one row each."""
        return incidents_frame(self.incidents)

    def to_jsonl(self) -> str:
        return "\n".join(i.to_json() for i in self.incidents)

    def learning(self) -> dict[tuple[str, str], Any]:
        """``(property, metric) -> Maturity`` of each metric's total series at the end of the data,
        for the metrics still learning (under 3 weeks of history: wider bands, see
        :func:`sleuth.detectors.base.maturity`)."""
        return learning_status(self.cube, self.scores)

    def series(self, metric: str, property: str | None = None, dimension: str = "", segment: str = "") -> pd.DataFrame:
        """One series with its expected value and band, for plots and notebooks."""
        prop = property or self.cube.keys.property.iat[0]
        i = self.cube.index(prop, metric, dimension, segment)
        out = self.cube.series_frame(i)
        out["expected"] = self.scores.expected[i]
        out["lower"] = self.scores.lower[i]
        out["upper"] = self.scores.upper[i]
        out["anomaly_score"] = self.scores.anomaly_score[i]
        out["is_anomaly"] = self.scores.is_anomaly[i]
        return out


def as_config(config: Config | dict | str | Path | None) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def parse_time(value: Any, what: str) -> pd.Timestamp | None:
    """A user-given time (ISO string, date, datetime) as naive UTC."""
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"--{what}: cannot parse {value!r} as a time; use ISO 8601 such as 2026-04-01T14:00Z") from None
    if ts is pd.NaT:
        raise InputError(f"--{what}: cannot parse {value!r} as a time; use ISO 8601 such as 2026-04-01T14:00Z")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def expected_refs(cube: Cube, patterns: list[dict]) -> np.ndarray | None:
    """``[S, T]``: at the same hours of each week after a window people labelled expected, the
    bucket of that window (-1 elsewhere), for its series; the detector then expects the change
    to recur there (see ``SeriesBatch.expected_ref``)."""
    if not patterns:
        return None
    refs = np.full(cube.value.shape, -1)
    step, season = pd.Timedelta(cube.config.step), cube.config.season
    keys = cube.keys.reset_index(drop=True)
    for p in patterns:
        rows = keys.property.eq(p["property"]) & keys.metric.eq(p["metric"])
        segment = dict(p["segment"]) or {TOTAL: TOTAL}
        for dim, value in segment.items():
            rows &= keys.dimension.eq(dim) & keys.segment.eq(value)
        if not cube.buckets[0] <= pd.Timestamp(p["start"]) <= cube.buckets[-1]:
            continue  # the labelled window is not in this data: nothing to learn from
        a = int(np.searchsorted(cube.buckets, pd.Timestamp(p["start"])))
        window = np.arange(a, min(a + max(int((pd.Timestamp(p["end"]) - pd.Timestamp(p["start"])) / step), 1),
                                  len(cube.buckets)))
        for later in range(season, len(cube.buckets), season):
            t = window + later
            keep = t < len(cube.buckets)
            refs[np.ix_(rows.to_numpy(), t[keep])] = window[keep]
    return refs


def _threshold_factor(cube: Cube) -> np.ndarray | None:
    """Each series' metric ``threshold`` over the default one (None when no metric sets one)."""
    default = cube.config.threshold
    own = np.array([cube.metrics[m].threshold or default for m in cube.keys.metric], dtype=float)
    return None if (own == default).all() else own / default


def calendar_of(cube: Cube) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The calendar as the detector sees it: ``(holiday, holiday_ref, names)``, each ``[T]``, or
    ``[S, T]`` when some of the user's events belong to some properties only; Nones when no
    bucket carries a name (public holidays, retail days, the user's events: see
    :func:`sleuth.calendar.calendar_names`)."""
    cfg = cube.config
    events = cfg.calendar_events()
    if not (cfg.holidays or cfg.retail_days or events) or not len(cube.buckets):
        return None, None, None
    name = lambda prop=None: calendar_names(cube.buckets, cfg.holidays, cfg.timezone, cfg.retail_days,  # noqa: E731
                                            events, prop)
    if any(e.properties is not None for e in events):
        props = cube.keys.property.to_numpy()
        per = {p: name(p) for p in dict.fromkeys(props)}
        names = np.array([per[p] for p in props], dtype=object)
        refs = {p: holiday_reference(cube.buckets, n) for p, n in per.items()}
        ref = np.stack([refs[p] for p in props])
    else:
        names = np.array(name(), dtype=object)
        ref = holiday_reference(cube.buckets, list(names))
    holiday = names != None  # noqa: E711 (elementwise on an object array)
    if not holiday.any():
        return None, None, None
    return holiday, ref, names


def peer_groups(cube: Cube) -> np.ndarray | None:
    """``[S]``: for each series, its market (the same metric and segment in the properties of one
    ``peers:`` group, by default all properties), or -1 when it has fewer than two peers."""
    k = cube.keys
    props = k.property.astype(str).to_numpy()
    groups = cube.config.peers or [sorted(set(props))]
    market = np.full(len(props), -1)
    for g, members in enumerate(groups):
        market[np.isin(props, members)] = g
    key = pd.Series(list(zip(market, k.metric, k.dimension, k.segment)))
    gid = key.factorize()[0]
    size = np.bincount(gid)[gid]
    return np.where((market >= 0) & (size >= 3), gid, -1) if (size >= 3).any() else None


def batch_of(cube: Cube, expected: list[dict] | None = None) -> SeriesBatch:
    kind = np.array(["ratio" if cube.metrics[m].is_ratio else "count" for m in cube.keys.metric])
    cfg = cube.config
    holiday, holiday_ref, names = calendar_of(cube)
    return SeriesBatch(value=cube.value, weight=cube.denominator, kind=kind, season=cfg.season,
                       day=24 if cfg.granularity == "1h" else 1, holiday=holiday, parent=cube.parents(),
                       holiday_ref=holiday_ref, event_names=names, peer_group=peer_groups(cube),
                       time=local_times(cube.buckets, cfg.timezone),
                       expected_ref=expected_refs(cube, expected or []),
                       threshold_factor=_threshold_factor(cube),
                       clock=local_clock(cube.buckets, cfg.timezone) if cfg.granularity == "1h" else None)


def _share(metric, seen_max: float) -> bool:
    """A ratio that is a share of a whole and cannot exceed 1: a subset over its whole (``sessions
    with a purchase / sessions``), or distinct ids over distinct ids of the same column that have
    never exceeded 1 (``1 - sessions that bought / sessions that added to cart``)."""
    a, b = metric.parts()
    if b is None or a.type != b.type or a.type not in ("count", "distinct") or a.column != b.column:
        return False
    subset = b.events is None or (a.events is not None and set(a.events) <= set(b.events))
    return subset or (a.type == "distinct" and seen_max <= 1)


def respect_range(cube: Cube, scores):
    """Bands and expectations inside the values a metric can take: never below 0 for a series that
    has never gone negative (a count, revenue, an average order value), never above 1 for a ratio
    of a subset to its whole. Display only: the evidence was weighed before."""
    finite = np.isfinite(cube.value)
    seen_min = np.where(finite, cube.value, np.inf).min(axis=1)
    seen_max = {m: float(np.where(finite[rows], cube.value[rows], -np.inf).max()) if len(rows) else 0.0
                for m, rows in cube.keys.groupby("metric").indices.items()}
    floor = np.where(seen_min >= 0, 0.0, -np.inf)[:, None]
    share = {m: _share(spec, seen_max.get(m, np.inf)) for m, spec in cube.metrics.items()}
    ceiling = np.array([1.0 if share[m] else np.inf for m in cube.keys.metric])[:, None]
    for name in ("expected", "lower", "upper"):
        arr = getattr(scores, name)
        setattr(scores, name, np.where(np.isnan(arr), arr, np.clip(arr, floor, ceiling)))
    return scores


def _history_notes(cube: Cube, detector) -> list[str]:
    """What the history allows: metrics are scored from their first full day, with wider bands
    until they are mature (see :func:`sleuth.detectors.base.maturity`)."""
    from .detectors.base import maturity

    need = detector.min_history(cube.config.season)
    have = len(cube.buckets)
    day = 24 if cube.config.granularity == "1h" else 1
    if have >= need:
        first = cube.buckets[min(need, have - 1)]
        return [f"metrics are scored from their first full day and mature after {need // day} days of history "
                f"(from {first:%Y-%m-%d %H:%M} UTC here); before that their bands are wider"]
    m = maturity(have, cube.config.season, day)
    misses = m.misses if m.misses.startswith("cannot") else f"misses {m.misses}"
    return [f"only {m.days:g} days of history: metrics are {m.stage} (mature after {m.full_days:g} days); "
            f"sleuth catches {m.catches}; it {misses}"]


def _day(cube: Cube) -> int:
    return 24 if cube.config.granularity == "1h" else 1


def learning_status(cube: Cube, scores: Scores) -> dict[tuple[str, str], Any]:
    """``(property, metric) -> Maturity`` at the end of the data, for each total still learning."""
    from .detectors.base import maturity

    out = {}
    T = len(cube.buckets)
    for i in cube.totals():
        first = int(scores.first[i]) if getattr(scores, "first", None) is not None else 0
        if first < 0:
            continue
        m = maturity(T - first, cube.config.season, _day(cube))
        if m.learning:
            out[(str(cube.keys.property.iat[i]), str(cube.keys.metric.iat[i]))] = m
    return out


def learning_note(status: dict[tuple[str, str], Any], total: int) -> list[str]:
    """One line on the metrics still learning, for ``detect``, ``run`` and the report."""
    if not status:
        return []
    youngest = min(status.values(), key=lambda m: m.days)
    n = len(status)
    return [f"{n} of {total} metric{'s' if total != 1 else ''} still learning (the youngest has {youngest.days:g} of "
            f"the {youngest.full_days:g} days it needs): it catches {youngest.catches}; it {youngest.misses}"
            if youngest.misses.startswith("cannot") else
            f"{n} of {total} metric{'s' if total != 1 else ''} still learning (the youngest has {youngest.days:g} of "
            f"the {youngest.full_days:g} days it needs): it catches {youngest.catches}; it misses {youngest.misses}"]


def mark_learning(cube: Cube, scores: Scores, incidents: list[Incident]) -> None:
    """Each incident found while its series was still learning says so, and what it can catch."""
    from dataclasses import asdict

    from .detectors.base import maturity

    first = getattr(scores, "first", None)
    if first is None:
        return
    for inc in incidents:
        dim, seg = next(iter(inc.segment.items())) if inc.segment else (TOTAL, TOTAL)
        try:
            i = cube.index(inc.property, inc.metric, dim, seg)
        except KeyError:
            continue
        at = int(np.searchsorted(cube.buckets, inc.start_time()))
        m = maturity(at - int(first[i]), cube.config.season, _day(cube)) if first[i] >= 0 else None
        inc.learning = {"stage": m.stage, **{k: v for k, v in asdict(m).items() if k != "stage"}} \
            if m is not None and m.learning else None


def _choice_notes(detector) -> list[str]:
    """What a detector that chooses a model per series chose (the "auto" detector's ``chosen``)."""
    chosen = getattr(detector, "chosen", None)
    if chosen is None or not len(chosen):
        return []
    names, counts = np.unique(chosen.astype(str), return_counts=True)
    return [f"detector {detector.name}: " + ", ".join(f"{n} for {c} of {len(chosen)} series" for n, c in zip(names, counts))
            + " (latest week, chosen by backtest)"]


def _name_days(cube: Cube, incidents: list[Incident]) -> None:
    """Each incident's ``holiday``: the calendar name of its first day (a public holiday, a retail
    day or the user's own event of its property)."""
    cfg = cube.config
    events = cfg.calendar_events()
    if not incidents or not (cfg.holidays or cfg.retail_days or events):
        return
    per_property = any(e.properties is not None for e in events)
    for prop in dict.fromkeys(inc.property if per_property else None for inc in incidents):
        mine = [inc for inc in incidents if prop is None or inc.property == prop]
        starts = pd.DatetimeIndex([inc.start_time() for inc in mine])
        for inc, name in zip(mine, calendar_names(starts, cfg.holidays, cfg.timezone, cfg.retail_days, events, prop)):
            inc.holiday = name


def detect(source: Any, config: Config | dict | str | Path | None = None, *, since: Any = None,
           until: Any = None, detector: str = "seasonal", progress: Progress | None = None,
           expected: list[dict] | None = None, sessions: bool | str | None = None) -> Detection:
    """Detect and explain incidents in ``source`` (a path, an ibis URL ``...#table``, a frame or a table).

    ``expected``: windows people labelled expected (``property, metric, segment, start, end``, as
    the alert store keeps them); at the same hours of the following weeks the detector expects
    the same change again, so a recurrence no larger than it stays quiet.

    Only data before ``until`` is read (replaying history behaves as if run live); incidents that
    start before ``since`` are not reported.

    ``sessions``: run the sessions stage (bots, behaviour clusters, pages) and add its metrics;
    ``None`` follows the config (``sessions.enabled``; by default on for nested session exports
    and with ``exclude_bots``), ``"only"`` watches its metrics alone.
    """
    say = progress or (lambda _stage: None)
    cfg = as_config(config)
    t_since, t_until = parse_time(since, "since"), parse_time(until, "until")
    say(STAGES[0])
    if sessions == "only":  # the sessions stage's metrics alone: a nested export's event stream is never read
        from .sessions.source import session_events

        events, metrics = session_events(source, cfg), []
    else:
        events = load_events(source, cfg)
        metrics = resolve_metrics(cfg, events)
    analysis = None
    if _sessions_wanted(cfg, events, sessions):
        say(STAGES[1])
        from .sessions.analysis import analyse
        from .sessions.metrics import augment, session_metrics

        analysis = analyse(events, cfg)
        taken = {m.name for m in metrics}
        extra = [m for m in session_metrics(analysis, cfg.threshold) if m.name not in taken]
        events = augment(events, analysis, exclude_bots=cfg.exclude_bots, only=sessions == "only")
        metrics = extra if sessions == "only" else [*metrics, *extra]
    if not metrics:
        raise InputError(f"{events.source}: no metrics to watch; define some under 'metrics:' in sleuth.yaml")
    say(STAGES[2])
    cube = build_cube(events, metrics, cfg, until=t_until)
    say(STAGES[3])
    det = get_detector(detector, threshold=cfg.threshold)
    scores = respect_range(cube, score_in_slices(det, batch_of(cube, expected), cube.keys))
    say(STAGES[4])
    incidents = find_incidents(cube, scores, since=t_since)
    if analysis is not None:
        from .sessions.metrics import page_incidents

        incidents = page_incidents(cube, scores, incidents, since=t_since)
    mark_learning(cube, scores, incidents)
    say(STAGES[5])
    paths: dict[tuple, tuple] = {}  # linked incidents share a window: one path query each
    money = revenue_metric(cube, events.mapping.get("revenue"))
    for inc in incidents:
        explain_incident(events, cube, scores, inc)
        inc.revenue_at_stake = revenue_at_stake(cube, scores, inc, money)
        inc.peers = peer_changes(cube, scores, inc)
        label_market(inc)
        key = (inc.property, tuple(sorted(inc.segment.items())), inc.start, inc.end)
        if sessions == "only":  # no events with their sessions to follow
            continue
        if key not in paths:
            table, disrupted = path_change(events, inc.start_time(), inc.end_time(), inc.property, inc.segment)
            paths[key] = (transitions_for(table), disrupted_event_for(disrupted))
        inc.transitions, inc.disrupted_event = paths[key]
    if analysis is not None:
        from .sessions.metrics import attach_traffic_mix

        attach_traffic_mix(analysis, incidents, cube.metrics)
    _name_days(cube, incidents)
    step = pd.Timedelta(cfg.step)
    network = event_network_links(
        incidents, cube.metrics, step,
        lambda prop, start, end: transition_counts(events, {"w": (start, end)}, prop))
    link_incidents(incidents, step, cube.metrics, network)
    notes = [*events.notes, *(analysis.notes if analysis else []), *cube.notes, *_history_notes(cube, det),
             *_choice_notes(det)]
    return Detection(incidents=incidents, cube=cube, scores=scores, events=events, config=cfg, notes=notes,
                     sessions=analysis)


def _sessions_wanted(cfg: Config, events: Events, asked: bool | str | None) -> bool:
    if asked is not None:
        return bool(asked)
    if cfg.sessions.enabled is not None:
        if cfg.exclude_bots and not cfg.sessions.enabled:
            raise InputError("exclude_bots needs the sessions stage, which sessions.enabled: false turns off")
        return cfg.sessions.enabled
    return events.nested is not None or cfg.exclude_bots


def describe(source: Any, config: Config | dict | str | Path | None = None) -> dict[str, Any]:
    """What sleuth sees in a source: metrics, dimensions, properties, time range."""
    cfg = as_config(config)
    events = load_events(source, cfg)
    metrics = resolve_metrics(cfg, events)
    t = events.table
    span = t.aggregate(first=t.timestamp.min(), last=t.timestamp.max(), events=t.count(),
                       sessions=t.session_id.nunique(), users=t.user_id.nunique(),
                       revenue=t.revenue.sum()).execute().iloc[0]
    props = t.group_by("property").aggregate(n=t.count()).execute().sort_values("n", ascending=False)
    card = {}
    if events.dimensions:
        stats = t.aggregate([t[d].nunique().name(d) for d in events.dimensions]).execute().iloc[0]
        card = {d: int(stats[d]) for d in events.dimensions}
    fmt = lambda x: pd.Timestamp(x).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return {
        "source": events.source,
        "events": int(span["events"]),
        # the export format recognised by its columns (ga4, segment, snowplow, amplitude, mixpanel) or None
        "format": events.format,
        "sessions": int(span["sessions"]), "users": int(span["users"]),
        "revenue": round(float(span["revenue"]), 2) if pd.notna(span["revenue"]) else None,
        "first": fmt(span["first"]), "last": fmt(span["last"]),
        "properties": {str(r.property): int(r.n) for r in props.itertuples()},
        "columns": {k: v for k, v in events.mapping.items()},
        "dimensions": card,
        "metrics": [{"name": m.name, "type": m.type, "description": m.description} for m in metrics],
        "notes": events.notes,
    }


__all__ = ["Detection", "detect", "describe", "parse_time"]
