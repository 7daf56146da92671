"""Detector contract: no look-ahead, determinism, NaN and empty input; and what it must catch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.detectors.base import SeriesBatch, available, get_detector
from sleuth.errors import ConfigError
from sleuth.score import score_frame

WEEK = 168


def seasonal_counts(weeks: int = 6, level: float = 100.0, seed: int = 0, n: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(weeks * WEEK)
    shape = 1 + 0.6 * np.sin(2 * np.pi * (t % 24) / 24 - 1.5) + 0.15 * ((t // 24) % 7 >= 5)
    return rng.poisson(level * shape, size=(n, len(t))).astype(float)


def batch(values: np.ndarray, kind: str = "count", weight: np.ndarray | None = None) -> SeriesBatch:
    values = np.atleast_2d(values)
    w = np.full_like(values, np.nan) if weight is None else np.atleast_2d(weight)
    return SeriesBatch(value=values, weight=w, kind=np.full(values.shape[0], kind), season=WEEK, day=24)


def ratio_series(weeks: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    den = seasonal_counts(weeks, 200, seed)[0]
    num = rng.binomial(den.astype(int), 0.05).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan), den


@pytest.mark.parametrize("name", available())
@pytest.mark.parametrize("kind", ["count", "ratio", "real"])
def test_no_look_ahead(name, kind):
    """A score at t does not change when later points are appended."""
    if kind == "ratio":
        y, w = ratio_series()
    else:
        y, w = seasonal_counts()[0], None
        if kind == "real":
            y = y - 80.0  # any sign
    det = get_detector(name)
    full = det.score_batch(batch(y, kind, w))
    for cut in (3 * WEEK + 5, 4 * WEEK + 77, len(y) - 1):
        part = det.score_batch(batch(y[:cut], kind, None if w is None else w[:cut]))
        for field in ("expected", "lower", "upper", "z", "anomaly_score", "is_anomaly"):
            np.testing.assert_array_equal(getattr(part, field)[0], getattr(full, field)[0, :cut], err_msg=field)


@pytest.mark.parametrize("name", available())
def test_deterministic_and_survives_nan_and_empty(name):
    y = seasonal_counts()[0]
    y[500:520] = np.nan
    det = get_detector(name)
    a, b = det.score_batch(batch(y)), det.score_batch(batch(y))
    np.testing.assert_array_equal(a.anomaly_score, b.anomaly_score)
    assert not a.is_anomaly[0, 500:520].any()
    assert np.all((a.anomaly_score >= 0) & (a.anomaly_score <= 1))
    empty = det.score_batch(batch(np.zeros((1, 0))))
    assert empty.anomaly_score.shape == (1, 0)


def test_unknown_detector_names_the_choices():
    with pytest.raises(ConfigError, match="available: .*seasonal"):
        get_detector("nope")


def test_clean_series_raise_few_alarms():
    ys = seasonal_counts(weeks=6, n=50, seed=3)
    s = get_detector("seasonal").score_batch(batch(ys))
    scored = s.ready.sum()
    assert scored > 50 * 2 * WEEK
    assert s.is_anomaly.sum() / scored < 0.002


def test_drop_to_zero_is_caught_at_once():
    y = seasonal_counts()[0]
    t0 = 5 * WEEK + 12
    y[t0:t0 + 3] = 0
    s = get_detector("seasonal").score_batch(batch(y))
    assert s.is_anomaly[0, t0:t0 + 3].all()
    assert s.z[0, t0] < -4


def test_sustained_small_shift_is_caught_by_accumulated_evidence():
    y = seasonal_counts(level=100, seed=5)[0]
    t0 = 5 * WEEK + 10
    y[t0:t0 + 6] = np.round(y[t0:t0 + 6] * 0.7)  # six hours at -30 %
    s = get_detector("seasonal").score_batch(batch(y))
    assert s.is_anomaly[0, t0:t0 + 6].any()
    # the single-bucket z alone would not have crossed the threshold everywhere
    assert np.nanmin(np.abs(s.z[0, t0:t0 + 6])) < 4


def test_old_incident_neither_shifts_baseline_nor_widens_band():
    clean = seasonal_counts(seed=9)[0]
    hurt = clean.copy()
    t_old = 3 * WEEK + 38  # once alerting has started: the first pass flags it
    hurt[t_old:t_old + 6] = 0
    det = get_detector("seasonal")
    a, b = det.score_batch(batch(clean)), det.score_batch(batch(hurt))
    assert b.is_anomaly[0, t_old:t_old + 6].all()
    t_new = 5 * WEEK + 38  # same hours, two weeks later
    np.testing.assert_allclose(b.expected[0, t_new:t_new + 6], a.expected[0, t_new:t_new + 6], rtol=0.03)
    width_a = a.upper[0, t_new:t_new + 6] - a.lower[0, t_new:t_new + 6]
    width_b = b.upper[0, t_new:t_new + 6] - b.lower[0, t_new:t_new + 6]
    np.testing.assert_allclose(width_b, width_a, rtol=0.1)


def test_low_volume_ratio_does_not_alert_on_noise_but_high_volume_does():
    rng = np.random.default_rng(2)
    T = 6 * WEEK
    out = {}
    for name, n in (("low", 20), ("high", 20000)):
        den = np.full(T, float(n))
        p = np.full(T, 0.05)
        p[5 * WEEK + 10:5 * WEEK + 14] = 0.04  # -20 % for four hours
        y = rng.binomial(n, p) / den
        s = get_detector("seasonal").score_batch(batch(y, "ratio", den))
        out[name] = s.is_anomaly[0]
    assert out["high"][5 * WEEK + 10:5 * WEEK + 14].any()
    assert out["low"].sum() <= 2


def test_score_frame_prefix_equals_head_of_full_result():
    y = seasonal_counts(n=2, seed=4)
    ts = pd.date_range("2026-01-05", periods=y.shape[1], freq="h")
    df = pd.DataFrame({
        "series_id": np.repeat(["a", "b"], y.shape[1]),
        "timestamp": np.tile(ts.strftime("%Y-%m-%d %H:%M:%S"), 2),
        "value": y.ravel(),
    })
    df["_ts"], df["_value"] = pd.to_datetime(df.timestamp), df.value.astype(float)
    full = score_frame(df)
    a = df[df.series_id == "a"].reset_index(drop=True)
    head = a.iloc[: 4 * WEEK + 3].copy()
    part = score_frame(head)
    full_a = full[full.series_id == "a"].reset_index(drop=True).iloc[: len(part)]
    pd.testing.assert_frame_equal(part.reset_index(drop=True), full_a)
    assert {"anomaly_score", "is_anomaly"} <= set(full.columns)


def test_a_step_that_becomes_the_new_normal_alerts_once_then_adapts():
    from sleuth.incidents import _runs

    y = seasonal_counts(weeks=8, seed=11)[0]
    t0 = 4 * WEEK + 30
    y[t0:] = np.round(y[t0:] * 0.6)  # a permanent -40 %
    s = get_detector("seasonal").score_batch(batch(y))
    runs = _runs(s.is_anomaly[0], np.sign(np.nan_to_num(s.z[0])))
    assert len(runs) == 1
    start, end, sign = runs[0]
    assert sign < 0 and t0 <= start <= t0 + 6
    assert end < t0 + 3 * 24  # back to quiet within three days
    assert not s.is_anomaly[0, t0 + 3 * 24:].any()


def test_a_series_without_rhythm_is_judged_on_its_recent_level():
    rng = np.random.default_rng(8)
    level = 500 + np.cumsum(rng.normal(0, 3, 6 * WEEK))  # drifts, no daily or weekly shape
    y = level + rng.normal(0, 5, len(level))
    y[5 * WEEK] += 120  # a spike of ~24 noise deviations
    s = get_detector("seasonal").score_batch(batch(y, "real"))
    assert s.is_anomaly[0, 5 * WEEK]
    assert s.is_anomaly[0].sum() <= 5
    # it starts scoring well before two weeks of history (what a weekly median would need)
    assert np.flatnonzero(s.ready[0])[0] < 2 * WEEK


def test_the_tail_of_a_spike_does_not_alert_again():
    """Hours after a spike or a dip ended, the sums over windows that still cover it raise
    nothing (one gap bucket is allowed: incidents bridge it)."""
    late = []
    for seed in range(12):
        for mult in (3.0, 0.3):
            y = seasonal_counts(weeks=6, seed=seed)[0]
            t0 = 5 * WEEK + 10
            y[t0:t0 + 4] = np.round(y[t0:t0 + 4] * mult)
            s = get_detector("seasonal").score_batch(batch(y))
            assert s.is_anomaly[0, t0:t0 + 4].sum() >= 3
            late += [(seed, mult, int(t)) for t in np.flatnonzero(s.is_anomaly[0, t0 + 6:t0 + 24])]
    assert late == []


def test_a_burst_does_not_lift_the_next_weeks_expectation():
    """A six-hour flood at 100 times the usual level (bots) leaves next week's band where it was."""
    clean = seasonal_counts(weeks=6, seed=5)[0]
    y = clean.copy()
    t0 = 4 * WEEK + 9
    y[t0:t0 + 6] *= 100.0
    det = get_detector("seasonal")
    with_burst, without = det.score_batch(batch(y)), det.score_batch(batch(clean))
    later = slice(t0 + 2 * 24, t0 + 6 * 24)
    drift = np.abs(with_burst.expected[0, later] / without.expected[0, later] - 1)
    assert np.nanmax(drift) < 0.15
    assert not with_burst.is_anomaly[0, later].any()


def test_daylight_saving_keeps_the_local_daily_shape():
    """Traffic follows the local clock; after clocks go forward, the same hour last week is
    167 buckets back. With the local clock the week after the change stays quiet."""
    from sleuth.calendar import local_clock

    buckets = pd.date_range("2026-02-02", periods=6 * WEEK, freq="h")  # US DST starts 2026-03-08
    local_hour = buckets.tz_localize("UTC").tz_convert("America/New_York").hour.to_numpy()
    rng = np.random.default_rng(3)
    y = rng.poisson(400 * (1 + 0.8 * np.sin(2 * np.pi * local_hour / 24 - 1.5))).astype(float)
    clock = local_clock(buckets, "America/New_York")
    assert clock is not None and set(clock) == {-5, -4}
    plain = get_detector("seasonal").score_batch(batch(y))
    b = batch(y)
    b.clock = clock
    local = get_detector("seasonal").score_batch(b)
    after = slice(int(np.argmax(clock == -4)), int(np.argmax(clock == -4)) + WEEK)
    assert local.is_anomaly[0, after].sum() == 0
    err_local = np.nanmean(np.abs(local.expected[0, after] - y[after]))
    err_plain = np.nanmean(np.abs(plain.expected[0, after] - y[after]))
    assert err_local < 0.7 * err_plain, (err_local, err_plain)  # a plain weekly lag is an hour off


def daily_shop(years: int = 3, seed: int = 2):
    """Daily orders with a weekly shape, a December rush (twice the usual orders the week before
    Christmas) and US holidays that halve them (Thanksgiving moves every year)."""
    from sleuth.calendar import holiday_names, holiday_reference

    days = pd.date_range("2023-01-02", periods=364 * years, freq="D")
    names = holiday_names(days, ["US"])
    holiday = np.array([n is not None for n in names])
    yearly = 1 + np.exp(-(((days.dayofyear.to_numpy() - 352) / 9.0) ** 2))
    weekly = np.where(days.dayofweek.to_numpy() >= 5, 0.7, 1.0)
    mean = 2000 * yearly * weekly * np.where(holiday, 0.45, 1.0)
    y = np.random.default_rng(seed).poisson(mean).astype(float)
    b = SeriesBatch(value=y[None], weight=np.full((1, len(y)), np.nan), kind=np.array(["count"]),
                    season=7, day=1, holiday=holiday, holiday_ref=holiday_reference(days, names))
    return days, y, holiday, b


def test_daily_holidays_are_learned_from_last_year():
    days, y, holiday, b = daily_shop()
    s = get_detector("seasonal").score_batch(b)
    last_year = days >= days[-1] - pd.Timedelta(days=300)
    hol = holiday & last_year
    assert hol.sum() >= 8
    assert not s.is_anomaly[0, hol].any()
    err = np.abs(s.expected[0, hol] / y[hol] - 1)
    # within a few percent; Christmas, on the steep side of a rush that doubles orders within
    # nine days, within 20 % (the baseline of daily data averages eight weeks: less noise, more lag)
    assert np.median(err) < 0.05 and np.all(err < 0.2), err
    # the same holidays in the first year, with nothing to learn from, are flagged
    assert s.is_anomaly[0, holiday & (days >= "2023-02-01") & (days < "2024-01-01")].sum() >= 3


def test_daily_yearly_shape_is_anticipated():
    days, y, holiday, b = daily_shop()
    yearly, flat = get_detector("seasonal").score_batch(b), get_detector("seasonal", yearly=False).score_batch(b)
    last = (days >= days[-1] - pd.Timedelta(days=300)) & ~holiday
    rush = last & (days.month == 12)
    err = lambda s, m: np.nanmean(np.abs(s.expected[0, m] / y[m] - 1))  # noqa: E731
    assert err(yearly, rush) < 0.6 * err(flat, rush), (err(yearly, rush), err(flat, rush))
    assert yearly.is_anomaly[0, last].sum() <= 3
    y2 = y.copy()
    t = int(np.flatnonzero(last)[150])
    y2[t] *= 0.6  # a day at -40 %
    b.value = y2[None]
    assert get_detector("seasonal").score_batch(b).is_anomaly[0, t]


@pytest.mark.parametrize("change, shape", [("spike", "spike"), ("dip", "dip"), ("zero", "drop to zero"),
                                           ("step", "level shift"), ("ramp", "trend")])
def test_incident_shapes_tell_spikes_from_shifts_and_trends(change, shape):
    from sleuth.incidents import _runs, shape_of

    y = seasonal_counts(weeks=6, seed=9)[0]
    t0 = 5 * WEEK + 30
    if change == "spike":
        y[t0:t0 + 2] *= 3
    elif change == "dip":
        y[t0:t0 + 2] = np.round(y[t0:t0 + 2] * 0.3)
    elif change == "zero":
        y[t0:t0 + 3] = 0
    elif change == "step":
        y[t0:] = np.round(y[t0:] * 0.5)
    else:  # the gap to normal grows by 10 % an hour
        y[t0:t0 + 12] = np.round(y[t0:t0 + 12] * (1 + 0.1 * np.arange(1, 13)))
    s = get_detector("seasonal").score_batch(batch(y))
    runs = _runs(s.is_anomaly[0], np.sign(np.nan_to_num(s.z[0])))
    runs = [r for r in runs if r[0] >= t0 - 1]
    assert runs and runs[0][0] <= t0 + 6
    a, b, sign = runs[0]
    assert shape_of(y, s.expected[0], a, b, sign, WEEK, False) == shape


def test_expected_patterns_map_to_the_same_hours_of_later_weeks_only_within_the_data():
    from types import SimpleNamespace

    from sleuth.pipeline import expected_refs

    buckets = pd.date_range("2026-03-02", periods=3 * WEEK, freq="h")
    keys = pd.DataFrame({"property": ["web", "web"], "metric": ["views", "views"],
                         "dimension": ["", "country"], "segment": ["", "DE"]})
    cube = SimpleNamespace(value=np.zeros((2, len(buckets))), buckets=buckets, keys=keys,
                           config=SimpleNamespace(step="1h", season=WEEK))
    start = buckets[10]
    refs = expected_refs(cube, [{"property": "web", "metric": "views", "segment": {},
                                 "start": start, "end": start + pd.Timedelta(hours=3)}])
    assert list(refs[0, 10 + WEEK:13 + WEEK]) == [10, 11, 12] and list(refs[0, 10 + 2 * WEEK:13 + 2 * WEEK]) == [10, 11, 12]
    assert (refs[0] >= 0).sum() == 6 and (refs[1] >= 0).sum() == 0  # the total only, later weeks only
    seg = expected_refs(cube, [{"property": "web", "metric": "views", "segment": {"country": "DE"},
                                "start": start, "end": start + pd.Timedelta(hours=1)}])
    assert (seg[0] >= 0).sum() == 0 and (seg[1] >= 0).sum() == 2
    old = expected_refs(cube, [{"property": "web", "metric": "views", "segment": {},
                                "start": buckets[0] - pd.Timedelta(weeks=5), "end": buckets[0] - pd.Timedelta(weeks=5, hours=-2)}])
    assert (old >= 0).sum() == 0


def test_an_incident_on_a_holiday_names_it():
    """An outage on Independence Day (a Saturday in 2026): the incident says which holiday it
    fell on when `holidays` is configured, and nothing without it."""
    from sleuth.pipeline import detect

    rng = np.random.default_rng(8)
    hours = pd.date_range("2026-06-01", "2026-07-06", freq="h", inclusive="left")
    rate = 200 * (1 + 0.5 * np.sin(2 * np.pi * (hours.hour.to_numpy() - 6) / 24))
    rate[(hours >= "2026-07-04 10:00") & (hours < "2026-07-04 16:00")] = 0.0
    n = rng.poisson(rate)
    events = pd.DataFrame({"timestamp": np.repeat(hours.values, n), "event": "page_view"})
    found = {}
    for holidays in (["US"], []):
        result = detect(events, {"granularity": "1h", "holidays": holidays, "dimensions": [],
                                 "metrics": [{"name": "views", "type": "count"}]})
        [inc] = [i for i in result.incidents if i.start.startswith("2026-07-04")]
        found[bool(holidays)] = inc.holiday
    assert found == {True: "Independence Day (US)", False: None}


def test_a_metric_is_scored_from_its_first_full_day_and_its_band_tightens():
    """What a new metric gets after 1 day, 1 week and 3 weeks of history: the next day is scored,
    a normal day raises nothing, the band narrows, and a large spike is caught from day two."""
    from sleuth.detectors.base import maturity

    y = seasonal_counts(weeks=4, level=100, seed=21)[0]
    det = get_detector("seasonal")
    assert not det.score_batch(batch(y[:24])).ready.any()  # nothing before a full day
    width, stages = {}, {}
    for days in (1, 7, 21):
        s = det.score_batch(batch(y[:(days + 1) * 24]))
        nxt = slice(days * 24, (days + 1) * 24)
        assert s.ready[0, nxt].all() and not s.is_anomaly[0, nxt].any()
        assert s.first[0] == 0
        width[days] = np.median((s.upper[0, nxt] - s.lower[0, nxt]) / s.expected[0, nxt])
        stages[days] = maturity(days * 24, WEEK, 24).stage
    assert width[1] > width[7] > width[21]
    assert stages == {1: "first day", 7: "learning", 21: "mature"}
    spiked = y[:48].copy()
    spiked[36] *= 3
    dropped = y[:48].copy()
    dropped[30:33] = 0
    assert det.score_batch(batch(spiked)).is_anomaly[0, 36]
    assert det.score_batch(batch(dropped)).is_anomaly[0, 30:33].all()


def test_maturity_says_what_a_series_can_and_cannot_catch():
    from sleuth.detectors.base import maturity

    new = maturity(10, WEEK, 24)
    assert new.stage == "first day" and new.learning and new.catches.startswith("nothing yet")
    week = maturity(5 * 24, WEEK, 24)
    assert week.stage == "learning" and "hour-of-day profile" in week.catches and "weekend" in week.misses
    assert week.days == 5 and week.full_days == 21
    grown = maturity(30 * 24, WEEK, 24)
    assert grown.stage == "mature" and not grown.learning
    daily = maturity(100, 7, 1)
    assert daily.stage == "mature" and "Black Friday" in daily.misses  # a year of history learns yearly events
    assert "Black Friday" not in maturity(400, 7, 1).misses


def test_score_marks_rows_scored_while_learning_and_scores_from_early_on():
    y = seasonal_counts(weeks=4, seed=6)[0]
    y[20 * 24 + 12] *= 4
    ts = pd.date_range("2026-01-05", periods=len(y), freq="h")
    out = score_frame(pd.DataFrame({"timestamp": ts, "value": y, "_ts": ts, "_value": y}))
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "is_anomaly", "learning"]
    assert out["learning"].iloc[: 21 * 24].eq(1).all() and out["learning"].iloc[21 * 24:].eq(0).all()
    assert out["is_anomaly"].iat[20 * 24 + 12] == 1  # caught while still learning


def test_sparse_counts_do_not_alert_on_the_first_one_after_zeros():
    rng = np.random.default_rng(8)
    n = 60 * 24 * 5
    ts = pd.date_range("2026-01-01", periods=n, freq="min")
    y = rng.poisson(0.005, n).astype(float)
    y[n - 300] = 0
    y[n - 200] = 1
    y[n - 200 - 1440:n - 200] = 0  # a day of zeros, then a 1
    y[n - 50] = 9  # a burst of nine events in a minute
    out = score_frame(pd.DataFrame({"timestamp": ts, "value": y, "_ts": ts, "_value": y}))
    ones = y == 1
    assert ones.sum() > 10
    assert out["is_anomaly"].to_numpy()[ones].sum() == 0 and out["anomaly_score"].to_numpy()[ones].max() < 0.5
    assert out["is_anomaly"].iat[n - 50] == 1
