"""The ``sleuth`` command line: a thin typer layer over the Python API.

Library errors (:class:`sleuth.errors.SleuthError`) become one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from typer.core import TyperGroup

from .console import emit_json, err, fmt_number, narrow, out, plural
from .errors import SleuthError
from .redact import redact_source, redact_text

#: verbs whose code is imported only when they run (or when ``--help`` lists them)
LAZY_GROUPS = {"bench": "sleuth.bench.cli:bench_app"}


class _Verbs(TyperGroup):
    """The top-level verbs, with the ``bench`` group imported on use: the product does not
    depend on its benchmarks."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx, name):
        if name in LAZY_GROUPS:
            from importlib import import_module

            module, attr = LAZY_GROUPS[name].split(":")
            group = typer.main.get_command(getattr(import_module(module), attr))
            group.name = name
            return group
        return super().get_command(ctx, name)


app = typer.Typer(
    name="sleuth", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=_Verbs,
    help="Watch the metrics of a website or app, detect anomalies and explain why.",
)

ConfigOpt = typer.Option(None, "--config", "-c", help="sleuth.yaml (default: derive metrics from the data)")
StoreOpt = typer.Option(None, "--store", help="database URL (default: store: in the config, else "
                        "sqlite:///.sleuth/sleuth.db); postgresql://user@host/db works too")
DetectorOpt = typer.Option("seasonal", "--detector", "-d",
                           help="seasonal (default); mstl, autoets, auto, prophet need the forecast extra")


@contextmanager
def stages(enabled: bool = True, extra: tuple[str, ...] = ()) -> Iterator:
    """A progress bar on stderr over the pipeline's stages; yields a callback ``say(stage)``."""
    from .pipeline import STAGES

    if not enabled or not err.is_terminal:
        yield lambda _stage: None
        return
    order = [*extra, *STAGES]
    with Progress(SpinnerColumn(), TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("starting", total=len(order))

        def say(stage: str) -> None:
            done = order.index(stage) if stage in order else 0
            progress.update(task, description=stage, completed=done)

        yield say


@app.command()
def detect(
    source: str = typer.Argument(..., help="events file (.csv .jsonl .parquet) or ibis URL 'duckdb:///f.db#table'"),
    config: Optional[Path] = ConfigOpt,
    since: Optional[str] = typer.Option(None, help="report incidents starting at or after this time (ISO 8601)"),
    until: Optional[str] = typer.Option(None, help="read only events before this time (replay history as if live)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per incident per line (Contract 3)"),
    detector: str = DetectorOpt,
) -> None:
    """Detect anomalies in every metric and explain them."""
    from .pipeline import detect as run_detect
    from .report import groups_table, incidents_table, print_notes

    with stages(not as_json) as say:
        result = run_detect(source, config, since=since, until=until, detector=detector, progress=say)
    if as_json:
        for inc in result.incidents:
            sys.stdout.write(inc.to_json() + "\n")
        return
    print_notes(err, result.notes)
    ratios = {m for m, spec in result.cube.metrics.items() if spec.is_ratio}
    out.print(incidents_table(result.incidents, ratios,
                              title=f"{plural(len(result.incidents), 'incident')} in {result.events.source}"))
    if result.incidents:
        out.print(groups_table(result.incidents))


@app.command()
def metrics(
    source: str = typer.Argument(..., help="events file or ibis URL"),
    config: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Show what sleuth sees in a source: metrics, dimensions, properties and time range."""
    from rich.table import Table

    from .pipeline import describe

    from .report import print_notes

    info = describe(source, config)
    if as_json:
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
        return
    print_notes(err, info["notes"])
    out.print(f"[bold]{info['source']}[/]: {info['events']:,} events from {info['first']} to {info['last']}")
    out.print("properties: " + ", ".join(f"{k} ({v:,})" for k, v in info["properties"].items()))
    out.print("columns: " + ", ".join(f"{k}={v}" for k, v in info["columns"].items() if v))
    out.print("dimensions: " + (", ".join(f"{k} ({v} values)" for k, v in info["dimensions"].items()) or "none"))
    table = Table(title="metrics", title_justify="left")
    for col in ("name", "type", "what"):
        table.add_column(col)
    for m in info["metrics"]:
        table.add_row(m["name"], m["type"], m["description"] or "")
    out.print(table)


@app.command()
def score(
    series: Path = typer.Argument(..., help="CSV with timestamp,value or series_id,timestamp,value"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="write here instead of stdout"),
    granularity: Optional[str] = typer.Option(None, help="spacing such as 5min, 1h, 1d (default: inferred)"),
    holidays: Optional[str] = typer.Option(None, help="country codes, comma separated (e.g. US,DE): bands widen on holidays"),
    detector: str = DetectorOpt,
) -> None:
    """Score a series file online: adds anomaly_score (0..1) and is_anomaly (Contract 4)."""
    from .config import Config
    from .score import read_series, score_frame

    codes = [c.strip() for c in holidays.split(",") if c.strip()] if holidays else []
    if codes:
        Config(holidays=codes)  # validates the codes with the same message as sleuth.yaml
    if granularity:
        import pandas as pd
        try:
            pd.Timedelta(granularity.replace("1d", "1D"))
        except ValueError:
            raise SleuthError(f"--granularity: cannot read {granularity!r}; use 5min, 1h or 1d") from None
    from .detectors.base import get_detector

    get_detector(detector)  # an unknown name or a missing extra fails before the file is read
    df = read_series(series)
    result = score_frame(df, granularity=granularity, holidays=codes, detector=detector)
    if out_path:
        result.to_csv(out_path, index=False)
        err.print(f"wrote {len(result):,} rows to {out_path} ({int(result.is_anomaly.sum())} anomalous)")
    else:
        result.to_csv(sys.stdout, index=False)


@app.command()
def demo(
    out_dir: Path = typer.Option(Path(".sleuth/demo"), "--out", help="where the demo shop's data is written"),
    weeks: int = typer.Option(6, min=5, max=52, help="weeks of hourly history (alerts need 3 weeks)"),
    sessions_per_hour: float = typer.Option(1000.0, min=10, help="average sessions per hour"),
    seed: int = typer.Option(7, help="random seed"),
    as_json: bool = typer.Option(False, "--json", help="print incidents as JSON lines and the evaluation as a last line"),
    detector: str = DetectorOpt,
) -> None:
    """Generate a demo shop with injected incidents, detect and explain them, compare with the truth."""
    from .datasets.shop import DEMO_CONFIG, evaluate, write_shop
    from .incidents import json_default
    from .pipeline import detect as run_detect
    from .report import incidents_table, print_notes, truth_table

    t0 = time.perf_counter()
    with stages(not as_json, extra=("generating the demo shop",)) as say:
        say("generating the demo shop")
        written = write_shop(out_dir, fmt="parquet", weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
        cfg_path = out_dir / "sleuth.yaml"
        cfg_path.write_text(DEMO_CONFIG, encoding="utf-8")
        result = run_detect(written["events"], cfg_path, detector=detector, progress=say)
    from .datasets.shop import InjectedIncident

    truth = [InjectedIncident.from_dict(d) for d in json.loads(Path(written["truth"]).read_text())]
    evaluation = evaluate([i.to_dict() for i in result.incidents], truth)
    elapsed = time.perf_counter() - t0
    if as_json:
        for inc in result.incidents:
            sys.stdout.write(inc.to_json() + "\n")
        summary = {k: v for k, v in evaluation.items() if k != "false_alarm_list"}
        sys.stdout.write(json.dumps({"evaluation": summary, "seconds": round(elapsed, 1)}, default=json_default) + "\n")
        return
    print_notes(err, result.notes)
    ratios = {m for m, spec in result.cube.metrics.items() if spec.is_ratio}
    out.print(f"[bold]Demo shop[/]: {written['rows']:,} events, {weeks} weeks, 2 properties (web, app) "
              f"-> {out_dir}")
    out.print(incidents_table(result.incidents, ratios, title=f"{plural(len(result.incidents), 'incident')} sleuth found"))
    out.print(truth_table(evaluation, truth))
    from .detectors.base import get_detector

    history = get_detector(detector).min_history(result.config.season)
    weeks_scored = max((len(result.cube.buckets) - history) / result.config.season, 1e-9)
    out.print(
        f"[bold]{evaluation['found']}/{evaluation['total']}[/] injected incidents found, "
        f"[bold]{evaluation['explained']}/{evaluation['total']}[/] with their cause named (segments or paths); "
        f"{plural(evaluation['related'], 'more incident')} on linked metrics during them; "
        f"[bold]{plural(evaluation['false_alarms'], 'false alarm')}[/] "
        f"({evaluation['false_alarms'] / weeks_scored:.1f} a week over {weeks_scored:.1f} weeks scored); "
        f"{elapsed:.1f} s in all."
    )
    alerts = evaluation["alerts"]
    out.print(f"Linking: the {plural(alerts['detections'], 'incident')} during the injected ones make "
              f"{plural(alerts['alerts'], 'alert')} ({alerts['saved']:.0%} fewer).")
    out.print(f"Try: sleuth detect {written['events']} --config {cfg_path} --json", soft_wrap=True)


@app.command()
def sessions(
    source: str = typer.Argument(..., help="a nested session export (GA360 ga_sessions: .jsonl, .parquet, an ibis "
                                 "URL) or an event stream"),
    config: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line: summary, cluster shifts, pages, "
                                 "flagged sessions (Contract 8)"),
    since: Optional[str] = typer.Option(None, help="report incidents starting at or after this time (ISO 8601)"),
    until: Optional[str] = typer.Option(None, help="read only data before this time"),
) -> None:
    """Bots, behaviour clusters and slow pages in session data (Contract 8)."""
    from .pipeline import detect as run_detect
    from .sessions.output import _clean, records

    with stages(not as_json) as say:
        result = run_detect(source, config, since=since, until=until, progress=say, sessions="only")
    if as_json:
        for r in records(result):
            sys.stdout.write(json.dumps(_clean(r), ensure_ascii=False, default=str) + "\n")
        return
    from .sessions.console import print_sessions

    print_sessions(result, out, err)


@app.command()
def rca(
    cases: list[Path] = typer.Argument(..., help="leaf tables: one CSV per case (real,predict,<dimensions>)"),
    real: str = typer.Option("real", help="column of actual values (a ratio's numerator)"),
    predict: str = typer.Option("predict", help="column of forecast values (a ratio's numerator)"),
    real_den: Optional[str] = typer.Option(None, help="ratio measure: column of actual denominators"),
    predict_den: Optional[str] = typer.Option(None, help="ratio measure: column of forecast denominators"),
    max_depth: Optional[int] = typer.Option(None, min=1, help="cap the dimensions of one root-cause element "
                                            "(default: no cap, the depth follows the data)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON line per file (Contract 5)"),
) -> None:
    """Localise the root causes of each leaf table (Contract 5)."""
    from .explain.rca import localize, unexplained
    from .incidents import segment_text
    from .score import read_csv_checked

    if (real_den is None) != (predict_den is None):
        raise SleuthError("--real-den and --predict-den go together (both name the denominators of a ratio)")
    skip = {real, predict, real_den, predict_den, "timestamp"}
    for path in cases:
        leaves = read_csv_checked(path, required=[c for c in (real, predict, real_den, predict_den) if c])
        dims = [c for c in leaves.columns if c not in skip]
        leaves[dims] = leaves[dims].astype(str)
        found = localize(leaves, dims, real=real, predict=predict, real_den=real_den,
                         predict_den=predict_den, max_depth=max_depth)
        if as_json:
            sys.stdout.write(json.dumps({"file": str(path), "root_causes": [rc.to_dict() for rc in found],
                                         "unexplained": round(unexplained(found), 4)}, ensure_ascii=False) + "\n")
            continue
        out.print(f"[bold]{path}[/]: {len(leaves):,} leaves, dimensions {', '.join(dims)}")
        if not found:
            out.print("  no segment stands out: the change is spread over everything, or within noise")
        for rc in found:
            seg = segment_text(rc.segment, "")
            out.print(f"  {seg:<50} explains {rc.explains:6.1%}  score {rc.score:.2f}  change {rc.change:+.1%}  "
                      f"actual {fmt_number(rc.actual)} vs expected {fmt_number(rc.expected)}")
        if found:
            out.print(f"  {'unexplained':<50} {unexplained(found):15.1%}")


@app.command()
def explain(
    incident_id: str = typer.Argument(..., help="an incident id (or a unique prefix) from `sleuth detect` or "
                                      "`sleuth alerts list`"),
    source: Optional[str] = typer.Option(None, "--source", "-s", help="the events the incident was detected in: "
                                         "needed for the classifier view, or when the store does not have it"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    as_json: bool = typer.Option(False, "--json", help="print the incident with its explanation as JSON"),
    method: str = typer.Option("all", "--method", "-m",
                               help="segments (root causes), paths (event-path change), links (incidents sent with it), "
                                    "classifier (what sets the incident's events apart: random forest + SHAP; on demand, "
                                    "seconds), or all (everything but classifier)"),
) -> None:
    """Explain one incident: root-cause segments, contributions per dimension, event-path change.

    A stored incident (`sleuth run` stored it) is read from the store at once; otherwise the
    source is detected again."""
    from .incidents import segment_text
    from .report import cause_text

    if method not in ("all", "segments", "paths", "links", "classifier"):
        raise SleuthError(f"explain --method: unknown method {method!r}; use segments, paths, links, classifier or all")
    inc, linked = _stored_incident(incident_id, config, store)
    if inc is None:
        if source is None:
            raise SleuthError(f"no incident {incident_id!r} in the store; give the events with --source to detect "
                              "again, or `sleuth alerts list` for the stored ids")
        inc, linked = _detected_incident(incident_id, source, config, as_json)
    if method == "classifier":
        if source is None:
            raise SleuthError("explain --method classifier reads the events: add --source EVENTS")
        from .dashboard.view import events_for
        from .explain.classifier import classify_incident

        events, metrics = events_for(source, config)
        inc.classifier = classify_incident(events, inc, metrics.get(inc.metric))
    if as_json:
        sys.stdout.write(inc.to_json() + "\n")
        return
    _print_explanation(inc, linked, method, segment_text, cause_text)


def _stored_incident(incident_id: str, config: Optional[Path], store: Optional[str]):
    """``(incident, its linked incidents)`` from the alert store, or ``(None, [])``."""
    from .alerts import DEFAULT_STORE, StoreError, open_store
    from .alerts.run import store_url
    from .errors import InputError
    from .snapshot import incident_from

    url = store_url(_alert_config(config), store)
    if url is None and not Path(DEFAULT_STORE.removeprefix("sqlite:///")).exists():
        return None, []  # no store yet: nothing stored to read (and none is created by asking)
    try:
        db = open_store(url)
    except StoreError:
        if store:
            raise
        return None, []  # no default store here: detect instead
    try:
        try:
            row = db.get(incident_id)
        except InputError:
            return None, []
        linked = []
        for other in row["data"].get("linked", []):
            try:
                o = db.get(other)
                linked.append(incident_from({**o["data"], "id": o["key"]}))
            except InputError:
                continue
        return incident_from({**row["data"], "id": row["key"]}), linked
    finally:
        db.close()


def _detected_incident(incident_id: str, source: str, config: Optional[Path], quiet: bool):
    from .pipeline import detect as run_detect

    with stages(not quiet) as say:
        result = run_detect(source, config, progress=say)
    inc = next((i for i in result.incidents if i.id == incident_id), None)
    if inc is None:
        raise SleuthError(f"no incident {incident_id!r} in {redact_source(source)}; `sleuth detect SOURCE --json` "
                          "lists their ids")
    return inc, [i for i in result.incidents if i.id in inc.linked]


def _print_explanation(inc, linked, method: str, segment_text, cause_text) -> None:
    from rich.table import Table

    seg = segment_text(inc.segment)
    out.print(f"[bold]{inc.metric}[/] ({inc.property}, {seg}) went {inc.direction} from {inc.start} to {inc.end}: "
              f"{fmt_number(inc.actual)} against {fmt_number(inc.expected)} expected ({(inc.change or 0):+.0%}); "
              f"top cause: {cause_text(inc)}")
    if method == "classifier":
        _print_classifier(inc.classifier)
        return
    if method in ("all", "links"):
        out.print(f"linked incidents (sent as one alert): {len(linked)}" if linked else "linked incidents: none")
        for i in linked:
            seg = segment_text(i.segment, "all")
            out.print(f"  {i.id}  {i.metric} ({i.property}, {seg}) {i.direction} {(i.change or 0):+.0%}, {i.start} to {i.end}")
            why = inc.link_evidence.get(i.id)
            out.print(f"      why: {'; '.join(why)}" if why else "      why: through others in the group")
    if method in ("all", "paths"):
        _print_paths(inc)
    if method in ("paths", "links"):
        return
    table = Table(title="root causes", title_justify="left")
    for col in ("segment", "explains", "score"):
        table.add_column(col)
    for rc in inc.root_causes:
        table.add_row(segment_text(rc["segment"], ""), f"{rc['explains']:.0%}", f"{rc['score']:.2f}")
    out.print(table)
    for dim, rows in inc.rate_mix.items():
        t = Table(title=f"rate effect vs mix effect by {dim} (points of {inc.metric})", title_justify="left")
        for col in ("value", "expected rate", "actual rate", "expected share", "actual share", "rate effect",
                    "mix effect"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["segment"]), f"{r['expected_rate']:.4g}", f"{r['actual_rate']:.4g}",
                      f"{r['expected_share']:.0%}", f"{r['actual_share']:.0%}", f"{r['rate_effect']:+.4g}",
                      f"{r['mix_effect']:+.4g}")
        out.print(t)
    for dim, rows in inc.contributions.items():
        t = Table(title=f"by {dim}", title_justify="left")
        for col in ("value", "expected", "actual", "share of volume", "share of change"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["segment"]), fmt_number(r["expected"]) if r["expected"] is not None else "-",
                      fmt_number(r["actual"]) if r["actual"] is not None else "-",
                      f"{(r['share'] or 0):.0%}", f"{(r['explains'] or 0):+.0%}")
        out.print(t)


def _print_classifier(view: dict) -> None:
    from rich.table import Table

    from .explain.classifier import fit_text

    out.print(f"classifier view: {view['verdict']} ({fit_text(view)}; {view['positives']:,} {view['unit']} in the "
              f"incident vs {view['negatives']:,} in the same hours a week before)"
              + (f": {view['reason']}" if view["reason"] else ""), markup=False, highlight=False)
    for cause in view["causes"]:
        out.print(f"  {cause['text']}")
    if not view["features"]:
        return
    t = Table(title="importance (mean |SHAP|)", title_justify="left")
    for col in ("feature", "importance", "direction"):
        t.add_column(col)
    for r in view["features"][:10]:
        t.add_row(r["feature"], f"{r['importance']:.4f}", {1: "more likely", -1: "less likely"}.get(r["direction"], "-"))
    out.print(t)


def _print_paths(inc) -> None:
    from rich.table import Table

    if not inc.transitions:
        out.print("event paths: no transition changed significantly against the same hours of earlier weeks")
        return
    d = inc.disrupted_event
    if d:
        out.print(f"disrupted event: [bold]{d['event']}[/]: {d['moved']:,} of its {d['moves']:,} next steps went "
                  f"elsewhere than usual (total-variation distance {d['distance']:.2f})")
    t = Table(title="event-path change (share of sessions taking each next step)", title_justify="left")
    for col in ("from", "to", "usually", "during", "change", "moves"):
        t.add_column(col)
    for r in inc.transitions:
        t.add_row(r["from"], r["to"], f"{r['baseline']:.0%}", f"{r['during']:.0%}", f"{r['change']:+.0%}", f"{r['moves']:,}")
    out.print(t)




def _alert_config(config: Optional[Path]):
    from .config import load_config

    return load_config(config)


@app.command()
def run(
    source: str = typer.Argument(..., help="events file or ibis URL"),
    once: bool = typer.Option(True, "--once", help="run once and exit (cron-friendly; `sleuth watch` repeats)"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    until: Optional[str] = typer.Option(None, help="read only events before this time (replay history)"),
    backfill: int = typer.Option(24, min=0, help="first run: announce incidents that ended at most this many buckets ago"),
    claim_timeout: float = typer.Option(300.0, min=0, help="seconds after which a send left unfinished by a dead run is retried"),
    as_json: bool = typer.Option(False, "--json", help="print the run's summary as one JSON line"),
) -> None:
    """Detect, explain, store and notify once; safe to repeat (Contract 7)."""
    from .alerts import run_once

    from .alerts.run import EXIT_UNDELIVERED
    from .report import print_notes

    cfg = _alert_config(config)
    report = run_once(source, cfg, store=store, until=until, backfill=backfill, claim_timeout=claim_timeout)
    if not as_json:
        print_notes(err, report.notes)
    if not emit_json(report.to_dict(), as_json):
        out.print(report.line(), markup=False, highlight=False, soft_wrap=True)
    if report.undelivered:
        err.print(f"{report.undelivered} message(s) could not be delivered: they stay pending and the next run "
                  f"tries again (exit code {EXIT_UNDELIVERED}); `sleuth alerts list` shows them", markup=False,
                  highlight=False, soft_wrap=True)
        sys.exit(EXIT_UNDELIVERED)


@app.command()
def watch(
    source: str = typer.Argument(..., help="events file or ibis URL"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    every: Optional[float] = typer.Option(None, min=0, help="seconds between runs (default: one granularity step)"),
    max_runs: Optional[int] = typer.Option(None, min=1, help="stop after this many runs (default: never)"),
    backfill: int = typer.Option(24, min=0, help="first run: announce incidents that ended at most this many buckets ago"),
    claim_timeout: float = typer.Option(300.0, min=0, help="seconds after which a send left unfinished by a dead run is retried"),
) -> None:
    """Run again and again; after downtime the next run catches up on everything missed."""
    from .alerts import watch as run_watch

    from .report import print_notes

    runs = []

    def said(report) -> None:
        print_notes(err, report.notes, warnings_only=bool(runs))  # the notes once, warnings every run
        runs.append(report.run)
        out.print(report.line(), markup=False, highlight=False, soft_wrap=True)

    def failed(e) -> None:
        err.print(f"error: {redact_text(str(e))} (the next run tries again)", markup=False, highlight=False,
                  soft_wrap=True)

    cfg = _alert_config(config)
    summary = run_watch(source, cfg, store=store, every=every, max_runs=max_runs, on_run=said, on_error=failed,
                        backfill=backfill, claim_timeout=claim_timeout)
    sys.exit(summary.exit_code)


alerts_app = typer.Typer(help="Read and change the alert store: list, show, ack, resolve, mute, feedback.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


def _open(config: Optional[Path], store: Optional[str]):
    from .alerts import open_store
    from .alerts.run import store_url

    return open_store(store_url(_alert_config(config), store))


def _incident_json(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


@alerts_app.command("list")
def alerts_list(
    state: Optional[str] = typer.Option(None, help="only this state: open, acknowledged, resolved, auto_closed"),
    limit: int = typer.Option(50, min=1, help="most recent first, at most this many"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    as_json: bool = typer.Option(False, "--json", help="one JSON object per incident per line"),
) -> None:
    """List stored incidents, the most recent first."""
    from rich.table import Table

    from .incidents import segment_text

    db = _open(config, store)
    rows = db.incidents(state=state, limit=limit)
    db.close()
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(_incident_json({k: v for k, v in r.items() if k != "data"}), default=str) + "\n")
        return
    table = Table(title=f"{plural(len(rows), 'incident')} in the store", title_justify="left")
    small = narrow()
    cols = ("id", "state", "what", "start (UTC)", "change") if small else (
        "id", "state", "property", "metric", "segment", "start (UTC)", "end", "direction", "change", "severity",
        "rev", "quiet")
    for col in cols:
        table.add_column(col, no_wrap=col in ("id", "start (UTC)", "change"), overflow="fold")
    for r in rows:
        seg = segment_text(json.loads(r["segment"]), "all")
        change = f"{r['change']:+.0%}" if r["change"] is not None else "-"
        if small:
            quiet = f" ({r['quiet']})" if r["quiet"] else ""
            table.add_row(r["key"], r["state"] + quiet, f"{r['metric']} · {r['property']}\n{seg}",
                          f"{r['start_at']:%m-%d %H:%M}", f"{change} {r['severity']}")
            continue
        table.add_row(r["key"], r["state"], r["property"], r["metric"], seg, f"{r['start_at']:%Y-%m-%d %H:%M}",
                      f"{r['end_at']:%Y-%m-%d %H:%M}", r["direction"], change, r["severity"], str(r["revision"]),
                      r["quiet"] or "")
    out.print(table)


@alerts_app.command("show")
def alerts_show(
    incident_id: str = typer.Argument(..., help="an incident id (or a unique prefix) from `sleuth alerts list`"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    as_json: bool = typer.Option(False, "--json", help="print the stored incident, notifications and feedback"),
) -> None:
    """Show one stored incident: the message it would send, its notifications and feedback."""
    from .alerts.notify import describe

    db = _open(config, store)
    row = db.get(incident_id)
    db.close()
    if as_json:
        sys.stdout.write(json.dumps(_incident_json(row), default=str, ensure_ascii=False) + "\n")
        return
    out.print(f"{row['key']}: {row['state']}" + (f" (quiet: {row['quiet']})" if row["quiet"] else ""),
              markup=False, highlight=False)
    out.print("\n".join(describe(row)), markup=False, highlight=False)
    evidence = row["data"].get("link_evidence", {})
    for other in row["data"].get("linked", []):
        why = "; ".join(evidence.get(other, [])) or "through others in the group"
        out.print(f"  sent with {other}: {why}", markup=False, highlight=False)
    for n in row["notifications"]:
        out.print(f"  notification to channel {n['channel']} revision {n['revision']}: {n['status']} "
                  f"after {n['attempts']} attempt(s)", markup=False, highlight=False)
    for f in row["feedback"]:
        out.print(f"  feedback {f['label']} at {f['created']:%Y-%m-%d %H:%M}" + (f": {f['note']}" if f["note"] else ""),
                  markup=False, highlight=False)


def _change(incident_id: str, config: Optional[Path], store: Optional[str], state: str | None = None,
            label: str | None = None, note: str | None = None) -> None:
    db = _open(config, store)
    try:
        row = db.set_state(incident_id, state) if state else db.add_feedback(incident_id, label, note)
    finally:
        db.close()
    out.print(f"{row['key']}: {row['state']}" + (f" (quiet: {row['quiet']})" if row.get("quiet") else ""),
              markup=False, highlight=False)


@alerts_app.command("ack")
def alerts_ack(incident_id: str = typer.Argument(...), config: Optional[Path] = ConfigOpt,
               store: Optional[str] = StoreOpt) -> None:
    """Acknowledge an incident: someone is on it (it still closes by itself once back to normal)."""
    _change(incident_id, config, store, state="acknowledged")


@alerts_app.command("resolve")
def alerts_resolve(incident_id: str = typer.Argument(...), config: Optional[Path] = ConfigOpt,
                   store: Optional[str] = StoreOpt) -> None:
    """Resolve an incident: no more messages about it unless it flares up again."""
    _change(incident_id, config, store, state="resolved")


@alerts_app.command("mute")
def alerts_mute(incident_id: str = typer.Argument(...), note: Optional[str] = typer.Option(None),
                config: Optional[Path] = ConfigOpt, store: Optional[str] = StoreOpt) -> None:
    """Mute the incident's metric and segment: later runs store its incidents but send nothing."""
    _change(incident_id, config, store, label="mute", note=note)


@alerts_app.command("feedback")
def alerts_feedback(incident_id: str = typer.Argument(...),
                    label: str = typer.Argument(..., help="confirmed | expected | false_alarm | mute"),
                    note: Optional[str] = typer.Option(None), config: Optional[Path] = ConfigOpt,
                    store: Optional[str] = StoreOpt) -> None:
    """Label an incident. `expected` quietens changes this way, no more severe, on the same series."""
    _change(incident_id, config, store, label=label, note=note)


@app.command()
def dashboard(
    source: Optional[str] = typer.Argument(None, help="events file or ibis URL (default: the demo shop in .sleuth/demo, "
                                           "generated and run once into its own store if absent)"),
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = StoreOpt,
    port: int = typer.Option(8501, min=1, max=65535, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind (loopback by default: nothing is exposed)"),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="allow a --host other machines can reach: the dashboard has no login "
                                           "and its buttons change alerts; put it behind a reverse proxy with one"),
) -> None:
    """Open the Streamlit dashboard: overview, metric, incident pages and the alerts inbox."""
    import os

    from .dashboard.source import is_loopback, prepare, streamlit_command

    if not is_loopback(host):
        if not allow_remote:
            raise SleuthError(f"--host {host}: other machines could open the dashboard, which has no login and "
                              "whose buttons change alerts; add --allow-remote to do it anyway (behind a reverse "
                              "proxy with a login: see the README), or use 127.0.0.1")
        err.print(f"warning: serving on {host}, reachable from other machines, without a login: anyone who reaches "
                  "it can acknowledge, resolve and mute alerts", style="yellow", markup=False, highlight=False)
    cmd = streamlit_command(host, port)  # first: says which extra is missing before any work
    if source is None:
        err.print("no source given: using the demo shop in .sleuth/demo (generated on first use)")
    settings = prepare(source, config, store)
    err.print(f"dashboard on http://{host}:{port} ({redact_source(settings.source)}, store "
              f"{redact_source(settings.store)})", markup=False, highlight=False)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, {**os.environ, **settings.env()})  # streamlit takes over this process


@app.command()
def report(
    source: Optional[str] = typer.Argument(None, help="events file or ibis URL (optional with --store: its last run)"),
    out_path: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write"),
    config: Optional[Path] = ConfigOpt,
    since: Optional[str] = typer.Option(None, help="incidents starting at or after this time (ISO 8601)"),
    until: Optional[str] = typer.Option(None, help="without --store: read only events before this time; "
                                         "with it: incidents starting before this time"),
    store: Optional[str] = typer.Option(None, "--store", help="read the incidents `sleuth run` stored there "
                                        "instead of detecting (seconds, not minutes)"),
    classifier: int = typer.Option(0, "--classifier", min=0, help="add the classifier view (random forest + SHAP) "
                                   "of the N most severe incidents; seconds each"),
) -> None:
    """Write a self-contained HTML report of a period's incidents, each explained with its context."""
    try:
        from .dashboard.report import write_report
    except ModuleNotFoundError as e:
        raise SleuthError(f"the report needs the dashboard extra ({e.name} is missing): "
                          "pip install 'sleuth[dashboard]'") from None
    if source is None and store is None:
        raise SleuthError("report: give the events (sleuth report EVENTS) or a store that `sleuth run` filled "
                          "(sleuth report --store URL)")
    with stages(store is None) as say:
        done = write_report(source, out_path, config, since=since, until=until, progress=say,
                            classifier=classifier, store=store)
    noun = "incident" if done["incidents"] == 1 else "incidents"
    err.print(f"wrote {done['out']}: {done['incidents']} {noun}, {done['bytes'] / 1e6:.1f} MB, opens offline",
              markup=False, highlight=False)


def main() -> None:
    from ._memory import keep_freed_memory

    keep_freed_memory()
    try:
        app()  # standalone: usage errors keep typer's message shape and exit code 2
    except SleuthError as e:
        err.print(f"error: {redact_text(str(e))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
