"""The four output formats, shared by every command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from sockopt_trace.analyzer.render import Result, human, plain, render

WHEN = dt.datetime(2025, 1, 31, 12, 0, 0, 123456)


def sample() -> Result:
    return Result(
        ["comm", "calls", "p99_ns", "time", "stack"],
        [("nginx", 1234567, 1234.5678, WHEN, "main;[unknown];f"), ("curl|x", 3, None, WHEN, None)],
        "latency",
    )


def out(results: Result | list[Result], fmt: str, **kwargs: object) -> str:
    buf = io.StringIO()
    render(results, fmt, buf, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def test_csv_is_exact_and_machine_readable() -> None:
    rows = list(csv.reader(io.StringIO(out(sample(), "csv"))))
    assert rows[0] == ["comm", "calls", "p99_ns", "time", "stack"]
    assert rows[1] == [
        "nginx",
        "1234567",
        "1234.5678",
        "2025-01-31T12:00:00.123456Z",
        "main;[unknown];f",
    ]
    assert rows[2] == ["curl|x", "3", "", "2025-01-31T12:00:00.123456Z", ""]


def test_json_is_a_list_of_objects_and_streams_iterators() -> None:
    res = sample()
    res.rows = iter(list(res.rows))
    data = json.loads(out(res, "json"))
    assert data[0] == {
        "comm": "nginx",
        "calls": 1234567,
        "p99_ns": 1234.5678,
        "time": "2025-01-31T12:00:00.123456Z",
        "stack": "main;[unknown];f",
    }
    assert data[1]["p99_ns"] is None
    assert json.loads(out(Result(["x"], []), "json")) == []


def test_several_results_json_is_keyed_by_title_and_csv_is_one_table() -> None:
    two = [sample(), Result(["a"], [(1,)], "other")]
    data = json.loads(out(two, "json"))
    assert list(data) == ["latency", "other"] and data["other"] == [{"a": 1}]
    assert out([Result(["a"], [(1,)], "other")], "csv") == "a\n1\n"  # no title: one table
    with pytest.raises(ValueError, match="one table"):
        out([sample(), Result(["a"], [(1,)], "other")], "csv")


def test_markdown_escapes_pipes_and_right_aligns_numbers() -> None:
    lines = out(sample(), "markdown").splitlines()
    assert lines[0] == "| comm | calls | p99_ns | time | stack |"
    assert lines[1] == "|---|---:|---:|---|---|"
    assert (  # nanoseconds without decimals: one style for the column
        lines[2] == "| nginx | 1,234,567 | 1,235 | 2025-01-31 12:00:00.123456 | main;[unknown];f |"
    )
    assert lines[3].startswith("| curl\\|x | 3 |  |")


def test_table_shows_markup_like_text_as_is_and_limits_rows() -> None:
    text = out(sample(), "table")
    assert "main;[unknown];f" in text and "1,234,567" in text
    many = Result(["n"], ((i,) for i in range(10)))
    buf = io.StringIO()
    assert render(many, "table", buf, max_rows=3) is True
    shown = [line.strip() for line in buf.getvalue().splitlines() if line.strip().isdigit()]
    assert shown == ["0", "1", "2"]


def test_a_record_reads_as_field_value_pairs() -> None:
    record = Result(["a", "b", "c"], [(1, 2, 3)], record=True)
    lines = out(record, "markdown").splitlines()
    assert lines[0] == "| field | value |" and lines[2] == "| a | 1 |"
    assert json.loads(out(record, "json")) == [{"a": 1, "b": 2, "c": 3}]
    one_row = Result(["a", "b", "c"], [(1, 2, 3)])
    assert out(one_row, "markdown").splitlines()[0] == "| a | b | c |"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (12345, "12,345"),
        (312.6666, "312.7"),
        (123456.7, "123,457"),
        (0.012345, "0.0123"),
        (0.0, "0.0"),
        (True, "true"),
        (Decimal("2.50"), "2.5"),
        (float("nan"), "nan"),
        (dt.datetime(2025, 1, 31, 12), "2025-01-31 12:00:00.000000"),
    ],
)
def test_human_numbers(value: object, text: str) -> None:
    assert human(value) == text


def test_plain_values() -> None:
    assert plain(Decimal("10")) == 10 and isinstance(plain(Decimal("10")), int)
    assert plain(Decimal("1.5")) == 1.5
    assert plain(float("inf")) is None
    assert plain([WHEN, (1, Decimal("2"))]) == ["2025-01-31T12:00:00.123456Z", [1, 2]]
    assert plain(dt.date(2025, 1, 31)) == "2025-01-31"
    assert plain(b"\x01\xff") == "01ff"
