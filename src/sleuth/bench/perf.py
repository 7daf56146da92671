"""Performance benchmark (``make bench``): ingest + cube against hand-written SQL, detection (the
default detector, and statsforecast MSTL and Prophet on the same series as ratios), demo, and the
dashboard's pages on a year of data.

Prints a report and writes ``bench-results.json`` in the current directory. Not a test: it
asserts nothing; the targets (sleuth's cube within 1.5x of the same aggregates in plain DuckDB
SQL, >= 2,000 series/s/core for detection) are reported next to the measurements. Generated
events are cached as Parquet under ``.sleuth/bench/`` and reused while the row count matches.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from ..config import Config, parse_config
from ..detectors.base import SeriesBatch, get_detector
from ..ingest import NONE_VALUE, load_events
from ..metrics import cube as cube_module
from ..metrics.cube import TOTAL, Cube, build_cube
from ..metrics.derive import resolve_metrics
from ..pipeline import detect
from ..datasets.shop import DEMO_CONFIG, EVENTS, generate_shop

CACHE = Path(".sleuth/bench")
DIMENSIONS = ["device", "os", "browser", "country", "channel", "campaign", "category"]
CUBE_SHOP = {"weeks": 8, "sessions_per_hour": 760.0, "seed": 7}  # ~5.0 M events
DEMO_SHOP = {"weeks": 6, "sessions_per_hour": 400.0, "seed": 7}
CUBE_TARGET, SERIES_TARGET = 1.5, 2000.0
CUBE_CONFIG = Config(dimensions=DIMENSIONS, granularity="1h")
#: (cube metric, Cube array, hand-SQL column): every aggregate of the SQL is checked once
CHECKS = [("sessions", "numerator", "sessions"), ("users", "numerator", "users"),
          ("orders", "numerator", "n_purchase"), ("revenue", "numerator", "revenue"),
          ("conversion_rate", "numerator", "purchase_sessions"),
          ("cart_abandonment_rate", "denominator", "cart_sessions"),
          *[(e, "numerator", f"n_{e}") for e in EVENTS if e != "purchase"]]


def shop_parquet(weeks: int, sessions_per_hour: float, seed: int = 7, directory: Path = CACHE) -> tuple[Path, int]:
    """Generated shop events as Parquet, written once and reused while its row count matches."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"shop-w{weeks}-s{sessions_per_hour:g}-seed{seed}"
    path, meta = directory / f"{stem}.parquet", directory / f"{stem}.json"
    if path.exists() and meta.exists():
        rows = json.loads(meta.read_text()).get("rows")
        if rows == pq.ParquetFile(path).metadata.num_rows:
            return path, rows
    print(f"  generating {stem} once (cached in {directory})", flush=True)
    events, _ = generate_shop(weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
    events.to_parquet(path.with_suffix(".tmp"), index=False)
    path.with_suffix(".tmp").replace(path)  # a run stopped while writing leaves no half file
    meta.write_text(json.dumps({"rows": len(events)}))
    return path, len(events)


def _close(events) -> None:
    """Free the engine's copy of the events now rather than at garbage collection."""
    if hasattr(events.table, "release"):
        events.table.release()
    events.con.disconnect()


def run_sleuth(path: Path, config: Config) -> tuple[Cube, dict[str, float]]:
    """``load_events`` + ``resolve_metrics`` + ``build_cube``, with the time of each stage."""
    stages: dict[str, float] = {}
    query = cube_module._aggregate_frame

    def timed_query(*args, **kwargs):
        t = time.perf_counter()
        out = query(*args, **kwargs)
        stages["cube query (engine + fetch)"] = time.perf_counter() - t
        return out

    t0 = time.perf_counter()
    events = load_events(path, config)
    t1 = time.perf_counter()
    metrics = resolve_metrics(config, events)
    t2 = time.perf_counter()
    cube_module._aggregate_frame = timed_query  # time the engine query inside build_cube
    try:
        cube = build_cube(events, metrics, config)
    finally:
        cube_module._aggregate_frame = query
    t3 = time.perf_counter()
    _close(events)
    rest = (t3 - t2) - stages["cube query (engine + fetch)"]
    stages = {"load_events": t1 - t0, "resolve_metrics": t2 - t1, **stages, "build_cube (dense arrays, rest)": rest}
    return cube, {k: round(v, 3) for k, v in stages.items()}


def cube_sql(path: Path) -> str:
    """The cube's aggregates in plain DuckDB SQL: one GROUP BY per level, one UNION ALL."""
    src = str(path).replace("'", "''")
    aggs = ",\n  ".join([f"count(*) FILTER (WHERE event = '{e}') AS n_{e}" for e in EVENTS] + [
        "count(DISTINCT session_id) AS sessions", "count(DISTINCT user_id) AS users",
        "count(DISTINCT session_id) FILTER (WHERE event = 'purchase') AS purchase_sessions",
        "count(DISTINCT session_id) FILTER (WHERE event = 'add_to_cart') AS cart_sessions",
        "coalesce(sum(revenue) FILTER (WHERE event = 'purchase'), 0) AS revenue"])

    def level(dim: str | None) -> str:
        segment = f"coalesce(CAST({dim} AS VARCHAR), '{NONE_VALUE}')" if dim else "''"
        return (f"SELECT property, date_trunc('hour', timestamp) AS hour, '{dim or TOTAL}' AS dimension,"
                f" {segment} AS segment,\n  {aggs}\nFROM read_parquet('{src}')\nGROUP BY ALL")
    return "\nUNION ALL\n".join(level(d) for d in [None, *DIMENSIONS])


def run_sql(path: Path):
    """Run :func:`cube_sql` on a fresh connection, fetched to Arrow as sleuth fetches its cube.

    Through ``con.sql`` (the relation API, as ibis does): with duckdb 1.5 ``con.execute`` of this
    query can hang with every thread waiting.
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        return con.sql(cube_sql(path)).to_arrow_table()
    finally:
        con.close()


def compare(cube: Cube, table) -> dict:
    """Every SQL aggregate against the cube's series, per property, dimension value and hour."""
    sql = table.to_pandas()
    hour = pd.to_datetime(sql["hour"])
    sql["hour"] = hour.dt.tz_convert("UTC").dt.tz_localize(None) if hour.dt.tz is not None else hour
    keys = cube.keys[cube.keys.metric == CHECKS[0][0]][["property", "dimension", "segment"]]
    row = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(sql[["property", "dimension", "segment"]]))
    col = cube.buckets.get_indexer(sql["hour"])
    placed = (row >= 0) & (col >= 0)
    out = {"sql_rows": len(sql), "sql_rows_not_in_cube": int((~placed).sum()), "values_compared": 0, "mismatches": {}}
    for metric, field, column in CHECKS:
        ours = getattr(cube, field)[(cube.keys.metric == metric).to_numpy()]
        theirs = np.zeros_like(ours)
        theirs[row[placed], col[placed]] = sql[column].to_numpy(float)[placed]
        known = np.isfinite(ours)  # NaN: before a property's first or after its last event
        bad = ~np.isclose(ours, theirs, rtol=1e-9, atol=1e-6) & known | (~known & (theirs != 0))
        out["values_compared"] += int(known.sum())
        if bad.any():
            out["mismatches"][metric] = int(bad.sum())
    totals = sql[sql.dimension == TOTAL]
    out.update(sessions_total=float(totals["sessions"].sum()), revenue_total=round(float(totals["revenue"].sum()), 2))
    out["agree"] = not out["mismatches"] and not out["sql_rows_not_in_cube"]
    return out


def cube_vs_sql(path: Path, repeats: int = 3) -> dict:
    """Best-of-``repeats`` times of sleuth and of the hand SQL (runs interleaved), and agreement."""
    sleuth_runs, sql_runs = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        cube, stages = run_sleuth(path, CUBE_CONFIG)
        sleuth_runs.append((time.perf_counter() - t, time.process_time() - c, stages))
        t, c = time.perf_counter(), time.process_time()
        table = run_sql(path)
        sql_runs.append((time.perf_counter() - t, time.process_time() - c))
    best, _, stages = min(sleuth_runs, key=lambda r: r[0])
    sql_best = min(r[0] for r in sql_runs)
    cpu, sql_cpu = min(r[1] for r in sleuth_runs), min(r[1] for r in sql_runs)  # all threads of this process
    return {"sleuth_s": round(best, 3), "sql_s": round(sql_best, 3), "ratio": round(best / sql_best, 3),
            "target_ratio": CUBE_TARGET, "sleuth_cpu_s": round(cpu, 3), "sql_cpu_s": round(sql_cpu, 3),
            "cpu_ratio": round(cpu / sql_cpu, 3), "sleuth_runs_s": [round(r[0], 3) for r in sleuth_runs],
            "sql_runs_s": [round(r[0], 3) for r in sql_runs], "sleuth_stages_s": stages,
            "series": len(cube), "buckets": len(cube.buckets), "check": compare(cube, table)}


def synthetic_series(n: int, weeks: int = 8, seed: int = 1) -> np.ndarray:
    """Hourly Poisson counts with daily and weekly rhythm; levels from ~1 to ~1,000 per hour."""
    rng = np.random.default_rng(seed)
    h = np.arange(weeks * 168)
    phase = rng.integers(0, 24, n)[:, None]  # series peak at different hours
    daily = 1.0 + 0.6 * np.sin(2 * np.pi * ((h + phase) % 24) / 24)
    weekly = np.where((h // 24) % 7 >= 5, 1.2, 1.0)
    level = np.exp(rng.uniform(0.0, np.log(1000.0), n))[:, None]
    return rng.poisson(level * daily * weekly).astype(float)


def detection_speed(n: int = 2000, weeks: int = 8, repeats: int = 3) -> dict:
    """Series per second of the seasonal detector's ``score_batch`` (best of ``repeats``)."""
    v = synthetic_series(n, weeks)
    batch = SeriesBatch(value=v, weight=np.full_like(v, np.nan), kind=np.full(n, "count"), season=168, day=24)
    detector, walls, cpus = get_detector("seasonal"), [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        detector.score_batch(batch)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    wall, cpu = min(walls), min(cpus)  # CPU time counts every thread of the process
    return {"series": n, "buckets": v.shape[1], "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "series_per_s": round(n / wall), "series_per_cpu_s": round(n / cpu),
            "target_series_per_s_per_core": SERIES_TARGET, "runs_wall_s": [round(w, 3) for w in walls]}


def _per_series(fn, n: int) -> dict:
    """Wall and CPU seconds per series of ``fn()`` run once over ``n`` series (CPU includes child
    processes that finished, such as Prophet's Stan)."""
    t, c0 = time.perf_counter(), os.times()
    fn()
    wall, c1 = time.perf_counter() - t, os.times()
    cpu = sum(getattr(c1, k) - getattr(c0, k) for k in ("user", "system", "children_user", "children_system"))
    return {"series": n, "wall_s_per_series": round(wall / n, 4), "cpu_s_per_series": round(cpu / n, 4)}


def _fit_mstl(batch: SeriesBatch, fast: bool) -> None:
    """One fit of the ``mstl`` detector's model (MSTL(24, 168) + AutoETS) and a day's forecast
    with a 99 % interval per series."""
    from statsforecast import StatsForecast

    S, T = batch.value.shape
    frame = pd.DataFrame({"unique_id": np.repeat(np.arange(S), T), "ds": np.tile(np.arange(T), S),
                          "y": batch.value.ravel()})
    model = get_detector("mstl", fast=fast).model(batch, T)
    StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=frame, h=24, level=[99])


def _fit_prophet(v: np.ndarray) -> None:
    """One Prophet fit (daily and weekly seasonality) and a day's forecast per series."""
    from prophet import Prophet
    ds = pd.date_range("2026-01-05", periods=v.shape[1], freq="h")
    for row in v:
        m = Prophet(daily_seasonality=True, weekly_seasonality=True, yearly_seasonality=False, interval_width=0.99)
        m.fit(pd.DataFrame({"ds": ds, "y": row}))
        m.predict(m.make_future_dataframe(periods=24, freq="h", include_history=False))


def forecast_speed(seasonal: dict, n: int = 20, weeks: int = 8) -> dict:
    """The issue's speed ratios: the same synthetic series (the first ``n`` of the 2,000 the default
    detector scored) through statsforecast MSTL and Prophet, per series, against the default."""
    v = synthetic_series(2000, weeks)[:n]
    base_wall = seasonal["wall_s"] / seasonal["series"]
    base_cpu = seasonal["cpu_s"] / seasonal["series"]
    runs: dict[str, dict] = {}
    try:
        import statsforecast  # noqa: F401  (import time is not part of the per-series figure)
        batch = SeriesBatch(value=v, weight=np.full_like(v, np.nan), kind=np.full(n, "count"), season=168, day=24)
        runs["statsforecast MSTL(24,168)+AutoETS, one fit"] = _per_series(lambda: _fit_mstl(batch, fast=False), n)
        runs["same, stl trend_jump=10 low_pass_jump=5"] = _per_series(lambda: _fit_mstl(batch, fast=True), n)
        for name in ("mstl", "auto"):
            det = get_detector(name)
            runs[f"detector {name!r} (weekly refits, scores every hour)"] = _per_series(lambda: det.score_batch(batch), n)
    except ImportError:
        runs["statsforecast"] = {"missing": "not installed (pip install 'sleuth[forecast]')"}
    try:
        from ..detectors.forecast import quiet_prophet

        quiet_prophet()
        import prophet  # noqa: F401
        runs["Prophet 1.x, one fit"] = _per_series(lambda: _fit_prophet(v), n)
        batch = SeriesBatch(value=v, weight=np.full_like(v, np.nan), kind=np.full(n, "count"), season=168, day=24)
        det = get_detector("prophet")
        runs["detector 'prophet' (weekly refits, scores every hour)"] = _per_series(lambda: det.score_batch(batch), n)
    except ImportError:
        runs["Prophet"] = {"missing": "not installed (pip install 'sleuth[forecast]')"}
    for r in runs.values():
        if "missing" not in r:
            r["times_default_wall"] = round(r["wall_s_per_series"] / base_wall)
            r["times_default_cpu"] = round(r["cpu_s_per_series"] / base_cpu)
    return {"default_wall_s_per_series": base_wall, "default_cpu_s_per_series": base_cpu, "models": runs}


def end_to_end(path: Path) -> dict:
    """One ``sleuth.pipeline.detect`` run on the demo shop, with the demo's config, per stage."""
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    result = detect(str(path), parse_config(yaml.safe_load(DEMO_CONFIG)),
                    progress=lambda stage: marks.append((stage, time.perf_counter())))
    total = time.perf_counter() - t0
    ends = [t for _, t in marks[1:]] + [t0 + total]
    _close(result.events)
    return {"seconds": round(total, 3), "series": len(result.cube), "incidents": len(result.incidents),
            "stages_s": {name: round(end - start, 3) for (name, start), end in zip(marks, ends)}}


def _print_stages(stages: dict[str, float]) -> None:
    print("".join(f"    {name:<34} {s:8.2f} s\n" for name, s in stages.items()), end="")


def main() -> None:
    """Run the three sections, print the report and write ``bench-results.json``."""
    from .._memory import keep_freed_memory

    info = {"malloc_tuned": keep_freed_memory(),  # as the CLI does
            "cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
            "numpy": np.__version__, "machine": platform.machine(), "load_avg_start": os.getloadavg()}
    print(f"sleuth benchmark: {info['cpus']} cores, duckdb {info['duckdb']}, load average {info['load_avg_start'][0]:.1f}")
    verdict = {True: "met", False: "NOT met"}

    print("\n1. Ingest + cube vs hand-written DuckDB SQL")
    path, rows = shop_parquet(**CUBE_SHOP)
    cube = {"events": rows, "parquet": str(path), **cube_vs_sql(path)}
    check = cube["check"]
    print(f"  {rows:,} events -> {cube['series']:,} series x {cube['buckets']:,} hours\n"
          f"  sleuth {cube['sleuth_s']:.2f} s vs SQL {cube['sql_s']:.2f} s (best of 3): ratio {cube['ratio']:.2f}, "
          f"target <= {CUBE_TARGET} {verdict[cube['ratio'] <= CUBE_TARGET]}\n"
          f"  CPU (both cores): sleuth {cube['sleuth_cpu_s']:.2f} s vs SQL {cube['sql_cpu_s']:.2f} s: "
          f"ratio {cube['cpu_ratio']:.2f}; sleuth's stages (best run):")
    _print_stages(cube["sleuth_stages_s"])
    print(f"  agree: {'yes' if check['agree'] else 'NO ' + str(check['mismatches'])} ({check['values_compared']:,} "
          f"values; sessions {check['sessions_total']:,.0f}, revenue {check['revenue_total']:,.2f})")

    print("\n2. Detection speed (seasonal detector)")
    det = detection_speed()
    print(f"  {det['series']:,} series x {det['buckets']:,} hours: {det['wall_s']:.2f} s wall, {det['cpu_s']:.2f} s CPU"
          f" -> {det['series_per_s']:,} series/s, {det['series_per_cpu_s']:,} per CPU-second; "
          f"target {SERIES_TARGET:,.0f}/s/core {verdict[det['series_per_cpu_s'] >= SERIES_TARGET]}")

    print("\n2b. Forecasting models on the same series (per series; ratio to the default detector)")
    fc = forecast_speed(det)
    print(f"  default seasonal detector: {fc['default_wall_s_per_series'] * 1e3:.2f} ms wall, "
          f"{fc['default_cpu_s_per_series'] * 1e3:.2f} ms CPU per series")
    for name, r in fc["models"].items():
        if "missing" in r:
            print(f"  {name}: {r['missing']}")
            continue
        print(f"  {name:<52} {r['wall_s_per_series']:7.3f} s wall {r['cpu_s_per_series']:7.3f} s CPU per series"
              f" = {r['times_default_wall']:,}x / {r['times_default_cpu']:,}x the default")

    print("\n3. End to end: sleuth.pipeline.detect on the demo shop")
    path, rows = shop_parquet(**DEMO_SHOP)
    e2e = {"events": rows, **end_to_end(path)}
    print(f"  {rows:,} events, {e2e['series']:,} series, {e2e['incidents']} incidents: {e2e['seconds']:.2f} s")
    _print_stages(e2e["stages_s"])

    print("\n4. Dashboard pages on a year of hourly data for 50 metrics (Streamlit AppTest)")
    try:
        from .dashboard import page_speed
    except ModuleNotFoundError as e:
        pages = {"skipped": f"the dashboard extra is not installed ({e.name})"}
        print(f"  skipped: {pages['skipped']}")
    else:
        pages = page_speed()
        print(f"  {pages['events']:,} events, {pages['metrics']} metrics x {pages['hours']:,} hours, "
              f"{pages['stored_incidents']} incidents stored by one alert run ({pages['alert_run_s']:.1f} s)\n"
              f"  first load (runs the detection once per server): {pages['first_load_s']:.1f} s; page switches: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in pages["page_s"].items()))

    info["load_avg_end"] = os.getloadavg()
    results = {"machine": info, "cube_vs_sql": cube, "detection": det, "forecast_models": fc, "end_to_end": e2e,
               "dashboard": pages,
               "when": pd.Timestamp.now("UTC").isoformat()}
    Path("bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\nwrote bench-results.json")


if __name__ == "__main__":
    main()
