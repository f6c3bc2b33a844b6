"""Property: whatever happens to a recording file's bytes, reading it either works or ends in a
one-line UserError, never another exception (which the CLI would show as a traceback)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import run_report
from sockopt_trace.errors import UserError
from tests.synth import write_recording


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("pristine")
    [path] = write_recording(directory, 2000, files=1, row_group_rows=500)
    return path.read_bytes()


def read_everything(path: Path) -> None:
    loaded = load([path])
    for report in ("summary", "latency", "callsites", "errors"):
        run_report(loaded.con, report)


corruptions = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=20),
    ),
    st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 4096)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(corruption=corruptions)
def test_corrupted_file_reads_or_fails_in_one_line(
    tmp_path: Path, pristine: bytes, corruption: tuple
) -> None:
    data = bytearray(pristine)
    kind = corruption[0]
    if kind == "truncate":
        data = data[: int(len(data) * corruption[1])]
    elif kind == "flip":
        for where, mask in corruption[1]:
            i = min(int(len(data) * where), len(data) - 1)
            data[i] ^= mask
    else:
        start = min(int(len(data) * corruption[1]), len(data) - 1)
        data[start : start + corruption[2]] = bytes(len(data[start : start + corruption[2]]))
    directory = tmp_path / "rec"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    path = directory / "host-a-000001.parquet"
    path.write_bytes(bytes(data))
    try:
        read_everything(path)
    except UserError as err:
        message = str(err)
        assert "\n" not in message and message
        assert str(path) in message or "query failed" in message
