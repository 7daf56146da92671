"""The sessions stage: features -> reduction -> clusters -> scores and bots -> conversion model.

Everything that is learned (the reduction, the clusters, the outlier scale) is learned on the
training sessions: the first ``train_days`` of the data (at most half of it). Later sessions are
only assigned and scored, so what the detector sees at time t depends on nothing after t beyond
those first days, which come before any bucket the detector may alert on.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import Config, SessionsConfig
from ..errors import InputError
from .bots import anomaly_scores, bot_rules, outlier_reasons
from .clusters import NEW, Clusters, fit_clusters
from .conversion import expected_conversions
from .features import BEHAVIOUR, behaviour_matrix, page_facts, session_features, usable_features
from .reduce import Reduction, fit_reduction
from .source import SessionTables, session_tables

MIN_SESSIONS = 50
#: reduced-space coordinates kept per session (for the scatter)
KEEP_COMPONENTS = 3


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError:
        from ..errors import SleuthError

        raise SleuthError("the sessions stage needs scikit-learn: pip install 'sleuth[sessions]'") from None


def one_thread():
    """BLAS and OpenMP on one thread: the matrices here are tall and thin, and worker threads
    spin on a busy machine (an SVD of 20,000 x 10 took 40 times longer on two threads, a k-means
    of 4,000 points 100 times longer)."""
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        return nullcontext()
    return threadpool_limits(limits=1)


@dataclass
class SessionAnalysis:
    """What the sessions stage learned: one row per session in ``frame`` and the models."""

    frame: pd.DataFrame
    tables: SessionTables
    features: list[str]
    reduction: Reduction
    clusters: Clusters
    method: str
    train_until: pd.Timestamp
    config: SessionsConfig
    notes: list[str] = field(default_factory=list)
    pages: Any = None  # one row per page view (features.page_facts; people's, once the cube's rows are made)

    @property
    def bots(self) -> pd.DataFrame:
        return self.frame[self.frame["label"] == "bot"]

    def flagged(self) -> pd.DataFrame:
        """Bots and outliers, most unusual first."""
        f = self.frame[self.frame["label"] != ""]
        return f.sort_values(["label", "score"], ascending=[True, False])

    def cluster_profiles(self) -> pd.DataFrame:
        """One row per cluster (and new behaviour): sessions, share, conversion rate, description."""
        f = self.frame[self.frame["label"] != "bot"]
        rows = []
        for c in [*range(self.clusters.k), -1]:
            inside = f["cluster"] == c
            train = inside & f["train"]
            rows.append({
                "cluster": self.clusters.name_of(c), "sessions": int(inside.sum()),
                "share": float(inside.mean()) if len(f) else 0.0,
                "training share": float(train.sum() / max(f["train"].sum(), 1)),
                "conversion rate": float((f.loc[inside, "conversions"] > 0).mean()) if inside.any() else np.nan,
                "description": (self.clusters.descriptions[c] if c >= 0 else
                                "sessions farther from every cluster than 99.5 % of its training sessions"),
            })
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        f = self.frame
        return {
            "sessions": int(len(f)), "bots": int((f["label"] == "bot").sum()),
            "outliers": int((f["label"] == "outlier").sum()),
            "train_until": f"{self.train_until:%Y-%m-%dT%H:%M:%SZ}",
            "reduction": self.reduction.to_dict(), "clusters": self.clusters.to_dict(),
            "outlier_method": self.method, "features": self.features,
            "profiles": self.cluster_profiles().to_dict("records"), "notes": self.notes,
        }

    def page_facts(self):
        """One row per page view (``sid, off, page, latency, ajax, bytes, events, exit``)."""
        return self.pages


def training_mask(start: pd.Series, days: int) -> tuple[np.ndarray, pd.Timestamp]:
    """The first ``days`` of the data, at most half of it (at least its first day)."""
    first, last = start.min(), start.max()
    span = max((last - first) / 2, pd.Timedelta(days=1))
    until = first + min(pd.Timedelta(days=days), span)
    return (start < until).to_numpy(), until


def analyse(events, config: Config) -> SessionAnalysis:
    """Run the sessions stage on loaded events (their nested tables when ingest read an export)."""
    _require_sklearn()
    cfg = config.sessions
    tables = session_tables(events, config)
    frame = session_features(tables)
    pages = page_facts(tables) if "page" in tables.has else None  # read once, where the cube's rows are made
    if len(frame) < MIN_SESSIONS:
        raise InputError(f"{tables.source}: {len(frame)} sessions; the sessions stage needs at least {MIN_SESSIONS} "
                         "to learn what usual behaviour is")
    train, until = training_mask(frame["start"], cfg.train_days)
    features = usable_features(frame, train)
    if len(features) < 2:
        raise InputError(f"{tables.source}: the sessions vary in fewer than two behaviour features "
                         f"({', '.join(features) or 'none'}); nothing to reduce or cluster")
    notes = list(tables.notes)
    bot, reasons = bot_rules(frame, cfg)
    fit = train & ~bot  # people's behaviour: bots are named by rules, not learned as a mode
    if fit.sum() < MIN_SESSIONS:
        fit = train
    with one_thread():
        x = behaviour_matrix(frame, features)
        red = fit_reduction(x[fit], features)
        z, x_std = red.transform(x), red.standardise(x)
        residual = red.residual(x, z)
        clusters, _ = fit_clusters(z[fit], x_std[fit], residual[fit], features, frame.loc[fit], fixed=cfg.clusters)
        label, _ = clusters.assign(z, residual)
        fit_idx = np.flatnonzero(fit)
        score = anomaly_scores(cfg.outlier_method, fit_idx, z)
        outlier = ~bot & (score >= 1 - cfg.outlier_rate)
        typical = frame.loc[fit, features].median()
        for i, r in zip(np.flatnonzero(outlier), outlier_reasons(frame, x_std, features, np.flatnonzero(outlier), typical)):
            reasons[i] = r
        expected, note = expected_conversions(frame, x_std, list(tables.context))
    notes.append(note)
    frame["train"] = fit
    frame["cluster"] = label
    frame["cluster_name"] = np.array([*clusters.names, NEW], dtype=object)[label]  # -1: the last, new behaviour
    frame["score"] = score
    frame["label"] = np.where(bot, "bot", np.where(outlier, "outlier", ""))
    frame["reasons"] = reasons
    frame["expected_conversion"] = expected
    for j in range(min(KEEP_COMPONENTS, z.shape[1])):
        frame[f"c{j + 1}"] = z[:, j]
    notes.append(f"{int(bot.sum()):,} of {len(frame):,} sessions look like bots ({bot.mean():.1%}); "
                 f"{int(outlier.sum()):,} more are outliers")
    return SessionAnalysis(frame=frame, tables=tables, features=features, reduction=red, clusters=clusters,
                           method=cfg.outlier_method, train_until=until, config=cfg, notes=notes, pages=pages)


__all__ = ["SessionAnalysis", "analyse", "training_mask", "NEW", "BEHAVIOUR"]
