"""Behaviour clusters: k-means in the reduced space, k chosen from the data, each cluster named
by what sets it apart, and sessions unlike every cluster set aside as *new behaviour*.

Clusters are learned on the training sessions only and every later session is assigned to the
nearest one, so a cluster's share at time t never depends on sessions after the training days.
A session is *new behaviour* when it is farther from its nearest centre than 99.5 % of that
cluster's training sessions, or when the reduced space leaves more of it unexplained than it
does of 99.5 % of the training sessions (a trait the components do not span, such as revisiting
the same pages). A mode that appears later (a checkout loop) then shows up as that share
rising, instead of quietly joining the nearest old cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .features import BEHAVIOUR, fmt_value

NEW = "new behaviour"
K_RANGE = range(2, 9)
NOVEL_QUANTILE = 0.995
#: a cluster's feature mean must differ from the others' by this many standard deviations to name it
NAME_EFFECT = 0.4


@dataclass
class Clusters:
    """Fitted centres, their names and profiles; ``assign`` labels any session."""

    centres: np.ndarray                       # [k, components]
    radius: np.ndarray                        # [k]: the 99.5 % distance of each cluster's training sessions
    names: list[str]
    descriptions: list[str]
    silhouette: dict[int, float] = field(default_factory=dict)
    chosen_by: str = ""
    residual_cut: float = np.inf              # the 99.5 % residual of the training sessions

    @property
    def k(self) -> int:
        return len(self.centres)

    def assign(self, z: np.ndarray, residual: np.ndarray | None = None, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
        """Nearest cluster (``-1`` for new behaviour) and the distance to it, in chunks."""
        label = np.empty(len(z), int)
        dist = np.empty(len(z))
        for i in range(0, len(z), chunk):
            d = ((z[i:i + chunk, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
            j = d.argmin(axis=1)
            label[i:i + chunk], dist[i:i + chunk] = j, np.sqrt(d[np.arange(len(j)), j])
        novel = dist > self.radius[label]
        if residual is not None:
            novel |= residual > self.residual_cut
        return np.where(novel, -1, label), dist

    def name_of(self, label: int) -> str:
        return NEW if label < 0 else self.names[label]

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "names": self.names, "descriptions": self.descriptions, "chosen_by": self.chosen_by,
                "silhouette": {str(k): round(v, 3) for k, v in self.silhouette.items()}}


def _kmeans(z: np.ndarray, k: int, seed: int, n_init: int = 4):
    from sklearn.cluster import KMeans

    from .analysis import one_thread

    with one_thread():
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)


def choose_k(z: np.ndarray, seed: int, fixed: int | None = None, sample: int = 2500) -> tuple[int, dict[int, float]]:
    """The k of the best silhouette (on a sample), or ``fixed``."""
    from sklearn.metrics import silhouette_score

    if fixed is not None:
        return fixed, {}
    rng = np.random.default_rng(seed)
    sub = z[rng.choice(len(z), min(sample, len(z)), replace=False)]
    scores = {}
    for k in K_RANGE:
        if k >= len(sub):
            break
        labels = _kmeans(sub, k, seed, n_init=2).labels_
        if len(np.unique(labels)) < 2:
            continue
        scores[k] = float(silhouette_score(sub, labels, random_state=seed))
    if not scores:
        return 2, {}
    best = max(scores.values())
    return min(k for k, s in scores.items() if s >= best - 0.01), scores  # near-ties: the simpler


def name_clusters(x_std: np.ndarray, labels: np.ndarray, features: list[str], raw: pd.DataFrame,
                  k: int) -> tuple[list[str], list[str]]:
    """Names from the two features that set each cluster apart most (in standard deviations of
    the others), descriptions with the typical values against everyone's."""
    names, descriptions = [], []
    overall = raw[features].median()
    for c in range(k):
        inside = labels == c
        if not inside.any():
            names.append(f"cluster {c + 1}")
            descriptions.append("no training sessions")
            continue
        rest = ~inside if (~inside).any() else inside
        sd = np.nanstd(x_std[rest], axis=0)
        effect = (np.nanmean(x_std[inside], axis=0) - np.nanmean(x_std[rest], axis=0)) / np.where(sd > 0, sd, 1.0)
        order = [j for j in np.argsort(-np.abs(effect)) if np.isfinite(effect[j])]
        top = [j for j in order[:2] if abs(effect[j]) >= NAME_EFFECT] or order[:1]
        name = ", ".join(BEHAVIOUR[features[j]][0 if effect[j] > 0 else 1] for j in top)
        mine = raw.loc[inside, features].median()
        descriptions.append("; ".join(f"{BEHAVIOUR[features[j]][2]} {fmt_value(mine.iloc[j])} (all sessions {fmt_value(overall.iloc[j])})"
                                      for j in order[:3]))
        names.append(name)
    for dup in {n for n in names if names.count(n) > 1}:  # two clusters alike in their top traits
        for i, c in enumerate(i for i, n in enumerate(names) if n == dup):
            names[c] = f"{dup} ({i + 1})"
    return names, descriptions



def fit_clusters(z: np.ndarray, x_std: np.ndarray, residual: np.ndarray, features: list[str], raw: pd.DataFrame,
                 seed: int = 0, fixed: int | None = None, sample: int = 50_000) -> tuple[Clusters, np.ndarray]:
    """Fit on the training sessions (``z`` reduced, ``x_std`` standardised features, ``residual``
    what the reduction leaves unexplained, ``raw`` their feature frame); returns the clusters
    and the training sessions' labels."""
    rng = np.random.default_rng(seed)
    k, sil = choose_k(z, seed, fixed)
    fit_rows = rng.choice(len(z), min(sample, len(z)), replace=False)
    km = _kmeans(z[fit_rows], k, seed)
    centres = km.cluster_centers_
    probe = Clusters(centres=centres, radius=np.full(k, np.inf), names=[], descriptions=[])
    labels, dist = probe.assign(z)
    radius = np.array([np.quantile(dist[labels == c], NOVEL_QUANTILE) if (labels == c).any() else np.inf
                       for c in range(k)])
    names, descriptions = name_clusters(x_std, labels, features, raw, k)
    how = (f"k = {k} by the best silhouette over k = 2..8 ({', '.join(f'{kk}: {v:.2f}' for kk, v in sil.items())})"
           if sil else f"k = {k} as configured")
    return Clusters(centres=centres, radius=radius, names=names, descriptions=descriptions, silhouette=sil,
                    chosen_by=how, residual_cut=float(np.quantile(residual, NOVEL_QUANTILE))), labels
