"""The benchmark's cube-vs-SQL comparison on a small shop: sleuth's cube equals hand-written SQL."""
from __future__ import annotations

from sleuth.bench.perf import cube_vs_sql, shop_parquet


def test_cube_matches_hand_written_sql(tmp_path):
    path, rows = shop_parquet(weeks=3, sessions_per_hour=8, seed=3, directory=tmp_path)
    assert 10_000 < rows < 40_000
    result = cube_vs_sql(path, repeats=1)
    check = result["check"]
    assert check["agree"], check
    assert check["values_compared"] > 100_000 and check["sessions_total"] > 0 and check["revenue_total"] > 0


def test_the_cli_process_keeps_freed_memory_on_glibc():
    """The detector's speed depends on glibc keeping freed arrays (no page faults per temporary)."""
    import platform
    import sys

    from sleuth._memory import keep_freed_memory

    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is expected
