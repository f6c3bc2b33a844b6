"""Record real getsockopt(2) calls from real processes and check every row against what the
workload is known to have done (tests/workloads/calls.c)."""

from __future__ import annotations

import base64
import errno
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.kernel import support
from tests.kernel.support import (
    attached_programs,
    cli,
    held_maps,
    map_exists,
    program_loaded,
    start_recorder,
)

pytestmark = pytest.mark.kernel

SOL_SOCKET, IPPROTO_TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
# (function, level, optname, return value) for each call the workload makes per round
CALLS = [
    ("poll_so_error", SOL_SOCKET, socket.SO_ERROR, 0),
    ("query_rcvbuf", SOL_SOCKET, socket.SO_RCVBUF, 0),
    ("query_tcp_info", IPPROTO_TCP, socket.TCP_INFO, 0),
    ("bad_fd", SOL_SOCKET, socket.SO_TYPE, -errno.EBADF),
    ("not_a_socket", SOL_SOCKET, socket.SO_TYPE, -errno.ENOTSOCK),
    ("unknown_option", SOL_SOCKET, 12345, -errno.ENOPROTOOPT),
]


def read_recording(directory: Path) -> tuple[pa.Table, list[schema.RecordingMetadata]]:
    files = sorted(directory.glob("*.parquet"))
    assert files, f"no files in {directory}"
    metas = [schema.read_file_metadata(str(f)) for f in files]
    table = pa.concat_tables(pq.read_table(f) for f in files)
    return table, metas


def assert_calls_exact(mine: list[dict], report: dict, each: int) -> None:
    """The rows of one run of tests/workloads/calls.c (`report` is what it printed) are exactly
    the calls it made: `each` of every kind in CALLS, by the right threads, named at their call
    sites, with the arguments and optlen it passed."""
    assert len(mine) == len(CALLS) * each
    by_kind = Counter((r["level"], r["optname"], r["ret"]) for r in mine)
    for _, level, optname, ret in CALLS:
        assert by_kind[(level, optname, ret)] == each
    assert {r["tid"] for r in mine} == set(report["tids"])
    assert {r["comm"] for r in mine} == {"calls"}
    assert {r["uid"] for r in mine} == {os.getuid()}
    assert all(r["latency_ns"] > 0 for r in mine)

    # every call site names the function that made the call
    for function, level, optname, ret in CALLS:
        sites = {
            r["callsite"]
            for r in mine
            if (r["level"], r["optname"], r["ret"]) == (level, optname, ret)
        }
        assert len(sites) == 1 and sites.pop().startswith(f"{function}+0x"), (function, sites)

    # arguments and optlen, read from user memory at entry and exit
    for r in mine:
        if r["ret"] == -errno.EBADF:
            assert r["fd"] == -1
        elif r["ret"] == -errno.ENOTSOCK:
            assert r["fd"] not in (-1, report["fd"])
        else:
            assert r["fd"] == report["fd"]
        if (r["level"], r["optname"]) == (IPPROTO_TCP, socket.TCP_INFO):
            assert r["optlen_in"] >= r["optlen_out"] > 100  # struct tcp_info
        elif r["ret"] == 0:
            assert r["optlen_in"] == r["optlen_out"] == 4
        else:
            assert r["optlen_in"] == 4


def test_command_calls_are_recorded_exactly(tmp_path: Path, workload_bin: Path) -> None:
    rounds, threads = 50, 2
    out = tmp_path / "rec"
    # lingering 50 ms after its last call, as real programs do: symbols of a process that exits
    # within a millisecond are best effort (docs/reliability.md)
    result = cli("record", "-o", str(out), "--", str(workload_bin), str(rounds), str(threads), "50")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    table, metas = read_recording(out)
    rows = table.to_pylist()

    mine = [r for r in rows if r["pid"] == report["pid"]]
    assert len(rows) == len(mine), "the command filter let other processes in"
    assert_calls_exact(mine, report, rounds * threads)
    ts = [r["ts_ns"] for r in rows]
    assert ts == sorted(ts)
    assert abs(ts[0] - time.time_ns()) < 120e9, "timestamps are not wall-clock UTC"

    assert len(metas) == 1
    meta = metas[0]
    assert (meta.format, meta.format_version) == (schema.FORMAT_NAME, schema.FORMAT_VERSION)
    assert meta.probe in support.expected_probes()
    assert meta.events == len(rows)
    assert meta.lost_total == 0
    assert meta.filters.command == [str(workload_bin), str(rounds), str(threads), "50"]
    assert meta.host == socket.gethostname() and meta.kernel == os.uname().release
    assert meta.start_ns <= ts[0] and meta.end_ns >= ts[-1]
    assert not list(out.glob("*.partial")), "a temporary file was left behind"
    assert (os.stat(next(out.glob("*.parquet"))).st_mode & 0o777) == 0o640


def test_exit_status_of_the_command_passes_through(tmp_path: Path) -> None:
    result = cli("record", "-q", "-o", str(tmp_path / "r"), "--", "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr
    killed = cli("record", "-q", "-o", str(tmp_path / "k"), "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr


def test_children_of_the_command_are_traced(tmp_path: Path, workload_bin: Path) -> None:
    out = tmp_path / "rec"
    script = f"{workload_bin} 10 1 && {workload_bin} 20 1"
    result = cli("record", "-q", "-o", str(out), "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    table, _ = read_recording(out)
    per_pid = sorted(Counter(table["pid"].to_pylist()).values())
    assert per_pid == [10 * len(CALLS), 20 * len(CALLS)]


def _start_loop(workload: Path, background: list, name: str | None = None) -> subprocess.Popen:
    """A workload that keeps calling until the test kills it, however slow the machine: a
    bounded run finished before a loaded machine had compiled and attached the recorder."""
    exe = workload
    if name:
        exe = workload.parent / name
        if not exe.exists():
            shutil.copy(workload, exe)
    proc = subprocess.Popen([str(exe), "2000000000", "1"], stdout=subprocess.DEVNULL)
    background.append(proc)
    return proc


def test_pid_filter_keeps_only_that_process(
    tmp_path: Path, workload_bin: Path, background: list
) -> None:
    wanted = _start_loop(workload_bin, background)
    other = _start_loop(workload_bin, background)
    time.sleep(0.2)
    out = tmp_path / "rec"
    result = cli("record", "-q", "-o", str(out), "--pid", str(wanted.pid), "--duration", "1s")
    assert result.returncode == 0, result.stderr
    table, metas = read_recording(out)
    pids = Counter(table["pid"].to_pylist())
    assert set(pids) == {wanted.pid} and other.pid not in pids
    assert pids[wanted.pid] > 1000
    assert metas[0].filters.pids == [wanted.pid]


def test_comm_filter_keeps_only_that_name(
    tmp_path: Path, workload_bin: Path, background: list
) -> None:
    name = f"othername{os.getpid() % 100000}"  # ours alone: other suites may run beside
    _start_loop(workload_bin, background)
    named = _start_loop(workload_bin, background, name=name)
    time.sleep(0.2)
    out = tmp_path / "rec"
    result = cli("record", "-q", "-o", str(out), "--comm", name, "--duration", "1s")
    assert result.returncode == 0, result.stderr
    table, _ = read_recording(out)
    assert set(table["comm"].to_pylist()) == {name}
    assert set(table["pid"].to_pylist()) == {named.pid}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_seals_the_file(
    tmp_path: Path, workload_bin: Path, sig: int, background: list
) -> None:
    out = tmp_path / "rec"
    rec = start_recorder("-o", str(out), "--comm", "calls")
    background.append(rec)
    ours = attached_programs(rec.pid)
    assert len(ours) >= 2, "the recorder holds no attached programs"
    maps = held_maps(rec.pid)
    assert maps, "the recorder holds no BPF maps"
    made = subprocess.run(
        [str(workload_bin), "100", "2"], capture_output=True, text=True, check=True
    )
    pid = json.loads(made.stdout)["pid"]
    rec.send_signal(sig)
    assert rec.wait(timeout=60) == 0, rec.stderr.read()
    table, metas = read_recording(out)
    assert Counter(table["pid"].to_pylist())[pid] == 100 * 2 * len(CALLS)
    assert metas[-1].end_ns > metas[-1].start_ns
    assert not list(out.glob("*.partial"))
    assert not [p for p in ours if program_loaded(p)], "programs left loaded after the stop"
    assert not [m for m in maps if map_exists(m)], "maps left behind after the stop"


def test_rotation_by_size_seals_every_file(tmp_path: Path, workload_bin: Path) -> None:
    out = tmp_path / "rec"
    result = cli(
        "record",
        "-q",
        "-o",
        str(out),
        "--rotate-size",
        "20k",
        "--",
        str(workload_bin),
        "20000",
        "2",
    )
    assert result.returncode == 0, result.stderr
    table, metas = read_recording(out)
    assert len(metas) >= 2
    assert [m.sequence for m in metas] == list(range(1, len(metas) + 1))
    assert len({m.recording_id for m in metas}) == 1
    assert sum(m.events for m in metas) == table.num_rows == 20000 * 2 * len(CALLS)


def test_full_stacks_put_the_caller_back(tmp_path: Path, workload_bin: Path) -> None:
    """A frame-pointer walk from libc's wrapper skips the calling function; the folded stack
    must have it back, between its caller and getsockopt. (The workload lingers 100 ms: libc's
    frames can only be named if the process is still there when its maps are read.)"""
    out = tmp_path / "rec"
    result = cli(
        "record", "-q", "-o", str(out), "--stacks", "--", str(workload_bin), "30", "2", "100"
    )
    assert result.returncode == 0, result.stderr
    table, metas = read_recording(out)
    assert metas[0].stacks == "full" and metas[0].stacks_lost == 0
    for function, *_ in CALLS:
        stacks = {
            s
            for s, c in zip(table["stack"].to_pylist(), table["callsite"].to_pylist(), strict=True)
            if c.startswith(f"{function}+")
        }
        assert len(stacks) == 1, stacks
        assert stacks.pop().endswith(f";worker;{function};getsockopt")


def test_default_recording_has_no_stacks_but_call_sites(tmp_path: Path, workload_bin: Path) -> None:
    out = tmp_path / "rec"
    assert cli("record", "-q", "-o", str(out), "--", str(workload_bin), "5", "1").returncode == 0
    table, metas = read_recording(out)
    assert metas[0].stacks == "callsite"
    assert table["stack"].null_count == table.num_rows
    assert table["callsite"].null_count == 0
    off = tmp_path / "off"
    assert (
        cli(
            "record", "-q", "-o", str(off), "--no-callsites", "--", str(workload_bin), "5", "1"
        ).returncode
        == 0
    )
    table, metas = read_recording(off)
    assert metas[0].stacks == "off" and table["callsite"].null_count == table.num_rows
    only = tmp_path / "stacks-only"
    result = cli(
        "record",
        "-q",
        "-o",
        str(only),
        "--stacks",
        "--no-callsites",
        "--",
        str(workload_bin),
        "5",
        "1",
        "100",
    )
    assert result.returncode == 0, result.stderr
    table, metas = read_recording(only)
    assert metas[0].stacks == "full" and table["callsite"].null_count == table.num_rows
    assert table["stack"].null_count == 0, "--stacks --no-callsites wrote no stacks"
    assert all(s.endswith(";getsockopt") for s in table["stack"].to_pylist())


def test_rotation_by_time(tmp_path: Path, workload_bin: Path, background: list) -> None:
    _start_loop(workload_bin, background)
    out = tmp_path / "rec"
    result = cli(
        "record",
        "-q",
        "-o",
        str(out),
        "--comm",
        "calls",
        "--rotate-interval",
        "1s",
        "--duration",
        "3.5s",
    )
    assert result.returncode == 0, result.stderr
    table, metas = read_recording(out)
    assert len(metas) >= 3
    for before, after in itertools.pairwise(metas):
        assert before.end_ns == after.start_ns  # back to back: no gap, no overlap
    for f, m in zip(sorted(out.glob("*.parquet")), metas, strict=True):
        t = pq.read_table(f)  # each holds exactly the calls completed in its span
        exits = pc.add(t["ts_ns"], t["latency_ns"])
        assert m.start_ns <= pc.min(exits).as_py() and pc.max(exits).as_py() < m.end_ns
    assert sum(m.events for m in metas) == table.num_rows


def test_live_status_line_on_a_terminal(tmp_path: Path, loop_bin: Path) -> None:
    """On a terminal the recorder shows events/s, lost and bytes written as it goes."""
    import pty

    out = tmp_path / "rec"
    cmd = [
        sys.executable,
        "-m",
        "sockopt_trace",
        *support.with_probe(["record", "-o", str(out)]),
        "--",
        str(loop_bin),
        "3000000",
        "1",
    ]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(cmd[0], cmd)
    screen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert re.search(r"\r\s*[\d.]+s\s+[\d,]+ events\s+[\d,]+/s\s+lost 0\s+[\d.,]+ MB written", text)


def test_tracefs_is_mounted_when_missing(tmp_path: Path) -> None:
    tracing = Path("/sys/kernel/tracing")
    if os.path.ismount(tracing):
        subprocess.run(["umount", str(tracing)], check=True)
    assert not (tracing / "events").is_dir()
    result = cli("record", "-q", "-o", str(tmp_path / "r"), "--duration", "0.5s")
    assert result.returncode == 0, result.stderr
    assert (tracing / "events" / "syscalls").is_dir()


def test_call_sites_of_a_short_lived_grandchild_are_named(
    tmp_path: Path, workload_bin: Path
) -> None:
    """A program started by the traced command's shell, which exits 100 ms after its last call:
    the kernel announces its exec at once, so its maps are read while it lives."""
    out = tmp_path / "rec"
    script = f"{workload_bin} 20 1 100 >/dev/null; true"
    result = cli("record", "-q", "-o", str(out), "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    table, _ = read_recording(out)
    assert table.num_rows == 20 * len(CALLS)
    sites = {s.split("+")[0] for s in table["callsite"].to_pylist()}
    assert sites == {function for function, *_ in CALLS}


def test_quiet_prints_nothing_but_errors(tmp_path: Path, workload_bin: Path) -> None:
    quiet = cli("record", "-q", "-o", str(tmp_path / "q"), "--", str(workload_bin), "2", "1")
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = cli("record", "-o", str(tmp_path / "l"), "--", str(workload_bin), "2", "1")
    assert "recording getsockopt calls" in loud.stderr and "12 events in 1 files" in loud.stderr


def test_a_cached_program_records_like_a_compiled_one(tmp_path: Path, loop_bin: Path) -> None:
    """The first recorder of a configuration compiles and saves the program; the next loads it
    without bcc; a damaged entry is refused by the kernel, compiled afresh and replaced."""
    env = {**os.environ, "SOCKOPT_TRACE_CACHE": str(tmp_path / "cache")}

    def run(name: str) -> str:
        out = tmp_path / name
        result = cli(
            "record",
            "-o",
            str(out),
            "--probe",
            "tracepoint",
            "--",
            str(loop_bin),
            "5000",
            "1",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        _, metas = read_recording(out)
        assert sum(m.events for m in metas) == 5000 and not sum(m.lost_total for m in metas)
        return result.stderr

    assert "tracepoint probe, compiled" in run("first")
    (entry,) = (tmp_path / "cache" / "programs").glob("*.json")
    assert entry.stat().st_mode & 0o077 == 0
    assert "tracepoint probe, cached program" in run("second")
    spec = json.loads(entry.read_text())
    for prog in spec["progs"]:  # cut short: the verifier refuses it
        insns = base64.b64decode(prog["insns"])
        prog["insns"] = base64.b64encode(insns[: len(insns) // 16 * 8]).decode()
    entry.write_text(json.dumps(spec))
    assert "tracepoint probe, compiled" in run("third")
    assert "tracepoint probe, cached program" in run("fourth")
