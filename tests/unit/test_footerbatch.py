"""analyzer.footerbatch: DuckDB reads many footers at once, each equal to footer.read_footer's,
and leaves every file it would name differently, or all of them when one is damaged, to the
reader of one file: a recording opens to the same files and the same one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sockopt_trace.analyzer import footerbatch
from sockopt_trace.analyzer.database import new_connection
from sockopt_trace.analyzer.diff import diff
from sockopt_trace.analyzer.footer import read_footer
from sockopt_trace.analyzer.footerbatch import duckdb_footers, read_footers
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.render_diff import machine_sections
from sockopt_trace.analyzer.reports import run_report
from tests.synth import bad_file, synth_events, write_recording, write_with_metadata
from tests.unit.test_footer import SAMPLES, typed_table


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = new_connection()
    yield connection
    connection.close()


def own_footer(path: Path) -> object:
    with open(path, "rb") as fh:
        return read_footer(fh, path.stat().st_size)


def test_every_recording_file_reads_as_read_footer_does(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """The shipped samples (older recorders' files, context columns) and synthetic files."""
    files = [*SAMPLES, *write_recording(tmp_path / "synth", 300, files=3, seed=5)]
    got = read_footers(con, files)
    assert set(got) == set(files)
    for path in files:
        assert got[path] == own_footer(path), path
        assert list(got[path].columns) == list(own_footer(path).columns)  # in file order


def test_files_of_other_types_are_left_to_their_own_reader(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Types beyond plain int32/int64/UTF-8 (nested, unsigned, timestamps...) are named by the
    one-file reader, whose names the error messages use."""
    [good] = write_recording(tmp_path / "good", 50, files=1, seed=6)
    typed = tmp_path / "typed.parquet"
    pq.write_table(typed_table(), typed, store_schema=False)
    small = tmp_path / "int16.parquet"
    table = synth_events(20, seed=7)
    i = table.schema.get_field_index("optname")
    table = table.set_column(i, "optname", table.column(i).cast(pa.int16()))
    pq.write_table(table, small, store_schema=False)
    assert set(read_footers(con, [good, typed, small])) == {good}


def test_one_damaged_file_leaves_every_file_to_its_own_reader(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    files = write_recording(tmp_path, 50, files=2, seed=8)
    truncated = bad_file(tmp_path, "truncated")
    assert read_footers(con, [*files, truncated]) == {}
    assert set(read_footers(con, files)) == set(files)


def test_a_recording_opens_the_same_with_the_batch(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Files, rows, columns, and each bad file's one-line problem, with and without it."""
    write_recording(tmp_path, 400, files=3, seed=10)
    for kind in ("other-schema", "future-version", "truncated"):
        bad_file(tmp_path, kind)
    write_with_metadata(tmp_path / "not-json.parquet", b"{not json")
    table = synth_events(20, seed=11)
    i = table.schema.get_field_index("latency_ns")
    as_text = table.set_column(i, "latency_ns", table.column(i).cast(pa.string()))
    pq.write_table(as_text, tmp_path / "text-latency.parquet", store_schema=False)
    plain = open_recording([tmp_path], skip_bad=True)
    batched = open_recording([tmp_path], skip_bad=True, footers=duckdb_footers(con))
    assert batched == plain
    assert len(plain.files) == 3 and len(plain.skipped) == 5
    # the damaged file made DuckDB fail: without it, the batch reads the rest
    (tmp_path / "truncated.parquet").unlink()
    read = read_footers(con, [f.path for f in plain.files if isinstance(f.path, Path)])
    assert len(read) == 3
    assert open_recording([tmp_path], skip_bad=True, footers=duckdb_footers(con)) == open_recording(
        [tmp_path], skip_bad=True
    )


def test_reports_and_diff_answer_the_same_with_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load() and diff() read footers on their connection; the answers do not change."""
    base = write_recording(tmp_path / "base", 3000, files=4, seed=12)[0].parent
    new = write_recording(tmp_path / "new", 3000, files=4, seed=13)[0].parent

    def answers() -> tuple[object, ...]:  # with the batch, or with each file on its own
        loaded = load([base])
        try:
            rows = run_report(loaded.con, "latency").rows
        finally:
            loaded.con.close()
        sections = machine_sections(diff([base], [new]))
        return (rows, [(r.columns, r.rows) for r in sections])

    monkeypatch.setenv("SOCKOPT_TRACE_CACHE", "off")  # every load reads: test_footerindex.py
    calls: list[int] = []
    real = footerbatch.read_footers
    monkeypatch.setattr(
        footerbatch, "read_footers", lambda con, paths: calls.append(len(paths)) or real(con, paths)
    )
    batched = answers()
    assert calls == [4, 4, 4]  # the report's recording, then diff's two sides
    monkeypatch.setattr(footerbatch, "read_footers", lambda con, paths: {})
    assert answers() == batched
