"""PostgreSQL as an events source, end to end on the CI server (``SLEUTH_TEST_POSTGRES_URL``):
detection against DuckDB on the same events, the classifier view (NUMERIC results), daily
buckets in a local time zone (native and the portable CASE), epoch milliseconds."""
from __future__ import annotations

import json
import uuid

import ibis
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alerts_support import postgres_url

from sleuth.cli import app
from sleuth.config import parse_config
from sleuth.datasets.shop import DEMO_CONFIG, generate_shop
from sleuth.explain.classifier import classify_incident
from sleuth.ingest import load_events
from sleuth.metrics import cube as cube_module
from sleuth.metrics.cube import build_cube, offset_local, _local
from sleuth.metrics.derive import resolve_metrics
from sleuth.pipeline import detect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop():
    events, _ = generate_shop(weeks=4, sessions_per_hour=40, seed=3)
    return events


@pytest.fixture(scope="module")
def pg_events(shop):
    """The shop in a table of its own on the test server, dropped afterwards."""
    url = postgres_url()
    con = ibis.connect(url)
    name = f"events_{uuid.uuid4().hex[:8]}"
    con.create_table(name, shop)
    yield f"{url}#{name}", con, name
    con.drop_table(name)
    con.disconnect()


def test_detect_and_the_classifier_view_on_postgres(pg_events, shop):
    source, _, _ = pg_events
    cfg = parse_config(__import__("yaml").safe_load(DEMO_CONFIG))
    ours = detect(source, cfg)
    duck = detect(shop, cfg)
    assert duck.incidents and sorted(i.id for i in ours.incidents) == sorted(i.id for i in duck.incidents)
    # the classifier view reads rows with constant weights: PostgreSQL would answer NUMERIC (Decimal)
    inc = max(ours.incidents, key=lambda i: i.score)
    events = load_events(source, cfg)
    view = classify_incident(events, inc, {m.name: m for m in resolve_metrics(cfg, events)}[inc.metric])
    assert view["positives"] > 0 and view["negatives"] > 0 and view["verdict"]
    out = CliRunner().invoke(app, ["explain", inc.id, "--source", source, "--method", "classifier", "--json"],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["classifier"]["positives"] == view["positives"]


def test_local_daily_buckets_on_postgres_match_duckdb(pg_events, shop, monkeypatch):
    source, con, name = pg_events
    cfg = parse_config({"granularity": "1d", "timezone": "America/New_York", "dimensions": ["device"]})
    ours, duck = load_events(source, cfg), load_events(shop, cfg)
    a = build_cube(ours, resolve_metrics(cfg, ours), cfg)
    b = build_cube(duck, resolve_metrics(cfg, duck), cfg)
    assert (a.buckets == b.buckets).all() and a.buckets[0] == pd.Timestamp("2026-03-01 05:00")
    assert np.allclose(a.value, b.value, rtol=1e-9, equal_nan=True)  # sums in another order: last-digit differences
    # the portable spelling (any engine without a time-zone function) gives the same local days here
    monkeypatch.setattr(cube_module, "NATIVE_LOCAL", ())
    monkeypatch.setattr(cube_module, "_local", lambda ts, tz, c, span=None: offset_local(ts, tz, *span))
    c = build_cube(ours, resolve_metrics(cfg, ours), cfg)
    assert (c.buckets == a.buckets).all() and np.allclose(c.value, a.value, rtol=1e-9, equal_nan=True)


def test_epoch_milliseconds_on_postgres(pg_events):
    _, con, _ = pg_events
    times = pd.to_datetime(["2026-03-02 10:00:00.123", "2026-03-29 01:30:00.5"])
    name = f"epoch_{uuid.uuid4().hex[:8]}"
    con.create_table(name, pd.DataFrame({"ts": times.astype("int64") // 10**6, "event": ["a", "b"]}))
    try:
        events = load_events(f"{postgres_url()}#{name}", parse_config({"columns": {"timestamp": "ts"}, "dimensions": []}))
        got = pd.DatetimeIndex(events.table.order_by("timestamp").timestamp.execute())
        assert list(got.tz_convert("UTC").tz_localize(None)) == list(times)
    finally:
        con.drop_table(name)


def test_native_local_time_and_the_portable_case_agree(pg_events):
    _, con, _ = pg_events
    ts = pd.date_range("2026-03-07", "2026-11-03", freq="37min", tz="UTC")
    name = f"times_{uuid.uuid4().hex[:8]}"
    t = con.create_table(name, pd.DataFrame({"timestamp": ts}))
    try:
        for tz in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe"):
            got = t.select(a=_local(t.timestamp, tz, con),
                           b=offset_local(t.timestamp, tz, ts[0].tz_localize(None), ts[-1].tz_localize(None))).execute()
            want = ts.tz_convert(tz).tz_localize(None)
            assert (pd.DatetimeIndex(got.a) == want).all() and (pd.DatetimeIndex(got.b) == want).all(), tz
    finally:
        con.drop_table(name)
