"""Engine plumbing that needs no server: Spark source forms, the spark: block, DuckDB's memory
limit, local time as a portable CASE (checked against DuckDB's own time-zone function)."""
from __future__ import annotations

import pandas as pd
import pytest

from sleuth.config import parse_config
from sleuth.errors import ConfigError, InputError
from sleuth.ingest.readers import connect_duckdb, duckdb_memory_limit
from sleuth.ingest.spark import SparkSource, parse_source, wanted_conf
from sleuth.metrics.cube import _local, offset_local, utc_offsets
from sleuth.redact import redact_url


@pytest.mark.parametrize("text, want", [
    ("spark:events", SparkSource(table="events")),
    ("spark:analytics.events", SparkSource(table="analytics.events")),
    ("spark:parquet:/data/ev", SparkSource(format="parquet", path="/data/ev")),
    ("spark:delta:s3a://lake/ev", SparkSource(format="delta", path="s3a://lake/ev")),
    ("spark:/data/events.csv", SparkSource(format="csv", path="/data/events.csv")),
    ("spark:/data/folder", SparkSource(format="parquet", path="/data/folder")),
    ("sc://127.0.0.1:15002#events", SparkSource(table="events", remote="sc://127.0.0.1:15002")),
    ("pyspark:///wh?spark.sql.catalogImplementation=hive#db.ev",
     SparkSource(table="db.ev", conf={"spark.sql.catalogImplementation": "hive", "spark.sql.warehouse.dir": "/wh"})),
])
def test_spark_source_forms(text, want):
    got = parse_source(text)
    assert (got.table, got.format, got.path, got.remote, got.conf) == (want.table, want.format, want.path,
                                                                        want.remote, want.conf)


@pytest.mark.parametrize("text, message", [
    ("spark:", "name what to read"), ("spark:parquet:", "give the path"), ("spark:a b", "neither a table"),
    ("pyspark:///wh", "name the table after '#'"),
])
def test_bad_spark_sources_say_what_to_write(text, message):
    with pytest.raises(InputError, match=message):
        parse_source(text)


def test_the_spark_block_reaches_the_session_settings():
    cfg = parse_config({"spark": {"master": "local[2]", "catalog": "hive", "warehouse": "/wh",
                                  "conf": {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": 16,
                                           "spark.sql.adaptive.enabled": False}}})
    conf = wanted_conf(cfg.spark, parse_source("spark:events"))
    assert conf["spark.sql.catalogImplementation"] == "hive" and conf["spark.sql.warehouse.dir"] == "/wh"
    assert conf["spark.driver.memory"] == "8g" and conf["spark.sql.shuffle.partitions"] == "16"
    assert conf["spark.sql.adaptive.enabled"] == "false" and conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1" and "log4j2" in conf["spark.driver.extraJavaOptions"]
    remote = wanted_conf(parse_config({"spark": {"master": "yarn"}}).spark, parse_source("spark:events"))
    assert "spark.driver.bindAddress" not in remote and "spark.ui.enabled" not in remote
    with pytest.raises(ConfigError, match="spark.remote: .*sc://"):
        parse_config({"spark": {"remote": "http://x:15002"}})
    with pytest.raises(ConfigError, match="unknown key 'mastr'; allowed here: master"):
        parse_config({"spark": {"mastr": "local"}})


def test_secrets_of_the_spark_block_are_not_stored():
    cfg = parse_config({"spark": {"remote": "sc://h:443/;token=s3cr3t",
                                  "conf": {"spark.hadoop.fs.s3a.secret.key": "s3cr3t", "spark.driver.memory": "4g"}}})
    dumped = str(cfg.to_dict())
    assert "s3cr3t" not in dumped and "4g" in dumped and cfg.spark.conf["spark.hadoop.fs.s3a.secret.key"] == "s3cr3t"
    assert redact_url("sc://h:443/;user_id=me;token=s3cr3t#events") == "sc://h:443/;user_id=me;token=***#events"


def test_duckdb_runs_under_a_memory_limit_and_spills_to_its_own_folder(monkeypatch):
    monkeypatch.setenv("SLEUTH_DUCKDB_MEMORY", "700MB")
    assert duckdb_memory_limit() == "700MB"
    con = connect_duckdb()
    limit, folder = con.raw_sql("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit.startswith("667") or "MiB" in limit or "MB" in limit
    assert "sleuth-duckdb-" in folder and folder != connect_duckdb().raw_sql(
        "SELECT current_setting('temp_directory')").fetchone()[0]
    monkeypatch.delenv("SLEUTH_DUCKDB_MEMORY")
    assert duckdb_memory_limit().endswith("MB") and int(duckdb_memory_limit()[:-2]) <= 3072


def test_utc_offsets_step_at_daylight_saving_transitions():
    steps = utc_offsets("Europe/Berlin", pd.Timestamp("2026-03-01"), pd.Timestamp("2026-12-01"))
    assert steps == [(None, 3600), (pd.Timestamp("2026-03-29 01:00"), 7200), (pd.Timestamp("2026-10-25 01:00"), 3600)]
    assert utc_offsets("Asia/Kolkata", pd.Timestamp("2026-01-01"), pd.Timestamp("2026-12-31")) == [(None, 19800)]


def test_portable_local_time_matches_duckdb_and_pandas():
    con = connect_duckdb()
    ts = pd.date_range("2026-03-07", "2026-11-03", freq="37min", tz="UTC")
    t = con.create_table("times", pd.DataFrame({"timestamp": ts}), temp=True)
    for tz in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"):
        got = t.select(a=_local(t.timestamp, tz, con),
                       b=offset_local(t.timestamp, tz, ts[0].tz_localize(None), ts[-1].tz_localize(None))).execute()
        want = ts.tz_convert(tz).tz_localize(None)
        assert (pd.DatetimeIndex(got.a) == want).all() and (pd.DatetimeIndex(got.b) == want).all(), tz


def test_scoring_in_slices_of_whole_families_gives_the_one_batch_numbers():
    import numpy as np

    from sleuth.chunks import score_in_slices, slices
    from sleuth.datasets.shop import generate_shop
    from sleuth.detectors.base import get_detector
    from sleuth.ingest import load_events
    from sleuth.metrics.cube import build_cube
    from sleuth.metrics.derive import resolve_metrics
    from sleuth.pipeline import batch_of

    events, _ = generate_shop(weeks=4, sessions_per_hour=20, seed=5)
    cfg = parse_config({"dimensions": ["device", "country"]})
    ev = load_events(events, cfg)
    cube = build_cube(ev, resolve_metrics(cfg, ev), cfg)
    parts = slices(cube.keys, size=40)
    assert len(parts) > 3 and sorted(np.concatenate(parts)) == list(range(len(cube)))
    parents = cube.parents()
    for rows in parts:  # every segment's total is in its slice
        assert set(parents[rows][parents[rows] >= 0]) <= set(rows)
    batch = batch_of(cube)
    whole = get_detector("seasonal").score_batch(batch)
    sliced = score_in_slices(get_detector("seasonal"), batch, cube.keys, size=40)
    for name in ("expected", "lower", "upper", "z", "anomaly_score", "is_anomaly", "ready"):
        assert np.array_equal(getattr(whole, name), getattr(sliced, name), equal_nan=True), name
    assert whole.is_anomaly.any()
