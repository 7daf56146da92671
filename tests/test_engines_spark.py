"""Spark as an engine, for real: pyspark in local mode (one JVM for the whole module).

The demo pipeline runs end to end on Spark through the CLI (``sleuth run --once`` stores what the
dashboard, ``explain`` and ``report`` then read) and finds the same incidents as DuckDB; every
other verb reaches Spark on a small config; the source forms (a Hive table, Parquet, CSV,
``pyspark://``) and epoch milliseconds are read through Spark. The session is sleuth's own
(``sleuth.ingest.spark.session``), built once with a Hive catalog in a throwaway warehouse; the CLI,
run in-process, attaches to it as it would to any running session.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'sleuth[spark]'")

from sleuth.cli import app  # noqa: E402
from sleuth.config import SparkSettings, parse_config  # noqa: E402
from sleuth.datasets.shop import DEMO_CONFIG, generate_shop  # noqa: E402
from sleuth.errors import ConfigError, InputError  # noqa: E402
from sleuth.ingest import load_events  # noqa: E402
from sleuth.ingest.spark import session as spark_session  # noqa: E402
from sleuth.pipeline import describe, detect  # noqa: E402

pytestmark = pytest.mark.slow
#: one metric over the totals only: a detection that costs Spark a few jobs
SMALL_CONFIG = ("granularity: 1h\ndimensions: []\nmetrics:\n  - {name: sessions, type: distinct, column: session_id}\n"
                "  - {name: revenue, type: sum, column: revenue, event: purchase}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark") / "warehouse"


@pytest.fixture(scope="module")
def spark(warehouse):
    """sleuth's local session: UTC, 127.0.0.1, no UI, a Hive catalog (its Derby metastore in the
    throwaway folder, not the working directory)."""
    if shutil.which("java") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no java: .ci/run installs openjdk-17-jre-headless for the Spark tests")
        pytest.skip("no Java runtime: the Spark tests did not run (.ci/run installs one)")
    home = warehouse.parent
    settings = SparkSettings(master="local[2]", catalog="hive", warehouse=str(warehouse), conf={
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={home}/metastore;create=true",
        "spark.sql.shuffle.partitions": 4,
        # the same JVM serves Spark Connect on a free loopback port, for the sc:// test
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": free_port(),
    })
    s = spark_session(settings)
    assert s.conf.get("spark.sql.session.timeZone") == "UTC" and s.conf.get("spark.ui.enabled") == "false"
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    """A small demo shop as pandas writes it (nanosecond timestamps), with the demo's config."""
    folder = tmp_path_factory.mktemp("shop")
    events, _ = generate_shop(weeks=4, sessions_per_hour=40, seed=3)
    events.to_parquet(folder / "events.parquet", index=False)
    (folder / "sleuth.yaml").write_text(DEMO_CONFIG, encoding="utf-8")
    (folder / "small.yaml").write_text(SMALL_CONFIG, encoding="utf-8")
    return {"folder": folder, "events": events, "parquet": folder / "events.parquet",
            "config": folder / "sleuth.yaml", "small": folder / "small.yaml"}


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_demo_on_spark_finds_what_duckdb_finds_and_every_stored_surface_reads_it(spark, shop, tmp_path):
    from sleuth.dashboard.view import stored_snapshot

    source = f"spark:parquet:{shop['parquet']}"
    store = f"sqlite:///{tmp_path / 'alerts.db'}"
    summary = json.loads(cli("run", "--once", source, "--config", shop["config"], "--store", store, "--json"))
    duck = detect(str(shop["parquet"]), shop["config"])
    assert duck.incidents and summary["incidents"] == len(duck.incidents)

    stored = [json.loads(line) for line in cli("alerts", "list", "--store", store, "--json").splitlines()]
    assert sorted(r["key"] for r in stored) == sorted(i.id for i in duck.incidents)
    by_id = {i.id: i for i in duck.incidents}
    for row in stored:
        ours = by_id[row["key"]]
        assert (row["metric"], row["direction"]) == (ours.metric, ours.direction)
        assert row["change"] == (None if ours.change is None else pytest.approx(ours.change, rel=1e-9, abs=1e-12))

    # what `sleuth dashboard` shows: the snapshot the run stored for this Spark source
    snap = stored_snapshot(store, source)
    assert snap is not None and sorted(i.id for i in snap.incidents) == sorted(by_id)
    first = max(duck.incidents, key=lambda i: i.score)
    shown = json.loads(cli("explain", first.id, "--store", store, "--json"))
    ours = json.loads(first.to_json())["root_causes"]
    assert [r["segment"] for r in shown["root_causes"]] == [r["segment"] for r in ours]
    assert [r["explains"] for r in shown["root_causes"]] == pytest.approx([r["explains"] for r in ours], rel=1e-6)
    cli("report", "--store", store, "--out", tmp_path / "report.html")
    assert first.id in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_every_other_verb_reaches_spark(spark, shop, tmp_path):
    source = f"spark:{shop['parquet']}"
    info = json.loads(cli("metrics", source, "--config", shop["small"], "--json"))
    assert info["events"] == len(shop["events"]) and [m["name"] for m in info["metrics"]] == ["sessions", "revenue"]

    found = [json.loads(line) for line in cli("detect", source, "--config", shop["small"], "--json").splitlines()]
    duck = detect(str(shop["parquet"]), shop["small"])
    assert duck.incidents and sorted(i["id"] for i in found) == sorted(i.id for i in duck.incidents)

    store = f"sqlite:///{tmp_path / 'watch.db'}"
    assert "run 1:" in cli("watch", source, "--config", shop["small"], "--store", store, "--max-runs", "1", "--every", "0")
    assert len(cli("alerts", "list", "--store", store, "--json").splitlines()) == len(duck.incidents)
    cli("report", source, "--config", shop["small"], "--out", tmp_path / "live.html")
    assert (tmp_path / "live.html").stat().st_size > 10_000
    inc = duck.incidents[0]
    got = json.loads(cli("explain", inc.id, "--source", source, "--config", shop["small"],
                         "--store", f"sqlite:///{tmp_path / 'none.db'}", "--json"))
    assert (got["id"], got["actual"]) == (inc.id, pytest.approx(inc.actual))


def test_catalog_tables_files_and_pyspark_urls(spark, shop, warehouse, tmp_path):
    frame = shop["events"].iloc[:3000].copy()
    frame["timestamp"] = frame["timestamp"].astype("datetime64[us]")
    spark.sql("CREATE DATABASE IF NOT EXISTS analytics")
    spark.createDataFrame(frame).write.mode("overwrite").saveAsTable("analytics.events")
    expect = describe(frame)

    hive = describe("spark:analytics.events", {"spark": {"catalog": "hive", "warehouse": str(warehouse)}})
    assert (hive["events"], hive["first"], hive["last"]) == (expect["events"], expect["first"], expect["last"])
    url = describe(f"pyspark://{warehouse}?spark.sql.catalogImplementation=hive#analytics.events")
    assert url["properties"] == expect["properties"]

    frame.to_csv(tmp_path / "events.csv", index=False)
    csv = describe(f"spark:csv:{tmp_path / 'events.csv'}")
    assert (csv["events"], csv["first"], csv["last"]) == (expect["events"], expect["first"], expect["last"])

    with pytest.raises(ConfigError, match="spark.sql.warehouse.dir"):
        describe("spark:analytics.events", {"spark": {"warehouse": str(tmp_path / "elsewhere")}})
    with pytest.raises(InputError, match="no table 'analytics.nope'.*events"):
        describe("spark:analytics.nope")
    with pytest.raises(InputError, match="no parquet files"):
        describe(f"spark:parquet:{tmp_path / 'missing'}")
    (tmp_path / "lake" / "_delta_log").mkdir(parents=True)
    with pytest.raises(InputError, match="Delta Lake jars"):
        describe(f"spark:{tmp_path / 'lake'}")


def test_epoch_milliseconds_keep_their_milliseconds_on_spark(spark):
    times = pd.to_datetime(["2026-03-02 10:00:00.123", "2026-03-02 10:59:59.999", "2026-03-03 00:00:00.001"])
    frame = pd.DataFrame({"ts": (times.astype("int64") // 10**6).astype("int64"), "event": ["a", "b", "a"]})
    spark.createDataFrame(frame).createOrReplaceTempView("epoch_ms")
    events = load_events("spark:epoch_ms", parse_config({"columns": {"timestamp": "ts"}, "dimensions": []}))
    got = pd.DatetimeIndex(events.table.order_by("timestamp").timestamp.execute())
    got = got.tz_convert("UTC").tz_localize(None) if got.tz is not None else got
    assert np.array_equal(got.astype("datetime64[ms]").to_numpy(), times.astype("datetime64[ms]").to_numpy())


def test_spark_connect_reads_through_the_cli(spark, shop, run_cli):
    """``sc://``: the CLI in its own process (a Python client, no JVM of its own) reads the shop
    through the Spark Connect server of the module's session."""
    port = spark.conf.get("spark.connect.grpc.binding.port")
    done = run_cli("metrics", f"sc://127.0.0.1:{port}#parquet:{shop['parquet']}", "--config", shop["small"], "--json",
                   timeout=180)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["events"] == len(shop["events"]) and info["source"].startswith("sc://127.0.0.1")
    bad = run_cli("metrics", f"sc://127.0.0.1:{free_port()}#events", timeout=180)
    assert bad.returncode == 2 and "cannot reach Spark Connect" in bad.stderr and "Traceback" not in bad.stderr
