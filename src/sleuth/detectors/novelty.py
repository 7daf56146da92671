"""Evidence for series of unknown nature beyond a seasonal expectation, and alert shaping.

Novelty: a value outside everything the series did over the last few weeks is suspicious even
when its own noise model cannot say how unusual it is (a machine temperature at a level never
seen, a latency past its all-time high). Measured relative to that running range, so it needs no
knowledge of units or noise; the strength behind contextual detectors such as CAD OSE and HTM.
Two scales: single buckets (a spike) and the mean of the last :data:`SMOOTH` buckets (a level
that no stretch of the past reached, though each bucket alone may be within the range). And the
novelty of a surprise: a deviation from the detector's expected value larger than any deviation
of the last few weeks (a bursty series alerts on a burst unlike its usual ones).

Shaping: people want one alert per incident, not one per row of it. An alert score is reported
only where it beats every score of the last ``quiet`` buckets (the onset of an incident, or an
escalation of it); the repeats in between are silenced. Everything is causal: bucket t uses
buckets <= t only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: a bucket exceeding the running range by this share of it scores 0.5 (the alarm level)
NOVELTY_LEVEL = 0.002
#: buckets averaged for the second scale, and the share of their range its mean must exceed
SMOOTH, SMOOTH_LEVEL = 12, 0.05
#: a deviation from the expected value exceeding the range of past deviations by this share of it
RESIDUAL_LEVEL = 0.05
#: days of history the running range covers
MEMORY_DAYS = 42
#: buckets of history the running range needs before a value can be novel (at least a day)
MIN_WARMUP = 24
#: Poisson standard deviations a count must clear its running range by to be new
COUNT_MARGIN = 2.0
#: buckets after an alert in which only clearly stronger evidence (by this factor) alerts again
QUIET, ESCALATION = 48, 1.2


def _rolling(a: np.ndarray, window: int, how: str) -> np.ndarray:
    """Rolling ``max`` or ``min`` over the previous ``window`` buckets (excluding the current one),
    per series along the last axis, ignoring NaN; NaN where nothing was seen yet."""
    roll = pd.DataFrame(a.T).rolling(window, min_periods=1)
    return getattr(roll, how)().shift(1).to_numpy().T


def value_novelty(y: np.ndarray, memory: int, warmup: int, counts: np.ndarray | None = None,
                  spread: float = 1.0) -> np.ndarray:
    """How far each value lies outside the range of the previous ``memory`` buckets, as a share
    of that range (0 inside it or during the first ``warmup`` buckets of a series). Where
    ``counts`` (a series that has only ever counted) and its range holds only 0s and 1s, a value
    must also clear the range by :data:`COUNT_MARGIN` Poisson standard deviations (times
    ``spread``, for a mean of several buckets), and the range is at least one: a count of 1
    after zeros is not new, a burst of 5 is."""
    hi, lo = _rolling(y, memory, "max"), _rolling(y, memory, "min")
    with np.errstate(invalid="ignore"):
        if counts is None:
            out = np.fmax(y - hi, lo - y) / np.maximum(hi - lo, 1e-9)
        else:
            counts = counts & (hi <= 1.0)  # only 0s and 1s so far: the least a count can move
            margin = np.where(counts, COUNT_MARGIN * spread * np.sqrt(np.fmax(hi, 0.0) + 1.0), 0.0)
            width = np.where(counts, np.fmax(hi - lo, spread), np.maximum(hi - lo, 1e-9))
            out = np.fmax(y - hi - margin, lo - y - margin) / width
    seen = np.cumsum(np.isfinite(y), axis=-1)  # buckets with data so far, including this one
    out = np.where(seen > warmup, out, 0.0)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, None)


def novelty_score(y: np.ndarray, expected: np.ndarray, day: int, counts: np.ndarray | None = None) -> np.ndarray:
    """The strongest novelty (of the value, its recent mean, or its deviation from ``expected``)
    as a score in 0..1, 0.5 at its level; over a memory of :data:`MEMORY_DAYS` days after a
    warm-up of a day (``day`` is buckets per day). ``counts`` marks series that have only ever
    counted (see :func:`value_novelty`)."""
    memory, warmup = MEMORY_DAYS * day, max(day, MIN_WARMUP)
    smooth = pd.DataFrame(y.T).rolling(SMOOTH, min_periods=1).mean().to_numpy().T
    n = np.fmax.reduce([value_novelty(y, memory, warmup, counts) / NOVELTY_LEVEL,
                        value_novelty(smooth, memory, warmup, counts, 1 / np.sqrt(SMOOTH)) / SMOOTH_LEVEL,
                        value_novelty(y - expected, memory, warmup, counts) / RESIDUAL_LEVEL])
    return n / (1.0 + n)


def _odds(score: np.ndarray) -> np.ndarray:
    """``a^2`` of a score ``a^2 / (1 + a^2)``: the squared evidence behind it."""
    s = np.clip(score, 0.0, 1.0)
    return s / np.maximum(1.0 - s, 1e-12)


def stricter(score: np.ndarray, factor: float) -> np.ndarray:
    """A 0..1 score of the form ``a^2 / (1 + a^2)`` (0.5 at evidence ``a = 1``) with its alarm
    level moved to evidence ``factor``."""
    odds = _odds(score) / factor**2
    return odds / (1.0 + odds)


def alert_onsets(score: np.ndarray, quiet: int = QUIET, escalation: float = ESCALATION) -> np.ndarray:
    """The score where its evidence exceeds ``escalation`` times the strongest evidence of the
    previous ``quiet`` buckets, else 0: the first bucket of an incident (or a clearly worse turn
    of it) keeps its score, its repeats do not."""
    s = np.nan_to_num(score, nan=0.0)
    before = np.nan_to_num(_rolling(s, quiet, "max"), nan=0.0)
    return np.where(_odds(s) > escalation**2 * _odds(before), s, 0.0)


def incident_rows(onset: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Rows of incidents: a run of ``active`` buckets counts from its first ``onset`` onwards
    (an incident opens on an alert and lasts while the evidence stays)."""
    t = np.broadcast_to(np.arange(onset.shape[-1]), onset.shape)
    last_onset = np.maximum.accumulate(np.where(onset & active, t, -1), axis=-1)
    last_break = np.maximum.accumulate(np.where(active, -1, t), axis=-1)
    return active & (last_onset > last_break)
