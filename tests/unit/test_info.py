"""`info` from file metadata: overview, files, gaps in sequences, partial and skipped files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.analyzer.info import describe
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.timespec import to_datetime
from tests.synth import write_recording


def sections(path: Path, **kwargs: bool) -> dict[str, list[dict[str, object]]]:
    return {
        str(r.title): [dict(zip(r.columns, row, strict=True)) for row in r.rows]
        for r in describe(open_recording([path], **kwargs))
    }


def test_overview_and_files(tmp_path: Path) -> None:
    paths = write_recording(tmp_path / "a", 3000, files=3, host="a", lost={"ringbuf_full": 4})
    paths += write_recording(
        tmp_path / "b", 1000, files=1, host="b", stacks="full", stack_sample_period=8
    )
    got = sections(tmp_path)
    (overview,) = got["recording"]
    assert overview["hosts"] == "a, b"
    assert overview["events"] == 4000 and overview["files"] == 4 and overview["recordings"] == 2
    assert (
        overview["lost"] == 4
        and overview["lost_ringbuf_full"] == 4
        and overview["lost_queue_full"] == 0
    )
    assert overview["stacks"] == "callsite, full (1 in 8 sampled)"
    assert overview["probe"] == "tracepoint"
    assert overview["sequence_gaps"] == 0
    files = got["files"]
    assert [f["path"] for f in files] == [str(p) for p in paths]
    assert [f["sequence"] for f in files] == [1, 2, 3, 1]
    assert sum(f["events"] for f in files) == 4000  # type: ignore[misc]
    assert isinstance(files[0]["start_time"], dt.datetime)
    assert "gaps" not in got and "partial files (ignored)" not in got


def test_missing_and_duplicate_sequences_with_their_window(tmp_path: Path) -> None:
    paths = write_recording(tmp_path, 5000, files=5, skip_sequences=(1, 3, 4))
    shutil.copy(paths[0], tmp_path / "copy-of-2.parquet")
    rec = open_recording([tmp_path])
    by_seq = {f.meta.sequence: f for f in rec.files}
    got = sections(tmp_path)["gaps"]
    assert [(g["problem"], g["sequences"]) for g in got] == [
        ("missing", "1"),
        ("duplicate", "2"),
        ("missing", "3-4"),
    ]
    assert got[0]["from_time"] is None and got[0]["to_time"] == to_datetime(by_seq[2].meta.start_ns)
    assert got[2]["from_time"] == to_datetime(by_seq[2].meta.end_ns)
    assert got[2]["to_time"] == to_datetime(by_seq[5].meta.start_ns)


def test_partial_and_skipped_files_are_listed(tmp_path: Path) -> None:
    write_recording(tmp_path, 100, files=1)
    (tmp_path / f"x{schema.PARTIAL_SUFFIX}").write_bytes(b"PAR1....")
    (tmp_path / "junk.parquet").write_text("junk")
    got = sections(tmp_path, skip_bad=True)
    assert got["partial files (ignored)"] == [
        {"path": str(tmp_path / f"x{schema.PARTIAL_SUFFIX}"), "bytes": 8}
    ]
    assert got["skipped files"] == [
        {"path": str(tmp_path / "junk.parquet"), "problem": "not a Parquet file"}
    ]
    (overview,) = got["recording"]
    assert overview["partial_files"] == 1 and overview["skipped_files"] == 1
