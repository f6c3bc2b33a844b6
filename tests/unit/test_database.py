"""The DuckDB side: decoding macros agree with `names`; files only DuckDB finds damaged."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sockopt_trace.analyzer import names
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import BadFile, read_file
from sockopt_trace.analyzer.views import macros
from sockopt_trace.errors import UserError
from tests.synth import write_recording


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


def damaged_for_duckdb_only(directory: Path) -> Path:
    """A recording file with one byte of its footer changed so that pyarrow still reads the
    footer (it passes `read_file`) but DuckDB's own reader refuses it."""
    [source] = write_recording(directory / "source", 2000, files=1, seed=9, row_group_rows=500)
    data = source.read_bytes()
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    target = directory / "damaged.parquet"
    for i in range(footer, len(data) - 8):
        changed = bytearray(data)
        changed[i] ^= 1
        target.write_bytes(changed)
        try:
            read_file(target)
            duckdb.execute(f"SELECT * FROM read_parquet('{target}') LIMIT 0")
        except (BadFile, duckdb.Error) as err:
            if isinstance(err, duckdb.Error):
                return target
    pytest.skip("no footer byte that only DuckDB notices")


def test_damage_only_duckdb_notices_is_named_or_skipped(tmp_path: Path) -> None:
    damaged = damaged_for_duckdb_only(tmp_path)
    good = tmp_path / "rec"
    write_recording(good, 300, files=1, seed=10)
    with pytest.raises(UserError) as info:
        load([good, damaged])
    message = str(info.value)
    assert message.startswith(f"{damaged}: damaged Parquet file") and "\n" not in message
    loaded = load([good, damaged], skip_bad=True)
    assert [s.path for s in loaded.recording.skipped] == [damaged]
    assert loaded.con.execute("SELECT count(*) FROM events").fetchone() == (300,)
    with pytest.raises(UserError, match="no readable recording files"):
        load([damaged], skip_bad=True)
