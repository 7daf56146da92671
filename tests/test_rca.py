"""Root-cause localisation: exact sets on additive cases, the rate effect for ratios, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sleuth.bench.rca import f1, run_all, run_folder, synthetic_case
from sleuth.bench.riskloc import riskloc
from sleuth.explain.rca import localize, unexplained


def segments(found) -> set[frozenset]:
    return {frozenset(rc.segment.items()) for rc in found}


def as_set(elements) -> set[frozenset]:
    return {frozenset(e.items()) for e in elements}


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("n_causes", [1, 2])
def test_additive_cases_are_localised_exactly(depth, n_causes):
    hits = 0
    for seed in range(6):
        leaves, dims, truth = synthetic_case(n_causes=n_causes, depth=depth, seed=100 * depth + 10 * n_causes + seed,
                                             values=6)
        hits += segments(localize(leaves, dims)) == as_set(truth)
    assert hits >= 5


def test_many_cases_score_high_f1():
    # small three-dimension causes next to a large one are the hard part (measured 0.94 here)
    results = []
    for seed in range(20):
        leaves, dims, truth = synthetic_case(n_causes=1 + seed % 3, depth=1 + seed % 3, seed=seed, values=5)
        results.append(([rc.segment for rc in localize(leaves, dims)], truth))
    assert f1(results)["f1"] >= 0.9


def _move(leaves, element, factor):
    mask = np.all([leaves[k] == v for k, v in element.items()], axis=0)
    leaves.loc[mask, "real"] = leaves.loc[mask, "predict"] * factor
    return mask


def test_causes_of_different_depths_are_found_together():
    leaves, dims, _ = synthetic_case(n_dims=5, values=6, n_causes=0, seed=5)
    truth = [{"a": "a1"}, {"b": "b2", "c": "c3"}, {"a": "a4", "c": "c0", "d": "d5", "e": "e2"}]
    for element, factor in zip(truth, (0.6, 0.5, 0.3)):
        _move(leaves, element, factor)
    found = localize(leaves, dims)
    assert segments(found) == as_set(truth)
    # the set explains the change: the shares add up, the rest is noise
    assert sum(rc.explains for rc in found) == pytest.approx(1.0, abs=0.05)
    assert unexplained(found) == pytest.approx(1 - sum(rc.explains for rc in found))


def test_single_leaf_causes_among_zero_leaves_and_noise():
    # RiskLoc's L setting in small: every cause is one leaf (all four dimensions), a fifth of the
    # leaves are zero, forecasts are off by 5 %: the depth follows the data, no cap
    rng = np.random.default_rng(11)
    grid = pd.MultiIndex.from_product([[f"a{i}" for i in range(6)], [f"b{i}" for i in range(8)],
                                       [f"c{i}" for i in range(5)], [f"d{i}" for i in range(6)]], names=list("abcd"))
    leaves = grid.to_frame(index=False)
    real = rng.weibull(0.7, len(leaves)) * 100 * (rng.uniform(size=len(leaves)) > 0.2)
    leaves["real"], leaves["predict"] = real, real * (1 + rng.normal(0, 0.05, len(leaves)))
    # leaves big enough for the drop to move the total (as the RiskLoc generator makes sure of)
    picks = rng.choice(np.flatnonzero(real > np.quantile(real, 0.8)), 3, replace=False)
    truth = [{d: leaves[d].iat[i] for d in "abcd"} for i in picks]
    leaves.loc[picks, "real"] = leaves.loc[picks, "predict"] * 0.4
    assert segments(localize(leaves, list("abcd"))) == as_set(truth)


def test_two_causes_in_one_cuboid_are_named_not_their_parent():
    leaves, dims, _ = synthetic_case(n_dims=3, values=8, n_causes=0, seed=6)
    truth = [{"a": "a1", "b": "b2"}, {"a": "a1", "b": "b5"}]
    for element in truth:
        _move(leaves, element, 0.5)
    assert segments(localize(leaves, dims)) == as_set(truth)


def test_a_common_shift_with_a_local_cause_names_only_the_local_one():
    leaves, dims, _ = synthetic_case(n_dims=4, values=6, n_causes=0, seed=3)
    leaves["real"] = leaves["real"] * 0.8
    _move(leaves, {"a": "a2"}, 0.2)
    found = localize(leaves, dims)
    assert segments(found) == {frozenset({("a", "a2")})}
    assert 0.3 < unexplained(found) < 0.7  # the common 20 % drop is nobody's in particular


def test_sparse_counts_a_new_segment_and_nothing_else():
    # event counts: most leaves see a handful of events, one new value floods in
    rng = np.random.default_rng(7)
    grid = pd.MultiIndex.from_product([[f"d{i}" for i in range(4)], [f"o{i}" for i in range(6)],
                                       [f"c{i}" for i in range(12)]], names=["device", "os", "country"])
    leaves = grid.to_frame(index=False)
    leaves["predict"] = rng.gamma(0.5, 4.0, len(leaves))
    leaves["real"] = rng.poisson(leaves["predict"] * rng.gamma(3.0, 1 / 3.0, len(leaves))).astype(float)
    assert localize(leaves, ["device", "os", "country"]) == []
    bots = pd.DataFrame([{"device": "d0", "os": "headless", "country": "c0", "predict": 0.0, "real": 800.0}])
    found = localize(pd.concat([leaves, bots], ignore_index=True), ["device", "os", "country"])
    assert segments(found) == {frozenset({("os", "headless")})}


def test_a_change_spread_over_everything_has_no_root_cause():
    leaves, dims, _ = synthetic_case(n_causes=0, seed=3, values=5)
    leaves["real"] = leaves["predict"] * 0.7
    assert localize(leaves, dims) == []


def test_no_change_beyond_noise_has_no_root_cause():
    leaves, dims, _ = synthetic_case(n_causes=0, seed=4, values=5, noise=0.01)
    assert localize(leaves, dims) == []


def test_a_new_segment_value_is_named():
    leaves, dims, _ = synthetic_case(n_causes=0, seed=5, values=4, noise=0.01)
    new = leaves[leaves["a"] == "a0"].copy()
    new["b"] = "bots"
    new["predict"] = 0.0
    new["real"] = 500.0
    found = localize(pd.concat([leaves, new], ignore_index=True), dims)
    assert segments(found) == {frozenset({("b", "bots")})}
    assert found[0].explains == pytest.approx(1.0, abs=0.05)


def _ratio_leaves(rng, rate_drop_in=None, mix_shift_to=None):
    rows = []
    for device in ("ios", "android", "desktop"):
        for country in ("us", "de", "fr", "gb"):
            sessions = 2000.0
            rate = 0.05
            real_sessions = sessions * (3.0 if (device, country) == mix_shift_to else 1.0)
            real_rate = rate * (0.3 if device == rate_drop_in else 1.0)
            rows.append({"device": device, "country": country,
                         "real": rng.binomial(int(real_sessions), real_rate), "real_den": real_sessions,
                         "predict": sessions * rate, "predict_den": sessions})
    return pd.DataFrame(rows)


def test_ratio_rate_effect_is_a_cause_and_mix_shift_is_not():
    rng = np.random.default_rng(0)
    leaves = _ratio_leaves(rng, rate_drop_in="ios", mix_shift_to=("desktop", "us"))
    found = localize(leaves, ["device", "country"], real_den="real_den", predict_den="predict_den")
    assert segments(found) == {frozenset({("device", "ios")})}
    # a shift in the traffic mix alone: read as plain counts it is the cause of the rise, read as
    # a ratio there is nothing to explain
    mix_only = _ratio_leaves(rng, mix_shift_to=("desktop", "us"))
    assert segments(localize(mix_only, ["device", "country"])) == {frozenset({("device", "desktop"), ("country", "us")})}
    assert localize(mix_only, ["device", "country"], real_den="real_den", predict_den="predict_den") == []


def test_a_tiny_segment_does_not_win_by_noise():
    rng = np.random.default_rng(1)
    leaves = _ratio_leaves(rng)
    tiny = pd.DataFrame([{"device": "tv", "country": "us", "real": 0, "real_den": 12.0, "predict": 0.6, "predict_den": 12.0}])
    found = localize(pd.concat([leaves, tiny], ignore_index=True), ["device", "country"],
                     real_den="real_den", predict_den="predict_den")
    assert found == []


def test_large_case_runs(tmp_path):
    leaves, dims, truth = synthetic_case(n_dims=5, values=10, seed=2)
    assert len(leaves) == 100_000
    assert segments(localize(leaves, dims)) == as_set(truth)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sleuth.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_rca_cli_follows_contract_5(tmp_path):
    files = []
    truths = []
    for seed in range(2):
        leaves, dims, truth = synthetic_case(n_causes=1, depth=2, seed=seed, values=5)
        path = tmp_path / f"case{seed}.csv"
        leaves[["real", "predict", *dims]].to_csv(path, index=False)
        files.append(path)
        truths.append(truth)
    proc = _cli("rca", *files, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["file"] for x in lines] == [str(f) for f in files]
    for line, truth in zip(lines, truths):
        assert [rc["segment"] for rc in line["root_causes"]] == truth
        assert all(isinstance(rc["score"], float) and rc["change"] < 0 for rc in line["root_causes"])
        assert line["unexplained"] == pytest.approx(1 - sum(rc["explains"] for rc in line["root_causes"]), abs=1e-3)


def test_rca_cli_ratio_columns_and_errors(tmp_path):
    leaves = _ratio_leaves(np.random.default_rng(3), rate_drop_in="android")
    path = tmp_path / "ratio.csv"
    leaves.rename(columns={"real": "bad", "predict": "bad_f", "real_den": "n", "predict_den": "n_f"}).to_csv(path, index=False)
    proc = _cli("rca", path, "--real", "bad", "--predict", "bad_f", "--real-den", "n", "--predict-den", "n_f", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["root_causes"][0]["segment"] == {"device": "android"}
    bad = _cli("rca", path, "--json")  # no real/predict columns in this file
    assert bad.returncode == 2 and "no 'real' column" in bad.stderr and "Traceback" not in bad.stderr
    half = _cli("rca", path, "--real", "bad", "--predict", "bad_f", "--real-den", "n")
    assert half.returncode == 2 and "go together" in half.stderr


def test_bench_reads_squeeze_and_rs_folders(tmp_path):
    sq = tmp_path / "squeeze"
    sq.mkdir()
    rows = []
    for seed in range(3):
        leaves, dims, truth = synthetic_case(n_causes=1, depth=1 + seed, seed=seed, values=5)
        leaves[["real", "predict", *dims]].to_csv(sq / f"{1000 + seed}.csv", index=False)
        rows.append({"timestamp": 1000 + seed, "set": ";".join("&".join(f"{k}={v}" for k, v in e.items()) for e in truth)})
    pd.DataFrame(rows).to_csv(sq / "injection_info.csv", index=False)
    assert run_folder(sq)["f1"] == 1.0

    rs = tmp_path / "rs"
    rs.mkdir()
    rng = np.random.default_rng(0)
    recs = []
    for minute in range(5):
        for cdn in ("1", "2", "3"):
            for p2p in ("0", "1"):
                cnt = 1000
                bad = rng.binomial(cnt, 0.5 if (minute == 4 and cdn == "2") else 0.02)
                recs.append({"min": 60 * minute, "value": bad, "cnt": cnt, "cdn": cdn, "p2p": p2p})
    pd.DataFrame(recs).to_csv(rs / "case1.csv", index=False)
    (rs / "anomaly.yaml").write_text("- data: case1\n  timestamp: 240\n  cause: {'cdn':2}\n")
    res = run_folder(rs)
    assert (res["tp"], res["fp"], res["fn"]) == (1, 0, 0)


def test_bench_runs_every_folder_beside_riskloc_and_the_reference(tmp_path):
    setting = tmp_path / "riskloc-synthetic" / "S"  # named as a published setting: its reference rows print
    setting.mkdir(parents=True)
    rows = []
    for seed in range(2):
        leaves, dims, truth = synthetic_case(n_causes=2, depth=2, seed=20 + seed, values=5)
        leaves[["real", "predict", *dims]].to_csv(setting / f"{500 + seed}.csv.gz", index=False)
        rows.append({"timestamp": 500 + seed, "set": ";".join("&".join(f"{k}={v}" for k, v in e.items()) for e in truth)})
    pd.DataFrame(rows).to_csv(setting / "injection_info.csv", index=False)
    res = run_all(tmp_path)
    (s,) = res["settings"]
    assert s["setting"] == "S" and [r["method"] for r in s["reference"]] == ["RiskLoc", "AutoRoot", "Squeeze"]
    ours = s["methods"]["sleuth"]
    assert (ours["tp"], ours["fp"], ours["fn"]) == (4, 0, 0) and ours["seconds_per_case"] > 0
    assert set(s["methods"]) == {"sleuth", "RiskLoc (re-implemented here)"}
    assert res["large_case"]["leaves"] == 100_000 and res["large_case"]["exact"]


def test_riskloc_baseline_finds_a_plain_cause():
    leaves, dims, truth = synthetic_case(n_causes=1, depth=2, seed=8, values=6, noise=0.02)
    assert {frozenset(rc.segment.items()) for rc in riskloc(leaves, dims)} == as_set(truth)


def test_shop_judgement_counts_top_and_set():
    from sleuth.bench.rca_shops import judge, summarise
    from sleuth.datasets.shop import InjectedIncident

    start, end = pd.Timestamp("2026-03-10 10:00"), pd.Timestamp("2026-03-10 14:00")
    ios = InjectedIncident("segment_conversion_drop", "web", start, end, {"os": "iOS"}, {"orders": "down", "revenue": "down"})
    outage = InjectedIncident("tracking_outage", "web", start, end, {}, {"sessions": "down"})
    det = lambda metric, causes: {"property": "web", "metric": metric, "start": "2026-03-10T11:00:00Z",
                                  "end": "2026-03-10T13:00:00Z", "root_causes": [{"segment": c} for c in causes]}
    rows = judge([det("orders", [{"os": "iOS", "device": "mobile"}]), det("revenue", [{"os": "iOS"}, {"country": "US"}]),
                  det("sessions", []), det("sessions", [{"os": "Android"}])], [ios, outage])
    assert [(r["detections"], r["top_right"], r["set_right"]) for r in rows] == [(2, 2, 1), (2, 1, 1)]
    summary = summarise([{"incidents": rows}])
    assert summary["segment_all_top_right"] == 1 and summary["sitewide_right"] == 1


def test_rate_and_mix_effects_add_up_to_the_change_and_are_told_apart():
    from sleuth.explain.segments import rate_mix_table

    rng = np.random.default_rng(4)
    leaves = _ratio_leaves(rng, rate_drop_in="ios", mix_shift_to=("desktop", "us"))
    table = rate_mix_table(leaves, ["device", "country"])
    d1, d0 = leaves.real_den.sum(), leaves.predict_den.sum()
    change = leaves.real.sum() / d1 - leaves.predict.sum() / d0
    device = {r["segment"]: r for r in table["device"]}
    total = sum(r["rate_effect"] + r["mix_effect"] for r in table["device"])
    assert total == pytest.approx(change, rel=1e-3)
    assert device["ios"]["rate_effect"] < 0 and abs(device["ios"]["rate_effect"]) > 5 * abs(device["ios"]["mix_effect"])
    assert abs(device["desktop"]["rate_effect"]) < abs(device["ios"]["rate_effect"]) / 5
