"""`info` from file metadata: each recording and their total, files, gaps in sequences,
partial and skipped files."""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
from pathlib import Path

import pytest

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


def test_each_recording_then_the_total_and_files(tmp_path: Path) -> None:
    paths = write_recording(tmp_path / "a", 3000, files=3, host="a", lost={"ringbuf_full": 4})
    paths += write_recording(
        tmp_path / "b", 1000, files=1, host="b", stacks="full", stack_sample_period=8
    )
    got = sections(tmp_path)
    *each, whole = got["recordings"]
    a, b = sorted(each, key=lambda r: str(r["host"]))
    metas = [open_recording([p]).files[0].meta for p in paths]
    assert a["recording_id"] == metas[0].recording_id
    assert a["recording"] == metas[0].recording_id[:8]
    assert whole["recording"] == "total" and whole["host"] == "2 hosts: a, b"
    assert (a["events"], b["events"], whole["events"]) == (3000, 1000, 4000)
    assert (a["files"], b["files"], whole["files"]) == (3, 1, 4)
    assert (a["lost"], a["lost_ringbuf_full"], a["lost_queue_full"]) == (4, 4, 0)
    assert (b["lost"], whole["lost"], whole["lost_ringbuf_full"]) == (0, 4, 4)
    assert (a["stacks"], b["stacks"]) == ("callsite", "full (1 in 8 sampled)")
    assert whole["stacks"] == "callsite, full (1 in 8 sampled)"
    assert a["probe"] == "tracepoint" and a["sequence_gaps"] == 0
    spans = [
        sum(m.end_ns - m.start_ns for m in metas[:3]) / 1e9,
        (metas[3].end_ns - metas[3].start_ns) / 1e9,
    ]
    assert a["recording_span_s"] == pytest.approx(spans[0])
    assert whole["recording_span_s"] == pytest.approx(sum(spans))
    assert whole["calls_per_s"] == pytest.approx(3000 / spans[0] + 1000 / spans[1])
    assert a["command_line"] == shlex.join(metas[0].command_line) and whole["command_line"] == ""
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
    assert [r["events"] for r in got["recordings"]] == [100]  # one recording: no total row
