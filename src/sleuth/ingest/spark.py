"""Spark as an engine: the SparkSession sleuth attaches to or builds, and the sources it reads there.

Source forms (the ``spark:`` block of ``sleuth.yaml`` says where the session runs):

- ``spark:events``, ``spark:analytics.events``, ``spark:cat.db.events``: a table of the session's
  catalog (Hive metastore, Delta or Iceberg tables registered there, temp views);
- ``spark:parquet:/data/events``, ``spark:delta:/lake/events``, ``spark:orc:…``, ``spark:json:…``,
  ``spark:csv:…``: files Spark reads itself; ``spark:/data/events.parquet`` (a path with a ``/``)
  picks the format by suffix, a folder holding ``_delta_log`` is Delta, any other folder Parquet;
- ``sc://host:15002#events`` (or ``#parquet:/path``): the same through Spark Connect;
- ``pyspark:///path/warehouse?k=v#events``: ibis's URL form, read here rather than by ibis, which
  sets static configuration on a running session and fails (the warehouse becomes
  ``spark.sql.warehouse.dir``, each query parameter a Spark setting).

Why sleuth builds the session itself: static settings (warehouse, catalog, driver memory) only take
effect when the session starts, so they go to the builder; a session that is already running is
attached to as it is, and a static setting that differs from what it runs with is an error naming
the key rather than a silent surprise. Every session runs in UTC (sleuth's times are UTC) and reads
Parquet timestamps in nanoseconds (as pandas writes them) as epoch numbers, which sleuth parses.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigError, InputError
from ..redact import redact_url as _redact

FILE_FORMATS = ("parquet", "delta", "orc", "json", "csv")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".orc": "orc", ".json": "json", ".jsonl": "json",
            ".ndjson": "json", ".csv": "csv"}
PREFIXES = ("spark:", "sc://", "pyspark://")
#: settings every session sleuth builds starts with (the user's ``conf`` overrides them)
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.parquet.nanosAsLong": "true",  # pandas writes ns timestamps, which Spark refuses
    "spark.sql.execution.arrow.pyspark.enabled": "true",  # results come back as Arrow, not row by row
    "spark.ui.showConsoleProgress": "false",  # its progress bar would land in sleuth's output
}
#: on a local master only: nothing listens beyond this machine, and few shuffle partitions
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": str(max(4, 2 * (os.cpu_count() or 2))),
}
#: settings that only take effect when a session starts
STATIC = ("spark.sql.warehouse.dir", "spark.sql.catalogImplementation", "spark.master")
LOG4J = Path(__file__).with_name("spark-log4j2.properties")


@dataclass(frozen=True)
class SparkSource:
    """What to read (a catalog table or files) and where (Spark Connect, extra settings)."""

    table: str | None = None
    format: str | None = None
    path: str | None = None
    remote: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def what(self) -> str:
        return f"table {self.table!r}" if self.table else f"{self.format} files at {self.path}"


def is_spark_source(text: str) -> bool:
    return text.startswith(PREFIXES)


def _target(spec: str, text: str) -> dict[str, str]:
    """``events`` / ``db.events`` (a table), ``FORMAT:PATH`` or a path (files)."""
    if not spec:
        raise InputError(f"{text}: name what to read: spark:TABLE, spark:parquet:/path or spark:delta:/path")
    fmt, sep, rest = spec.partition(":")
    if sep and fmt.lower() in FILE_FORMATS:
        if not rest:
            raise InputError(f"{text}: give the path after '{fmt}:', e.g. spark:{fmt}:/data/events")
        return {"format": fmt.lower(), "path": rest}
    if "/" in spec or spec.startswith(".") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec):
        return {"format": _format_of(spec), "path": spec}
    if not re.fullmatch(r"[A-Za-z_][\w$-]*(\.[A-Za-z_][\w$-]*){0,2}|`[^`]+`", spec):
        raise InputError(f"{text}: {spec!r} is neither a table name (db.table) nor a path; "
                         "write spark:parquet:/path for files")
    return {"table": spec}


def _format_of(path: str) -> str:
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    local = Path(path.removeprefix("file://"))
    if (local / "_delta_log").is_dir():
        return "delta"
    return "parquet"  # a folder of part files, as Spark writes them


def parse_source(text: str) -> SparkSource:
    """Read a Spark source string (see the module's docstring) without starting anything."""
    if text.startswith("sc://"):
        base, _, spec = text.partition("#")
        return SparkSource(remote=base, text=text, **_target(spec, text))
    if text.startswith("pyspark://"):
        base, _, spec = text.partition("#")
        parts = urlsplit(base)
        conf = {k: v for k, v in parse_qsl(parts.query)}
        if parts.path and parts.path != "/":
            conf["spark.sql.warehouse.dir"] = unquote(parts.path)
        if not spec:
            raise InputError(f"{text}: name the table after '#', e.g. pyspark:///path/warehouse#events")
        return SparkSource(conf=conf, text=text, **_target(spec, text))
    return SparkSource(text=text, **_target(text.removeprefix("spark:"), text))


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        raise InputError("Spark sources need pyspark: pip install 'sleuth[spark]'") from None
    return SparkSession


def wanted_conf(settings: Any, source: SparkSource) -> dict[str, str]:
    """The Spark settings a session for ``source`` should run with, from the ``spark:`` block."""
    conf: dict[str, str] = dict(BASE_CONF)
    master = getattr(settings, "master", None) or "local[*]"
    if master.startswith("local"):
        conf.update(LOCAL_CONF)
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG4J.as_uri()}"
    if getattr(settings, "warehouse", None):
        conf["spark.sql.warehouse.dir"] = str(settings.warehouse)
    if getattr(settings, "catalog", None):
        conf["spark.sql.catalogImplementation"] = settings.catalog
    log4j = conf.pop("spark.driver.extraJavaOptions", None)
    conf.update({k: _text(v) for k, v in (getattr(settings, "conf", None) or {}).items()})
    conf.update(source.conf)
    if log4j:  # the user's driver options keep sleuth's quiet logging unless they name their own
        mine = conf.get("spark.driver.extraJavaOptions", "")
        conf["spark.driver.extraJavaOptions"] = mine if "log4j2.configurationFile" in mine else f"{mine} {log4j}".strip()
    return conf


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def session(settings: Any = None, source: SparkSource | None = None):
    """The SparkSession to read ``source`` in: Spark Connect when a remote is named, else the
    running session (checked against the static settings asked for), else a new one."""
    SparkSession = _pyspark()
    source = source or SparkSource()
    conf = wanted_conf(settings, source)
    remote = source.remote or getattr(settings, "remote", None)
    if remote:
        return _connect(SparkSession, remote, conf)
    active = SparkSession.getActiveSession()
    if active is not None:
        _check_static(active, conf)
        for key in ("spark.sql.legacy.parquet.nanosAsLong", "spark.sql.execution.arrow.pyspark.enabled"):
            active.conf.set(key, conf[key])
        return active
    master = getattr(settings, "master", None) or "local[*]"
    builder = SparkSession.builder.master(master).appName(getattr(settings, "app_name", None) or "sleuth")
    for key, value in conf.items():
        builder = builder.config(key, value)
    if conf.get("spark.sql.catalogImplementation") == "hive":
        builder = builder.enableHiveSupport()
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        spark = builder.getOrCreate()
    except Exception as err:
        raise InputError(f"cannot start Spark (master {master}): {_first_line(err)}; check Java 17 and the "
                         "spark: block of sleuth.yaml") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _reachable(remote: str, timeout: float = 5.0) -> None:
    """Fail at once on an address nothing answers at: the Spark Connect client would retry for
    minutes before it gave up."""
    import socket

    parts = urlsplit(remote.replace("sc://", "http://", 1))
    host, port = parts.hostname or "localhost", parts.port or 15002
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise InputError(f"{_redact(remote)}: cannot reach Spark Connect at {host}:{port} ({err.strerror or err}); "
                         "check the address and that the server runs") from None


def _connect(SparkSession, remote: str, conf: dict[str, str]):
    _reachable(remote)
    try:
        builder = SparkSession.builder.remote(remote)
        for key in ("spark.sql.session.timeZone", "spark.sql.legacy.parquet.nanosAsLong"):
            builder = builder.config(key, conf[key])
        return builder.getOrCreate()
    except ImportError as err:
        raise InputError(f"{_redact(remote)}: Spark Connect needs its client libraries ({_first_line(err)}): "
                         "pip install 'sleuth[spark]'") from None
    except Exception as err:
        raise InputError(f"{_redact(remote)}: cannot reach Spark Connect ({_first_line(err)}); check the address "
                         "and that the server runs") from None


def _check_static(active, conf: dict[str, str]) -> None:
    """A running session cannot change its warehouse or catalog: say so instead of reading elsewhere."""
    for key in STATIC:
        if key not in conf:
            continue
        running = active.conf.get(key, None)
        want = conf[key]
        if key == "spark.sql.warehouse.dir" and running:
            running, want = running.removeprefix("file:").rstrip("/"), str(Path(want).resolve()).rstrip("/")
        if running != want:
            raise ConfigError(f"spark: the running SparkSession has {key}={running}, the config asks for {conf[key]}; "
                              "a running session cannot change it: use the session's setting or start a new process")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"\s*SQLSTATE: \w+", "", line)[:300]


def read(spark, source: SparkSource):
    """A Spark DataFrame of ``source``; a missing table or path is an :class:`InputError`."""
    try:
        if source.table:
            return spark.table(source.table)
        reader = spark.read.format(source.format)
        if source.format == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        return reader.load(source.path)
    except Exception as err:
        raise InputError(_read_error(spark, source, err)) from None


def _read_error(spark, source: SparkSource, err: Exception) -> str:
    msg = _first_line(err)
    whole = str(err)
    text = source.text
    if source.table and ("TABLE_OR_VIEW_NOT_FOUND" in msg or "not found" in msg.lower()):
        try:
            names = sorted(t.name for t in spark.catalog.listTables())[:20]
        except Exception:
            names = []
        known = f"; tables here: {', '.join(names)}" if names else "; the catalog has no tables (set warehouse or catalog in the spark: block)"
        return f"{text}: no table {source.table!r} in the Spark catalog{known}"
    if source.format == "delta" and re.search(r"DATA_SOURCE_NOT_FOUND|ClassNotFoundException|Failed to find data source", whole):
        return (f"{text}: reading Delta needs the Delta Lake jars on Spark's classpath (io.delta:delta-spark); "
                "add them through spark.jars in the spark: block's conf, or read the table through a catalog that has them")
    if "PATH_NOT_FOUND" in whole or "does not exist" in msg:
        return f"{text}: no {source.format} files at {source.path}; check the path"
    return f"{text}: cannot read {source.what} ({msg})"


def open_spark(text: str, settings: Any = None):
    """``(ibis backend, raw table, display name)`` for a Spark source string."""
    import ibis

    source = parse_source(text)
    spark = session(settings, source)
    frame = read(spark, source)
    con = ibis.pyspark.connect(spark)
    name = ibis.util.gen_name("sleuth_events")
    frame.createOrReplaceTempView(name)
    return con, con.table(name), text


__all__ = ["SparkSource", "is_spark_source", "open_spark", "parse_source", "session", "wanted_conf"]
