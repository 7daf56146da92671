"""The classifier view: which features tell an incident's events apart from other traffic.

Spotlight's method (seed-methods.md, section 3), made deterministic and fast:

- rows: every event of the incident's property (and segment) inside the window, plus the
  metric's own events from the same hours one week earlier. Label 1: the metric's events inside
  the window; 0: everything else (other events in the window, last week's metric events). A metric
  without its own events (sessions, users, a ratio) labels every event in the window 1, so the
  window is compared with the same hours a week before.
- features: the dimensions that stay the same within a session (user and session features, as
  Spotlight's), one-hot (the 20 most frequent values each, the rest "(other)"), the hour of day,
  and a ``RANDOM`` 0/1 column: noise that any feature worth naming must beat.
- one of each pair of features with |Spearman| > 0.95 is dropped, then RFECV (step 10 %, 3-fold,
  ROC AUC) removes the rest of the redundant ones, so importance is not split between them.
- a shallow random forest with balanced class weights; SHAP (TreeExplainer) on a sample of the
  held-out rows gives each feature's importance (mean |SHAP|) and direction (the sign of the
  correlation between the feature's value and its SHAP value).
- "unknown" when the model is a poor fit (held-out ROC AUC < 0.65 or recall < 0.5) or when
  nothing stands out (the top feature is within noise of ``RANDOM``, or neither 1.5 x the second
  nor 3 x the median); otherwise the top 1 to 3 features, worded as over- or under-represented
  segments.
"""
from __future__ import annotations

import time
from typing import Any

import ibis
import numpy as np
import pandas as pd

from ..config import Metric
from ..errors import SleuthError
from ..incidents import Incident

#: rows sampled for the model (stratified by label)
MAX_ROWS = 20_000
#: held-out rows SHAP explains (its cost is per row)
SHAP_ROWS = 300
#: values kept per dimension; the rest become OTHER
TOP_VALUES = 20
OTHER = "(other)"
NOISE = "RANDOM"
HOUR = "hour of day"
MIN_AUC, MIN_RECALL = 0.65, 0.5
#: fewer sessions than this on either side: nothing to learn from
MIN_SESSIONS = 20
MAX_CAUSES = 3
FOREST = {"n_estimators": 60, "max_depth": 8, "min_samples_leaf": 5, "class_weight": "balanced", "n_jobs": 1}


def target_events(metric: Metric | None) -> list[str] | None:
    """The events an incident's metric counts, or None when it has none of its own (sessions,
    users, ratios): then every event is a target."""
    if metric is None or metric.is_ratio:
        return None
    return metric.parts()[0].events


def _utc(ts: pd.Timestamp) -> Any:
    return ibis.literal(pd.Timestamp(ts).tz_localize("UTC").to_pydatetime())


def incident_rows(events, incident: Incident, targets: list[str] | None, dims: list[str]) -> pd.DataFrame:
    """The labelled rows (``label``, ``hour`` and the dimensions), in a stable order."""
    t = events.table.filter(events.table.property == incident.property)
    for dim, value in incident.segment.items():
        t = t.filter(t[dim] == value)
    start, end = incident.start_time(), incident.end_time()
    week = pd.Timedelta(days=7)
    inside = (t.timestamp >= _utc(start)) & (t.timestamp < _utc(end))
    before = (t.timestamp >= _utc(start - week)) & (t.timestamp < _utc(end - week))
    is_target = t.event.isin(targets) if targets else ibis.literal(True)
    t = t.filter(inside | (before & is_target))
    t = t.mutate(label=ibis.ifelse(inside & is_target, 1, 0), hour=t.timestamp.hour(),
                 group=t.session_id.cast("string").fill_null(t.timestamp.cast("string")))
    cols = ["label", "hour", "group", *dims]
    return t.order_by(["timestamp", "event", "group", *dims]).select(cols).to_pyarrow().to_pandas()


def _sample(frame: pd.DataFrame, cap: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most ``cap`` rows, half of them from each label when one side is larger."""
    if len(frame) <= cap:
        return frame
    parts = []
    for label in (0, 1):
        side = frame[frame.label == label]
        other = (frame.label != label).sum()
        keep = min(len(side), max(cap // 2, cap - other))
        parts.append(side.iloc[np.sort(rng.choice(len(side), keep, replace=False))])
    return pd.concat(parts).sort_index()


def features(frame: pd.DataFrame, dims: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """One-hot dimensions (capped), the hour of day and the noise column."""
    out = {}
    for dim in dims:
        col = frame[dim].astype(str)
        top = col.value_counts().index[:TOP_VALUES]
        col = col.where(col.isin(top), OTHER)
        for value in sorted(col.unique()):
            out[f"{dim}={value}"] = (col == value).to_numpy(dtype=np.int8)
    out[HOUR] = frame["hour"].to_numpy(dtype=np.int8)
    out[NOISE] = rng.integers(0, 2, len(frame)).astype(np.int8)
    x = pd.DataFrame(out, index=frame.index)
    return x.loc[:, x.nunique() > 1].assign(**{NOISE: out[NOISE]})


def drop_correlated(x: pd.DataFrame, limit: float = 0.95) -> dict[str, list[str]]:
    """The columns kept after dropping the later one of each pair with |Spearman| > ``limit``,
    each with the columns it stands for (so "os=Linux" can say it is also "browser=HeadlessChrome")."""
    ranks = x.rank().to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(np.corrcoef(ranks, rowvar=False))
    corr = np.nan_to_num(np.atleast_2d(corr))
    keep: dict[int, list[str]] = {}
    for j in range(x.shape[1]):
        twin = next((k for k in keep if corr[j, k] > limit), None)
        if twin is None:
            keep[j] = []
        else:
            keep[twin].append(x.columns[j])
    return {x.columns[j]: same for j, same in keep.items()}


def _forest(seed: int, **kw):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, **{**FOREST, **kw})


def _folds(k: int, seed: int):
    """Stratified folds that keep each session on one side: a session's events share their
    dimensions, so splitting one would let the forest recognise sessions instead of causes."""
    from sklearn.model_selection import StratifiedGroupKFold

    return StratifiedGroupKFold(k, shuffle=True, random_state=seed)


def select_features(x: pd.DataFrame, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[list[str], dict]:
    """Spearman pre-filter, then RFECV on a small forest; ``RANDOM`` always stays in (it is
    the yardstick, not a candidate). Returns the columns and, per column, those it stands for."""
    from sklearn.feature_selection import RFECV

    aliases = drop_correlated(x.drop(columns=[NOISE]))
    real = list(aliases)
    if len(real) > 2:
        rfe = RFECV(_forest(seed, n_estimators=20, max_depth=6), step=0.1, min_features_to_select=1,
                    cv=_folds(3, seed), scoring="roc_auc")
        rfe.fit(x[real].to_numpy(), y, groups=groups)
        real = [c for c, ok in zip(real, rfe.support_) if ok]
    return [*real, NOISE], aliases


def shap_importance(model, x: pd.DataFrame, rng: np.random.Generator, boot: int = 200) -> pd.DataFrame:
    """Mean |SHAP| (class 1), its bootstrap standard deviation and the direction per feature."""
    import shap

    values = shap.TreeExplainer(model).shap_values(x.to_numpy(dtype=float), check_additivity=False)
    if isinstance(values, list):  # older shap: one array per class
        values = values[1]
    elif values.ndim == 3:
        values = values[:, :, 1]
    absval = np.abs(values)
    idx = rng.integers(0, len(x), (boot, len(x)))
    sd = absval[idx].mean(axis=1).std(axis=0)
    direction = []
    for j in range(x.shape[1]):
        v = x.iloc[:, j].to_numpy(dtype=float)
        c = np.corrcoef(v, values[:, j])[0, 1] if v.std() > 0 and values[:, j].std() > 0 else 0.0
        direction.append(1 if c > 0 else -1 if c < 0 else 0)
    return pd.DataFrame({"feature": x.columns, "importance": absval.mean(axis=0), "sd": sd,
                         "direction": direction}).sort_values("importance", ascending=False, ignore_index=True)


def standing_out(imp: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The features that stand out (top 1 to 3), or an empty frame and the reason none does."""
    noise = imp[imp.feature == NOISE].iloc[0]
    real = imp[imp.feature != NOISE].reset_index(drop=True)
    if real.empty:
        return real, "no feature left to explain it"
    bar = noise.importance + 2 * noise.sd
    top = real.importance.iat[0]
    if top <= bar:
        return real.iloc[:0], f"nothing stands out: the top feature is within noise of {NOISE}"
    second = real.importance.iat[1] if len(real) > 1 else 0.0
    if top < 1.5 * second and top < 3 * imp.importance.median():
        return real.iloc[:0], "nothing stands out: no feature is clearly ahead of the others"
    keep = real[(real.importance > bar) & (real.importance >= top / 3)].head(MAX_CAUSES)
    return keep, ""


def _describe(feature: str, direction: int, frame: pd.DataFrame) -> dict[str, Any]:
    """A feature with its shares among anomalous and other events, and a sentence about it."""
    pos, neg = frame[frame.label == 1], frame[frame.label == 0]
    if feature == HOUR:
        a, b = float(pos.hour.mean()), float(neg.hour.mean())
        return {"feature": feature, "dimension": None, "value": None, "anomalous": round(a, 2), "other": round(b, 2),
                "text": f"{HOUR}: anomalous events are {'later' if a > b else 'earlier'} (mean {a:.1f} vs {b:.1f})"}
    dim, value = feature.split("=", 1)
    top = frame[dim].astype(str).value_counts().index[:TOP_VALUES]

    def share(part: pd.DataFrame) -> float:
        col = part[dim].astype(str)
        col = col.where(col.isin(top), OTHER)
        return float((col == value).mean()) if len(col) else 0.0

    a, b = share(pos), share(neg)
    how = "over" if (direction > 0 if direction else a > b) else "under"
    text = f"{dim} = {value} is {how}-represented: {a:.0%} of anomalous events vs {b:.0%} of other traffic"
    return {"feature": feature, "dimension": dim, "value": value, "anomalous": round(a, 4), "other": round(b, 4),
            "text": text.replace("%", " %")}


def _unknown(reason: str, **extra: Any) -> dict[str, Any]:
    return {"verdict": "unknown", "reason": reason, "auc": None, "recall": None, "causes": [], "features": [],
            **extra}


def classify_incident(events, incident: Incident, metric: Metric | None = None, *, seed: int = 0,
                      max_rows: int = MAX_ROWS, shap_rows: int = SHAP_ROWS) -> dict[str, Any]:
    """The classifier view of one incident: ``verdict`` ("root cause" or "unknown"), ``reason``,
    held-out ``auc`` and ``recall``, ``causes`` (sentences), ``features`` (importance, direction,
    shares; most important first), row counts and ``seconds``. Deterministic for a given seed."""
    try:
        from sklearn.metrics import recall_score, roc_auc_score
    except ImportError:
        raise SleuthError("the classifier view needs the 'classifier' extra: pip install 'sleuth[classifier]'") from None
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    # per-session dimensions only: one that changes within a session (a product's category) is
    # set by the kind of event, so it would tell the metric's events from the others by their name
    dims = [d for d in events.session_dimensions() if d not in incident.segment]
    frame = incident_rows(events, incident, target_events(metric), dims)
    counts = {"positives": int((frame.label == 1).sum()), "negatives": int((frame.label == 0).sum())}
    sessions = frame.groupby("label").group.nunique()
    if min(sessions.get(0, 0), sessions.get(1, 0)) < MIN_SESSIONS:
        return _unknown(f"too few sessions to learn from ({sessions.get(1, 0)} in the incident, "
                        f"{sessions.get(0, 0)} to compare with)", **counts, seconds=round(time.perf_counter() - t0, 3))
    frame = _sample(frame, max_rows, rng)
    x = features(frame, dims, rng)
    y, groups = frame.label.to_numpy(), frame.group.to_numpy()
    train, test = next(_folds(3, seed).split(x, y, groups))  # a third of the sessions held out
    x_tr, x_te, y_tr, y_te = x.iloc[train], x.iloc[test], y[train], y[test]
    if len(set(y_te)) < 2 or len(set(y_tr)) < 2:
        return _unknown("too few sessions on one side to hold some out", **counts,
                        seconds=round(time.perf_counter() - t0, 3))
    cols, aliases = select_features(x_tr, y_tr, groups[train], seed)
    model = _forest(seed).fit(x_tr[cols].to_numpy(), y_tr)
    proba = model.predict_proba(x_te[cols].to_numpy())[:, 1]
    auc = float(roc_auc_score(y_te, proba))
    recall = float(recall_score(y_te, (proba >= 0.5).astype(int)))
    base = {"auc": round(auc, 4), "recall": round(recall, 4), **counts, "kept_features": len(cols)}
    if auc < MIN_AUC or recall < MIN_RECALL:
        return {**_unknown(f"poor fit: held-out ROC AUC {auc:.2f}, recall {recall:.2f} "
                           f"(needs AUC >= {MIN_AUC} and recall >= {MIN_RECALL})"),
                **base, "seconds": round(time.perf_counter() - t0, 3)}
    pick = rng.choice(len(x_te), min(shap_rows, len(x_te)), replace=False)
    imp = shap_importance(model, x_te[cols].iloc[np.sort(pick)], rng)
    keep, reason = standing_out(imp)
    table = [{"feature": r.feature, "importance": float(f"{r.importance:.4g}"), "sd": float(f"{r.sd:.3g}"),
              "direction": int(r.direction)} for r in imp.itertuples()]
    causes = [{**_describe(f, d, frame), "same_as": aliases.get(f, [])} for f, d in zip(keep.feature, keep.direction)]
    for c in causes:
        if c["same_as"]:
            c["text"] += f" (the same events as {', '.join(c['same_as'])})"
    return {"verdict": "root cause" if causes else "unknown", "reason": reason, **base,
            "causes": causes, "features": table, "seconds": round(time.perf_counter() - t0, 3)}
