"""Tables on a terminal: every report, info and diff on every sample at 80 and 120 columns, with
no number or name split across lines or cut, the README's first command whole at 80; the
layout steps on their own; into a pipe nothing is narrowed."""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path

import pytest

from sockopt_trace.analyzer import terminal
from sockopt_trace.analyzer.diff import diff
from sockopt_trace.analyzer.info import describe
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.render import Result, _parts, people_table, render
from sockopt_trace.analyzer.render_diff import sections
from sockopt_trace.analyzer.reports import load_reports, run_report

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"
NAMES = sorted(p.name for p in SAMPLES.iterdir() if any(p.rglob("*.parquet")))
WIDTHS = (80, 120)


@cache
def results(name: str) -> list[Result]:
    """Every report, info's tables and the diff of the sample with itself, rows fetched."""
    con = load([SAMPLES / name]).con
    out = [run_report(con, report, raw=True) for report in load_reports()]
    out += describe(open_recording([SAMPLES / name]))
    out += sections(diff([SAMPLES / name], [SAMPLES / name]), explain=True)
    for res in out:
        res.rows = list(res.rows)
    return out


def check(res: Result, width: int) -> None:
    """Lines fit; each row is one line; every number and name shows whole, in its row's line,
    unless its column is said to be left out."""
    buf = io.StringIO()
    render([res], "table", buf, width=width)
    lines = buf.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), (res.title, width, buf.getvalue())
    rows = list(res.rows)
    at = 0
    for title, part, part_rows in _parts(res, rows, True):
        table = people_table(part, part_rows, short_times=True)
        heading = terminal.wrap(title or "", width)
        assert lines[at : at + len(heading)] == heading, (lines[at:], title)
        at += len(heading)
        block = lines[at : at + 2 + len(table.rows)]
        at += 2 + len(table.rows)
        note = lines[at] if at < len(lines) and lines[at].startswith("(") else ""
        at += bool(note)
        assert block[1].startswith(" ─") or block[1].startswith("─"), (res.title, block)
        left_out = {
            h
            for h in table.headers
            if not any(re.search(rf"(?<!\S){re.escape(f)}(?!\S)", block[0]) for f in forms(h))
        }
        if left_out:
            assert "left out" in note, (res.title, width, left_out, note)
        for line, row in zip(block[2:], table.rows, strict=True):
            for i, cell in enumerate(row):
                if table.cuttable[i] or not cell or table.headers[i] in left_out:
                    continue
                pattern = rf"(?<![\w,.:]){re.escape(cell)}(?![\w,.:])"
                assert re.search(pattern, line), (res.title, width, table.headers[i], cell, line)
    assert at == len(lines), (res.title, lines[at:])


def forms(header: str) -> set[str]:
    """A header as it may show: whole, or with its unit abbreviated (terminal._SUFFIXES)."""
    out = {header}
    for suffix, short in (("_per_s", "/s"), ("_pct", "%"), ("_ns", "")):
        out |= {h[: -len(suffix)] + short for h in out if h.endswith(suffix)}
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_table_fits_80_and_120_columns_and_wraps_nothing(name: str) -> None:
    for res in results(name):
        for width in WIDTHS:
            check(res, width)


def test_readme_first_command_reads_whole_at_80_columns() -> None:
    """README: `report sample_traces/nginx-after latency` on an 80-column terminal shows every
    column and every value, only with shorter headers."""
    res = next(r for r in results("nginx-after") if r.title == "latency")
    buf = io.StringIO()
    render(res, "table", buf, width=80)
    text = buf.getvalue()
    assert "left out" not in text and "…" not in text
    header = text.splitlines()[0].split()
    assert header == [
        "comm",
        "level",
        "optname",
        "calls",
        "mean",
        "p50",
        "p90",
        "p99",
        "p999",
        "max",
    ]
    assert "50,000" in text and "91,276" in text and "IPPROTO_TCP" in text


def test_a_pipe_gets_the_whole_table() -> None:
    res = next(r for r in results("haproxy-nginx-unix") if r.title == "slowest")
    buf = io.StringIO()
    render(res, "table", buf)
    header = buf.getvalue().splitlines()[0].split()
    assert header[:3] == ["time", "latency_ns", "host"] and header[-1] == "callsite"
    assert "(" not in buf.getvalue().splitlines()[-1]
    assert "2026" in buf.getvalue() or "20" in buf.getvalue().splitlines()[2][:3]  # full dates


def table(widths: list[int], **kwargs: object) -> terminal.Table:
    headers = [f"col{i}_ns" for i in range(len(widths))]
    row = ["9" * w for w in widths]
    return terminal.Table(
        headers,
        [row],
        [True] * len(widths),
        [False] * len(widths),
        **kwargs,  # type: ignore[arg-type]
    )


def test_layout_abbreviates_then_drops_in_the_order_given_never_a_kept_column() -> None:
    t = table([2, 2, 2, 2, 2], keep={0}, drop=[2])
    full, note = terminal.layout(t, None)
    assert full[0].split() == t.headers and note is None
    lines, note = terminal.layout(t, 29)  # col0_ns.. are 7 wide: 1 + 5*7 + 8 = 44; abbreviated 4
    assert lines[0].split() == ["col0", "col1", "col2", "col3", "col4"] and "ns: col0" in (
        note or ""
    )
    assert all(len(line) <= 29 for line in lines)
    lines, note = terminal.layout(t, 20)
    assert lines[0].split() == ["col0", "col1", "col3"] and note is not None
    assert note.startswith("(left out col2_ns,") and len(note) <= 20  # col4_ns went too
    lines, _ = terminal.layout(t, 3)  # too narrow for anything: the kept column stays
    assert lines[0].split() == ["col0"]


def test_layout_cuts_free_text_with_an_ellipsis_before_dropping() -> None:
    t = terminal.Table(
        ["callsite", "calls"],
        [["a" * 60, "12,345"], ["short", "1"]],
        [False, True],
        [True, False],
    )
    lines, note = terminal.layout(t, 40)
    assert all(len(line) <= 40 for line in lines) and "…" in lines[2]
    assert lines[3].split() == ["short", "1"] and note is not None and "cut callsite" in note


def test_histogram_bars_scale_to_each_group() -> None:
    t = terminal.Table(
        ["g", "calls"],
        [["a", "10"], ["a", "5"], ["a", "0"], ["b", "1"]],
        [False, True],
        [False, False],
        bars=(1, [0]),
    )
    lines, _ = terminal.layout(t, None)
    bars = [line.split("|")[1] for line in lines[2:]]
    assert [b.count("@") for b in bars] == [40, 20, 0, 40]
