"""Which sessions are bots (from behaviour, with reasons), and how unusual every session is.

**Bots** are named by what no person does, each a reason in words:
- a form filled faster than ``bot_form_seconds`` ("form filled in 0.4 s")
- at least 8 click gaps whose middle half spans less than ``bot_click_spread`` of the median gap
  (interquartile range over median, robust to the odd pause between pages): a clock, not a
  hand ("click gaps vary 3 %")
- at least 5 pages at ``bot_pages_per_minute`` or more ("38 pages a minute")

**Anomaly scores** come from one of two methods in the reduced space, both fitted on people's
training sessions: an isolation forest (the default) or a robust Mahalanobis distance (minimum
covariance determinant, so the outliers do not widen the ellipse that judges them). Measured as
bot detectors in ``sleuth bench sessions`` (bots are the unusual sessions whose truth is known),
the forest ranks them better (ROC AUC 0.87-0.88 against 0.80-0.81 over three exports), so it is
the default. A score is the share of training sessions less unusual (0..1), so either method's
scores read alike; a session above ``1 - outlier_rate`` is labelled ``outlier``, with the
features that stand out as its reasons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import SessionsConfig
from .features import BEHAVIOUR, fmt_value

MIN_GAPS = 8
MIN_PAGES = 5


def bot_rules(frame: pd.DataFrame, cfg: SessionsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per session: bot or not, and the reasons (vectorised tests, reasons only for the flagged)."""
    fastest = frame["fastest_form"].to_numpy(float)
    cv = frame["click_spread"].to_numpy(float)
    gaps = frame["n_gaps"].to_numpy(float)
    rate = frame["page_rate"].to_numpy(float)
    pages = frame["pages"].to_numpy(float)
    fast_form = np.isfinite(fastest) & (fastest < cfg.bot_form_seconds)
    regular = (gaps >= MIN_GAPS) & np.isfinite(cv) & (cv < cfg.bot_click_spread)
    racing = (pages >= MIN_PAGES) & np.isfinite(rate) & (rate >= cfg.bot_pages_per_minute)
    bot = fast_form | regular | racing
    reasons = np.full(len(frame), None, dtype=object)  # lists for the flagged only
    for i in np.flatnonzero(bot):
        r = reasons[i] = []
        if fast_form[i]:
            r.append(f"form filled in {fastest[i]:.1f} s")
        if regular[i]:
            r.append(f"click gaps vary {cv[i]:.0%} over {int(gaps[i])} clicks")
        if racing[i]:
            r.append(f"{rate[i]:.0f} pages a minute over {int(pages[i])} pages")
    return bot, reasons


def _ecdf(train: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of training scores below each value: 0..1, higher is more unusual."""
    ref = np.sort(train[np.isfinite(train)])
    return np.searchsorted(ref, values, side="right") / max(len(ref), 1)


def robust_distance(z_train: np.ndarray, z: np.ndarray, seed: int = 0, sample: int = 2_000) -> np.ndarray:
    """Squared Mahalanobis distance under a minimum-covariance-determinant fit of the training sessions."""
    from sklearn.covariance import MinCovDet

    rng = np.random.default_rng(seed)
    fit = z_train[rng.choice(len(z_train), min(sample, len(z_train)), replace=False)]
    mcd = MinCovDet(random_state=seed).fit(fit)
    return mcd.mahalanobis(z)


def isolation_forest(z_train: np.ndarray, z: np.ndarray, seed: int = 0, sample: int = 20_000) -> np.ndarray:
    """Isolation-forest anomaly (the negated ``score_samples``: higher is more unusual)."""
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(seed)
    fit = z_train[rng.choice(len(z_train), min(sample, len(z_train)), replace=False)]
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(fit)
    return -forest.score_samples(z)


def anomaly_scores(method: str, z_train_idx: np.ndarray, z: np.ndarray, seed: int = 0) -> np.ndarray:
    """0..1 scores of every session by ``method`` (``robust`` or ``isolation_forest``)."""
    raw = (robust_distance if method == "robust" else isolation_forest)(z[z_train_idx], z, seed)
    return _ecdf(raw[z_train_idx], raw)


def outlier_reasons(frame: pd.DataFrame, x_std: np.ndarray, features: list[str], rows: np.ndarray,
                    typical: pd.Series, top: int = 2) -> list[list[str]]:
    """For each row in ``rows``: its features farthest from the training sessions, in words."""
    out = []
    for i in rows:
        z = np.abs(np.nan_to_num(x_std[i]))
        r = []
        for j in np.argsort(-z)[:top]:
            f = features[j]
            v, usual = frame[f].iat[i], typical[f]
            r.append(f"{BEHAVIOUR[f][2]} {fmt_value(v)} (usually {fmt_value(usual)})")
        out.append(r)
    return out

