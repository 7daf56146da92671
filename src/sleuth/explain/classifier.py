"""The classifier view: which features tell an incident's extra (or missing) traffic apart.

Spotlight's method (seed-methods.md, section 3), made deterministic, fast, and fit for volume
incidents:

- rows: one per unit the metric counts (:class:`Unit`): a session for ``sessions``, a user for
  ``users``, an event for a count of events, an event weighted by its value for a sum such as
  revenue; for a ratio, its numerator or its denominator, whichever moved more. Label 1: the units inside the incident's window; 0: the same
  hours one week earlier. Spotlight labelled every event of the window, and the other events of
  the window as 0: the other events of the extra sessions then sit on both sides, and a
  campaign's extra sessions were a small share of the positives, so nothing was learned.
- the window holds the usual traffic plus an excess (or the week before holds what went
  missing), so even a perfect model of the excess scores a diluted AUC: with an excess share
  ``p``, AUC = p * AUC(excess) + (1 - p) / 2. The verdict uses the excess's AUC and recall,
  recovered from the held-out AUC, recall and false-positive rate (:func:`excess_fit`).
- features: the dimensions that stay the same within a session; for rows that are the metric's
  own events, also the attributes those events carry (a product's category), which is fair
  because every row is the same kind of event (the event name is never a feature, nor the
  metric's own value column); one-hot (the 20 most frequent values each, the rest "(other)"),
  the hour of day, and a ``RANDOM`` 0/1 column: noise that any feature worth naming must beat.
- one of each pair of features with |Spearman| > 0.95 is dropped, then RFECV (step 10 %,
  3-fold, ROC AUC) removes the rest of the redundant ones, so importance is not split.
- a random forest with balanced class weights, tuned for recall: a small grid of depth and leaf
  size scored on balanced recall with session-grouped folds. SHAP (TreeExplainer) on a sample of
  the held-out rows gives each feature's importance (mean |SHAP|) and direction.
- "unknown" when the model is a poor fit (excess AUC < 0.65 or excess recall < 0.5, or a
  held-out AUC not above chance), or when nothing stands out (the top feature is within noise of
  ``RANDOM``, or neither 1.5 x the second nor 3 x the median); otherwise the top 1 to 3 features,
  worded as over- or under-represented segments.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd

from ..config import Aggregate, Metric
from ..errors import SleuthError
from ..incidents import Incident
from ..metrics.cube import window_label

#: rows sampled for the model (stratified by label)
MAX_ROWS = 10_000
#: held-out rows SHAP explains (its cost is per row)
SHAP_ROWS = 300
#: values kept per dimension; the rest become OTHER
TOP_VALUES = 20
#: a dimension with more distinct values than this among the rows is an identifier (an order id), not a segment
MAX_VALUES = 1000
OTHER = "(other)"
NOISE = "RANDOM"
HOUR = "hour of day"
MIN_AUC, MIN_RECALL = 0.65, 0.5
#: fewer sessions than this on either side: nothing to learn from
MIN_SESSIONS = 20
#: the excess share is never taken as smaller than this: dividing by a tiny share turns noise into a fit
MIN_EXCESS = 0.2
MAX_CAUSES = 3
FOREST = {"n_estimators": 60, "max_depth": 8, "min_samples_leaf": 5, "class_weight": "balanced", "n_jobs": 1}
#: the recall-oriented tuning grid: depth x leaf size, each scored with three small fits
GRID = tuple({"max_depth": d, "min_samples_leaf": m} for d in (4, 8) for m in (5, 25))
WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class Unit:
    """What one row is: what the metric counts (a ratio: its numerator)."""

    noun: str  #: "sessions", "page_view events", "revenue of purchase"
    events: list[str] | None = None  #: the metric's own events (None: any event)
    distinct: str | None = None  #: one row per distinct value of this column (session_id, user_id)
    weight: str | None = None  #: a sum's column: each row counts by its value
    column: str | None = None  #: the metric's own value column, never a feature


def aggregate_unit(agg: Aggregate) -> Unit:
    """The unit an aggregate counts."""
    events = agg.events
    of = f" with {'/'.join(events)}" if events else ""
    if agg.type == "distinct":
        noun = {"session_id": "sessions", "user_id": "users"}.get(agg.column or "", f"distinct {agg.column}")
        return Unit(noun + of, events, distinct=agg.column, column=agg.column)
    if agg.type == "sum":
        return Unit(f"{agg.column} of {'/'.join(events) if events else 'all events'}", events,
                    weight=agg.column, column=agg.column)
    return Unit(f"{'/'.join(events)} events" if events else "events", events)


def _labelled(events, incident: Incident, unit: Unit) -> ibis.Table:
    """The unit's events inside the window (``label`` 1) and in the same hours a week earlier (0)."""
    t = events.table.filter(events.table.property == incident.property)
    for dim, value in incident.segment.items():
        t = t.filter(t[dim] == value)
    if unit.events:
        t = t.filter(t.event.isin(unit.events))
    start, end = incident.start_time(), incident.end_time()
    t = t.mutate(_window=window_label(t, {"1": (start, end), "0": (start - WEEK, end - WEEK)}))
    return t.filter(t._window.notnull()).mutate(label=t._window.cast("int64")).drop("_window")


def _totals(events, incident: Incident, unit: Unit) -> tuple[float, float]:
    """How many units (or how much value) in the window and in the same hours a week earlier."""
    t = _labelled(events, incident, unit)
    if unit.distinct:
        value = t[unit.distinct].nunique()
    else:
        value = t[unit.weight].abs().sum() if unit.weight else t.count()
    got = t.group_by("label").aggregate(v=value).execute()
    per = dict(zip(got["label"], got["v"].fillna(0).astype(float)))
    return per.get(1, 0.0), per.get(0, 0.0)


def incident_unit(events, incident: Incident, metric: Metric | None) -> Unit:
    """What the rows are: what the incident's metric counts; for a ratio, its numerator or its
    denominator, whichever moved more against the same hours a week before (a conversion rate
    falls when orders go missing, or when sessions that never buy flood in)."""
    if metric is None:
        return Unit("events")
    units = [aggregate_unit(part) for part in metric.parts() if part is not None]
    if len(units) == 1:
        return units[0]
    moves = [abs(np.log((w + 1) / (b + 1))) for w, b in (_totals(events, incident, u) for u in units)]
    return units[int(np.argmax(moves))]


def incident_rows(events, incident: Incident, unit: Unit, dims: list[str]) -> pd.DataFrame:
    """One row per unit inside the window (label 1) and in the same hours a week earlier (label
    0), with ``label``, ``hour``, ``group`` (the session, kept on one side of every split),
    ``weight`` and the dimensions, in a stable order. A distinct unit takes the dimensions of its
    first event."""
    t = _labelled(events, incident, unit)
    if unit.distinct:
        t = t.filter(t[unit.distinct].notnull())
        t = t.group_by(["label", unit.distinct]).aggregate(
            hour=t.timestamp.min().hour(), **{d: t[d].argmin(t.timestamp) for d in dims})
        t = t.mutate(group=t[unit.distinct].cast("string"))
        order = ["label", "group"]
    else:
        t = t.mutate(hour=t.timestamp.hour(), group=t.session_id.cast("string").fill_null(t.timestamp.cast("string")))
        if unit.weight:
            t = t.mutate(weight=t[unit.weight].cast("float64").abs())
            t = t.filter(t.weight > 0)
        order = ["timestamp", "event", "group", *dims]
    # a constant weight is added here, not in the query: a literal 1.0 comes back from PostgreSQL as
    # NUMERIC (Python Decimal), which Arrow refuses as a float
    cols = ["label", "hour", "group", *(["weight"] if unit.weight and not unit.distinct else []), *dims]
    frame = t.order_by(order).select(cols).to_pyarrow().to_pandas()
    if "weight" not in frame:
        frame.insert(3, "weight", 1.0)
    frame["hour"] = frame["hour"].astype(int)
    frame["label"] = frame["label"].astype(int)
    return frame


def feature_dimensions(events, incident: Incident, unit: Unit) -> list[str]:
    """The dimensions to learn from: per-session ones always; the attributes of events (a
    product's category) only when every row is one of the metric's own events, since across
    kinds of events they would name the kind; never the segment's own, the metric's value
    column or the event name."""
    session = events.session_dimensions()
    dims = list(session)
    if unit.events and not unit.distinct:
        dims += [d for d in events.dimensions if d not in session]
    return [d for d in dims if d not in incident.segment and d not in (unit.column, "event")]


def _sample(frame: pd.DataFrame, cap: int, rng: np.random.Generator, weighted: bool) -> pd.DataFrame:
    """At most ``cap`` rows, half of them from each label when one side is larger. Rows that
    count by their value (a sum such as revenue) are drawn with replacement in proportion to it,
    so the model learns where the value went rather than where the orders went."""
    if len(frame) <= cap and not weighted:
        return frame
    parts = []
    for label in (0, 1):
        side = frame[frame.label == label]
        other = (frame.label != label).sum()
        keep = min(len(side), max(cap // 2, cap - other))
        if weighted:
            w = side.weight.to_numpy(dtype=float)
            pick = rng.choice(len(side), keep, replace=True, p=w / w.sum())
        else:
            pick = rng.choice(len(side), keep, replace=False)
        parts.append(side.iloc[np.sort(pick)])
    return pd.concat(parts).sort_index(kind="stable").reset_index(drop=True)


def features(frame: pd.DataFrame, dims: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """One-hot dimensions (capped; identifiers left out), the hour of day and the noise column."""
    out = {}
    for dim in dims:
        col = frame[dim].astype(str)
        counts = col.value_counts()
        if len(counts) > MAX_VALUES:
            continue
        col = col.where(col.isin(counts.index[:TOP_VALUES]), OTHER)
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


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) splits that keep each session on one side (its events share their
    dimensions, so splitting one would let the forest recognise sessions instead of causes),
    stratified: a session is all label 1 or all label 0, so each label's sessions are shuffled
    and dealt out in turn. (sklearn's StratifiedGroupKFold does the same in a Python loop per
    session: seconds on the demo.)"""
    rng = np.random.default_rng(seed)
    codes = np.unique(groups, return_inverse=True)[1]
    fold_of = np.empty(codes.max() + 1, dtype=np.int64)
    label_of = np.zeros(codes.max() + 1, dtype=y.dtype)
    label_of[codes] = y
    for label in np.unique(label_of):
        members = np.flatnonzero(label_of == label)
        fold_of[rng.permutation(members)] = np.arange(len(members)) % k
    fold = fold_of[codes]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def select_features(x: pd.DataFrame, y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[list[str], dict]:
    """Spearman pre-filter, then RFECV on a small forest; ``RANDOM`` always stays in (it is
    the yardstick, not a candidate). Returns the columns and, per column, those it stands for."""
    from sklearn.feature_selection import RFECV

    aliases = drop_correlated(x.drop(columns=[NOISE]))
    real = list(aliases)
    if len(real) > 2:
        rfe = RFECV(_forest(seed, n_estimators=20, max_depth=6), step=0.1, min_features_to_select=1,
                    cv=group_folds(y, groups, 3, seed), scoring="roc_auc")
        rfe.fit(x[real].to_numpy(), y)
        real = [c for c, ok in zip(real, rfe.support_) if ok]
    return [*real, NOISE], aliases


def tune(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, int]:
    """Tuned for recall: the :data:`GRID` setting with the best balanced recall (the mean of both
    classes' recall, so predicting everything as anomalous does not win) over session-grouped
    3-fold CV of the training rows; a tie goes to the simpler, earlier setting."""
    from sklearn.metrics import balanced_accuracy_score

    folds = group_folds(y, groups, 3, seed)
    scores = []
    for params in GRID:
        fold_scores = [balanced_accuracy_score(y[te], _forest(seed, n_estimators=30, **params).fit(x[tr], y[tr]).predict(x[te]))
                       for tr, te in folds]
        scores.append(float(np.mean(fold_scores)))
    return GRID[int(np.argmax(scores))]


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


def _describe(feature: str, direction: int, frame: pd.DataFrame, sides: tuple[str, str]) -> dict[str, Any]:
    """A feature with its shares among the label-1 and label-0 rows (``sides`` words them), and
    a sentence about it."""
    pos, neg = frame[frame.label == 1], frame[frame.label == 0]
    if feature == HOUR:
        a, b = float(pos.hour.mean()), float(neg.hour.mean())
        return {"feature": feature, "dimension": None, "value": None, "anomalous": round(a, 2), "other": round(b, 2),
                "text": f"{HOUR}: the incident's rows are {'later' if a > b else 'earlier'} (mean {a:.1f} vs {b:.1f})"}
    dim, value = feature.split("=", 1)
    top = frame[dim].astype(str).value_counts().index[:TOP_VALUES]

    def share(part: pd.DataFrame) -> float:
        col = part[dim].astype(str)
        col = col.where(col.isin(top), OTHER)
        return float((col == value).mean()) if len(col) else 0.0

    a, b = share(pos), share(neg)
    how = "over" if (direction > 0 if direction else a > b) else "under"
    text = f"{dim} = {value} is {how}-represented: {a:.0%} {sides[0]} vs {b:.0%} {sides[1]}"
    return {"feature": feature, "dimension": dim, "value": value, "anomalous": round(a, 4), "other": round(b, 4),
            "text": text.replace("%", " %")}


def explain_model(model, x_test: pd.DataFrame, frame: pd.DataFrame, aliases: dict[str, list[str]],
                  rng: np.random.Generator, shap_rows: int, sides: tuple[str, str], side: int = 0) -> dict[str, Any]:
    """SHAP on a sample of the held-out rows, then the root-cause rule: ``verdict``, ``reason``,
    ``causes`` (worded with the shares in ``frame``) and the ``features`` table. With ``side``
    (+1: the label-1 rows hold an excess, -1: the label-0 rows do) only features pointing at the
    excess can be causes: when iOS sessions go missing, Windows is over-represented in what is
    left, but it is a mirror image, not the cause."""
    pick = rng.choice(len(x_test), min(shap_rows, len(x_test)), replace=False)
    imp = shap_importance(model, x_test.iloc[np.sort(pick)], rng)
    candidates = imp[(imp.direction != -side) | (imp.feature == NOISE)] if side else imp
    keep, reason = standing_out(candidates.reset_index(drop=True))
    table = [{"feature": r.feature, "importance": float(f"{r.importance:.4g}"), "sd": float(f"{r.sd:.3g}"),
              "direction": int(r.direction)} for r in imp.itertuples()]
    causes = [{**_describe(f, d, frame, sides), "same_as": aliases.get(f, [])} for f, d in zip(keep.feature, keep.direction)]
    for c in causes:
        if c["same_as"]:
            c["text"] += f" (the same rows as {', '.join(c['same_as'])})"
    return {"verdict": "root cause" if causes else "unknown", "reason": reason, "causes": causes, "features": table}


def _auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley and McNeil's standard error of a ROC AUC from ``n_pos`` and ``n_neg`` independent
    units (sessions, not their events, which are not independent)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / max(n_pos * n_neg, 1)
    return float(np.sqrt(max(var, 0.0)))


def excess_fit(auc: float, tpr: float, fpr: float, window: float, before: float) -> dict[str, float]:
    """How well the model picks out the excess (or the missing traffic), from its held-out fit
    to the whole window against the week before.

    The window's rows are the usual ones plus an excess of share ``p`` (when it grew; when it
    shrank, the week before holds the missing share ``p``). The usual rows score like last week's,
    so AUC = p * AUC_excess + (1 - p) / 2, and the rates mix the same way. ``p`` is floored at
    :data:`MIN_EXCESS` so that a tiny excess cannot turn noise into a fit."""
    big = max(window, before)
    share = 1 - min(window, before) / big if big > 0 else 0.0
    p = max(share, MIN_EXCESS)
    if window >= before:  # the excess is among the window's rows: how many of them are caught
        rec = (tpr - (1 - p) * fpr) / p
    else:  # the missing rows are among last week's: how many are told apart from the window
        rec = ((1 - fpr) - (1 - p) * (1 - tpr)) / p
    clip = lambda v: round(float(min(max(v, 0.0), 1.0)), 4)  # noqa: E731
    return {"excess": round(share, 4), "excess_auc": clip(0.5 + (auc - 0.5) / p), "excess_recall": clip(rec)}


def fit_text(view: dict[str, Any]) -> str:
    """The model's fit in words: the held-out AUC and recall, and those of the excess."""
    if view.get("auc") is None:
        return "no model"
    text = f"held-out ROC AUC {view['auc']:.2f}, recall {view['recall']:.2f}"
    if view.get("excess") is not None:
        text += (f"; on the excess ({view['excess']:.0%} of the rows) AUC {view['excess_auc']:.2f}, "
                 f"recall {view['excess_recall']:.2f}")
    return text.replace("%", " %")


def _unknown(reason: str, **extra: Any) -> dict[str, Any]:
    return {"verdict": "unknown", "reason": reason, "auc": None, "recall": None, "causes": [], "features": [],
            **extra}


def classify_incident(events, incident: Incident, metric: Metric | None = None, *, seed: int = 0,
                      max_rows: int = MAX_ROWS, shap_rows: int = SHAP_ROWS) -> dict[str, Any]:
    """The classifier view of one incident: ``verdict`` ("root cause" or "unknown"), ``reason``,
    held-out ``auc`` and ``recall``, the ``excess`` share with ``excess_auc`` and
    ``excess_recall``, the tuned ``forest`` setting, ``causes`` (sentences), ``features``
    (importance, direction; most important first), the ``unit``, row counts and ``seconds``.
    Deterministic for a given seed."""
    try:
        from sklearn.metrics import recall_score, roc_auc_score
    except ImportError:
        raise SleuthError("the classifier view needs the 'classifier' extra: pip install 'sleuth[classifier]'") from None
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    unit = incident_unit(events, incident, metric)
    dims = feature_dimensions(events, incident, unit)
    frame = incident_rows(events, incident, unit, dims)
    counts = {"unit": unit.noun, "positives": int((frame.label == 1).sum()), "negatives": int((frame.label == 0).sum())}
    sessions = frame.groupby("label").group.nunique()
    if min(sessions.get(0, 0), sessions.get(1, 0)) < MIN_SESSIONS:
        return _unknown(f"too few sessions to learn from ({sessions.get(1, 0)} in the incident, "
                        f"{sessions.get(0, 0)} to compare with)", **counts, seconds=round(time.perf_counter() - t0, 3))
    totals = frame.groupby("label").weight.sum()
    frame = _sample(frame, max_rows, rng, weighted=unit.weight is not None)
    x = features(frame, dims, rng)
    y, groups = frame.label.to_numpy(), frame.group.to_numpy()
    train, test = group_folds(y, groups, 3, seed)[0]  # a third of the sessions held out
    x_tr, x_te, y_tr, y_te = x.iloc[train], x.iloc[test], y[train], y[test]
    if len(set(y_te)) < 2 or len(set(y_tr)) < 2:
        return _unknown("too few sessions on one side to hold some out", **counts,
                        seconds=round(time.perf_counter() - t0, 3))
    cols, aliases = select_features(x_tr, y_tr, groups[train], seed)
    params = tune(x_tr[cols].to_numpy(), y_tr, groups[train], seed)
    model = _forest(seed, **params).fit(x_tr[cols].to_numpy(), y_tr)
    proba = model.predict_proba(x_te[cols].to_numpy())[:, 1]
    predicted = (proba >= 0.5).astype(int)
    auc = float(roc_auc_score(y_te, proba))
    recall = float(recall_score(y_te, predicted))
    fit = excess_fit(auc, recall, float(predicted[y_te == 0].mean()), float(totals.get(1, 0)), float(totals.get(0, 0)))
    held = pd.Series(groups[test]).groupby(y_te).nunique()
    low = auc - 1.96 * _auc_se(auc, int(held.get(1, 0)), int(held.get(0, 0)))
    base = {"auc": round(auc, 4), "recall": round(recall, 4), **fit, **counts, "kept_features": len(cols), "forest": params}
    if low <= 0.5 or fit["excess_auc"] < MIN_AUC or fit["excess_recall"] < MIN_RECALL:
        return {**_unknown(f"poor fit: held-out ROC AUC {auc:.2f} (95 % low {low:.2f}), recall {recall:.2f}; "
                           f"for the excess ({fit['excess']:.0%} of the {'incident' if totals.get(1, 0) >= totals.get(0, 0) else 'week before'}) "
                           f"AUC {fit['excess_auc']:.2f}, recall {fit['excess_recall']:.2f} (needs AUC above chance, "
                           f"excess AUC >= {MIN_AUC} and recall >= {MIN_RECALL})"),
                **base, "seconds": round(time.perf_counter() - t0, 3)}
    sides = (f"of the incident's {unit.noun}", "in the same hours a week before")
    side = 1 if totals.get(1, 0) >= totals.get(0, 0) else -1
    view = explain_model(model, x_te[cols], frame, aliases, rng, shap_rows, sides, side)
    return {**view, **base, "seconds": round(time.perf_counter() - t0, 3)}
