"""Bad input through the real CLI: one line on stderr that names the file, column, row or config
key and says what to do; exit code 2; no traceback; the input file is left as it was.

Every case runs in its own subprocess; they are started together (module fixture) to keep the
file fast, and each test checks one case's result.
"""
from __future__ import annotations

import random
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

GOOD_CSV = (
    "timestamp,event,session_id,revenue,device,tax\n"
    "2026-04-01T10:00:00Z,page_view,s1,,mobile,1.5\n"
    "2026-04-01T10:05:00Z,purchase,s1,12.50,mobile,abc\n"
    "2026-04-01T10:09:00Z,page_view,s2,,desktop,2\n"
)


def _long_csv(rows: int, change: dict[int, tuple[str, str]]) -> bytes:
    """A valid CSV of ``rows`` events (over 8 KB), with ``change[i] = (old, new)`` applied to row i."""
    lines = ["timestamp,event,session_id,revenue,device"]
    for i in range(rows):
        line = f"2026-04-01T{10 + i // 60 % 10:02d}:{i % 60:02d}:00Z,page_view,s{i},,mobile"
        if i in change:
            line = line.replace(*change[i])
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def _write_xlsx(path: Path) -> None:
    """A (minimal) real .xlsx container: a zip with the spreadsheet parts' names."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet><sheetData/></worksheet>")


@dataclass
class Case:
    #: file name -> text, bytes, or a function that writes the file
    files: dict
    #: CLI arguments after the command, run in the case's own folder
    args: list[str]
    #: fragments the one-line message must contain (what is wrong, where, what to do)
    expect: list[str]
    commands: tuple[str, ...] = ("detect",)


def events_with_config(yaml_text: str, expect: list[str], commands=("detect",)) -> Case:
    return Case({"events.csv": GOOD_CSV, "sleuth.yaml": yaml_text},
                ["events.csv", "--config", "sleuth.yaml"], expect, commands)


CASES: dict[str, Case] = {
    "missing_file": Case({}, ["nope.csv"], ["nope.csv", "file not found", "check the path"]),
    "empty_file": Case({"empty.csv": b""}, ["empty.csv"], ["empty.csv", "is empty", "needs a header"]),
    "header_only": Case({"header.csv": "timestamp,event\n"}, ["header.csv"],
                        ["header.csv", "no events", "add at least one event"]),
    "missing_timestamp_column": Case(
        {"e.csv": "when,event\n2026-04-01T10:00:00Z,a\n"}, ["e.csv"],
        ["e.csv", "no 'timestamp' column", "columns are: when, event", "columns: {timestamp: <column>}"]),
    "missing_event_column": Case(
        {"e.csv": "timestamp,what\n2026-04-01T10:00:00Z,a\n"}, ["e.csv"],
        ["e.csv", "no 'event' column", "columns are: timestamp, what", "columns: {event: <column>}"]),
    "unparsable_timestamp": Case(
        {"e.csv": "timestamp,event\n2026-04-01T10:00:00Z,a\n2026-04-01T11:00:00Z,a\nyesterday-ish,b\n"}, ["e.csv"],
        ["e.csv", "column 'timestamp'", "row 3", "'yesterday-ish'", "ISO 8601"]),
    "text_in_revenue": Case(
        {"e.csv": "timestamp,event,revenue\n2026-04-01T10:00:00Z,a,1.5\n2026-04-01T11:00:00Z,purchase,EUR 5\n"},
        ["e.csv"], ["e.csv", "column 'revenue'", "row 2", "'EUR 5'", "must be numeric"], ("detect", "metrics")),
    "text_in_sum_metric_column": events_with_config(
        "metrics:\n  - name: tax_total\n    type: sum\n    column: tax\n",
        ["events.csv", "column 'tax'", "row 2", "'abc'", "metric 'tax_total'", "must be numeric"]),
    "unknown_metric_type": events_with_config(
        "metrics:\n  - name: tax_avg\n    type: avg\n    column: tax\n",
        ["sleuth.yaml", "metrics[0].type", "'count'", "'sum'", "'distinct'", "'ratio'", "got 'avg'"],
        ("detect", "metrics")),
    "unknown_top_level_key": events_with_config(
        "granularty: 1h\n", ["sleuth.yaml", "unknown key 'granularty'", "allowed here", "granularity"]),
    "unknown_dimension": events_with_config(
        "dimensions: [devise]\n",
        ["events.csv", "dimension 'devise'", "did you mean 'device'", "dimensions"]),
    # a typo in a metric is an error naming it, not a metric that stays zero
    "misspelled_metric_event": events_with_config(
        "metrics:\n  - name: views\n    type: count\n    event: page_veiw\n",
        ["metric 'views'", "event 'page_veiw'", "does not occur in events.csv", "did you mean 'page_view'",
         "Fix 'event' in sleuth.yaml"], ("detect", "metrics")),
    "misspelled_ratio_event": events_with_config(
        "metrics:\n  - name: conversion\n    type: ratio\n"
        "    numerator: {type: distinct, column: session_id, event: Purchase}\n"
        "    denominator: {type: distinct, column: session_id}\n",
        ["metric 'conversion' (numerator)", "event 'Purchase'", "did you mean 'purchase'"]),
    "misspelled_metric_column": events_with_config(
        "metrics:\n  - name: takings\n    type: sum\n    column: revenu\n",
        ["metric 'takings'", "column 'revenu'", "not a column of events.csv", "did you mean 'revenue'"]),
    "invalid_yaml": events_with_config(
        "granularity: 1h\nmetrics: [\n  name: x\n", ["sleuth.yaml", "line", "not valid YAML", "fix the syntax"]),
    "unknown_holiday_country": events_with_config(
        "holidays: [US, XX]\n", ["sleuth.yaml", "holidays", "'XX'", "such as US"]),
    "bad_timezone": events_with_config(
        "timezone: Mars/Olympus\n", ["sleuth.yaml", "timezone", "'Mars/Olympus'", "IANA", "Europe/Berlin"]),
    "sum_metric_without_column": events_with_config(
        "metrics:\n  - name: total\n    type: sum\n", ["sleuth.yaml", "metrics[0]", "'sum'", "needs 'column'"]),
    "binary_garbage_csv": Case({"garbage.csv": random.Random(7).randbytes(6000)}, ["garbage.csv"],
                               ["garbage.csv", "binary", "export the events as CSV"]),
    "xlsx_file": Case({"book.xlsx": _write_xlsx}, ["book.xlsx"], ["book.xlsx", "'.xlsx'", "use .csv"]),
    # the whole file is checked, not its first 8 KB: the line and the cause
    "nul_byte_deep_in_the_file": Case({"e.csv": _long_csv(600, {400: ("mobile", "mob\x00ile")})}, ["e.csv"],
                                      ["e.csv", "line 402", "NUL byte", "binary", "export the events as CSV"]),
    "extra_field_deep_in_the_file": Case({"e.csv": _long_csv(600, {450: ("mobile", "mobile,x")})}, ["e.csv"],
                                         ["e.csv", "line 452", "6 fields where the header has 5", "quote values"],
                                         ("detect", "metrics")),
    "score_duplicate_timestamps": Case(
        {"s.csv": "timestamp,value\n2026-04-01T10:00,1\n2026-04-01T11:00,2\n2026-04-01T11:00,3\n"}, ["s.csv"],
        ["s.csv", "line 4", "'2026-04-01T11:00'", "already appears on line 3", "aggregate the rows first"],
        ("score",)),
    "notify_port_out_of_range": events_with_config(
        "notify:\n  - url: json://bob:Pw9xyz@127.0.0.1:99999/hook\n",
        ["sleuth.yaml", "notify[0].url", "port 99999", "out of range", "1-65535"], ("run",)),
    "notify_url_without_scheme": events_with_config(
        "notify:\n  - url: hooks.example.com/T0ken\n", ["sleuth.yaml", "notify[0].url", "not a URL", "slack://"],
        ("run",)),
    "dashboard_on_a_public_address": Case({"events.csv": GOOD_CSV}, ["events.csv", "--host", "0.0.0.0"],
                                          ["--host 0.0.0.0", "no login", "--allow-remote", "reverse proxy"],
                                          ("dashboard",)),
}
RUNS = [(name, cmd) for name, case in CASES.items() for cmd in case.commands]


def _write(folder: Path, files: dict) -> None:
    folder.mkdir(parents=True)
    for fname, content in files.items():
        path = folder / fname
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def results(tmp_path_factory, run_cli):
    """Run every (case, command) at once; each result has the process and the files before/after."""
    root = tmp_path_factory.mktemp("bad_input")
    jobs = {}
    for name, cmd in RUNS:
        folder = root / f"{name}-{cmd}"
        _write(folder, CASES[name].files)
        jobs[(name, cmd)] = (folder, _snapshot(folder))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {(name, cmd): pool.submit(run_cli, cmd, *CASES[name].args, cwd=folder)
                   for (name, cmd), (folder, _) in jobs.items()}
        return {key: {"proc": fut.result(), "before": jobs[key][1], "after": _snapshot(jobs[key][0])}
                for key, fut in futures.items()}


@pytest.mark.parametrize("name, command", RUNS, ids=[f"{n}-{c}" for n, c in RUNS])
def test_bad_input_gives_one_clear_line_and_exit_2(results, name, command):
    proc = results[(name, command)]["proc"]
    stderr = proc.stderr
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 2, (proc.returncode, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: "), line
    missing = [frag for frag in CASES[name].expect if frag not in line]
    assert not missing, f"{missing} not in: {line}"
    assert proc.stdout.strip() == "", proc.stdout


@pytest.mark.parametrize("name, command", RUNS, ids=[f"{n}-{c}" for n, c in RUNS])
def test_failed_run_leaves_the_input_files_alone(results, name, command):
    r = results[(name, command)]
    assert r["proc"].returncode == 2
    assert r["after"] == r["before"]  # same files, same bytes: nothing modified, deleted or added
