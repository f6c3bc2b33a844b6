"""`info` from file metadata: overview, files, gaps in sequences, partial and skipped files."""

from __future__ import annotations

import datetime as dt
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
        and overview["lost_write_error"] == 0
        and "lost_queue_full" not in overview  # retired: shown only where a file counts it
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
    first, second = got["recordings"]
    assert first["recording_id"] != second["recording_id"]
    assert first["events"] == second["events"] == 1000
    (overview,) = got["recording"]
    assert overview["recordings"] == 2
    assert overview["span_s"] == pytest.approx(first["span_s"] + second["span_s"])
    assert overview["span_s"] < 60


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
    (overview,) = got["recording"]
    assert overview["lost"] == 12 and overview["lost_write_error"] == 12
    losses = got["losses"]
    assert [(x["lost"], x["reasons"]) for x in losses] == [(12, "write_error 12")]
    assert losses[0]["from_time"] == to_datetime(meta.end_ns)
    (gap,) = got["gaps"]
    assert gap["problem"] == "no data: the recorder was killed" and gap["sequences"] == "2"
    assert gap["to_time"] == to_datetime(meta.end_ns + 10**9)
    (span,) = got["recordings"]
    assert span["end_time"] == to_datetime(meta.end_ns + 10**9)
    notices = open_recording([tmp_path]).notices()
    assert any("lost 12 events from" in n for n in notices)
    assert any(n.startswith("no data from") for n in notices)


def test_a_ledger_alone_is_a_recording_for_info_only(tmp_path: Path) -> None:
    ledger = Ledger("h", "0123456789abcdef", "failed", 0, 10**18, 10**18 + 10**9)
    ledger.lost = {"write_error": 5}
    (tmp_path / f"h-01234567{LEDGER_SUFFIX}").write_bytes(ledger.to_bytes())
    (overview,) = sections(tmp_path, ledgers_only=True)["recording"]
    assert overview["lost"] == 5 and overview["events"] == 0 and overview["files"] == 0
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
    (overview,) = got["recording"]
    assert overview["partial_files"] == 1 and overview["skipped_files"] == 1
