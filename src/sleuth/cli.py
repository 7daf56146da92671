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
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .errors import NotYetError, SleuthError

app = typer.Typer(
    name="sleuth", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Watch the metrics of a website or app, detect anomalies and explain why.",
)
out = Console()
if not out.is_terminal:  # piped or in CI: tables at a readable width instead of 80 columns
    out = Console(width=160)
err = Console(stderr=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="sleuth.yaml (default: derive metrics from the data)")


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
) -> None:
    """Detect anomalies in every metric and explain them."""
    from .pipeline import detect as run_detect
    from .report import incidents_table, print_notes

    with stages(not as_json) as say:
        result = run_detect(source, config, since=since, until=until, progress=say)
    if as_json:
        for inc in result.incidents:
            sys.stdout.write(inc.to_json() + "\n")
        return
    ratios = {m for m, spec in result.cube.metrics.items() if spec.is_ratio}
    out.print(incidents_table(result.incidents, ratios, title=f"{len(result.incidents)} incidents in {result.events.source}"))
    print_notes(err, result.notes)


@app.command()
def metrics(
    source: str = typer.Argument(..., help="events file or ibis URL"),
    config: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Show what sleuth sees in a source: metrics, dimensions, properties and time range."""
    from rich.table import Table

    from .pipeline import describe

    info = describe(source, config)
    if as_json:
        sys.stdout.write(json.dumps(info, ensure_ascii=False) + "\n")
        return
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
    for n in info["notes"]:
        err.print(f"[dim]note: {n}[/]")


@app.command()
def score(
    series: Path = typer.Argument(..., help="CSV with timestamp,value or series_id,timestamp,value"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="write here instead of stdout"),
    granularity: Optional[str] = typer.Option(None, help="spacing such as 5min, 1h, 1d (default: inferred)"),
    holidays: Optional[str] = typer.Option(None, help="country codes, comma separated (e.g. US,DE): bands widen on holidays"),
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
    df = read_series(series)
    result = score_frame(df, granularity=granularity, holidays=codes)
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
) -> None:
    """Generate a demo shop with injected incidents, detect and explain them, compare with the truth."""
    from .bench.shop import evaluate, write_shop
    from .incidents import json_default
    from .pipeline import detect as run_detect
    from .report import incidents_table, print_notes, truth_table

    t0 = time.perf_counter()
    with stages(not as_json, extra=("generating the demo shop",)) as say:
        say("generating the demo shop")
        written = write_shop(out_dir, fmt="parquet", weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
        cfg_path = out_dir / "sleuth.yaml"
        cfg_path.write_text(DEMO_CONFIG, encoding="utf-8")
        result = run_detect(written["events"], cfg_path, progress=say)
    from .bench.shop import InjectedIncident

    truth = [InjectedIncident.from_dict(d) for d in json.loads(Path(written["truth"]).read_text())]
    evaluation = evaluate([i.to_dict() for i in result.incidents], truth)
    elapsed = time.perf_counter() - t0
    if as_json:
        for inc in result.incidents:
            sys.stdout.write(inc.to_json() + "\n")
        summary = {k: v for k, v in evaluation.items() if k != "false_alarm_list"}
        sys.stdout.write(json.dumps({"evaluation": summary, "seconds": round(elapsed, 1)}, default=json_default) + "\n")
        return
    ratios = {m for m, spec in result.cube.metrics.items() if spec.is_ratio}
    out.print(f"[bold]Demo shop[/]: {written['rows']:,} events, {weeks} weeks, 2 properties (web, app) "
              f"-> {out_dir}")
    out.print(incidents_table(result.incidents, ratios, title=f"{len(result.incidents)} incidents sleuth found"))
    out.print(truth_table(evaluation, truth))
    from .detectors.base import get_detector

    history = get_detector("seasonal").min_history(result.config.season)
    weeks_scored = max((len(result.cube.buckets) - history) / result.config.season, 1e-9)
    out.print(
        f"[bold]{evaluation['found']}/{evaluation['total']}[/] injected incidents found; "
        f"{evaluation['related']} more incidents on linked metrics during them; "
        f"[bold]{evaluation['false_alarms']}[/] false alarms ({evaluation['false_alarms'] / weeks_scored:.1f} per week "
        f"over {weeks_scored:.1f} weeks scored); {elapsed:.1f} s in all."
    )
    out.print(f"Try: sleuth detect {written['events']} --config {cfg_path} --json")
    print_notes(err, result.notes)


DEMO_CONFIG = """\
# The demo shop's config (Contract 2). Metrics are derived from the data when 'metrics' is absent.
granularity: 1h
timezone: UTC
holidays: [US]
dimensions: [device, os, browser, country, channel, campaign, category]
"""


def _not_yet(verb: str, issue: int, what: str):
    def command() -> None:
        raise NotYetError(f"'sleuth {verb}' is not built yet: {what} (tracked in issue {issue})")
    command.__doc__ = f"(not yet) {what[0].upper()}{what[1:]}."
    return command


for _verb, _issue, _what in [
    ("rca", 5, "root-cause localisation of leaf tables (Contract 5)"),
    ("explain", 5, "explaining one stored incident"),
    ("run", 6, "detect, store and notify once (Contract 7)"),
    ("watch", 6, "the same every granularity step"),
    ("alerts", 6, "listing and changing stored alerts"),
    ("dashboard", 8, "the Streamlit dashboard"),
    ("report", 8, "a self-contained HTML report"),
]:
    app.command(name=_verb, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        _not_yet(_verb, _issue, _what))


def main() -> None:
    try:
        app()  # standalone: usage errors keep typer's message shape and exit code 2
    except SleuthError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
