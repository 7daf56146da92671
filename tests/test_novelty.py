"""Novelty evidence and alert shaping for series of unknown nature (``sleuth score``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.detectors.novelty import alert_onsets, incident_rows, novelty_score, stricter, value_novelty
from sleuth.score import score_frame


def test_value_novelty_is_the_excess_over_the_running_range_as_a_share_of_it():
    y = np.array([[0.0, 10.0, 5.0, 2.0, 12.0, 11.0, -5.0]])
    n = value_novelty(y, memory=100, warmup=2)
    # rows 0-1 are the warm-up; 5 and 2 are inside [0, 10]; 12 exceeds it by 2 of 10;
    # 11 is inside [0, 12]; -5 is 5 below a range of 12
    assert n[0] == pytest.approx([0, 0, 0, 0, 0.2, 0, 5 / 12])


def test_value_novelty_forgets_beyond_its_memory():
    y = np.array([[100.0] + [0.0, 1.0] * 10 + [50.0]])
    assert value_novelty(y, memory=5, warmup=2)[0, -1] == pytest.approx(49.0)  # the 100 is forgotten
    assert value_novelty(y, memory=100, warmup=2)[0, -1] == 0.0


def test_novelty_score_uses_only_the_past():
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=(2, 600)), axis=1)
    expected = np.roll(y, 1, axis=1)
    full = novelty_score(y, expected, day=48)
    head = novelty_score(y[:, :400], expected[:, :400], day=48)
    np.testing.assert_allclose(head, full[:, :400])
    assert full.min() >= 0 and full.max() < 1


def test_alert_onsets_keep_the_first_row_of_an_incident_and_its_escalations():
    s = np.zeros((1, 100))
    s[0, 10:15] = 0.8  # an incident of five rows
    s[0, 13] = 0.9  # it gets worse
    s[0, 80] = 0.8  # a new incident after a quiet spell
    out = alert_onsets(s, quiet=20)[0]
    assert np.flatnonzero(out).tolist() == [10, 13, 80]
    assert out[10] == 0.8 and out[13] == 0.9


def test_incident_rows_open_on_an_alert_and_last_while_active():
    active = np.array([[0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1]], dtype=bool)
    onset = np.array([[0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0]], dtype=bool)
    # run 1-3 opens at 1; run 5-6 has no alert; run 8-10 opens at 9
    assert np.flatnonzero(incident_rows(onset, active)[0]).tolist() == [1, 2, 3, 9, 10]


def test_stricter_moves_the_alarm_level():
    assert stricter(np.array([0.5]), 1.25)[0] < 0.5
    a = 1.25
    assert stricter(np.array([a**2 / (1 + a**2)]), 1.25)[0] == pytest.approx(0.5)


def _frame(y: np.ndarray) -> pd.DataFrame:
    t = pd.date_range("2026-01-05", periods=len(y), freq="5min")
    return pd.DataFrame({"timestamp": t, "value": y, "_ts": t, "_value": y})


def test_score_alerts_at_once_on_a_level_never_seen_and_not_on_every_row():
    rng = np.random.default_rng(0)
    n = 288 * 6
    y = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n)
    y[-100:] += 40  # a new level, above anything the series did
    out = score_frame(_frame(y))
    alerts = np.flatnonzero(out["anomaly_score"].to_numpy() >= 0.5)
    assert n - 100 in alerts and out["is_anomaly"].iloc[n - 100]  # at once
    assert (alerts < n - 100).sum() <= 3  # rare on the noise before it (about one alert in 500 rows)
    # a few alerts as the shifted rhythm sets new highs, not one per row of the incident
    assert (alerts >= n - 100).sum() <= 6
