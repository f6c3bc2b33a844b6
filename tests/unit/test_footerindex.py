"""analyzer.footerindex: a footer DuckDB read is kept and given back while its file is
unchanged; a changed, new or damaged file is read again; a broken or unwritable index is a miss,
never an error; the answers of a report are the same from the index as without it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from sockopt_trace.analyzer import footerbatch
from sockopt_trace.analyzer.database import new_connection
from sockopt_trace.analyzer.footer import Footer
from sockopt_trace.analyzer.footerbatch import read_footers
from sockopt_trace.analyzer.footerindex import index_dir, indexed
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.reports import run_report
from sockopt_trace.errors import UserError
from tests.synth import write_recording


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = new_connection()
    yield connection
    connection.close()


class Counting:
    """read_footers on `con`, counting the files it is asked for."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.asked: list[int] = []

    def __call__(self, paths: Sequence[Path]) -> dict[Path, Footer]:
        self.asked.append(len(paths))
        return read_footers(self.con, paths)


def test_a_footer_is_read_once_while_its_file_is_unchanged(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    files = write_recording(tmp_path / "rec", 600, files=3, seed=1)
    batch = Counting(con)
    reader = indexed(batch, "test", tmp_path / "index")
    first = reader(files)
    assert batch.asked == [3] and set(first) == set(files)
    assert reader(files) == first and batch.asked == [3]  # all three from the index
    # one rewritten in place (same name, other rows): that one is read again
    [other] = write_recording(tmp_path / "other", 500, files=1, seed=2)
    files[0].write_bytes(other.read_bytes())
    again = reader(files)
    assert batch.asked == [3, 1] and again != first
    assert again == read_footers(con, files) and again[files[0]].num_rows == 500
    assert reader(files) == again and batch.asked == [3, 1]
    # another reader's index is not used
    other = Counting(con)
    indexed(other, "another reader", tmp_path / "index")(files)
    assert other.asked == [3]


def test_a_broken_or_unwritable_index_is_a_miss(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    files = write_recording(tmp_path / "rec", 400, files=2, seed=3)
    root = tmp_path / "index"
    batch = Counting(con)
    expected = indexed(batch, "test", root)(files)
    [index] = root.iterdir()
    assert index.stat().st_mode & 0o077 == 0  # the user's alone: it holds command lines
    for junk in (
        b"{not json",
        b"[]",
        json.dumps(
            {
                "version": 1,
                "reader": "test",
                "files": {f.name: [[1, 2, 3, 4], "x", {}, {}] for f in files},
            }
        ).encode(),
    ):
        index.write_bytes(junk)
        assert indexed(batch, "test", root)(files) == expected
    assert batch.asked == [2, 2, 2, 2]
    stale = root / "0123456789abcdef01234567.json"  # another directory's, unused for long
    stale.write_text("{}")
    os.utime(stale, (0, 0))
    index.unlink()
    indexed(batch, "test", root)(files)
    assert sorted(root.iterdir()) == [index]
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the index directory would be")
    assert indexed(batch, "test", blocked)(files) == expected


def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert index_dir() == tmp_path / "sockopt-trace" / "footers"
    monkeypatch.setenv("SOCKOPT_TRACE_CACHE", "off")
    assert index_dir() is None
    rec = write_recording(tmp_path / "rec", 200, files=1, seed=4)[0].parent
    load([rec]).con.close()
    assert not (tmp_path / "sockopt-trace").exists()


def test_reports_from_the_index_equal_reports_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second load reads no footer (DuckDB's views read them in the scan), answers the
    same, and a file damaged since is named as before."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rec = write_recording(tmp_path / "rec", 3000, files=4, seed=5)[0].parent
    asked: list[int] = []
    real = footerbatch.read_footers
    monkeypatch.setattr(
        footerbatch, "read_footers", lambda con, paths: asked.append(len(paths)) or real(con, paths)
    )

    def latency() -> list[tuple[object, ...]]:
        loaded = load([rec])
        try:
            assert all(f.vetted for f in loaded.recording.files)
            return run_report(loaded.con, "latency").rows
        finally:
            loaded.con.close()

    first = latency()
    assert latency() == first and asked == [4]
    monkeypatch.setenv("SOCKOPT_TRACE_CACHE", "off")
    assert latency() == first and asked == [4, 4]
    monkeypatch.delenv("SOCKOPT_TRACE_CACHE")
    victim = sorted(rec.glob("*.parquet"))[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated since the index read it
    with pytest.raises(UserError, match=f"^{victim}: truncated or damaged"):
        load([rec])
    assert open_recording([rec], skip_bad=True).skipped[0].path == victim
    os.utime(victim, ns=(0, 0))  # an old mtime does not fool it: size and ctime changed too
    with pytest.raises(UserError, match="truncated or damaged"):
        load([rec])
