"""Opening recordings: how files are found, and every kind of bad input named in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.errors import UserError
from tests.synth import (
    bad_file,
    metadata_json,
    metadata_without,
    synth_events,
    write_recording,
    write_with_metadata,
)


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rec")
    write_recording(root, 3000, files=3, seed=1)
    return root


def user_error(*specs: object, **kwargs: object) -> UserError:
    with pytest.raises(UserError) as info:
        open_recording([str(s) for s in specs], **kwargs)  # type: ignore[arg-type]
    assert info.value.code == 2
    assert "\n" not in str(info.value)
    return info.value


def test_directory_file_and_glob_give_the_same_files(rec_dir: Path) -> None:
    files = sorted(rec_dir.glob("*.parquet"))
    by_dir = open_recording([rec_dir])
    assert [f.path for f in by_dir.files] == files
    assert by_dir.events == 3000
    by_glob = open_recording([str(rec_dir / "*.parquet")])
    assert [f.path for f in by_glob.files] == files
    by_file = open_recording([files[1]])
    assert [f.path for f in by_file.files] == [files[1]]
    assert by_file.files[0].meta.sequence == 2


def test_same_file_twice_is_read_once(rec_dir: Path) -> None:
    files = sorted(rec_dir.glob("*.parquet"))
    rec = open_recording([rec_dir, files[0]])
    assert len(rec.files) == 3


def test_several_hosts_and_nested_directories(tmp_path: Path) -> None:
    write_recording(tmp_path / "fleet" / "a", 100, files=1, host="a")
    write_recording(tmp_path / "fleet" / "b", 200, files=2, host="b")
    rec = open_recording([tmp_path / "fleet"])
    assert rec.hosts == ["a", "b"]
    assert rec.events == 300
    assert len({f.meta.recording_id for f in rec.files}) == 2


def test_partial_files_are_ignored_and_reported(tmp_path: Path) -> None:
    write_recording(tmp_path, 100, files=1)
    partial = tmp_path / f"host-a-x-000002{schema.PARTIAL_SUFFIX}"
    partial.write_bytes(b"PAR1 still being written")
    rec = open_recording([tmp_path])
    assert rec.partial == (partial,)
    assert len(rec.files) == 1
    assert any("partial" in line and str(partial) in line for line in rec.notices())
    assert "partial file" in str(user_error(partial))


def test_lost_events_are_totalled_and_noticed(tmp_path: Path) -> None:
    write_recording(tmp_path, 100, files=2, lost={"ringbuf_full": 7, "queue_full": 3})
    rec = open_recording([tmp_path])
    assert rec.lost_total == 10
    assert rec.lost["ringbuf_full"] == 7
    notice = [line for line in rec.notices() if "lost" in line]
    assert len(notice) == 1 and "10 events" in notice[0] and "percentiles" in notice[0]


def test_missing_path_and_unmatched_glob(tmp_path: Path) -> None:
    assert "no such file or directory" in str(user_error(tmp_path / "nope"))
    assert "no files match" in str(user_error(tmp_path / "*.parquet"))


def test_empty_directory_and_directory_of_partial_files(tmp_path: Path) -> None:
    assert "no recording files" in str(user_error(tmp_path))
    (tmp_path / f"a{schema.PARTIAL_SUFFIX}").write_bytes(b"x")
    message = str(user_error(tmp_path))
    assert "no recording files" in message and "partial" in message


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("zero-byte", "empty file"),
        ("text", "not a Parquet file"),
        ("truncated", "truncated"),
        ("other-schema", "not a sockopt-trace recording"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path: Path, kind: str, words: str) -> None:
    path = bad_file(tmp_path, kind)
    message = str(user_error(path))
    assert message.startswith(f"{path}: ") and words in message


def test_future_format_version_says_to_upgrade(tmp_path: Path) -> None:
    path = write_with_metadata(tmp_path / "f.parquet", metadata_json(format_version=99))
    message = str(user_error(path))
    assert "format version 99" in message and "upgrade sockopt-trace" in message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (metadata_json(format_version=0), "no longer reads"),
        (metadata_json(format="other-tool"), "not a sockopt-trace recording"),
        (metadata_without("format_version"), "no format version"),
        (b"{not json", "not JSON"),
        (metadata_without("host"), "unreadable 'sockopt_trace' metadata: metadata lacks host"),
    ],
)
def test_bad_metadata(tmp_path: Path, raw: bytes, words: str) -> None:
    path = write_with_metadata(tmp_path / "m.parquet", raw)
    assert words in str(user_error(path))


def test_missing_column_and_wrong_type(tmp_path: Path) -> None:
    table = synth_events(20, seed=5)
    no_stack = write_with_metadata(tmp_path / "a.parquet", metadata_json(), table.drop(["stack"]))
    assert "column 'stack' is missing" in str(user_error(no_stack))
    wide_pid = table.set_column(3, "pid", table.column("pid").cast(pa.int64()))
    bad_type = write_with_metadata(tmp_path / "b.parquet", metadata_json(), wide_pid)
    assert "column 'pid' has type int64, expected int32" in str(user_error(bad_type))


def test_extra_columns_are_accepted(tmp_path: Path) -> None:
    table = synth_events(20, seed=6)
    table = table.append_column("future_column", pa.array(range(20), pa.int64()))
    path = write_with_metadata(tmp_path / "x.parquet", metadata_json(), table)
    assert open_recording([path]).files[0].columns[-1] == "future_column"


def test_mixed_directory_fails_unless_skip_bad(tmp_path: Path) -> None:
    write_recording(tmp_path, 100, files=2)
    bad = bad_file(tmp_path, "truncated")
    message = str(user_error(tmp_path))
    assert str(bad) in message and "--skip-bad" in message
    rec = open_recording([tmp_path], skip_bad=True)
    assert len(rec.files) == 2 and rec.events == 100
    assert [s.path for s in rec.skipped] == [bad]
    assert any(str(bad) in line and "skipped 1 bad file" in line for line in rec.notices())


def test_skip_bad_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    bad_file(tmp_path, "text")
    message = str(user_error(tmp_path, skip_bad=True))
    assert "no readable recording files" in message and "not a Parquet file" in message


def test_version_1_metadata_reads_into_typed_parts_and_writes_back_the_same() -> None:
    """The shipped samples were written by earlier recorders: their JSON parses into the
    typed structures, and writing it out again gives every key they had, unchanged."""
    from sockopt_trace.schema import Clock, TraceFilters

    samples = sorted(Path(__file__).resolve().parents[2].glob("sample_traces/*/*.parquet"))
    assert samples
    for path in samples:
        raw = json.loads(pq.ParquetFile(path).metadata.metadata[schema.METADATA_KEY])
        meta = schema.RecordingMetadata.from_bytes(json.dumps(raw).encode())
        assert isinstance(meta.clock, Clock) and isinstance(meta.filters, TraceFilters)
        assert meta.clock.offset_ns == raw["clock"]["realtime_ns"] - raw["clock"]["monotonic_ns"]
        again = json.loads(meta.to_bytes())
        assert _only_keys_of(raw, again) == raw, path


def _only_keys_of(model: Any, value: Any) -> Any:
    """`value` cut down to the keys `model` has, at every level: a later format adds keys
    with defaults (filters.cgroup), and the old keys must come back unchanged."""
    if isinstance(model, dict) and isinstance(value, dict):
        return {k: _only_keys_of(model[k], value[k]) for k in model if k in value}
    return value
