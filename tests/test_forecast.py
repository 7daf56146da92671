"""Forecasting-model detectors (mstl, autoets) and the per-series automatic choice (auto).

The contract tests in test_detect.py (no look-ahead by truncation, determinism, NaN and empty
input) run for these detectors too: they are parametrised over every registered detector.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.detectors.base import SeriesBatch, available, get_detector
from test_detect import WEEK, batch, seasonal_counts


def test_forecast_detectors_are_registered():
    assert {"mstl", "autoets", "auto", "prophet"} <= set(available())


@pytest.mark.parametrize("name", ["mstl", "autoets", "prophet"])
def test_six_hours_at_minus_40_percent_caught_and_nothing_else(name):
    clean = seasonal_counts(weeks=6, level=100, seed=5)[0]
    hurt = clean.copy()
    t0 = 5 * WEEK + 10
    hurt[t0:t0 + 6] = np.round(hurt[t0:t0 + 6] * 0.6)
    s = get_detector(name).score_batch(batch(np.stack([clean, hurt])))
    assert s.is_anomaly[1, t0:t0 + 6].sum() >= 4
    assert np.all(s.z[1, t0:t0 + 6][s.is_anomaly[1, t0:t0 + 6]] < 0)
    # no alarm on the clean series, nor on the hurt one away from the drop (a 12-bucket window sum
    # holds some of the drop until 12 buckets after its end)
    assert not s.is_anomaly[0].any()
    outside = np.ones(hurt.shape, dtype=bool)
    outside[t0:t0 + 6 + 12] = False
    assert not s.is_anomaly[1, outside].any()
    assert s.ready[1].sum() > 2 * WEEK


def test_mstl_band_holds_the_expected_value_and_follows_the_daily_shape():
    y = seasonal_counts(weeks=5, level=200, seed=1)[0]
    s = get_detector("mstl").score_batch(batch(y))
    last = slice(4 * WEEK, 5 * WEEK)
    e, lo, hi = s.expected[0, last], s.lower[0, last], s.upper[0, last]
    assert np.all((lo <= e) & (e <= hi))
    # it forecasts the daily rhythm (peak around 3x the trough), not a flat line
    assert np.corrcoef(e, y[last])[0, 1] > 0.9
    assert np.all((y[last] >= lo) | (hi - lo > 0))


def test_short_and_constant_series_and_a_late_start():
    short = get_detector("mstl").score_batch(batch(seasonal_counts(weeks=1)[0]))
    assert not short.ready.any() and not short.is_anomaly.any()
    flat = np.full(5 * WEEK, 40.0)
    flat[4 * WEEK + 20:4 * WEEK + 23] = 0.0  # a constant metric that drops to zero: an incident
    flat = np.r_[flat, np.full(WEEK, 40.0)]
    late = seasonal_counts(weeks=6, seed=2)[0]
    late[: 2 * WEEK] = np.nan  # a segment that appears mid-history
    s = get_detector("mstl").score_batch(batch(np.stack([flat, late])))
    assert s.is_anomaly[0, 4 * WEEK + 20:4 * WEEK + 23].all()
    assert s.is_anomaly[0].sum() <= 4  # and only there (the window sums may carry one bucket on)
    first_ready = np.flatnonzero(s.ready[1])
    # two weeks of its own data before the first forecast, then a week of forecast errors
    assert len(first_ready) and first_ready[0] >= 5 * WEEK
    assert not s.is_anomaly[1].any()


def test_low_volume_ratio_stays_quiet_high_volume_alerts():
    rng = np.random.default_rng(2)
    T = 5 * WEEK
    t0 = 4 * WEEK + 10
    out = {}
    for name, n in (("low", 20), ("high", 20000)):
        den = np.full(T, float(n))
        p = np.full(T, 0.05)
        p[t0:t0 + 4] = 0.04  # -20 % for four hours
        out[name] = get_detector("mstl").score_batch(batch(rng.binomial(n, p) / den, "ratio", den)).is_anomaly[0]
    assert out["high"][t0:t0 + 4].any()
    assert out["low"].sum() <= 1


def _trend_batch() -> tuple[SeriesBatch, list[str]]:
    rng = np.random.default_rng(4)
    t = np.arange(6 * WEEK)
    daily, weekend = np.sin(2 * np.pi * (t % 24) / 24), (t // 24) % 7 >= 5
    rows = {
        "linear trend + seasonality": rng.poisson(300 + 20 * t / 24 + 100 * daily + 30 * weekend),
        # both forecast it about as well: the default stays
        "stationary seasonal": seasonal_counts(weeks=6, seed=2)[0],
    }
    return batch(np.stack(list(rows.values())).astype(float)), list(rows)


def test_auto_picks_mstl_for_a_trend_and_keeps_seasonal_otherwise():
    b, names = _trend_batch()
    det = get_detector("auto")
    s = det.score_batch(b)
    chosen = dict(zip(names, det.chosen))
    assert chosen == {"linear trend + seasonality": "mstl", "stationary seasonal": "seasonal"}
    # the choice is made from earlier weeks only: nothing is chosen for MSTL in the first weeks
    assert not det.uses_mstl[:, : 3 * WEEK].any()
    # and the scores are the chosen detector's, bucket by bucket
    mstl = det.candidates["mstl"].score_batch(b)
    use = det.uses_mstl
    np.testing.assert_array_equal(s.expected[use], mstl.expected[use])


def test_cli_selects_a_detector_and_rejects_an_unknown_one(tmp_path, run_cli):
    import pandas as pd

    y = seasonal_counts(weeks=3)[0]
    ts = pd.date_range("2026-01-05", periods=len(y), freq="h")
    path = tmp_path / "s.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": y}).to_csv(path, index=False)
    bad = run_cli("score", path, "--detector", "nope")
    assert bad.returncode == 2 and "unknown detector 'nope'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    good = run_cli("score", path, "--detector", "mstl", timeout=120)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.strip().splitlines()
    assert lines[0].endswith("anomaly_score,is_anomaly,learning") and len(lines) == len(y) + 1


def test_pipeline_runs_auto_and_notes_its_choice():
    from sleuth.datasets.shop import generate_shop
    from sleuth.pipeline import detect

    events, _ = generate_shop(weeks=4, sessions_per_hour=30, seed=2, incidents=False)
    result = detect(events, {"granularity": "1h", "dimensions": []}, detector="auto")
    note = next(n for n in result.notes if n.startswith("detector auto:"))
    n = len(result.cube)
    counts = [int(c) for c in __import__("re").findall(r"for (\d+) of " + str(n), note)]
    assert counts and sum(counts) == n
    assert result.scores.expected.shape == result.cube.value.shape


@pytest.mark.parametrize("name", ["mstl", "autoets"])
def test_a_change_labelled_expected_is_expected_again_by_forecast_detectors(name):
    """A Monday newsletter doubles traffic for three hours in weeks 5 and 6. With week 5's hours
    labelled expected (``expected_ref``), week 6's bump is forecast and stays quiet."""
    y = seasonal_counts(weeks=6, level=200, seed=3)[0]
    first, second = 4 * WEEK + 9, 5 * WEEK + 9
    for t in (first, second):
        y[t:t + 3] *= 2
    ref = np.full((1, len(y)), -1)
    ref[0, second:second + 3] = np.arange(first, first + 3)
    plain = get_detector(name).score_batch(batch(y))
    labelled = get_detector(name).score_batch(SeriesBatch(**{**batch(y).__dict__, "expected_ref": ref}))
    assert plain.is_anomaly[0, second:second + 3].sum() >= 2
    assert not labelled.is_anomaly[0, second:second + 3].any()
    assert np.all(labelled.expected[0, second:second + 3] > 1.5 * plain.expected[0, second:second + 3])
    # the label changes nothing before the hours it points at: still causal
    assert np.array_equal(labelled.is_anomaly[0, :second], plain.is_anomaly[0, :second])


@pytest.mark.parametrize("name", ["seasonal", "mstl"])
def test_a_series_own_sensitivity_scales_its_whole_calibrated_band(name):
    """threshold_factor multiplies the band after the calibration to the series' own extremes,
    in every detector: half the factor, about half the band's width (the keener series cleans
    more flagged hours out of its history, so its expectation may move a little)."""
    y = seasonal_counts(weeks=5, level=200, seed=4)[0]
    plain = get_detector(name).score_batch(batch(np.stack([y, y])))
    keen = get_detector(name).score_batch(SeriesBatch(**{**batch(np.stack([y, y])).__dict__,
                                                        "threshold_factor": np.array([1.0, 0.5])}))
    last = slice(4 * WEEK, 5 * WEEK)
    assert np.allclose(keen.upper[0, last], plain.upper[0, last], equal_nan=True)  # factor 1: unchanged
    width = lambda s: s.upper[1, last] - s.lower[1, last]  # noqa: E731
    ratio = width(keen) / width(plain)
    assert np.nanmedian(ratio) == pytest.approx(0.5, rel=0.15)
    assert keen.is_anomaly[1].sum() >= plain.is_anomaly[1].sum()


def test_prophet_takes_the_calendar_as_its_holidays():
    """Prophet with ``holidays=True`` gets every named day as a holiday regressor on real dates
    (here without sleuth's own learned effects, ``holiday_ref``, which any detector applies)."""
    from sleuth.calendar import calendar_names

    days = pd.date_range("2023-01-02", periods=2 * 365 + 40, freq="D")
    names = np.array(calendar_names(days, ["US"]), dtype=object)
    rng = np.random.default_rng(3)
    mean = 500 * np.where(days.dayofweek >= 5, 1.3, 1.0) * np.where(names == "Black Friday", 3.0, 1.0)
    y = rng.poisson(mean).astype(float)[None]
    b = SeriesBatch(value=y, weight=np.full_like(y, np.nan), kind=np.array(["count"]), season=7, day=1,
                    holiday=names != None, event_names=names, time=days)  # noqa: E711
    bf = int(np.flatnonzero(names == "Black Friday")[-1])
    err = {}
    for holidays in (True, False):
        s = get_detector("prophet", holidays=holidays, refit=91).score_batch(b)
        err[holidays] = abs(s.expected[0, bf] / y[0, bf] - 1)
    assert err[True] < 0.2 < err[False]
