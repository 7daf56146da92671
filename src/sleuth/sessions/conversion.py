"""A conversion model: how likely each session was to convert, given how it behaved and where it
came from; per bucket, conversions expected from *this* traffic against the actual ones.

Logistic regression on the behaviour features and the context (device, browser, country, channel
as indicators). With an intercept its fitted probabilities average to the training conversion
rate exactly, so a bucket's expected conversions are calibrated in the sense that matters here.
Refitted every week on the four weeks before it and applied to that week only: a session's
expectation never uses later sessions (the first week has none).

The seed write-up suggested linear regression with anomalies as its errors; a linear model of a
0/1 outcome predicts outside [0, 1] and weighs a converting session like a residual. The error
that matters is per bucket, where it becomes a metric: actual over expected conversions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

WEEK = pd.Timedelta(days=7)
HISTORY_WEEKS = 4
MAX_FIT = 100_000
MAX_LEVELS = 12


def design(frame: pd.DataFrame, x_std: np.ndarray, context: list[str], levels: dict[str, list[str]] | None = None
           ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Behaviour (standardised, missing as 0) and context indicators (most frequent values)."""
    if levels is None:
        levels = {c: frame[c].value_counts().index[:MAX_LEVELS].astype(str).tolist() for c in context}
    parts = [np.nan_to_num(x_std)]
    for c, vals in levels.items():
        v = frame[c].astype(str).to_numpy()
        parts.append(np.stack([v == val for val in vals[1:]], axis=1).astype(float) if len(vals) > 1
                     else np.zeros((len(frame), 0)))
    return np.hstack(parts), levels


def expected_conversions(frame: pd.DataFrame, x_std: np.ndarray, context: list[str], seed: int = 0) -> tuple[np.ndarray, str]:
    """Each session's modelled probability of converting (NaN in the first week), and a note."""
    from sklearn.linear_model import LogisticRegression

    y = (frame["conversions"].to_numpy() > 0).astype(int)
    out = np.full(len(frame), np.nan)
    if y.sum() < 20 or y.sum() == len(y):
        return out, "too few conversions (or only conversions) to model them"
    x, _ = design(frame, x_std, context)
    start = frame["start"].to_numpy()
    t0 = pd.Timestamp(start.min())
    week = ((pd.to_datetime(start) - t0) // WEEK).to_numpy()
    rng = np.random.default_rng(seed)
    fitted = 0
    for w in range(1, int(week.max()) + 1):
        past = np.flatnonzero((week >= w - HISTORY_WEEKS) & (week < w))
        now = np.flatnonzero(week == w)
        if not len(now) or y[past].sum() < 20 or y[past].sum() == len(past):
            continue
        fit = past if len(past) <= MAX_FIT else rng.choice(past, MAX_FIT, replace=False)
        model = LogisticRegression(C=1.0, max_iter=300).fit(x[fit], y[fit])
        out[now] = model.predict_proba(x[now])[:, 1]
        fitted += 1
    note = (f"conversion model: logistic regression on behaviour and context, refitted weekly on the "
            f"{HISTORY_WEEKS} weeks before ({fitted} weeks modelled)")
    return out, note


def mix_verdict(actual_now: float, actual_before: float, expected_now: float, expected_before: float) -> str:
    """Whether a change in conversion is the traffic's (the model expected it) or not."""
    d_actual = actual_now - actual_before
    d_expected = expected_now - expected_before
    if not np.isfinite(d_actual) or not np.isfinite(d_expected) or d_actual == 0:
        return "no change to explain"
    share = d_expected / d_actual
    word = "drop" if d_actual < 0 else "rise"
    if share >= 0.5:
        return f"traffic mix explains the {word} ({share:.0%} of it: the sessions were less likely to convert)" \
            if d_actual < 0 else f"traffic mix explains the {word} ({share:.0%} of it: the sessions were more likely to convert)"
    return (f"the same traffic converts {'worse' if d_actual < 0 else 'better'} "
            f"(traffic mix explains {max(share, 0):.0%} of the {word})")
