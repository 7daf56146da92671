"""NAB scorer and cloud event scoring on hand-made data (no access to the real corpora)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sleuth.bench.cloud import events, read_series, run_cloud, score_events
from sleuth.bench.nab import (NabFile, Profile, _sigmoid, best_threshold, corpus_score, load_corpus,
                              load_profiles, normalise, onsets, probation, run_nab, score_file)
from sleuth.errors import InputError

STANDARD = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0)
N = 1000  # rows per hand-made file: probation 150
TS = pd.date_range("2024-01-01", periods=N, freq="5min")
L, R = 500, 599  # the window's rows (width 100)
WINDOW = [(TS[L], TS[R])]


def flags(*rows: int, n: int = N) -> np.ndarray:
    out = np.zeros(n)
    out[list(rows)] = 1.0
    return out


def score(*rows: int, profile: Profile = STANDARD):
    return score_file(TS, flags(*rows), WINDOW, 0.5, profile)


# ----------------------------------------------------------------------------- building blocks

def test_sigmoid_and_probation():
    assert _sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.5])) == pytest.approx(
        [0.986614, 0.848284, 0.0, -0.986614, -1.0], abs=1e-6)
    assert probation(N) == 150
    assert probation(4032) == 604
    assert probation(100_000) == 750


# ----------------------------------------------------------------------------- windows

def test_detection_on_first_row_of_window_earns_tp_weight():
    s = score(L)
    assert s.raw == pytest.approx(1.0)
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)


def test_later_detections_earn_less():
    mid, last = score(L + 50).raw, score(R).raw
    assert mid == pytest.approx(_sigmoid(-0.5) / _sigmoid(-1.0))  # about 0.86
    assert 0 < last < mid < 1.0


def test_earliest_detection_counts_once_per_window():
    s = score(L + 50, L + 10, R)
    assert s.raw == pytest.approx(_sigmoid(-0.9) / _sigmoid(-1.0))
    assert (s.tp, s.fp) == (1, 0)


def test_missed_window_costs_fn_weight():
    assert score().raw == pytest.approx(-1.0)
    assert score(profile=LOW_FN).raw == pytest.approx(-2.0)
    assert (score().tp, score().fn) == (0, 1)


def test_false_positive_just_after_window_costs_less_than_far_away():
    near = score(L, R + 2).raw - 1.0
    far = score(L, R + 400).raw - 1.0  # more than 3 window widths past the window
    before = score(L, 300).raw - 1.0  # no window precedes it
    assert -0.11 < near < 0 and near == pytest.approx(0.11 * _sigmoid(2 / 99))
    assert far == pytest.approx(-0.11)
    assert before == pytest.approx(-0.11)
    assert score(L, R + 2).fp == 1


def test_probation_rows_are_ignored():
    s = score(10, 149)
    assert s.raw == pytest.approx(-1.0)
    assert s.fp == 0
    assert score(150).fp == 1


# ----------------------------------------------------------------------------- corpus

def corpus(n_files: int = 3, seed: int = 0) -> list[NabFile]:
    rng = np.random.default_rng(seed)
    files = []
    for k in range(n_files):
        lo = int(rng.integers(300, 800))
        files.append(NabFile(f"cat/f{k}.csv", TS, rng.normal(size=N), ((TS[lo], TS[lo + 60]),)))
    return files


def test_normalisation_null_is_0_and_perfect_is_100():
    files = corpus()
    first_rows = [int(np.flatnonzero(f.sweep.window == 0)[0]) for f in files]
    null = [(f, np.zeros(N)) for f in files]
    perfect = [(f, flags(r)) for f, r in zip(files, first_rows)]
    for profile in (STANDARD, LOW_FN):
        assert corpus_score(null, profile, 0.5).score == pytest.approx(0.0)
        assert corpus_score(perfect, profile, 0.5).score == pytest.approx(100.0)
    assert normalise(-116 * 2, 116, LOW_FN) == 0.0


def test_best_threshold_picks_the_threshold_with_the_best_raw_score():
    files = corpus(2)
    runs = []
    for f in files:
        s = np.full(N, 0.5)  # flagging at 0.5 floods with false positives
        s[int(np.flatnonzero(f.sweep.window == 0)[0]) + 5] = 0.9  # early in the window
        s[200] = 0.95  # one false positive above it
        runs.append((f, s))
    best = best_threshold(runs, STANDARD)
    assert best.threshold == 0.9
    assert (best.tp, best.fp, best.fn) == (2, 2, 0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_best_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    runs = [(f, np.round(rng.random(N) ** 8, 3)) for f in corpus(3, seed)]
    for profile in (STANDARD, LOW_FN):
        best = best_threshold(runs, profile)
        candidates = np.unique(np.concatenate([s for _, s in runs]))
        brute = max(corpus_score(runs, profile, t).raw for t in [*candidates, 2.0])
        assert best.raw == pytest.approx(brute)


def test_onsets_keep_the_first_row_of_each_incident():
    f = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0], dtype=bool)
    assert onsets(f, max_gap=1).tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    assert onsets(f, max_gap=0).tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 0, 0]


# ----------------------------------------------------------------------------- files on disk

def write_nab(root, n_files: int = 2, n: int = 1200):
    """A tiny NAB-shaped folder: hourly daily-seasonal series with a step up in each window."""
    labels = {}
    for k in range(n_files):
        ts = pd.date_range("2024-01-01", periods=n, freq="h")
        rng = np.random.default_rng(k)
        value = 100 + 20 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 2, n)
        value[900:] += 60
        (root / "data" / "cat").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": value}).to_csv(
            root / "data" / "cat" / f"s{k}.csv", index=False)
        labels[f"cat/s{k}.csv"] = [[f"{ts[900]}.000000", f"{ts[960]}.000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    (root / "config").mkdir()
    weights = {"standard": (0.11, 1.0), "reward_low_FP_rate": (0.22, 1.0), "reward_low_FN_rate": (0.11, 2.0)}
    (root / "config" / "profiles.json").write_text(json.dumps({
        name: {"CostMatrix": {"tpWeight": 1.0, "fpWeight": fp, "fnWeight": fn, "tnWeight": 1.0}}
        for name, (fp, fn) in weights.items()}))


def test_load_corpus_and_profiles(tmp_path):
    write_nab(tmp_path)
    files = load_corpus(tmp_path)
    assert [f.key for f in files] == ["cat/s0.csv", "cat/s1.csv"]
    assert files[0].category == "cat" and len(files[0].values) == 1200
    assert files[0].sweep.n_windows == 1
    assert np.flatnonzero(files[0].sweep.window == 0)[[0, -1]].tolist() == [900, 960]
    assert load_profiles(tmp_path)["reward_low_FN_rate"] == Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)


def test_missing_nab_folder_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="NAB data is not present at"):
        load_corpus(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not present"):
        run_nab(tmp_path)


def test_run_nab_on_a_tiny_corpus(tmp_path):
    write_nab(tmp_path)
    seen = []
    result = run_nab(tmp_path, progress=lambda done, total, key: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]
    assert "reference" not in result
    std = result["profiles"]["standard"]
    assert set(std) == {"oracle", "default", "is_anomaly", "onsets"}
    assert std["oracle"]["windows"] == 2
    assert std["onsets"]["tp"] == 2  # the step is caught in both files
    assert std["oracle"]["score"] >= std["default"]["score"]
    assert result["categories"]["cat"]["default"]["windows"] == 2


# ----------------------------------------------------------------------------- cloud, by event

def test_events_are_runs_of_labels():
    assert events(np.array([0, 1, 1, 0, 0, 1])).tolist() == [[1, 2], [5, 5]]
    assert events(np.zeros(4)).shape == (0, 2)


def test_event_scoring():
    label = np.zeros(40, dtype=int)
    label[10:13] = 1  # event A: rows 10-12
    label[25:27] = 1  # event B: rows 25-26
    alarm = np.zeros(40, dtype=bool)
    alarm[7] = True  # 3 rows before A: catches it
    alarm[15] = True  # 3 rows after A: forgiven
    alarm[[18, 19, 21]] = True  # two false-alarm runs
    alarm[35:38] = True  # one run
    s = score_events(label, alarm)
    assert (s.events, s.caught, s.false_alarms, s.false_alarms_unlabelled) == (2, 1, 3, 0)
    alarm[22] = True  # 3 rows before B: catches it, and is no longer false
    s = score_events(label, alarm)
    assert (s.caught, s.false_alarms) == (2, 3)
    assert score_events(label, np.zeros(40, bool)).caught == 0
    assert score_events(label, alarm, first_scored=20).blind == 1  # A ends before row 20
    quiet = score_events(np.zeros(40, int), alarm)
    assert (quiet.unlabelled_series, quiet.false_alarms, quiet.false_alarms_unlabelled) == (1, 5, 5)


def test_read_cloud_series_with_quoted_values(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text('"TimeStamp","Value","Label"\n"2018-04-25T00:00:00Z","0","0"\n"2018-04-25T00:01:00Z","1.5","1"\n')
    df = read_series(p)
    assert df["_value"].tolist() == [0.0, 1.5]
    assert df["label"].tolist() == [0, 1]
    assert df["_ts"].iloc[1] == pd.Timestamp("2018-04-25 00:01")


def test_run_cloud_on_a_tiny_dataset(tmp_path):
    n = 24 * 35
    ts = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
    rng = np.random.default_rng(0)
    value = 50 + 10 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 1, n)
    label = np.zeros(n, dtype=int)
    value[700:704] += 80
    label[700:704] = 1
    for domain, lab in (("spiky", label), ("quiet", np.zeros(n, dtype=int))):  # same values, unlabelled
        (tmp_path / "data" / domain).mkdir(parents=True)
        pd.DataFrame({"TimeStamp": ts, "Value": value, "Label": lab}).to_csv(
            tmp_path / "data" / domain / "a.csv", index=False)
    result = run_cloud(tmp_path)
    assert result["domains"]["spiky"]["events"] == 1
    assert result["domains"]["spiky"]["caught"] == 1
    assert result["domains"]["quiet"]["unlabelled_series"] == 1
    assert result["overall"]["series"] == 2
    with pytest.raises(InputError, match="not present"):
        run_cloud(tmp_path / "nowhere")
