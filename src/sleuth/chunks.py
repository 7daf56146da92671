"""Scoring very many series in slices, so the detector's working memory follows the slice.

A detector holds several ``[series, bucket]`` temporaries at once: on 20,400 series of 8 weeks of
hours the default one peaked at 11.2 GB scoring them in one batch. Series depend on nothing but
their own past, their parent (a segment borrows its total's shape) and their market (the same
metric and segment in the peer properties), so scoring slices of whole metric families (its totals
and segments in every property) gives the same numbers as one batch,
with memory bounded by the slice (the tests compare both ways). This is also the unit a cluster
would score in parallel: one family per task.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .detectors.base import Scores, SeriesBatch
from .detectors.seasonal import _subset

#: series per slice: ~2,000 x 1,344 hours keeps each temporary near 20 MB
SLICE_SERIES = 2_000


def families(keys) -> list[np.ndarray]:
    """Row indices of each metric's family (its totals and segments in every property: a segment
    borrows its total's shape, and a series is compared with the same series of its peer
    properties, the market), in the order they first appear."""
    codes = keys.groupby(["metric"], sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def slices(keys, size: int = SLICE_SERIES) -> list[np.ndarray]:
    """Whole families packed into slices of about ``size`` series (a larger family is one slice)."""
    out, current, n = [], [], 0
    for fam in families(keys):
        if current and n + len(fam) > size:
            out.append(np.concatenate(current))
            current, n = [], 0
        current.append(fam)
        n += len(fam)
    if current:
        out.append(np.concatenate(current))
    return out


def score_in_slices(detector, batch: SeriesBatch, keys, size: int = SLICE_SERIES) -> Scores:
    """``detector.score_batch(batch)``, computed slice by slice (one batch when it is small)."""
    parts = slices(keys, size)
    if len(parts) <= 1:
        return detector.score_batch(batch)
    S = len(batch.value)
    result: dict[str, np.ndarray] = {}
    chosen = []
    for rows in parts:
        got = detector.score_batch(_subset(batch, rows))
        for f in dataclasses.fields(Scores):
            arr = getattr(got, f.name)
            if f.name not in result:
                result[f.name] = np.empty((S, *arr.shape[1:]), dtype=arr.dtype)
            result[f.name][rows] = arr
        if getattr(detector, "chosen", None) is not None:
            chosen.append((rows, np.asarray(detector.chosen)))
    if chosen:  # a detector that reports a choice per series (auto): the whole batch's, in order
        whole = np.empty(S, dtype=object)
        for rows, c in chosen:
            whole[rows] = c
        detector.chosen = whole
    return Scores(**result)
