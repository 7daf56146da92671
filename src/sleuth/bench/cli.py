"""The ``sleuth bench`` verbs: accuracy on public data and on generated shops, each printed as a
table (or one JSON line with ``--json``). ``make bench`` runs them after the speed benchmarks."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import emit_json, out


def _print_matrix_summary(res: dict) -> None:
    from rich.table import Table

    runs = res["runs"]
    t = Table(title=f"over {len(runs)} shops (seeds {', '.join(str(r['seed']) for r in runs)}): windows whose top "
                    "disruption names begin_checkout→purchase/(end) (or only one of its events), and windows with any "
                    "disruption", title_justify="left")
    for col in ("method", "incident: names the step", "incident: an event of it", "incident: any disruption",
                "normal: names the step", "normal: an event of it", "normal: any disruption"):
        t.add_column(col)
    for name, m in res["summary"].items():
        t.add_row(name, *(f"{m[f'{side}_{k}']}/{m[f'{side}_windows']}" for side in ("incident", "normal")
                          for k in ("step", "event", "with_disruptions")))
    out.print(t)


bench_app = typer.Typer(help="Benchmarks on public data (NAB, cloud monitoring, root-cause cases, Panomaly, root_anom) "
                        "and on generated shops (the classifier view).",
                        no_args_is_help=True, add_completion=False)


@bench_app.command("nab")
def bench_nab(path: Path = typer.Argument(Path("../shared/bench/nab"), help="NAB folder (data/, labels/, config/)"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Replay every NAB file as a stream and print NAB scores (standard, low FP, low FN)."""
    from .nab import run_nab

    res = run_nab(path)
    if emit_json(res, as_json):
        return
    out.print(f"NAB: {res['files']} files, {res['rows']:,} rows in {res['seconds']:.1f} s (detector {res['detector']})")
    for name, p in res["profiles"].items():
        out.print(f"  {name:<22} oracle {p['oracle']['score']:7.2f} (threshold {p['oracle']['threshold']:.3f})   "
                  f"shipped default {p['is_anomaly']['score']:7.2f}   first row of each alarm {p['onsets']['score']:7.2f}")
    if res.get("reference"):
        ref = res["reference"]
        out.print("  reference (Numenta HTM's published output, same scorer): "
                  + ", ".join(f"{k} {v['oracle']['score']:.2f}" for k, v in ref.items()))


@bench_app.command("cloud")
def bench_cloud(path: Path = typer.Argument(Path("../shared/bench/ms-cloud-monitoring"), help="cloud-monitoring folder"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Score the labelled cloud-monitoring series by event (caught or missed; false-alarm runs)."""
    from .cloud import run_cloud

    res = run_cloud(path)
    if emit_json(res, as_json):
        return
    for name, d in [*res["domains"].items(), ("overall", res["overall"])]:
        out.print(f"  {name:<38} caught {d['caught']:>3}/{d['events']:<3} (before warm-up: {d['blind']:>3})  "
                  f"false-alarm runs {d['false_alarms']:>3}")


@bench_app.command("rca")
def bench_rca(path: Path = typer.Argument(Path("../shared/bench/rca/rs"), help="RS folder (anomaly.yaml) or a "
                                          "Squeeze-format folder (injection_info.csv)"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Score root-cause localisation with exact-match micro F1."""
    from .rca import run_folder

    res = run_folder(path)
    if emit_json(res, as_json):
        return
    out.print(f"{path}: F1 {res['f1']:.3f} (TP {res['tp']}, FP {res['fp']}, FN {res['fn']}) "
              f"over {res['cases']} cases in {res['seconds']:.2f} s")


@bench_app.command("rootanom")
def bench_rootanom(path: Path = typer.Argument(Path("../shared/data/lazylantern-root-anom"),
                                               help="folder of root_anom's anonymized-anomalies-org<N>.csv"),
                   shop: bool = typer.Option(True, "--shop/--no-shop", help="also compare the transition "
                                             "matrices on generated demo shops (4 seeds, about 40 s)"),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """root_anom reproduced: its anomaly chaining against the reference chains, and its transition
    matrix against sleuth's event-path change on the demo shop. Exits 1 if a reference is missed."""
    from .rootanom import run_rootanom

    res = run_rootanom(path, shop=shop)
    if not emit_json(res, as_json):
        _print_chaining(res["chaining"])
        if shop:
            _print_matrix_comparison(res["shop"]["runs"][0])
            _print_matrix_summary(res["shop"])
    if res["chaining"]["present"] and not res["chaining"]["reference_ok"]:
        raise typer.Exit(1)


def _print_chaining(res: dict) -> None:
    if not res["present"]:
        out.print(f"root_anom anomaly logs not present at {res['path']}: chaining check skipped")
        return
    ok = "[bold green]all match[/]" if res["reference_ok"] else "[bold red]DO NOT MATCH[/]"
    out.print(f"root_anom chaining on {res['path']}: {res['reference_checked']} reference sources checked, {ok}"
              + (f"; missing sources: {', '.join(res['missing_sources'])}" if res["missing_sources"] else ""))
    for org, bug in res["last_row_bug"].items():
        if bug:
            out.print(f"  org {org}: last-row bug: row {bug['row']} (source {bug['source']}) joins anom_num "
                      f"{bug['anom_num']} of source {bug['joined_source']} without overlapping it")
    for s in res["sources"]:
        f, r = s["faithful"], s["recommended"]
        mark = {True: "matches the reference", False: "[red]differs from the reference[/]", None: "no reference"}
        out.print(f"  org {s['org']} source {s['source']} ({s['rows']} rows): original {f['groups']} groups, chains "
                  f"{f['chains']} ({mark[s['reference_ok']]}); sleuth {r['groups']} groups, chain sizes {r['chains']}")
        for why, rows in s["changed"].items():
            if rows:
                out.print(f"    change group ({why}): rows {rows}")
        if s["coincidental"]:
            out.print(f"    same group for another reason (another source's rows bridged them): rows {s['coincidental']}")
        if s["windows_cut_short"]:
            out.print(f"    {s['windows_cut_short']} chain window(s) end at the last row's end, before the latest end")


def _print_matrix_comparison(res: dict) -> None:
    from rich.table import Table

    t = Table(title=f"root_anom's matrix vs sleuth's path change: demo shop, {res['events']:,} events, "
                    f"{res['weeks']} weeks, {res['sessions_per_hour']:g} sessions/h, seed {res['seed']} "
                    f"({res['seconds']:.0f} s)", title_justify="left")
    for col in ("window", "method", "top disruption", "names the break", "begin_checkout→purchase", "disrupted event",
                "disruptions"):
        t.add_column(col)
    for case in res["cases"]:
        for k, (name, m) in enumerate(case["methods"].items()):
            top = f"{m['top']} ({m['change']:+.3f})" if m["change"] is not None else m["top"]
            cell = "-" if m["break_change"] is None else f"{m['break_change']:+.3f}" + (
                f", #{m['break_rank']}" if m["break_rank"] else "")
            t.add_row(f"{case['case']}\n{case['start']} to {case['end']}" if k == 0 else "", name, top, m["verdict"],
                      cell, m.get("disrupted_event", "-"), str(m["disruptions"]))
    out.print(t)
    share = [m["interleaved_share"] for c in res["cases"] for m in c["methods"].values() if "interleaved_share" in m]
    out.print("begin_checkout→purchase: the change in the cell (the original: D of the column-normalised matrix, "
              "its rank by |D| among all cells; sleuth: ΔP(next | current), its rank among the significant transitions). "
              f"Disruptions: the original, cells with |D| > 0.1 (it has no test); sleuth, transitions with q < 0.01. "
              f"In the original's interleaved stream {min(share):.0%} to {max(share):.0%} of adjacent rows are two "
              "different users, so it counts almost no real move and most rows become self-loops.")


@bench_app.command("panomaly")
def bench_panomaly(path: Path = typer.Argument(Path("../shared/data/lazylantern-panomaly"),
                                               help="Panomaly sample folder (the five CSVs and reference/)"),
                   demo: bool = typer.Option(True, "--demo/--no-demo", help="also compare linking on the demo shop"),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Linked anomalies: reproduce Panomaly's reference outputs, then compare alerts on the demo shop.
    Exits 1 if a reference value is missed."""
    from .panomaly import demo_linking, run_panomaly

    res = run_panomaly(path)
    if not res["present"]:
        out.print(f"Panomaly sample data not present at {path}: reference checks skipped")
    if demo:
        res["demo"] = demo_linking()
    if emit_json(res, as_json):
        return
    for c in res["faithful"]:
        verdict = "[green]matches[/]" if not c["mismatches"] and c["report_matches"] else "[red]differs[/]"
        out.print(f"Panomaly reference {c['variant']} {c['window']}:00: {c['anomalies']} anomalies, {c['rows']} links, "
                  f"{len(c['mismatches'])} values differ, report of {c['report_rows']} rows {verdict}")
        for m in c["mismatches"][:5]:
            out.print(f"  {m}")
    for s in res["sleuth"]:
        out.print(f"sleuth's mode {s['window']}:00: {s['anomalies']} anomalies -> {s['alerts']} alerts "
                  f"({s['saved']:.0%} fewer), {s['links']} links; groups {s['groups']}")
    if demo:
        d = res["demo"]
        out.print(f"Demo shop: {d['incidents']} incidents during {d['injected']} injected ones -> alerts: "
                  f"no linking {d['no_linking']}, Panomaly original {d['panomaly_original']}, Panomaly in "
                  f"sleuth's mode {d['panomaly_sleuth_mode']}, sleuth {d['sleuth']} "
                  f"({1 - d['sleuth'] / max(d['incidents'], 1):.0%} fewer); groups mixing incidents: {d['sleuth_mixed_groups']}")
    if res["present"]:
        out.print(f"{res['seconds']:.1f} s for the reference checks")
    if any(c["mismatches"] or not c["report_matches"] for c in res["faithful"]):
        raise typer.Exit(1)


@bench_app.command("classifier")
def bench_classifier(weeks: int = typer.Option(3, min=3, max=12, help="weeks of demo history"),
                     sessions_per_hour: float = typer.Option(1000.0, min=100, help="average sessions per hour"),
                     seed: int = typer.Option(7, help="random seed of the demo shop"),
                     all_metrics: bool = typer.Option(False, "--all-metrics", help="every metric each incident moves, "
                                                      "not only its first (several minutes)"),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """Spotlight as published vs sleuth's classifier view on the demo shop's injected incidents."""
    from rich.table import Table

    from .classifier import run_classifier_bench
    from ..incidents import segment_text

    res = run_classifier_bench(weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed, all_metrics=all_metrics)
    if emit_json(res, as_json):
        return
    table = Table(title=f"classifier view on the demo shop ({res['events']:,} events, {weeks} weeks, "
                        f"{sessions_per_hour:g} sessions/h)", title_justify="left")
    for col in ("incident", "metric", "injected segment", "variant", "verdict", "named", "segment named",
                "AUC", "excess AUC", "s", "right"):
        table.add_column(col)
    for r in res["incidents"]:
        seg = segment_text(r["segment"], "(site-wide)")
        for variant in ("faithful", "ours"):
            v = r[variant]
            table.add_row(r["incident"], r["metric"], seg, variant, v["verdict"], ", ".join(v["named"]) or "-",
                          {True: "yes", False: "no", None: "n/a"}[v["has_segment"]],
                          "-" if v["auc"] is None else f"{v['auc']:.2f}",
                          "-" if v["excess_auc"] is None else f"{v['excess_auc']:.2f}", f"{v['seconds']:.1f}",
                          "yes" if v["right"] else "no")
    out.print(table)
    for variant, tot in res["totals"].items():
        out.print(f"{variant}: {tot['right']}/{len(res['incidents'])} right; seconds per incident median "
                  f"{tot['median_seconds']:.1f}, max {tot['max_seconds']:.1f}")
    out.print(f"{res['seconds']:.0f} s in all")


RecordOpt = typer.Option(False, "--record", help="write the figures into docs/ and bench-results/ (make bench does)")


@bench_app.command("faults")
def bench_faults(as_json: bool = typer.Option(False, "--json"), record: bool = RecordOpt) -> None:
    """Reliability figures: stray timestamps (time and peak memory of a run) and slow channels
    (a hung and a dripping channel before a healthy one)."""
    from .faults import markdown, run_faults

    res = run_faults()
    if record:
        from .record import record as write

        out.print(f"recorded in {write('faults', markdown(res), res, docs=Path('docs/reliability.md'))}")
    if emit_json(res, as_json):
        return
    for r in res["stray_timestamps"]:
        out.print(f"stray timestamp: {r['stray']:<20} {r['events']:>9,} events  run --once {r['seconds']:6.1f} s  "
                  f"peak {r['peak_mb']:,} MB  exit {r['exit']}")
    s = res["slow_channels"]
    out.print(f"slow channels (hung, dripping, healthy): run --once {s['seconds']} s, exit {s['exit']}, messages "
              f"{s['messages']}, {s['deferred']} left for the next run, {s['timeouts']} attempts timed out; the "
              f"healthy channel had its {s['healthy_channel_messages']} messages by {s['healthy_channel_last_at_s']} s")


@bench_app.command("scale")
def bench_scale(sizes: str = typer.Option("1,5,20,50", help="millions of events, comma separated"),
                spark_sizes: str = typer.Option("1,5", "--spark", help="the sizes also run on Spark local "
                                                "(needs the spark extra and Java; '' for none)"),
                workdir: Optional[Path] = typer.Option(None, help="where the generated events go (a temporary "
                                                       "folder inside it, deleted afterwards); 50 M needs ~1 GB"),
                as_json: bool = typer.Option(False, "--json"), record: bool = RecordOpt) -> None:
    """`detect` from 1 M to 50 M events at ~20,400 series: wall time, peak memory and the ratio to
    the bare DuckDB aggregation of the same metrics; Spark local against DuckDB on the smaller sizes."""
    from .scale import markdown, run

    def millions(text: str) -> list[float]:
        try:
            return [float(x) * 1e6 for x in text.split(",") if x.strip()]
        except ValueError:
            raise typer.BadParameter(f"{text!r}: give millions of events such as 1,5,20") from None

    res = run(millions(sizes), millions(spark_sizes), workdir)
    if record:
        from .record import record as write

        out.print(f"recorded in {write('scale', markdown(res['rows']), res)}")
    if emit_json(res, as_json):
        return
    out.print(markdown(res["rows"]))
