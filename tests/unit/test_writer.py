"""The writer's failure paths, its exact file spans and its loss ledger; the recorder's handling
of options and of unreadable stacks. No kernel needed."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from sockopt_trace.errors import UserError
from sockopt_trace.ledger import LEDGER_SUFFIX, Ledger
from sockopt_trace.recorder.writer import SETTLE_NS, WriteError
from tests.unit.test_recorder_logic import _events, _writer


def _ledger(directory: Path) -> Ledger:
    (path,) = directory.glob("*" + LEDGER_SUFFIX)
    return Ledger.from_bytes(path.read_bytes())


def test_abandon_after_the_first_file_could_not_be_created(tmp_path: Path) -> None:
    """The disk refused the very first file: abandon() counts the rows, no internal error."""
    out = tmp_path / "rec"
    out.mkdir()
    w = _writer(out)
    shutil.rmtree(out)  # nothing can be created any more
    w.add(_events(100))
    with pytest.raises(WriteError, match="creating"):
        w.close(10**9)
    assert w.abandon() == 100


def test_a_decoding_failure_is_not_a_write_error(tmp_path: Path) -> None:
    """Symbolizing and converting are not the disk: an OSError there (a failed map read, a
    vanished /proc file) must not be reported, counted or handled as write_error."""

    def broken(_rows: np.ndarray, _offset: int) -> dict:
        raise OSError(errno.ENOENT, "bpf map lookup: No such file or directory")

    w = _writer(tmp_path, to_columns=broken)
    w.add(_events(10))
    with pytest.raises(OSError) as err:
        w.close(10**9)
    assert not isinstance(err.value, WriteError)


def test_calls_completed_after_a_cut_wait_for_the_next_file(tmp_path: Path) -> None:
    """A cut seals exactly the calls completed before it: a call still settling (others may be
    written into the ring around it) goes into the next file, never into both or neither."""
    w = _writer(tmp_path, rotate_seconds=3600)
    early = _events(1000, start=1_000)
    late = _events(10, start=int(early["ts_ns"][-1]) + SETTLE_NS * 3 // 2)
    w.add(early)
    w.add(late)
    w._cut(w._watermark())  # what a rotation does
    w.close(int(late["ts_ns"][-1]) + 10**6)
    files = sorted(tmp_path.glob("*.parquet"))
    metas = [schema.read_file_metadata(str(f)) for f in files]
    assert [m.events for m in metas] == [1000, 10]
    assert metas[0].end_ns == metas[1].start_ns
    for f, m in zip(files, metas, strict=True):
        t = pq.read_table(f)
        exits = pc.add(t["ts_ns"], t["latency_ns"])
        assert m.start_ns <= pc.min(exits).as_py() and pc.max(exits).as_py() < m.end_ns


def test_losses_are_on_disk_before_any_file_carries_them(tmp_path: Path) -> None:
    lost = {"ringbuf_full": 0}
    w = _writer(tmp_path, lost=lost)
    assert _ledger(tmp_path).lost == {} and _ledger(tmp_path).state == "recording"
    lost["ringbuf_full"] = 7
    w.update_ledger()  # what tick() does every second
    assert _ledger(tmp_path).lost == {"ringbuf_full": 7}
    w.add(_events(5))
    w.close(10**9)
    assert not list(tmp_path.glob("*" + LEDGER_SUFFIX)), "a clean stop leaves no ledger"
    (meta,) = [schema.read_file_metadata(str(f)) for f in tmp_path.glob("*.parquet")]
    assert meta.lost["ringbuf_full"] == 7 and meta.events == 5


def test_a_failed_recording_keeps_its_losses_in_the_ledger(tmp_path: Path) -> None:
    lost = {"write_error": 0}
    w = _writer(tmp_path, lost=lost)
    w.add(_events(5))
    w.tick()
    lost["write_error"] = 42 + w.abandon()
    w.finish_ledger("failed", {"discarded_at_stop": 3})
    ledger = _ledger(tmp_path)
    assert ledger.state == "failed" and ledger.lost == {"write_error": 47, "discarded_at_stop": 3}
    assert ledger.from_ns <= ledger.to_ns and ledger.recording_id == w.recording_id
    assert json.loads(next(tmp_path.glob("*" + LEDGER_SUFFIX)).read_text())["kind"] == "losses"


def test_an_unreadable_stack_costs_the_row_its_stack_not_the_recording() -> None:
    from sockopt_trace.recorder.attached import Probe
    from sockopt_trace.recorder.loader import Handles
    from sockopt_trace.recorder.probe import ProbeConfig

    r, w = os.pipe()  # not a BPF map: every lookup fails
    try:
        handles = Handles("tracepoint", {}, {"stacks": r}, {"stacks": 1016}, {})
        probe = Probe(handles, ProbeConfig())
        assert probe.stack(5) == [] and probe.stacks_unreadable == 1
    finally:
        os.close(r)
        os.close(w)


def test_record_leaves_its_options_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """record() runs `-- COMMAND` by adding its pid to a copy of the probe settings."""
    from sockopt_trace.recorder import session

    def refuse(_cfg: object) -> None:
        raise UserError("no probe mode attaches here", 3)

    monkeypatch.setattr(session.environment, "require_root", lambda: None)
    monkeypatch.setattr(session, "attach", refuse)
    opts = session.RecordOptions(output=tmp_path / "rec", command=["true"])
    before = repr(opts)
    with pytest.raises(UserError, match="no probe mode"):
        session.record(opts)
    assert repr(opts) == before
    assert not (tmp_path / "rec").exists(), "a refused recording leaves no directory"
