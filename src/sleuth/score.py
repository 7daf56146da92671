"""Contract 4: score a file of series online (``timestamp,value`` or ``series_id,timestamp,value``).

Scoring is online: a row's score depends only on rows up to it, so the result for a prefix of
the file equals the head of the result for the whole file.

The series are of unknown nature: the detector's evidence is joined by novelty (a value, a recent
mean or a deviation from the expected value beyond everything of the last weeks), and
``anomaly_score`` is an alert score, high on the first row of an incident and silent on its
repeats; ``is_anomaly`` marks the incident's rows from that alert on. ``learning`` (1/0) marks
rows scored while the series was still learning (less than three weeks of its data, three days
for data finer than hourly: see :func:`sleuth.detectors.base.maturity`), whose bands are wider.

A series that has only ever counted (non-negative whole numbers, such as per-minute counts of a
rare event) is at least as noisy as Poisson counts: its first 1 after zeros is no alert.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .calendar import holiday_mask
from .detectors.base import MATURE_WEEKS, SeriesBatch, get_detector
from .detectors.seasonal import count_like
from .detectors.novelty import alert_onsets, incident_rows, novelty_score, stricter
from .errors import InputError

#: evidence (in units of the detector's alarm level) a series of unknown nature needs to alert:
#: without a count or rate noise model its evidence is less sure than a business metric's
ALERT_EVIDENCE = 1.25
#: rows used to infer the spacing of a series (fixed, so a prefix infers the same spacing)
STEP_ROWS = 50


def read_csv_checked(path: str | Path, required: list[str], expected: str = "") -> pd.DataFrame:
    """A small CSV with the ``required`` columns, or one clear line saying what is wrong."""
    p = Path(path)
    expected = expected or ",".join(required)
    if not p.is_file():
        raise InputError(f"{p}: file not found; check the path")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty; it needs a header ({expected}) and rows")
    try:
        df = pd.read_csv(p, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"{p}: cannot read as CSV ({str(err).splitlines()[0][:200]}); expected columns {expected}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{p}: the file is empty; it needs a header ({expected}) and rows") from None
    for col in required:
        if col not in df.columns:
            raise InputError(f"{p}: no {col!r} column; columns are: {', '.join(map(str, df.columns))}. "
                             f"Expected {expected}")
    for col in required:
        vals = pd.to_numeric(df[col], errors="coerce") if col != "timestamp" else None
        if vals is not None:
            bad = vals.isna() & df[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(f"{p}: column {col!r} line {row + 2}: {df[col].iat[row]!r} is not a number")
    return df


def read_series(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    df = read_csv_checked(p, ["timestamp", "value"], "timestamp,value or series_id,timestamp,value")
    ts = pd.to_datetime(df["timestamp"], errors="coerce", utc=True, format="mixed")
    bad = ts.isna() & df["timestamp"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{p}: column 'timestamp' line {row + 2}: cannot parse {df['timestamp'].iat[row]!r} as a time; use ISO 8601")
    vals = pd.to_numeric(df["value"], errors="coerce")
    bad = vals.isna() & df["value"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{p}: column 'value' line {row + 2}: {df['value'].iat[row]!r} is not a number")
    df["_ts"] = ts.dt.tz_localize(None)
    df["_value"] = vals.astype(float)
    keys = ["series_id", "_ts"] if "series_id" in df.columns else ["_ts"]
    dup = df.duplicated(keys, keep="first").to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((df[keys] == df[keys].iloc[row]).all(axis=1).to_numpy())[0])
        which = f" of series {df['series_id'].iat[row]!r}" if "series_id" in df.columns else ""
        raise InputError(f"{p}: line {row + 2}: timestamp {df['timestamp'].iat[row]!r}{which} already appears on line "
                         f"{first + 2}; a series has one value per timestamp: aggregate the rows first (sum or mean)")
    return df


def _season(step: pd.Timedelta) -> tuple[int, int]:
    """(season, day) in buckets: weekly for hourly-or-coarser data, daily for finer data."""
    secs = max(step.total_seconds(), 1.0)
    if secs >= 86400:
        return 7, 1
    per_day = max(int(round(86400 / secs)), 1)
    if secs >= 3600:
        return per_day * 7, per_day
    return per_day, per_day


def score_frame(df: pd.DataFrame, granularity: str | None = None, holidays: list[str] | None = None,
                detector: str = "seasonal", threshold: float = 4.0) -> pd.DataFrame:
    """Add ``anomaly_score`` and ``is_anomaly`` to rows of one or many series (by ``series_id``)."""
    groups = df.groupby("series_id", sort=False).indices if "series_id" in df.columns else {None: np.arange(len(df))}
    n_max = max(len(ix) for ix in groups.values())
    order = list(groups)
    y = np.full((len(order), n_max), np.nan)
    for r, key in enumerate(order):
        y[r, : len(groups[key])] = df["_value"].to_numpy()[groups[key]]
    first = df["_ts"].to_numpy()[groups[order[0]]][: STEP_ROWS + 1]
    if granularity:
        step = pd.Timedelta(granularity.replace("1d", "1D"))
    else:
        step = pd.Timedelta(np.median(np.diff(first))) if len(first) > 1 else pd.Timedelta(hours=1)
    season, day = _season(step)
    widen = None
    if holidays:
        widen = np.zeros(y.shape, dtype=bool)
        for r, key in enumerate(order):
            ix = groups[key]
            widen[r, : len(ix)] = holiday_mask(pd.DatetimeIndex(df["_ts"].to_numpy()[ix]), holidays)
    batch = SeriesBatch(value=y, weight=np.full_like(y, np.nan), kind=np.full(len(order), "real"),
                        season=season, day=day, holiday=widen)
    scores = get_detector(detector, threshold=threshold).score_batch(batch)
    novel = novelty_score(y, scores.expected, day, count_like(y))
    level = stricter(np.fmax(scores.anomaly_score, novel), ALERT_EVIDENCE)
    alert = alert_onsets(level)
    flags = incident_rows(alert >= 0.5, (level >= 0.5) & (scores.is_anomaly | (novel >= 0.5)))
    # scored while still learning: less history than a mature series has (see ``maturity``)
    age = np.arange(y.shape[1])[None, :] - scores.first[:, None]
    young = (scores.first[:, None] < 0) | (age < MATURE_WEEKS * season)
    out = df.drop(columns=["_ts", "_value"]).copy()
    score = np.zeros(len(df))
    flag = np.zeros(len(df), dtype=bool)
    learning = np.zeros(len(df), dtype=bool)
    for r, key in enumerate(order):
        ix = groups[key]
        score[ix] = alert[r, : len(ix)]
        flag[ix] = flags[r, : len(ix)]
        learning[ix] = young[r, : len(ix)]
    out["anomaly_score"] = np.round(score, 6)
    out["is_anomaly"] = flag.astype(int)
    out["learning"] = learning.astype(int)
    return out
