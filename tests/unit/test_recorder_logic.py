"""Pure logic of the recorder, no kernel needed: the event layout, grouping, symbols, writer."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from sockopt_trace.errors import UserError
from sockopt_trace.recorder.events import HEADER, counter_names, event_dtype, record_dtype
from sockopt_trace.recorder.grouping import group_rows
from sockopt_trace.recorder.losses import Tally
from sockopt_trace.recorder.output import prepare_directory
from sockopt_trace.recorder.writer import RecordingWriter, WriterConfig
from sockopt_trace.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]
needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")


@needs_cc
@pytest.mark.parametrize("context", [False, True])
def test_numpy_dtype_matches_what_the_compiler_lays_out(tmp_path: Path, context: bool) -> None:
    fields = event_dtype(context).names
    body = "\n".join(f'printf("{f} %zu\\n", offsetof(struct event, {f}));' for f in fields)
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "typedef uint64_t u64; typedef uint32_t u32; typedef int32_t s32;\n"
        "typedef uint16_t u16; typedef uint8_t u8;\n"
        f'#include "{HEADER}"\n'
        "int main(void) {\n"
        f'{body}\nprintf("sizeof %zu\\n", sizeof(struct event));\nreturn 0; }}\n'
    )
    exe = tmp_path / "layout"
    defines = ["-DCONTEXT"] if context else []
    subprocess.run(["gcc", *defines, "-o", str(exe), str(src)], check=True)
    out = dict(
        line.split()
        for line in subprocess.run(
            [str(exe)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    )
    dt = event_dtype(context)
    assert int(out["sizeof"]) == dt.itemsize
    for f in fields:
        assert int(out[f]) == dt.fields[f][1], f
    assert record_dtype(context).itemsize % 8 == 0
    assert record_dtype(context).itemsize >= dt.itemsize + 8
    assert "cgroup_id" in fields if context else "cgroup_id" not in fields
    assert counter_names()[:2] == ("submitted", "ringbuf_full")


def test_group_rows_matches_exact_grouping() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 5, 10_000).astype(np.int32)
    b = rng.choice(np.array([0x5555_0000_1234, 0x7FFF_0000_0010, 0], dtype=np.uint64), 10_000)
    index, first = group_rows(a, b)
    keys = list(zip(a.tolist(), b.tolist(), strict=True))
    assert len(first) == len(set(keys))
    for row in range(0, 10_000, 97):
        rep = first[index[row]]
        assert keys[rep] == keys[row]
    assert all(index[first[g]] == g for g in range(len(first)))


def test_units() -> None:
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300
    assert parse_duration("1.5h") == 5400 and parse_duration("250ms") == 0.25
    assert (
        parse_size("64M") == 64 << 20 and parse_size("1G") == 1 << 30 and parse_size("512") == 512
    )
    for bad in ("", "x", "-1s", "0", "5 parsecs"):
        with pytest.raises(UserError):
            parse_duration(bad)
    with pytest.raises(UserError):
        parse_size("12 apples")


def _events(n: int, start: int = 1_000) -> np.ndarray:
    ev = np.zeros(n, event_dtype())
    ev["ts_ns"] = start + np.arange(n) * 500
    ev["latency_ns"] = 300 + np.arange(n) % 7
    ev["pid"] = ev["tid"] = 42
    ev["comm"] = b"worker"
    ev["level"], ev["optname"] = 1, 8
    ev["stack_id"] = -1
    return ev


BASE = dict(
    host="h",
    kernel="k",
    probe="tracepoint",
    recorder_version="0",
    command_line=[],
    filters={},
    stacks="callsite",
    stack_sample_period=1,
)


def _writer(tmp_path: Path, to_columns=None, lost=None, start: int = 0, **cfg) -> RecordingWriter:
    from sockopt_trace.recorder.decode import Decoder

    counts = lost if lost is not None else {}
    w = RecordingWriter(
        WriterConfig(directory=tmp_path, host="h", **cfg), lambda: Tally(dict(counts))
    )
    w.begin(start, BASE, to_columns or Decoder("h", None, lambda _: []))
    return w


def _write_rotated(tmp_path: Path) -> list[Path]:
    """30,000 calls through a writer that rotates at 4 KiB: the sealed files, in order."""
    w = _writer(tmp_path, rotate_bytes=4096, row_group_rows=4096)
    for i in range(10):
        w.add(_events(3000, start=1_000 + i * 3000 * 500))
        w.tick()
    w.close(10 * 3000 * 500 + 10_000)
    return sorted(tmp_path.glob("*.parquet"))


def test_writer_rotates_seals_and_describes_each_file(tmp_path: Path) -> None:
    files = _write_rotated(tmp_path)
    assert len(files) >= 2 and not list(tmp_path.glob("*.partial"))
    metas = [schema.read_file_metadata(str(f)) for f in files]
    assert [m.sequence for m in metas] == list(range(1, len(files) + 1))
    assert (
        sum(m.events for m in metas) == 30_000 == sum(pq.read_metadata(f).num_rows for f in files)
    )
    for f, m in zip(files, metas, strict=True):
        t = pq.read_table(f)
        assert t.schema.equals(schema.arrow_schema(), check_metadata=False)
        exits = pc.add(t["ts_ns"], t["latency_ns"]).to_pylist()
        assert m.start_ns <= min(exits) and max(exits) < m.end_ns
        assert os.stat(f).st_mode & 0o777 == 0o640
    for earlier, later in itertools.pairwise(metas):  # back to back: no gap, no overlap
        assert earlier.end_ns == later.start_ns
    assert set(pq.read_table(files[0])["comm"].to_pylist()) == {"worker"}


def test_file_spans_hold_their_rows_whatever_the_clock_reads_jitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new file reads the clock mapping again; reads jitter by some ns (seen in CI: a row
    17 ns before its file's start). Rows and spans must use one mapping, so that every file
    still holds exactly the calls of its span; a real step of the wall clock is taken up."""
    from sockopt_trace.recorder import writer

    offsets = iter([10**18, 10**18 - 60] + [10**18 + 5 * 10**9] * 99)
    monkeypatch.setattr(
        writer, "clock_mapping", lambda: schema.Clock(monotonic_ns=0, realtime_ns=next(offsets))
    )
    files = _write_rotated(tmp_path)
    metas = [schema.read_file_metadata(str(f)) for f in files]
    assert len(files) >= 3
    for f, m in zip(files[:2], metas[:2], strict=True):  # jitter: one mapping, exact spans
        exits = pc.add(pq.read_table(f)["ts_ns"], pq.read_table(f)["latency_ns"]).to_pylist()
        assert m.start_ns <= min(exits) and max(exits) < m.end_ns
        assert m.clock.offset_ns == 10**18
    assert metas[-1].clock.offset_ns == 10**18 + 5 * 10**9  # a step of 5 s is taken up


def test_writer_sorts_rows_by_time(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    ev = _events(1000)
    w.add(ev[::-1].copy())
    w.close(10**9)
    ts = pq.read_table(next(tmp_path.glob("*.parquet")))["ts_ns"].to_pylist()
    assert ts == sorted(ts) and len(ts) == 1000


def test_prepare_directory_refusals(tmp_path: Path) -> None:
    lock = prepare_directory(tmp_path / "new", force=False)
    assert (tmp_path / "new").is_dir()
    lock.release()  # created for a recording that wrote nothing: removed again
    assert not (tmp_path / "new").exists()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.parquet").write_bytes(b"")
    with pytest.raises(UserError, match="already holds"):
        prepare_directory(tmp_path / "new", force=False)
    prepare_directory(tmp_path / "new", force=True).release()
    (tmp_path / "link").symlink_to(tmp_path / "new")
    with pytest.raises(UserError, match="symbolic link"):
        prepare_directory(tmp_path / "link", force=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        prepare_directory(tmp_path / "file", force=False)


@pytest.mark.parametrize("leftover", ["x-000001.parquet.quarantined", "x.losses.json"])
def test_a_directory_with_only_leftovers_is_a_recording(tmp_path: Path, leftover: str) -> None:
    (tmp_path / leftover).write_bytes(b"")
    with pytest.raises(UserError, match="already holds"):
        prepare_directory(tmp_path, force=False)


def test_two_recorders_never_share_a_directory(tmp_path: Path) -> None:
    first = prepare_directory(tmp_path / "rec", force=False)
    with pytest.raises(UserError, match=rf"another recorder \(pid {os.getpid()}\)") as err:
        prepare_directory(tmp_path / "rec", force=True)
    assert err.value.code == 4
    first.release()
    prepare_directory(tmp_path / "rec", force=True).release()


def test_a_directory_that_cannot_take_a_file_is_refused_up_front(tmp_path: Path) -> None:
    """/proc passes every permission check (as root) but no file can be created in it."""
    with pytest.raises(UserError, match="cannot write in /proc") as err:
        prepare_directory(Path("/proc"), force=False)
    assert err.value.code == 4


class _FakeRing:
    """Stands in for the kernel ring buffer: hands out fixed batches, then nothing."""

    size = 1 << 20
    record_size = 88

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches

    def pending_bytes(self) -> int:
        return sum(len(b) for b in self.batches) * self.record_size

    def empty(self) -> np.ndarray:
        return np.empty(0, event_dtype())

    def drain(self, max_records: int = 1 << 16) -> np.ndarray:
        if not self.batches:
            return self.empty()
        batch = self.batches[0]
        if len(batch) <= max_records:
            return self.batches.pop(0)
        self.batches[0] = batch[max_records:]
        return batch[:max_records]


def test_consumer_leaves_calls_in_the_ring_while_the_queue_is_full() -> None:
    """Back-pressure: when the writer falls behind, the consumer stops taking calls out of the
    ring (the kernel's buffer) instead of dropping them, and goes on once the writer takes."""
    import queue
    import threading

    from sockopt_trace.recorder.consumer import Consumer

    ring = _FakeRing([_events(100) for _ in range(10)])
    out: queue.Queue = queue.Queue()
    seen: list[int] = []
    consumer = Consumer(ring, out, lambda batch: seen.append(len(batch)), max_queued=350)
    worker = threading.Thread(target=consumer.drain_all)
    worker.start()
    worker.join(0.3)
    assert worker.is_alive(), "the consumer did not wait for the writer"
    queued = [out.get_nowait() for _ in range(out.qsize())]
    total = sum(len(b) for b in queued)
    assert total == 350 and ring.pending_bytes() == 650 * 88
    consumer.taken(total)  # the writer took them: room again
    while total < 1000:
        batch = out.get(timeout=5)
        consumer.taken(len(batch))
        total += len(batch)
    worker.join(5)
    assert not worker.is_alive() and total == 1000 and consumer.received == 1000
    assert sum(seen) == 1000 and 0 in seen, "on_batch: each batch queued, empty while waiting"
    assert out.get_nowait() == consumer.caught_up_ns > 0  # after every call it vouches for


def test_consumer_stops_waiting_when_aborted() -> None:
    import queue
    import threading

    from sockopt_trace.recorder.consumer import Consumer

    ring = _FakeRing([_events(100) for _ in range(5)])
    consumer = Consumer(ring, queue.Queue(), lambda _p: None, max_queued=100)
    worker = threading.Thread(target=consumer.drain_all)
    worker.start()
    worker.join(0.2)
    assert worker.is_alive()
    consumer.abort_event.set()
    worker.join(2)
    assert not worker.is_alive() and ring.pending_bytes() == 400 * 88


def test_fleet_layout_writes_host_and_date_directories(tmp_path: Path) -> None:
    """record --layout fleet: DIR/host=NAME/date=YYYY-MM-DD/ (UTC date of the file's start),
    which the analyzer reads back as one recording and prunes by host and date."""
    import time

    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.load import load

    now = time.monotonic_ns()
    w = _writer(tmp_path, layout="fleet", start=now)
    w.add(_events(500, start=now))
    w.close(now + 10**6)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    files = list(tmp_path.rglob("*.parquet"))
    assert [f.parent.relative_to(tmp_path).as_posix() for f in files] == [f"host=h/date={day}"]
    assert load([tmp_path]).recording.events == 500
    assert load([tmp_path], Filters(where="host = 'h'")).recording.events == 500


def test_fleet_layout_seals_the_file_at_midnight_utc(tmp_path: Path) -> None:
    import time

    now = time.monotonic_ns()
    w = _writer(tmp_path, layout="fleet", rotate_seconds=3600, start=now)
    w.add(_events(100, start=now))
    w._flush(None)
    w._span_start_mono -= 86_400 * 10**9  # the open file began yesterday (UTC)
    w.tick()
    assert len(list(tmp_path.rglob("*.parquet"))) == 1  # sealed at once, not in an hour
    w.close(time.monotonic_ns())
