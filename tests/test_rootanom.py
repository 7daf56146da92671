"""root_anom reproduced (bench/rootanom.py): its chaining rule, its transition matrix and ranking, on
generated data in the shape of the Lazy Lantern files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sleuth.bench.rootanom import (chain_original, chain_overlaps, compare_chaining, faithful_change,
                                   faithful_matrix, faithful_ranking, last_row_bug, overlap_hours,
                                   read_anomalies, run_chaining, shop_comparison, shop_summary)
from sleuth.errors import InputError

# (source, start, end): intervals once rounded (floor start, ceil end) noted on the right
ROWS = [
    ("A", "2020-06-01 10:05:01", "2020-06-01 12:10:00"),  # 0: [10, 13)
    ("A", "2020-06-01 11:30:00", "2020-06-01 12:30:00"),  # 1: [11, 13) overlaps 0
    ("B", "2020-06-01 12:00:00", "2020-06-01 14:00:00"),  # 2: [12, 14) another source, overlaps 1
    ("A", "2020-06-01 13:10:00", "2020-06-01 14:59:00"),  # 3: [13, 15) only touches 0 and 1: linked by B alone
    ("A", "2020-06-01 20:00:00", "2020-06-02 01:30:00"),  # 4: [20, 02) a long one
    ("A", "2020-06-01 21:00:00", "2020-06-01 22:00:00"),  # 5: [21, 22) inside 4
    ("A", "2020-06-01 23:00:00", "2020-06-01 23:40:00"),  # 6: [23, 24) overlaps 4, not 5 (non-adjacent)
    ("A", "2020-06-02 05:00:00", "2020-06-02 06:00:00"),  # 7: [05, 06)
    ("A", "2020-06-02 10:00:00", "2020-06-02 11:00:00"),  # 8: [10, 11) the last row: overlaps nothing
]


def write_log(path, rows=ROWS) -> None:
    """A file in the Lazy Lantern format: unnamed index, ids as integers, µs timestamps."""
    codes = {"A": 27, "B": 26}
    df = pd.DataFrame({
        "metric_name": np.arange(len(rows)) % 5 + 1,
        "source_name": [codes[s] for s, _, _ in rows],
        "source_token": [codes[s] + 2 for s, _, _ in rows],
        "start_anomaly": [pd.Timestamp(a).strftime("%Y-%m-%d %H:%M:%S.%f") for _, a, _ in rows],
        "end_anomaly": [pd.Timestamp(b).strftime("%Y-%m-%d %H:%M:%S.%f") for _, _, b in rows],
    })
    df["duration"] = ((pd.to_datetime(df["end_anomaly"]) - pd.to_datetime(df["start_anomaly"])) // pd.Timedelta(hours=1))
    df["max_var"] = -50.0
    df.to_csv(path)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "anonymized-anomalies-org7.csv"
    write_log(path)
    return read_anomalies(path)


def test_the_original_rule_with_its_rounding_and_last_row_bug(log):
    assert log["start_r"].iat[0] == pd.Timestamp("2020-06-01 10:00") and log["end_r"].iat[0] == pd.Timestamp("2020-06-01 13:00")
    assert overlap_hours(log).tolist() == [0, 2, 1, 1, 0, 1, 0, 0, 0]  # touching is no overlap
    # a new group at each row without overlap with the row before; the last row joins untested
    assert chain_original(log).tolist() == [1, 1, 1, 1, 2, 2, 3, 4, 4]
    assert chain_original(log, last_row_bug=False).tolist() == [1, 1, 1, 1, 2, 2, 3, 4, 5]
    assert last_row_bug(log) == {"row": 8, "source": 27, "joined_source": 27, "anom_num": 4}
    assert last_row_bug(log.iloc[:6]) is None  # a last row that overlaps the one before is fine
    assert chain_original(log.iloc[:7]).tolist()[-1] == 2  # row 6 would start group 3: the bug joins it to 2


def test_sleuth_chains_overlaps_transitively_per_source(log):
    # A: {0, 1}, {3} (touching), {4, 5, 6} (6 overlaps 4, not its neighbour 5), {7}, {8}; B: {2}
    assert chain_overlaps(log).tolist() == [1, 1, 1, 2, 3, 3, 3, 4, 5]


def test_each_change_of_group_is_explained(log):
    a, b = compare_chaining(log, "7")  # sources 26 (B) then 27 (A)
    assert (b["source"], b["rows"]) == (27, 8) and b["reference_ok"] is None
    assert b["faithful"] == {"groups": 4, "chains": {1: 3, 2: 2, 4: 2}, "singles": [3]}
    assert b["recommended"] == {"groups": 5, "chains": [3, 2], "singles": 3}
    assert b["changed"] == {"last-row bug": [7, 8], "cross-source chaining": [0, 1, 3],
                            "non-adjacent overlap": [4, 5, 6]}
    assert a["changed"] == {"last-row bug": [], "cross-source chaining": [], "non-adjacent overlap": []}
    # chain {4, 5, 6}: the original's window ends with row 6 (24:00 + 1 h), not row 4's 02:00 + 1 h
    assert b["windows_cut_short"] == 1


def test_reference_check_and_absent_data(tmp_path, run_cli):
    assert run_chaining(tmp_path / "nowhere") == {"present": False, "path": str(tmp_path / "nowhere")}
    proc = run_cli("bench", "rootanom", tmp_path / "nowhere", "--no-shop")
    assert proc.returncode == 0 and "not present" in proc.stdout and "skipped" in proc.stdout
    write_log(tmp_path / "anonymized-anomalies-org113.csv")  # named like a reference file, other rows
    res = run_chaining(tmp_path)
    assert res["present"] and res["reference_ok"] is False and res["missing_sources"] == []
    proc = run_cli("bench", "rootanom", tmp_path, "--no-shop")
    assert proc.returncode == 1 and "DO NOT MATCH" in proc.stdout and "last-row bug" in proc.stdout
    (tmp_path / "anonymized-anomalies-org113.csv").write_text("a,b\n1,2\n")
    bad = run_cli("bench", "rootanom", tmp_path, "--no-shop")
    assert bad.returncode == 2 and "missing column" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(InputError):
        read_anomalies(tmp_path / "anonymized-anomalies-org113.csv")


def stream(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "event"])


def test_faithful_matrix_interleaves_users_and_normalises_columns():
    s = stream([("u9", "z"), ("u1", "a"), ("u1", "b"), ("u2", "c"), ("u3", "a"), ("u3", "a"), ("u1", "c")])
    m = faithful_matrix(s)
    assert list(m.index) == ["z", "a", "b", "c"]  # order of first appearance
    # the first row's "previous" is itself, so it is never a lone row; u2's lone row is a self-loop;
    # u1's last event is not adjacent to its others, so a -> b is u1's only move; the last row never counts
    assert m["z"].isna().all()  # nothing arrives in z: 0/0
    assert m.loc["a", "a"] == 1 and m.loc["a", "b"] == 1 and m.loc["c", "c"] == 1
    assert m.loc["a"].sum() == 2  # columns sum to 1, rows do not
    assert np.nansum(m.to_numpy()) == 3


def test_faithful_difference_and_its_independent_ranking():
    anom = pd.DataFrame([[0.5, 0.5, 0.4], [0.2, 0.5, 0.0], [0.3, 0.0, 0.6]], index=list("xyz"), columns=list("xyz"))
    norm = pd.DataFrame([[0.9, 0.1, 0.0], [0.1, 0.6, 0.3], [0.0, 0.3, 0.7]], index=list("wyx"), columns=list("wyx"))
    d = faithful_change(anom, norm)
    assert list(d.index) == list(d.columns) == ["x", "y"]  # shared events, in the anomalous window's order
    assert np.allclose(d.to_numpy(), [[0.5 - 0.7, 0.5 - 0.3], [0.2 - 0.3, 0.5 - 0.6]])
    d = pd.DataFrame([[0.0, 0.5, 0.4], [0.1, 0.0, 0.0], [0.0, -0.3, 0.0]], index=list("xyz"), columns=list("xyz"))
    r = faithful_ranking(d, k=2)
    # rows by their max: x .5, y .1; columns by theirs: y .5, z .4: the second pair (row y, column z)
    # is not a cell of D (D[y, z] = 0) but is shown with column z's max
    assert [(p["label"], p["value"]) for p in r["positive"]] == [("y-x", 0.5), ("z-y", 0.4)]
    assert r["negative"][0] == {"label": "y-z", "row": "z", "column": "y", "value": -0.3}


def test_on_a_small_shop_sleuth_names_the_funnel_break_and_the_original_does_not():
    res = shop_comparison(weeks=4, sessions_per_hour=150, seed=3)
    brk = next(c for c in res["cases"] if c["case"] == "funnel_break")["methods"]
    ours = brk["sleuth (web, 4 baseline weeks)"]
    assert ours["verdict"] == "the step" and ours["disrupted_event"] == "begin_checkout" and ours["break_change"] < -0.4
    original = brk["original (all events, as it ran)"]
    assert original["verdict"] != "the step" and abs(original["break_change"]) < 0.2
    assert original["interleaved_share"] > 0.8
    quiet = [m for c in res["cases"] if not c["incident"] for name, m in c["methods"].items() if name.startswith("sleuth")]
    assert quiet and all(m["disruptions"] == 0 for m in quiet)
    summary = shop_summary([res, res])  # tallies per method over every run's windows
    assert summary["sleuth (web, 4 baseline weeks)"]["incident_windows"] == 4
    assert summary["sleuth (web, 4 baseline weeks)"]["incident_step"] >= 2  # the funnel break, twice
    assert summary["sleuth (web, 4 baseline weeks)"]["normal_with_disruptions"] == 0
    assert summary["original (all events, as it ran)"]["incident_step"] == 0
