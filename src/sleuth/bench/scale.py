"""``sleuth bench scale``: how ``detect`` grows with events (1 M to 50 M) at a fixed 20,000 series.

The data: 24 demo shops side by side (48 properties, 8 weeks hourly, the demo's 7 dimensions and
12 derived metrics: about 20,400 series whatever the event count), written as one Parquet file
per shop into a temporary folder that is deleted afterwards. Per size, each measured thing runs in
its own process (so its peak memory is its own), one after the other:

- ``detect``: the whole ``sleuth detect --json`` (read, cube, score, explain, link);
- the bare aggregation: the cube's aggregates in one hand-written DuckDB query over the same files
  (:func:`sleuth.bench.perf.cube_sql`), fetched to Arrow: the floor any tool on DuckDB pays;
- optionally the same ``detect`` on Spark local (``spark:parquet:…``) for the smaller sizes.

Peak memory is the largest resident set of the process and all its children (the JVM for Spark),
sampled every 0.1 s from /proc. Wall times are single runs on a shared machine unless re-measured.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SHOPS = 24
WEEKS = 8
#: events one shop makes per session an hour over 8 weeks (measured on the generator: ~6,580)
EVENTS_PER_RATE = 6_580
DETECT_TARGET_GB, RATIO_TARGET = 6.0, 1.5


def generate(folder: Path, events: float, seed: int = 11) -> dict:
    """``SHOPS`` shops of ``events`` events in all, one Parquet file each, properties renamed
    ``web-01``, ``app-01``, … so that each shop's two properties are its own."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..datasets.shop import generate_shop

    folder.mkdir(parents=True, exist_ok=True)
    rate = events / (SHOPS * EVENTS_PER_RATE)
    rows = 0
    for k in range(SHOPS):
        frame, _ = generate_shop(weeks=WEEKS, sessions_per_hour=rate, seed=seed + k)
        frame["property"] = frame["property"] + f"-{k:02d}"
        frame["session_id"] = frame["session_id"] + f"-{k:02d}"
        frame["user_id"] = frame["user_id"] + f"-{k:02d}"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # microseconds: the precision Spark reads as a timestamp (pandas writes nanoseconds)
        table = table.set_column(0, "timestamp", table["timestamp"].cast(pa.timestamp("us")))
        pq.write_table(table, folder / f"shop-{k:02d}.parquet", row_group_size=256_000)
        rows += len(frame)
        del frame, table
    return {"events": rows, "files": SHOPS, "rate": round(rate, 2)}


class PeakRSS:
    """The largest resident set of a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every, self.peak = pid, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        pids, out = [self.pid], []
        while pids:
            p = pids.pop()
            out.append(p)
            try:
                for tid in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        pids.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return out

    def _rss(self) -> int:
        total = 0
        for p in self._tree():
            try:
                with open(f"/proc/{p}/status") as f:
                    total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024
            except (OSError, StopIteration):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def measure(cmd: list[str], timeout: float = 3600) -> dict:
    """Wall time, peak RSS (the process tree) and the output of one command."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakRSS(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    peak = sampler.stop()
    return {"seconds": round(time.perf_counter() - t, 2), "peak_gb": round(peak / 2**30, 2), "code": proc.returncode,
            "stdout": out, "stderr": err[-2000:]}


def _bare(folder: Path) -> str:
    """A child program: the hand-written aggregation over the files, fetched to Arrow."""
    return ("import sys, duckdb\n"
            "from sleuth.bench.perf import cube_sql\n"
            "con = duckdb.connect(); con.execute(\"SET TimeZone='UTC'\")\n"
            f"t = con.sql(cube_sql({str(folder / '*.parquet')!r})).to_arrow_table()\n"
            "print(t.num_rows)\n")


CONFIG = ("granularity: 1h\ntimezone: UTC\n"
          "dimensions: [device, os, browser, country, channel, campaign, category]\n")


def run_size(events: float, workdir: Path, spark: bool) -> dict:
    folder = workdir / f"events-{events / 1e6:g}M"
    t = time.perf_counter()
    info = generate(folder, events)
    info["generate_s"] = round(time.perf_counter() - t, 1)
    cfg = workdir / "sleuth.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    source = str(folder / "*.parquet")
    py = sys.executable
    bare = measure([py, "-c", _bare(folder)])
    det = measure([py, "-m", "sleuth.cli", "detect", source, "--config", str(cfg), "--json"])
    row = {**info, "bare": _slim(bare), "detect": _slim(det),
           "incidents": det["stdout"].count("\n") if det["code"] == 0 else None}
    row["ratio"] = round(det["seconds"] / bare["seconds"], 2) if bare["seconds"] else None
    if spark:
        sp = measure([py, "-m", "sleuth.cli", "detect", f"spark:parquet:{folder}", "--config", str(cfg), "--json"])
        row["spark"] = _slim(sp)
        row["spark_incidents"] = sp["stdout"].count("\n") if sp["code"] == 0 else None
        row["spark_same"] = _ids(sp["stdout"]) == _ids(det["stdout"]) if sp["code"] == 0 and det["code"] == 0 else None
    shutil.rmtree(folder, ignore_errors=True)
    return row


def _ids(stdout: str) -> list[str]:
    return sorted(json.loads(line)["id"] for line in stdout.splitlines() if line.strip())


def _slim(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "stdout" and (k != "stderr" or m["code"] != 0)}


def markdown(rows: list[dict]) -> str:
    lines = ["| events | series (approx.) | `detect` wall | `detect` peak RSS | bare DuckDB aggregation | ratio | "
             "Spark local `detect` | Spark peak RSS | same incidents |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sp = r.get("spark")
        lines.append(
            f"| {r['events'] / 1e6:.1f} M | 20,400 | {r['detect']['seconds']:.0f} s | {r['detect']['peak_gb']:.1f} GB | "
            f"{r['bare']['seconds']:.0f} s ({r['bare']['peak_gb']:.1f} GB) | {r['ratio']:.2f}× | "
            + (f"{sp['seconds']:.0f} s | {sp['peak_gb']:.1f} GB | {'yes' if r.get('spark_same') else 'NO'} |" if sp
               else "– | – | – |"))
    last = rows[-1]
    lines += ["", f"Targets at the largest size ({last['events'] / 1e6:.0f} M events): peak ≤ {DETECT_TARGET_GB:g} GB "
              f"({'met' if last['detect']['peak_gb'] <= DETECT_TARGET_GB else 'NOT met'}), ≤ {RATIO_TARGET}× the bare "
              f"aggregation ({'met' if (last['ratio'] or 99) <= RATIO_TARGET else 'NOT met'})."]
    return "\n".join(lines)


def run(sizes: list[float], spark_sizes: list[float], workdir: Path | None = None) -> dict:
    base = Path(tempfile.mkdtemp(prefix="sleuth-scale-", dir=workdir))
    rows = []
    try:
        for n in sizes:
            print(f"  {n / 1e6:g} M events: generating, then the bare aggregation, detect"
                  + (", Spark" if n in spark_sizes else ""), flush=True)
            row = run_size(n, base, n in spark_sizes)
            print("   ", json.dumps({k: v for k, v in row.items()}), flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"rows": rows, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
