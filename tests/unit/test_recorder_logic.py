"""Pure logic of the recorder, no kernel needed: the event layout, grouping, symbols, writer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from sockopt_trace.errors import UserError
from sockopt_trace.recorder.events import HEADER, counter_names, event_dtype, record_dtype
from sockopt_trace.recorder.grouping import group_rows
from sockopt_trace.recorder.writer import RecordingWriter, WriterConfig, prepare_directory
from sockopt_trace.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]
needs_cc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")


@needs_cc
def test_numpy_dtype_matches_what_the_compiler_lays_out(tmp_path: Path) -> None:
    fields = event_dtype().names
    body = "\n".join(f'printf("{f} %zu\\n", offsetof(struct event, {f}));' for f in fields)
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "typedef uint64_t u64; typedef uint32_t u32; typedef int32_t s32;\n"
        f'#include "{HEADER}"\n'
        "int main(void) {\n"
        f'{body}\nprintf("sizeof %zu\\n", sizeof(struct event));\nreturn 0; }}\n'
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    out = dict(
        line.split()
        for line in subprocess.run(
            [str(exe)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    )
    dt = event_dtype()
    assert int(out["sizeof"]) == dt.itemsize
    for f in fields:
        assert int(out[f]) == dt.fields[f][1], f
    assert record_dtype().itemsize % 8 == 0 and record_dtype().itemsize >= dt.itemsize + 8
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


def _writer(tmp_path: Path, **cfg) -> RecordingWriter:
    from sockopt_trace.recorder.decode import Decoder

    base = dict(
        host="h",
        kernel="k",
        probe="tracepoint",
        recorder_version="0",
        command_line=[],
        filters={},
        stacks="callsite",
        stack_sample_period=1,
    )
    losses = dict.fromkeys((*schema.LOSS_REASONS, "stacks_lost"), 0)
    return RecordingWriter(
        WriterConfig(directory=tmp_path, host="h", **cfg),
        base,
        Decoder("h", None, lambda _: []),
        lambda: dict(losses),
    )


def test_writer_rotates_seals_and_describes_each_file(tmp_path: Path) -> None:
    w = _writer(tmp_path, rotate_bytes=4096, row_group_rows=4096)
    for i in range(10):
        w.add(_events(3000, start=1_000 + i * 3000 * 500))
        w.tick()
    w.close()
    files = sorted(tmp_path.glob("*.parquet"))
    assert len(files) >= 2 and not list(tmp_path.glob("*.partial"))
    metas = [schema.read_file_metadata(str(f)) for f in files]
    assert [m.sequence for m in metas] == list(range(1, len(files) + 1))
    assert (
        sum(m.events for m in metas) == 30_000 == sum(pq.read_metadata(f).num_rows for f in files)
    )
    for f, m in zip(files, metas, strict=True):
        t = pq.read_table(f)
        assert t.schema.equals(schema.ARROW_SCHEMA, check_metadata=False)
        assert m.start_ns <= t["ts_ns"][0].as_py() and m.end_ns >= t["ts_ns"][-1].as_py()
        assert os.stat(f).st_mode & 0o777 == 0o640
    assert set(pq.read_table(files[0])["comm"].to_pylist()) == {"worker"}


def test_writer_sorts_rows_by_time(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    ev = _events(1000)
    w.add(ev[::-1].copy())
    w.close()
    ts = pq.read_table(next(tmp_path.glob("*.parquet")))["ts_ns"].to_pylist()
    assert ts == sorted(ts) and len(ts) == 1000


def test_prepare_directory_refusals(tmp_path: Path) -> None:
    prepare_directory(tmp_path / "new", force=False)
    assert (tmp_path / "new").is_dir()
    (tmp_path / "new" / "a.parquet").write_bytes(b"")
    with pytest.raises(UserError, match="already holds"):
        prepare_directory(tmp_path / "new", force=False)
    prepare_directory(tmp_path / "new", force=True)
    (tmp_path / "link").symlink_to(tmp_path / "new")
    with pytest.raises(UserError, match="symbolic link"):
        prepare_directory(tmp_path / "link", force=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        prepare_directory(tmp_path / "file", force=False)


class _FakeRing:
    """Stands in for the kernel ring buffer: hands out fixed batches, then nothing."""

    size = 1 << 20
    record_size = 88

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches

    def pending_bytes(self) -> int:
        return sum(len(b) for b in self.batches) * self.record_size

    def drain(self) -> np.ndarray:
        return self.batches.pop(0) if self.batches else np.empty(0, event_dtype())

    def wait(self, timeout_ms: int) -> None:
        pass


def test_consumer_counts_what_a_full_queue_drops() -> None:
    """When the writer falls behind, the consumer drops whole batches and counts every event
    (queue_full), instead of blocking the kernel side or growing without bound."""
    import queue

    from sockopt_trace.recorder.consumer import Consumer

    ring = _FakeRing([_events(100) for _ in range(10)])
    out: queue.Queue = queue.Queue()
    seen: list[int] = []
    consumer = Consumer(ring, out, lambda batch: seen.append(len(batch)), max_queued=350)
    consumer.drain_all()
    queued = [out.get_nowait() for _ in range(out.qsize())]
    assert sum(len(b) for b in queued) == 300 and consumer.dropped == 700
    assert consumer.received == 1000
    assert seen == [100] * 3 + [0] * 7, "on_batch sees the queued batches only"
    consumer.taken(300)  # the writer caught up: room again
    ring.batches = [_events(100)]
    consumer.drain_all()
    assert out.qsize() == 1 and consumer.dropped == 700


def test_fleet_layout_writes_host_and_date_directories(tmp_path: Path) -> None:
    """record --layout fleet: DIR/host=NAME/date=YYYY-MM-DD/ (UTC date of the file's start),
    which the analyzer reads back as one recording and prunes by host and date."""
    import time

    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.load import load

    w = _writer(tmp_path, layout="fleet")
    w.add(_events(500))
    w.close()
    day = time.strftime("%Y-%m-%d", time.gmtime())
    files = list(tmp_path.rglob("*.parquet"))
    assert [f.parent.relative_to(tmp_path).as_posix() for f in files] == [f"host=h/date={day}"]
    assert load([tmp_path]).recording.events == 500
    assert load([tmp_path], Filters(where="host = 'h'")).recording.events == 500


def test_fleet_layout_seals_the_file_at_midnight_utc(tmp_path: Path) -> None:
    w = _writer(tmp_path, layout="fleet", rotate_seconds=3600)
    w.add(_events(100))
    w.flush()
    w._start_ns -= 86_400 * 10**9  # the open file began yesterday (UTC)
    w.tick()
    assert len(list(tmp_path.rglob("*.parquet"))) == 1  # sealed at once, not in an hour
    w.close()
