"""--since / --until values."""

from __future__ import annotations

import pytest

from sockopt_trace.analyzer.timespec import parse_time_bound
from sockopt_trace.errors import UserError

ORIGIN = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", ORIGIN + 30 * 10**9),
        ("+5m", ORIGIN + 300 * 10**9),
        ("250ms", ORIGIN + 250 * 10**6),
        ("1.5h", ORIGIN + 5400 * 10**9),
        ("2023-11-14T22:13:20", 1_700_000_000 * 10**9),
        ("2023-11-14 22:13:20.5Z", 1_700_000_000_500_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000 * 10**9),
    ],
)
def test_offsets_and_times(text: str, expected: int) -> None:
    assert parse_time_bound(text, ORIGIN) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 parsecs", "2023-13-45"])
def test_bad_values_are_one_line_errors(text: str) -> None:
    with pytest.raises(UserError, match="--until") as info:
        parse_time_bound(text, ORIGIN, "--until")
    assert "\n" not in str(info.value)
