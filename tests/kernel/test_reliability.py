"""Nothing lost silently: every call is in a sealed file or counted as lost, by reason, and a
recorder that is killed, starved or out of disk leaves only whole files under final names."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from sockopt_trace.ledger import Ledger
from tests.kernel.support import attached_programs, cli, program_loaded, start_recorder

pytestmark = pytest.mark.kernel


def sealed(directory: Path) -> list[schema.RecordingMetadata]:
    return [schema.read_file_metadata(str(f)) for f in sorted(directory.glob("*.parquet"))]


def final_counts(stderr: str) -> tuple[int, int]:
    """(events, lost) from the recorder's closing line."""
    m = re.search(r"([\d,]+) events in \d+ files, [\d,]+ bytes, lost ([\d,]+)", stderr)
    assert m, stderr
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


def test_conservation_every_call_is_a_row(tmp_path: Path, loop_bin: Path) -> None:
    out = tmp_path / "rec"
    result = cli("record", "-o", str(out), "--", str(loop_bin), "10007", "1")
    assert result.returncode == 0, result.stderr
    metas = sealed(out)
    assert sum(m.events for m in metas) == 10007
    assert sum(m.lost_total for m in metas) == 0
    # this kernel (6.7+) reports runs of our programs it skipped: counted, here none
    assert all(m.skipped_runs_counted and m.lost["kernel_skipped"] == 0 for m in metas)
    assert final_counts(result.stderr) == (10007, 0)
    rows = sum(pq.read_metadata(f).num_rows for f in out.glob("*.parquet"))
    assert rows == 10007


def test_forced_loss_is_counted_exactly_everywhere(tmp_path: Path, loop_bin: Path) -> None:
    """A one-page ring buffer and two threads at full speed: the kernel drops, and the kernel
    counter, the file metadata and the closing line agree, and recorded + lost == made."""
    out = tmp_path / "rec"
    made = 2 * 300_000
    result = cli("record", "-o", str(out), "--ringbuf", "4k", "--", str(loop_bin), "300000", "2")
    assert result.returncode == 0, result.stderr
    metas = sealed(out)
    recorded = sum(m.events for m in metas)
    lost = {r: sum(m.lost[r] for m in metas) for r in schema.LOSS_REASONS}
    assert lost["ringbuf_full"] > 0
    assert recorded + lost["ringbuf_full"] == made
    assert all(v == 0 for r, v in lost.items() if r != "ringbuf_full"), lost
    assert final_counts(result.stderr) == (recorded, lost["ringbuf_full"])
    assert f"ringbuf_full {lost['ringbuf_full']:,}" in result.stderr
    info = cli("info", str(out), "--format", "json")
    assert info.returncode == 0, info.stderr
    overview = json.loads(info.stdout)["recordings"][-1]  # one recording: its row
    assert overview["lost_ringbuf_full"] == lost["ringbuf_full"] == overview["lost"]
    assert overview["events"] == recorded


def test_disk_full_stops_cleanly_and_keeps_sealed_files(tmp_path: Path, loop_bin: Path) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], check=True)
    try:
        out = mnt / "rec"
        result = cli(
            "record", "-o", str(out), "--rotate-size", "64k", "--", str(loop_bin), "4000000", "1"
        )
        assert result.returncode == 4, result.stderr
        errors = [ln for ln in result.stderr.splitlines() if "error:" in ln]
        assert len(errors) == 1 and "No space left on device" in errors[0], result.stderr
        assert "Traceback" not in result.stderr
        metas = sealed(out)
        assert metas, "no file was sealed before the disk filled"
        for f in out.glob("*.parquet"):  # every final name is a whole, readable file
            assert pq.read_table(f).num_rows == schema.read_file_metadata(str(f)).events
        recorded, lost = final_counts(result.stderr)
        assert recorded == sum(m.events for m in metas)
        assert lost > 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_sigkill_leaves_only_whole_files(tmp_path: Path, loop_bin: Path) -> None:
    """Killed at random moments with one-second rotation: every *.parquet opens (pyarrow and
    DuckDB), the file being written is a .partial, and what is lost is within its interval."""
    import duckdb

    rng = random.Random(1234)
    for attempt in range(4):
        out = tmp_path / f"rec{attempt}"
        rec = start_recorder("-o", str(out), "--comm", "loop", "--rotate-interval", "1s")
        ours = attached_programs(rec.pid)
        assert ours
        work = subprocess.Popen([str(loop_bin), "100000000", "1"], stdout=subprocess.DEVNULL)
        give_up = time.monotonic() + 60  # a loaded machine: the first seal can take seconds
        while not list(out.glob("*.parquet")) and time.monotonic() < give_up:
            time.sleep(0.05)
        time.sleep(rng.random() * 2.5)
        killed_at = time.time_ns()
        rec.send_signal(signal.SIGKILL)
        rec.wait()
        work.kill()
        work.wait()
        finals = sorted(out.glob("*.parquet"))
        partials = sorted(out.glob("*" + schema.PARTIAL_SUFFIX))
        assert len(partials) <= 1
        for f in finals:
            meta = schema.read_file_metadata(str(f))
            assert pq.read_table(f).num_rows == meta.events
            count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{f}')").fetchall()[0][0]
            assert count == meta.events
        assert finals, "nothing sealed in more than one rotation interval"
        last = schema.read_file_metadata(str(finals[-1]))
        # The last sealed file ends where its calls end (files are back to back), so what is
        # missing is the last interval plus what the recorder had not written yet: its backlog,
        # seconds at most when the machine is overloaded (the ring holds 32 MiB of calls).
        assert killed_at - last.end_ns < 8e9, "lost much more than the last rotation interval"
        assert not [p for p in ours if program_loaded(p)], "a killed recorder left programs"
        fixed = cli("recover", str(out), "--format", "csv")
        assert fixed.returncode == 0, fixed.stderr
        assert not list(out.glob("*" + schema.PARTIAL_SUFFIX))
        # killed before the footer: quarantined; between footer and rename: salvaged, whole
        quarantined = sorted(out.glob("*" + schema.QUARANTINE_SUFFIX))
        salvaged = [p for p in partials if p.with_name(p.name.removesuffix(".partial")).exists()]
        assert len(quarantined) + len(salvaged) == len(partials), fixed.stdout
        info = json.loads(cli("info", str(out), "--format", "json").stdout)
        gaps = [g for g in info.get("gaps", []) if g["problem"].startswith("no data")]
        assert len(gaps) == 1, info  # the killed span is shown, not silence
        # from the end of the last sealed file (salvaged ones too) to the last sign of life
        now_last = schema.read_file_metadata(str(sorted(out.glob("*.parquet"))[-1]))
        (ledger,) = out.glob("*.losses.json")
        (window,) = Ledger.from_bytes(ledger.read_bytes()).no_data
        assert window.from_ns == now_last.end_ns <= window.to_ns <= killed_at


def test_record_reports_json_parseable_output_of_command(tmp_path: Path, loop_bin: Path) -> None:
    """The traced command's stdout passes through untouched (the recorder writes on stderr)."""
    result = cli("record", "-q", "-o", str(tmp_path / "r"), "--", str(loop_bin), "10", "1")
    assert json.loads(result.stdout)["calls"] == 10


def test_exit_without_entry_is_counted_alone(tmp_path: Path) -> None:
    """A call already inside the kernel when recording starts (held there by userfaultfd, see
    tests/workloads/stuck.c) completes with no entry: only that counter moves."""
    exe = tmp_path / "stuck"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-o",
            str(exe),
            str(Path(__file__).parents[1] / "workloads" / "stuck.c"),
            "-lpthread",
        ],
        check=True,
    )
    stuck = subprocess.Popen(
        [str(exe), "5"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert stuck.stdout.readline().strip() == "blocked"
        out = tmp_path / "rec"
        rec = start_recorder("-o", str(out), "--pid", str(stuck.pid))
        stuck.stdin.write("go\n")
        stuck.stdin.flush()
        assert json.loads(stuck.stdout.readline())["calls"] == 5
        assert stuck.wait(timeout=30) == 0
        time.sleep(0.2)
        rec.send_signal(signal.SIGINT)
        assert rec.wait(timeout=60) == 0
    finally:
        stuck.kill()
    metas = sealed(out)
    assert sum(m.events for m in metas) == 5
    lost = {r: sum(m.lost[r] for m in metas) for r in schema.LOSS_REASONS}
    assert lost == {**dict.fromkeys(schema.LOSS_REASONS, 0), "exit_without_entry": 1}


def test_odd_thread_names_are_kept_escaped(tmp_path: Path) -> None:
    """A thread name that is not UTF-8 is recorded escaped, not dropped or mangled."""
    code = (
        "import ctypes, socket; libc = ctypes.CDLL(None); "
        "libc.prctl(15, ctypes.c_char_p(b'\\xffodd\\x01name'), 0, 0, 0); "
        "s = socket.socket(); [s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) for _ in range(3)]"
    )
    out = tmp_path / "rec"
    result = cli("record", "-q", "-o", str(out), "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(list(out.glob("*.parquet")))
    names = set(table.filter(pc.equal(table["optname"], socket.SO_TYPE))["comm"].to_pylist())
    assert names == {"\\xffodd\x01name"}
