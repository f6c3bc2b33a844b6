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
from sockopt_trace.errors import UserError
from sockopt_trace.ledger import LEDGER_SUFFIX, Ledger, Window
from tests import synth
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
    assert (a["lost"], a["lost_ringbuf_full"], a["lost_write_error"]) == (4, 4, 0)
    assert "lost_queue_full" not in a  # retired: shown only where a file counts it
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
    (loss,) = got["losses"]  # every loss with its time window
    assert loss["lost"] == 4 and loss["reasons"] == "ringbuf_full 4"
    assert loss["source"] == paths[0].name and loss["to_time"] == files[0]["end_time"]


def test_recordings_are_kept_apart(tmp_path: Path) -> None:
    """Two recordings written into one directory (--force) an hour apart: two spans, and the
    hour between them is not recorded time."""
    hour = 3600 * 10**9
    write_recording(tmp_path, 1000, files=1, seed=1)
    write_recording(tmp_path, 1000, files=1, seed=2, start_ns=synth.START_NS + hour)
    got = sections(tmp_path)
    first, second, whole = got["recordings"]
    assert first["recording_id"] != second["recording_id"]
    assert first["events"] == second["events"] == 1000
    assert whole["recording"] == "total"
    span = whole["recording_span_s"]
    assert span == pytest.approx(first["recording_span_s"] + second["recording_span_s"])
    assert span < 60  # type: ignore[operator]


def test_the_loss_ledger_is_shown_with_its_windows(tmp_path: Path) -> None:
    """A recording that failed (losses in no sealed file) and one whose recorder was killed
    (a span with no data, written by recover): both in info, with their times."""
    paths = write_recording(tmp_path, 1000, files=1)
    meta = schema.read_file_metadata(str(paths[0]))
    prefix = schema.FileName.parse(paths[0].name).prefix
    ledger = Ledger(
        meta.host,
        meta.recording_id,
        "killed",
        1,
        meta.end_ns,
        meta.end_ns + 10**9,
        lost={"write_error": 12},
        no_data=[Window(meta.end_ns, meta.end_ns + 10**9, "the recorder was killed")],
    )
    (tmp_path / f"{prefix}{LEDGER_SUFFIX}").write_bytes(ledger.to_bytes())
    got = sections(tmp_path)
    (overview,) = got["recordings"]
    assert overview["lost"] == 12 and overview["lost_write_error"] == 12
    assert overview["lower_bound"] is True
    losses = got["losses"]
    assert [(x["lost"], x["reasons"]) for x in losses] == [(12, "write_error 12")]
    assert losses[0]["from_time"] == to_datetime(meta.end_ns)
    (gap,) = got["gaps"]
    assert gap["problem"] == "no data: the recorder was killed" and gap["sequences"] == "2"
    assert gap["to_time"] == to_datetime(meta.end_ns + 10**9)
    notices = open_recording([tmp_path]).notices()
    assert any("lost 12 events from" in n for n in notices)
    assert any(n.startswith("no data from") for n in notices)


def test_a_ledger_alone_is_a_recording_for_info_only(tmp_path: Path) -> None:
    ledger = Ledger("h", "0123456789abcdef", "failed", 0, 10**18, 10**18 + 10**9)
    ledger.lost = {"write_error": 5}
    (tmp_path / f"h-01234567{LEDGER_SUFFIX}").write_bytes(ledger.to_bytes())
    (overview,) = sections(tmp_path, ledgers_only=True)["recordings"]
    assert overview["lost"] == 5 and overview["events"] == 0 and overview["files"] == 0
    assert overview["lost_write_error"] == 5 and overview["recording_span_s"] == 0
    with pytest.raises(UserError, match="only 1 loss ledger"):
        open_recording([tmp_path])


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
