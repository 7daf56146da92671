"""Known formats at scale (``sleuth bench formats``): a generated GA4 BigQuery export (Parquet,
BigQuery's types) read by ``load_events``, against hand-written DuckDB SQL that extracts the same
parameters, dimensions and items summary the way an analyst writes it (a list comprehension per
key, GA4's ``(SELECT value.int_value FROM UNNEST(event_params) WHERE key = ...)``).

Checks that both see the same events, sessions and revenue, and reports how many rows following
the old advice (``explode: [event_params]``) would have made. Not a test: it asserts nothing.
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from ..config import Config
from ..ingest import load_events

CACHE = Path(".sleuth/bench")
#: (key, value field, SQL type of the hand-written column) of the generated export's parameters
_PARAMS = [("ga_session_id", "int_value", "BIGINT"), ("ga_session_number", "int_value", "BIGINT"),
           ("page_location", "string_value", "VARCHAR"), ("page_title", "string_value", "VARCHAR"),
           ("page_referrer", "string_value", "VARCHAR"), ("engagement_time_msec", "int_value", "BIGINT"),
           ("session_engaged", "string_value", "VARCHAR"), ("engaged_session_event", "int_value", "BIGINT"),
           ("entrances", "int_value", "BIGINT"), ("value", "double_value", "DOUBLE")]
_CUSTOM = 25  # sparse custom parameters custom_0 .. custom_24, one per event


def _value(key: str, field: str, expr: str) -> str:
    fields = {"string_value": "NULL::VARCHAR", "int_value": "NULL::BIGINT", "float_value": "NULL::DOUBLE",
              "double_value": "NULL::DOUBLE"}
    fields[field] = expr
    inner = ", ".join(f"'{k}': {v}" for k, v in fields.items())
    return f"{{'key': {key}, 'value': {{{inner}}}}}"


def ga4_export(events: int, directory: Path = CACHE) -> Path:
    """A GA4 export of ``events`` rows: 20 events per session, 3 sessions per user, 11 parameters per
    event, a purchase every 50 events, items on carts and purchases. Written once, then reused."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ga4-export-{events}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == events:
        return path
    values = {"ga_session_id": "(1775000000 + i // 20)::BIGINT", "ga_session_number": "((i // 20) % 3 + 1)::BIGINT",
              "page_location": "'https://shop.example/p' || (i % 100)", "page_title": "'Page ' || (i % 30)",
              "page_referrer": "'https://www.google.com/'", "engagement_time_msec": "(i % 1000)::BIGINT",
              "session_engaged": "'1'", "engaged_session_event": "1::BIGINT", "entrances": "1::BIGINT",
              "value": "(10 + i % 90)::DOUBLE"}
    params = ", ".join(_value(f"'{k}'", f, values[k]) for k, f, _ in _PARAMS)
    custom = _value(f"'custom_' || (i % {_CUSTOM})", "string_value", "'x' || (i % 7)")
    sql = f"""
    COPY (SELECT
      strftime(TIMESTAMP '2026-03-01' + INTERVAL (i * 3) SECOND, '%Y%m%d') AS event_date,
      (epoch_us(TIMESTAMP '2026-03-01') + i * 3000000)::BIGINT AS event_timestamp,
      CASE WHEN i % 50 = 49 THEN 'purchase' WHEN i % 7 = 3 THEN 'add_to_cart' ELSE 'page_view' END AS event_name,
      [{params}, {custom}] AS event_params,
      'u' || (i // 60) || '.1775' AS user_pseudo_id,
      CASE WHEN i % 4 = 0 THEN 'member' || (i // 60) END AS user_id,
      {{'category': CASE WHEN (i // 20) % 3 = 0 THEN 'mobile' ELSE 'desktop' END,
        'operating_system': CASE WHEN (i // 20) % 3 = 0 THEN 'iOS' ELSE 'Windows' END,
        'web_info': {{'browser': CASE WHEN (i // 20) % 4 = 0 THEN 'Safari' ELSE 'Chrome' END}}}} AS device,
      {{'country': ['US', 'DE', 'FR', 'GB'][1 + (i // 20) % 4], 'city': 'Springfield'}} AS geo,
      {{'source': CASE WHEN (i // 60) % 2 = 0 THEN 'google' ELSE '(direct)' END,
        'medium': CASE WHEN (i // 60) % 2 = 0 THEN 'organic' ELSE '(none)' END, 'name': '(organic)'}} AS traffic_source,
      '4321' AS stream_id, 'WEB' AS platform,
      CASE WHEN i % 50 = 49 THEN {{'purchase_revenue': (10 + i % 90)::DOUBLE, 'transaction_id': 'T' || i}} END AS ecommerce,
      CASE WHEN i % 50 = 49 OR i % 7 = 3
           THEN [{{'item_id': 'a', 'item_category': 'Shoes', 'quantity': 1::BIGINT}},
                 {{'item_id': 'b', 'item_category': 'Hats', 'quantity': 2::BIGINT}}]
           ELSE [] END AS items
    FROM range({events}) t(i)) TO '{path.with_suffix(".tmp")}' (FORMAT parquet)"""
    duckdb.connect().execute(sql)
    path.with_suffix(".tmp").replace(path)
    return path


def _hand_sql(path: Path) -> str:
    """What an analyst writes for the same columns, knowing the keys in advance."""
    keys = [*_PARAMS, *[(f"custom_{k}", "string_value", "VARCHAR") for k in range(_CUSTOM)]]
    params = ",\n".join(f"[p.value.{f} FOR p IN event_params IF p.key = '{k}'][1]::{t} AS \"param.{k}\""
                        for k, f, t in keys)
    return f"""
    SELECT make_timestamp(event_timestamp) AS timestamp, event_name AS event,
      user_pseudo_id || '.' || [p.value.int_value FOR p IN event_params IF p.key = 'ga_session_id'][1] AS session_id,
      user_pseudo_id AS user_id,
      coalesce(ecommerce.purchase_revenue, CASE WHEN event_name = 'purchase'
               THEN [p.value.double_value FOR p IN event_params IF p.key = 'value'][1] END) AS revenue,
      stream_id AS property, platform, device.category AS device, device.operating_system AS os,
      device.web_info.browser AS browser, geo.country AS country, traffic_source.source AS source,
      traffic_source.medium AS medium, traffic_source.name AS campaign,
      len(items) AS "items.count", list_sum([i.quantity FOR i IN items]) AS "items.quantity",
      items[1].item_category AS item_category,
      {params}
    FROM read_parquet('{path}')"""


def run_formats(events: int = 1_000_000) -> dict:
    path = ga4_export(events)
    t0 = time.perf_counter()
    ev = load_events(str(path), Config())
    t = ev.table
    row = t.aggregate(n=t.count(), s=t.session_id.nunique(), r=t.revenue.sum()).execute().iloc[0]
    sleuth_s = time.perf_counter() - t0
    sleuth = {"events": int(row["n"]), "sessions": int(row["s"]), "revenue": round(float(row["r"]), 2),
              "columns": len(t.columns), "params": sum(c.startswith("param.") for c in t.columns), "seconds": sleuth_s}
    t.release()  # free the engine's copy now, before the connection closes
    ev.con.disconnect()

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    t0 = time.perf_counter()
    con.execute(f"CREATE TEMP TABLE hand AS {_hand_sql(path)}")
    n, s, r = con.execute("SELECT count(*), count(DISTINCT session_id), sum(revenue) FROM hand").fetchone()
    hand_s = time.perf_counter() - t0
    exploded = con.execute(f"SELECT sum(len(event_params)) FROM read_parquet('{path}')").fetchone()[0]
    con.close()
    hand = {"events": int(n), "sessions": int(s), "revenue": round(float(r), 2), "seconds": hand_s}
    same = all(sleuth[k] == hand[k] for k in ("events", "sessions", "revenue"))
    return {"path": str(path), "events": events, "sleuth": sleuth, "hand_sql": hand, "same_totals": same,
            "ratio": sleuth_s / hand_s, "rows_if_exploded": int(exploded)}
