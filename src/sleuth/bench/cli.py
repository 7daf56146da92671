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
def bench_rca(path: Path = typer.Argument(Path("../shared/bench/rca"), help="a folder of root-cause cases (RS: "
                                          "anomaly.yaml; Squeeze format: injection_info.csv) or a folder of such folders"),
              shops: bool = typer.Option(True, "--shops/--no-shops", help="also judge the root causes of `detect` on "
                                         "the demo shop and on 10 generated shops (about a minute each)"),
              seeds: int = typer.Option(10, min=1, max=50, help="generated shops (seeds 1..N)"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Root-cause localisation: exact-match micro F1 per case folder, sleuth beside RiskLoc run here and
    the figures published with the cases; then the root causes of `detect` on generated shops."""
    from .rca import large_case_speed, run_all

    res = run_all(path) if path.is_dir() else {"settings": [], "missing": str(path), "large_case": large_case_speed()}
    if shops:
        from .rca_shops import run_shops

        res["shops"] = run_shops(seeds=seeds)
    if emit_json(res, as_json):
        return
    _print_rca(res)


def _print_rca(res: dict) -> None:
    from rich.table import Table

    if res.get("missing"):
        out.print(f"root-cause cases not present at {res['missing']}: F1 skipped")
    t = Table(title="root-cause localisation, exact-match micro F1 (this run: sleuth and RiskLoc re-implemented; "
                    "reference: published with the cases, not run here)", title_justify="left")
    for col in ("setting", "method", "F1", "TP", "FP", "FN", "s/case", "CPU s/case", "max s"):
        t.add_column(col)

    def cell(x, fmt):
        return "-" if x is None else format(x, fmt)

    for s in res["settings"]:
        for name, m in s["methods"].items():
            t.add_row(s["setting"], name, f"{m['f1']:.3f}", str(m["tp"]), str(m["fp"]), str(m["fn"]),
                      f"{m['seconds_per_case']:.3f}", f"{m['cpu_per_case']:.3f}", f"{m['max_seconds']:.2f}")
        for r in s["reference"]:
            t.add_row(s["setting"], f"{r['method']} (reference)", f"{r['f1']:.3f}", cell(r["tp"], "d"), cell(r["fp"], "d"),
                      cell(r["fn"], "d"), "-", cell(r["cpu_per_case"], ".1f"), "-")
    if res["settings"]:
        out.print(t)
    big = res["large_case"]
    out.print(f"one case of {big['leaves']:,} leaves (5 dimensions, 2 causes): {big['seconds']:.2f} s "
              f"(CPU {big['cpu']:.2f} s), {'exact' if big['exact'] else 'NOT exact'}")
    for name, part in res.get("shops", {}).items():
        sm = part["summary"]
        out.print(f"{name} shop{'s' if len(part['runs']) > 1 else ''} (seeds {', '.join(str(r['seed']) for r in part['runs'])}, "
                  f"{sum(r['seconds'] for r in part['runs']):.0f} s): segment incidents detected "
                  f"{sm['segment_detected']}/{sm['segment_incidents']}, with every detection's top cause right "
                  f"{sm['segment_all_top_right']}/{sm['segment_detected']}; detections: top cause right "
                  f"{sm['segment_top_right']}/{sm['segment_detections']}, set right {sm['segment_set_right']}/"
                  f"{sm['segment_detections']}; site-wide detections named site-wide {sm['sitewide_right']}/"
                  f"{sm['sitewide_detections']}")
        for run in part["runs"]:
            for r in run["incidents"]:
                if r["detections"] and r["top_right"] < r["detections"]:
                    out.print(f"  seed {run['seed']} {r['kind']} {r['segment'] or '(site-wide)'}: top cause right "
                              f"{r['top_right']}/{r['detections']}; causes {r['causes']}")


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


@bench_app.command("formats")
def bench_formats(events: int = typer.Option(1_000_000, min=1000, help="rows of the generated GA4 export"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """A generated GA4 BigQuery export read by sleuth against hand-written DuckDB SQL for the same columns."""
    from .formats import run_formats

    res = run_formats(events)
    if emit_json(res, as_json):
        return
    s, h = res["sleuth"], res["hand_sql"]
    out.print(f"GA4 export, {res['events']:,} events ({res['path']}): sleuth {s['seconds']:.2f} s "
              f"({s['params']} param.* columns, {s['columns']} in all), hand-written SQL {h['seconds']:.2f} s "
              f"({res['ratio']:.2f}x)")
    out.print(f"  events {s['events']:,} / {h['events']:,}, sessions {s['sessions']:,} / {h['sessions']:,}, "
              f"revenue {s['revenue']:,.2f} / {h['revenue']:,.2f}: {'the same' if res['same_totals'] else 'DIFFERENT'}; "
              f"exploding event_params would have made {res['rows_if_exploded']:,} rows")


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


@bench_app.command("retail")
def bench_retail(years: int = typer.Option(3, min=2, max=6, help="years of daily data (incidents in the last)"),
                 seed: int = typer.Option(11, help="random seed of the stores"),
                 scale: float = typer.Option(1.0, min=0.05, help="traffic multiplier (1: 800 to 2,400 sessions a day)"),
                 baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                                help="also run Prophet with holidays and statsforecast MSTL"),
                 refit: int = typer.Option(28, min=7, help="days between the baselines' refits"),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Daily e-commerce of five stores over years (a moving retail calendar, the market, injected
    incidents in the last year): sleuth against Prophet with holidays and statsforecast MSTL."""
    from rich.table import Table

    from .retail import run_retail

    res = run_retail(years=years, seed=seed, scale=scale, baselines=("prophet", "mstl") if baselines else (),
                     refit=refit, progress=None if as_json else (lambda m: out.print(f"[dim]{m}[/]")))
    if emit_json(res, as_json):
        return
    t = Table(title=f"{res['stores']} stores, {years} years of daily events ({res['events']:,} events, seed {seed}), "
                    "scored from the second year", title_justify="left")
    for col in ("method", "found", "store-only", "segment named", "market-wide labelled", "missing Black Friday",
                "false alarms: named days / store / year", "other days / store / month", "s"):
        t.add_column(col)
    for name, m in res["methods"].items():
        t.add_row(name, f"{m['found']}/{m['injected']} ({m['recall']:.0%})", m["store_only_found"], m["segments_named"],
                  m["market_wide_labelled"], "found" if m["missing_black_friday_found"] else "missed",
                  f"{m['special_per_store_year']:.2f} ({m['false_alarms_special']})",
                  f"{m['other_per_store_month']:.2f} ({m['false_alarms_other']})", f"{m['seconds']:.0f}")
    out.print(t)
    missed = [p for p in res["methods"]["sleuth"]["per_incident"] if not p["found"]]
    for p in missed:
        out.print(f"  sleuth missed: {p['property']} {p['start']} {p['description']}")
    out.print("False alarms count incidents (segments included for sleuth; the baselines score totals only); "
              "as alerts (linked incidents together) sleuth's are "
              f"{res['methods']['sleuth']['alerts_special_per_store_year']:.2f} / store / year on named days and "
              f"{res['methods']['sleuth']['alerts_other_per_store_month']:.2f} / store / month on other days.")


@bench_app.command("sessions")
def bench_sessions(weeks: int = typer.Option(6, min=5, max=12, help="weeks of generated sessions (alerts need 3)"),
                   sessions_per_day: float = typer.Option(3000.0, min=500, help="people's sessions per day"),
                   seed: int = typer.Option(7, help="random seed of the export"),
                   scale: int = typer.Option(0, min=0, help="also time `sleuth sessions` on this many sessions over "
                                             "4 weeks (1000000 for the target; minutes to generate)"),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Bots, slow pages and a behaviour shift in a generated GA360 export, against IsolationForest
    on naive per-session features in the same run."""
    from .sessions import run_sessions_bench

    res = run_sessions_bench(weeks=weeks, sessions_per_day=sessions_per_day, seed=seed, scale=scale or None)
    if emit_json(res, as_json):
        return
    b, base = res["bots"], res["baseline"]
    out.print(f"[bold]Sessions bench[/]: {res['sessions']:,} sessions, {res['hits']:,} hits, {weeks} weeks; "
              f"`sleuth sessions` {res['cli']['seconds']} s ({res['cli']['cpu_seconds']} CPU-s), peak {res['cli']['peak_rss_gb']} GB")
    out.print(f"bots: precision {b['precision']:.3f}, recall {b['recall']:.3f} ({b['flagged']:,} flagged, "
              f"{b['truth']:,} true; by kind {b['by_kind']})")
    out.print(f"baseline IsolationForest on naive features ({', '.join(base['features'])}): told the bot count, "
              f"precision {base['at_bot_count']['precision']:.3f}, recall {base['at_bot_count']['recall']:.3f}; "
              f"default threshold precision {base['default_threshold']['precision']:.3f}, recall "
              f"{base['default_threshold']['recall']:.3f}; ROC AUC {base['auc']:.3f}")
    for name, m in res["score_methods"].items():
        out.print(f"  reduced space, {name}: ROC AUC {m['auc']:.3f} for bots; told the bot count, precision "
                  f"{m['at_bot_count']['precision']:.3f} ({m['seconds']} s)")
    d = res["detection"]
    for e in d["events"]:
        out.print(f"  {e['kind']:<16} {e['start']} to {e['end']}: {'[green]found[/]' if e['found'] else '[red]MISSED[/]'}"
                  f" ({e['incidents']} incidents{'; ' + e['detail'] if e['detail'] else ''})")
    out.print(f"false page incidents {d['false_page_incidents']} ({d['false_page_per_4_weeks']} per 4 weeks), "
              f"false shifts {d['false_shifts']} ({d['false_shift_per_4_weeks']} per 4 weeks) over "
              f"{d['scored_weeks']} scored weeks; during the injected events, {d['related_page_incidents']} more page "
              f"incidents and {d['related_shifts']} more shifts on what they moved (exit rates in the checkout loop...)")
    for r in d["false_page_list"] + d["false_shift_list"]:
        out.print(f"  false: {r}", highlight=False)
    out.print(f"checkout-loop sessions set aside as new behaviour: {res['checkout_loop_as_new_behaviour']:.0%}")
    out.print(f"reduction: {res['reduction']}", highlight=False)
    if "scale" in res:
        s = res["scale"]
        out.print(f"[bold]scale[/]: {s['sessions']:,} sessions, {s['hits']:,} hits: `sleuth sessions` {s['cli']['seconds']} s "
                  f"({s['cli']['cpu_seconds']} CPU-s over both cores), peak {s['cli']['peak_rss_gb']} GB (targets 60 s, 4 GB)")


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
