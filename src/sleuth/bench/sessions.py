"""`sleuth bench sessions`: bots, slow pages and a behaviour shift in a generated GA360 export.

The export (:mod:`sleuth.datasets.sessions`) has bots at 2-3 % of sessions plus a one-day burst,
a page whose load time triples for two days, a page whose ajax calls jump eightfold on Safari
for a day, and three days in which 8 % of people loop through checkout without buying. The run:

- ``sleuth sessions`` on it (in a child process, timed, its peak memory measured), and the
  same stage in process for the scores below;
- **bots**: precision and recall of the ``bot`` label against the truth, and in the same run the
  baseline a user would reach for: scikit-learn's IsolationForest on naive per-session
  features (pages, hits, events, clicks, forms, time on site, transactions, revenue), flagging
  as many sessions as there are bots (its best case: it is told the bot count);
- **scores**: the robust distance and the isolation forest in the reduced space, each as a bot
  detector (ROC AUC, and precision at the bot count), which is how the default was chosen;
- **events**: each injected event found or not; page and cluster-shift incidents that match no
  injected event are false, per 4 weeks of scored time (after the detector's 3 weeks).

Generated data, designed with the detector: bots here have one behavioural tell each, which
real bots may hide. The numbers say what the stage does on such traffic, not on a real site.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import parse_config
from ..datasets.sessions import generate_sessions
from ..pipeline import detect

CONFIG = {"granularity": "1h", "exclude_bots": True}
HISTORY_WEEKS = 3  # the detector's warm-up: nothing alerts before


def _write(path: Path, weeks: int, per_day: float, seed: int) -> tuple[dict, list, dict]:
    import pyarrow.parquet as pq

    table, events, truth = generate_sessions(weeks=weeks, sessions_per_day=per_day, seed=seed)
    pq.write_table(table, path)
    return {"sessions": table.num_rows, "hits": int(table["hits"].combine_chunks().value_lengths().to_numpy().sum())}, \
        events, truth


def _naive_features(path: Path) -> pd.DataFrame:
    """What a user computes per session from an export: counts, durations, money."""
    import duckdb

    q = f"""
        SELECT fullVisitorId || '.' || CAST(visitId AS VARCHAR) AS key, totals.pageviews AS pages,
               totals.hits AS hits, coalesce(totals.timeOnSite, 0) AS time_on_site,
               coalesce(totals.transactions, 0) AS transactions,
               coalesce(totals.totalTransactionRevenue, 0) / 1e6 AS revenue,
               list_count(list_filter(hits, h -> h.type = 'EVENT')) AS events,
               list_sum(list_transform(hits, h -> coalesce(len(h.clicks), 0))) AS clicks,
               list_sum(list_transform(hits, h -> coalesce(len(h.forms), 0))) AS forms
        FROM read_parquet('{str(path).replace("'", "''")}')"""
    return duckdb.sql(q).df()


def _precision_recall(flag: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flag & truth).sum())
    return {"precision": round(tp / max(int(flag.sum()), 1), 4), "recall": round(tp / max(int(truth.sum()), 1), 4),
            "flagged": int(flag.sum())}


def _top(score: np.ndarray, n: int) -> np.ndarray:
    flag = np.zeros(len(score), bool)
    flag[np.argsort(-score, kind="stable")[:n]] = True
    return flag


def _auc(score: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(truth, score)), 4)


def baseline(path: Path, keys: pd.Series, truth_bot: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """IsolationForest on naive per-session features, flagging as many sessions as there are bots."""
    from sklearn.ensemble import IsolationForest

    t0 = time.perf_counter()
    naive = _naive_features(path).set_index("key").reindex(keys.to_numpy()).fillna(0.0)
    x = naive.to_numpy(float)
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(x)
    score = -forest.score_samples(x)
    default = forest.predict(x) == -1
    return {"features": list(naive.columns), "at_bot_count": _precision_recall(_top(score, int(truth_bot.sum())), truth_bot),
            "default_threshold": _precision_recall(default, truth_bot), "auc": _auc(score, truth_bot),
            "seconds": round(time.perf_counter() - t0, 2)}


def score_methods(det, truth_bot: np.ndarray) -> dict[str, Any]:
    """The robust distance and the isolation forest in the reduced space, as bot detectors."""
    from ..sessions.bots import anomaly_scores

    a = det.sessions
    x = a.frame
    from ..sessions.features import behaviour_matrix

    z = a.reduction.transform(behaviour_matrix(x, a.features))
    fit = np.flatnonzero(x["train"].to_numpy())
    out = {}
    for method in ("robust", "isolation_forest"):
        t0 = time.perf_counter()
        s = anomaly_scores(method, fit, z)
        out[method] = {"auc": _auc(s, truth_bot), "at_bot_count": _precision_recall(_top(s, int(truth_bot.sum())), truth_bot),
                       "seconds": round(time.perf_counter() - t0, 2)}
    return out


def _overlap(rec: dict, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    return pd.Timestamp(rec["start"]) < end and start < pd.Timestamp(rec["end"])


def score_events(det, injected: list, weeks: int) -> dict[str, Any]:
    """Each injected event found or not. A page or shift incident that matches no injected event
    is *related* when it overlaps one (exit rates move while people loop through checkout) and
    *false* otherwise; false ones are counted per 4 weeks of scored time."""
    from ..sessions.output import page_records, shift_records

    pages, shifts = page_records(det), shift_records(det)
    bot_incs = [i for i in det.incidents if i.metric == "bot_share" and i.direction == "up"]
    windows = [(pd.Timestamp(e.start).tz_localize("UTC"), pd.Timestamp(e.end).tz_localize("UTC")) for e in injected]
    found, matched = [], set()
    for e, (s, t) in zip(injected, windows):
        if e.kind == "bot_burst":
            hit = [i.id for i in bot_incs if pd.Timestamp(i.start) < t and s < pd.Timestamp(i.end)]
            detail = ""
        elif e.kind in ("page_latency", "page_ajax"):
            metric = "latency" if e.kind == "page_latency" else "ajax_calls"
            recs = [r for r in pages if r["metric"] == metric and r["page"] == e.page and _overlap(r, s, t)]
            hit = [r["incident"] for r in recs]
            causes = {f"{k}={v}" for r in recs for rc in r["root_causes"][:1] for k, v in rc["segment"].items()}
            detail = ", ".join(sorted(causes))
        else:
            recs = [r for r in shifts if r["direction"] == "up" and _overlap(r, s, t)]
            hit = [r["incident"] for r in recs]
            detail = "; ".join(sorted({r["cluster"] for r in recs}))
        matched |= set(hit)
        found.append({"kind": e.kind, "start": e.to_dict()["start"], "end": e.to_dict()["end"], "found": bool(hit),
                      "incidents": len(hit), "detail": detail})
    scored_weeks = max(weeks - HISTORY_WEEKS, 1e-9)

    def split(recs: list[dict]) -> tuple[list[dict], list[dict]]:
        rest = [r for r in recs if r["incident"] not in matched]
        related = [r for r in rest if any(_overlap(r, s, t) for s, t in windows)]
        return related, [r for r in rest if r not in related]

    rel_pages, false_pages = split(pages)
    rel_shifts, false_shifts = split(shifts)
    brief = lambda r: {k: r.get(k) for k in ("page", "cluster", "metric", "start", "end", "actual", "expected",  # noqa: E731
                                              "share", "expected_share", "direction", "segment") if k in r}
    return {"events": found, "false_page_incidents": len(false_pages), "false_shifts": len(false_shifts),
            "related_page_incidents": len(rel_pages), "related_shifts": len(rel_shifts),
            "false_page_per_4_weeks": round(len(false_pages) / scored_weeks * 4, 2),
            "false_shift_per_4_weeks": round(len(false_shifts) / scored_weeks * 4, 2), "scored_weeks": scored_weeks,
            "false_page_list": [brief(r) for r in false_pages][:10], "false_shift_list": [brief(r) for r in false_shifts][:10],
            "related_list": [brief(r) for r in rel_pages + rel_shifts][:20]}


#: runs the CLI and reports its own peak memory (VmHWM, which exec resets) as its last stderr line
_CLI = """import sys
from sleuth.cli import main
sys.argv = ["sleuth", *sys.argv[1:]]
try:
    main()
finally:
    hwm = next((line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")), "0")
    sys.stderr.write(f"\\nsleuth-peak-kb {hwm}\\n")
"""


def run_cli(path: Path, config: Path) -> dict[str, Any]:
    """``sleuth sessions --json`` in a child process: its wall and CPU time and its peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CLI, "sessions", str(path), "--config", str(config), "--json"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"sleuth sessions failed: {proc.stderr.strip()[-500:]}")
    peak = next((int(x.split()[1]) for x in reversed(proc.stderr.splitlines()) if x.startswith("sleuth-peak-kb")), 0)
    kinds: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        k = json.loads(line)["kind"]
        kinds[k] = kinds.get(k, 0) + 1
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "peak_rss_gb": round(peak / 2**20, 2),
            "lines": kinds}


def _write_apart(path: Path, weeks: int, per_day: float, seed: int) -> dict:
    """Generate a large export in a child process, so this one stays small while the CLI runs."""
    code = ("import json, sys; from pathlib import Path; from sleuth.bench.sessions import _write; "
            "print(json.dumps(_write(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))[0]))")
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(weeks), str(per_day), str(seed)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_sessions_bench(weeks: int = 6, sessions_per_day: float = 3000.0, seed: int = 7,
                       scale: int | None = None) -> dict[str, Any]:
    """The accuracy run (and, with ``scale``, a speed run on that many sessions over 4 weeks)."""
    res: dict[str, Any] = {"weeks": weeks, "sessions_per_day": sessions_per_day, "seed": seed, "config": CONFIG}
    with tempfile.TemporaryDirectory(prefix="sleuth-bench-sessions-") as tmp:
        tmp_path = Path(tmp)
        cfg_path = tmp_path / "sleuth.yaml"
        cfg_path.write_text(json.dumps(CONFIG), encoding="utf-8")
        path = tmp_path / "ga_sessions.parquet"
        size, injected, truth = _write(path, weeks, sessions_per_day, seed)
        res.update(size)
        res["cli"] = run_cli(path, cfg_path)
        t0 = time.perf_counter()
        det = detect(path, parse_config(CONFIG), sessions="only")
        res["seconds_in_process"] = round(time.perf_counter() - t0, 1)
        frame = det.sessions.frame
        tr = pd.DataFrame({"key": truth["key"], "bot": truth["bot"], "mode": truth["mode"]}).drop_duplicates("key")
        m = frame[["key", "label"]].merge(tr, on="key", how="left")
        truth_bot = (m["bot"].fillna("") != "").to_numpy()
        flag = (m["label"] == "bot").to_numpy()
        res["bots"] = {"truth": int(truth_bot.sum()), **_precision_recall(flag, truth_bot),
                       "by_kind": {k: round(float((m.loc[m["bot"] == k, "label"] == "bot").mean()), 4)
                                   for k in sorted(set(m["bot"].dropna()) - {""})}}
        res["baseline"] = baseline(path, frame["key"], truth_bot, seed)
        res["score_methods"] = score_methods(det, truth_bot)
        res["detection"] = score_events(det, injected, weeks)
        res["reduction"] = det.sessions.reduction.why
        res["clusters"] = det.sessions.cluster_profiles()[["cluster", "training share", "conversion rate"]].to_dict("records")
        loop = (m["mode"] == "checkout loop").to_numpy()
        res["checkout_loop_as_new_behaviour"] = round(float((frame["cluster"].to_numpy()[loop] == -1).mean()), 4) \
            if loop.any() else None
        if scale:
            per_day = scale / 28
            big = tmp_path / "scale.parquet"
            res["scale"] = {"sessions_per_day": round(per_day), **_write_apart(big, 4, per_day, seed)}
            res["scale"]["cli"] = run_cli(big, cfg_path)
    return res
