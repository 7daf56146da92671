"""Root causes end to end on generated shops: ``detect`` on the demo shop and on shops of other
random seeds, each incident's root causes against the injected truth.

For every injected incident, its detections are those on one of its metrics that overlap it (two
hours of slack, as the demo's own evaluation). A segment incident's detection has the **top cause
right** when its first root cause contains the injected segment's pairs (``os=iOS`` is right, and so
is ``os=iOS, device=mobile``, the same sessions), and the **set right** when that is its only root
cause. A site-wide incident's detection is right when it names no root cause.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd


def _contains(cause: dict, segment: dict) -> bool:
    seg = {str(k): str(v) for k, v in (cause.get("segment") or {}).items()}
    return {str(k): str(v) for k, v in segment.items()}.items() <= seg.items()


def judge(detections: list[dict], truth: list) -> list[dict]:
    """Per injected incident: its detections, and how many have the top cause and the set right."""
    from ..datasets.shop import _matches

    slack = pd.Timedelta(hours=2)
    out = []
    for inc in truth:
        hits = [d for d in detections if _matches(d, inc, slack, False)]
        row = {"kind": inc.kind, "segment": dict(inc.segment), "detections": len(hits)}
        if inc.segment:
            row["top_right"] = sum(bool(d["root_causes"]) and _contains(d["root_causes"][0], inc.segment) for d in hits)
            row["set_right"] = sum(len(d["root_causes"]) == 1 and _contains(d["root_causes"][0], inc.segment) for d in hits)
        else:
            row["top_right"] = row["set_right"] = sum(not d["root_causes"] for d in hits)
        row["causes"] = [[rc["segment"] for rc in d["root_causes"][:3]] for d in hits]
        out.append(row)
    return out


def shop_run(seed: int, weeks: int, sessions_per_hour: float) -> dict:
    """Generate one shop, detect and explain, judge the root causes."""
    import yaml

    from ..config import parse_config
    from ..datasets.shop import DEMO_CONFIG, InjectedIncident, write_shop
    from ..pipeline import detect

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        written = write_shop(Path(tmp), fmt="parquet", weeks=weeks, sessions_per_hour=sessions_per_hour, seed=seed)
        result = detect(written["events"], parse_config(yaml.safe_load(DEMO_CONFIG)))
        truth = [InjectedIncident.from_dict(d) for d in json.loads(Path(written["truth"]).read_text())]
    return {"seed": seed, "weeks": weeks, "sessions_per_hour": sessions_per_hour,
            "incidents": judge([i.to_dict() for i in result.incidents], truth),
            "seconds": round(time.perf_counter() - t0, 1)}


def summarise(runs: list[dict]) -> dict:
    """Totals over runs: segment incidents with every detection's top cause right, detections with
    the top cause and the set right, and site-wide detections named site-wide."""
    seg = [r for run in runs for r in run["incidents"] if r["segment"]]
    wide = [r for run in runs for r in run["incidents"] if not r["segment"]]
    detected = [r for r in seg if r["detections"]]
    return {"segment_incidents": len(seg), "segment_detected": len(detected),
            "segment_all_top_right": sum(r["top_right"] == r["detections"] for r in detected),
            "segment_detections": sum(r["detections"] for r in seg),
            "segment_top_right": sum(r["top_right"] for r in seg),
            "segment_set_right": sum(r["set_right"] for r in seg),
            "sitewide_detections": sum(r["detections"] for r in wide),
            "sitewide_right": sum(r["top_right"] for r in wide)}


def run_shops(seeds: int = 10, weeks: int = 5, sessions_per_hour: float = 1000.0, demo: bool = True) -> dict:
    """The demo shop (seed 7, 6 weeks, 1,000 sessions/h, as ``sleuth demo``) and ``seeds`` generated
    shops (seeds 1..seeds, ``weeks`` weeks at ``sessions_per_hour``)."""
    out = {}
    if demo:
        run = shop_run(7, 6, 1000.0)
        out["demo"] = {"runs": [run], "summary": summarise([run])}
    runs = [shop_run(seed, weeks, sessions_per_hour) for seed in range(1, seeds + 1)]
    out["generated"] = {"runs": runs, "summary": summarise(runs)}
    return out
