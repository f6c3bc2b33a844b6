"""The SQL decoding macros agree with `names` on every value, known or not."""

from __future__ import annotations

import duckdb
import pytest

from sockopt_trace.analyzer import names
from sockopt_trace.analyzer.database import macros


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for macro in macros():
        con.execute(macro)
    return con


def test_every_known_and_some_unknown_values(con: duckdb.DuckDBPyConnection) -> None:
    levels = [*names.LEVELS, -1, 2, 288, 1 << 30]
    pairs = [(lv, o) for lv, table in names.OPTNAMES.items() for o in table]
    pairs += [(1, -1), (1, 0), (1, 54), (6, 9999), (0, 1160), (5, 1), (-7, 4), (1, 2**31 - 1)]
    errnos = [*names.ERRNOS, 0, 41, 520, 4000, -3]
    got = con.execute(
        "SELECT [level_label(x) FOR x IN $l], [optname_label(p[1], p[2]) FOR p IN $p], "
        "[errno_label(x) FOR x IN $e]",
        {"l": levels, "p": [list(p) for p in pairs], "e": errnos},
    ).fetchone()
    assert got is not None
    assert got[0] == [names.level_name(v) for v in levels]
    assert got[1] == [names.optname_name(lv, o) for lv, o in pairs]
    assert got[2] == [names.errno_name(v) for v in errnos]


def test_null_stays_null(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute("SELECT level_label(NULL), optname_label(1, NULL), errno_label(NULL)")
    assert row.fetchone() == (None, None, None)
