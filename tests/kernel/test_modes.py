"""Every probe mode records the same calls (kernels without a mode refuse it in one line).

What each mode measures as latency: `tracepoint`, from the syscalls:sys_enter_getsockopt
tracepoint to sys_exit_getsockopt (the syscall's own entry to its exit); `kprobe` and `fentry`,
from entry to return of the kernel function recorder/probe.py attaches to (`__sys_getsockopt`, or
the syscall entry `__x64_sys_getsockopt` where that is not traceable), which leaves out the
syscall entry and exit path. So the modes agree on every row but its timing, and latencies are
positive and of the same order in all of them.
"""

from __future__ import annotations

import errno
import json
import socket
import statistics
from pathlib import Path

import pytest

from tests.kernel import support
from tests.kernel.support import cli
from tests.kernel.test_record import assert_calls_exact, read_recording
from tests.kernel.test_record_errors import assert_one_line_error

pytestmark = [pytest.mark.kernel, pytest.mark.all_probes]

SAME = ("level", "optname", "ret", "fd", "optlen_in", "optlen_out", "callsite", "comm", "uid")
SAME += ("cgroup", "family", "sock_type", "protocol", "state", "local_port", "value", "tcpi_state")
TCP_CLOSE = 7  # calls.c's socket is never connected


def assert_context(rows: list[dict]) -> None:
    """Each row's socket is what calls.c made (an unconnected IPv4 TCP socket, or none), read at
    the running kernel's BTF offsets; its cgroup is this test's; values are what they must be."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    own = next(line[3:] for line in lines if line.startswith("0::"))
    for r in rows:
        assert r["cgroup"] == own, r
        got = tuple(r[k] for k in ("family", "sock_type", "protocol", "state", "local_addr"))
        no_socket = r["ret"] in (-errno.EBADF, -errno.ENOTSOCK)
        assert got == ((None,) * 5 if no_socket else (2, 1, 6, TCP_CLOSE, "0.0.0.0")), r
        assert r["peer_addr"] is None and r["peer_port"] is None
        if (r["level"], r["optname"]) == (socket.SOL_SOCKET, socket.SO_ERROR):
            assert r["value"] == 0
        elif (r["level"], r["optname"]) == (socket.SOL_SOCKET, socket.SO_RCVBUF):
            assert r["value"] > 0
        elif (r["level"], r["optname"]) == (socket.IPPROTO_TCP, socket.TCP_INFO):
            assert r["value"] is None and r["tcpi_state"] == TCP_CLOSE
        else:
            assert r["value"] is None and r["ret"] < 0


def test_every_mode_records_the_same_calls(tmp_path: Path, workload_bin: Path) -> None:
    rounds = 20
    rows: dict[str, list[dict]] = {}
    for mode in support.MODES:
        out = tmp_path / mode
        command = [str(workload_bin), str(rounds), "1", "50"]
        result = cli("record", "--probe", mode, "--context", "-q", "-o", str(out), "--", *command)
        if result.returncode != 0:
            assert mode not in support.probe_modes(), result.stderr
            assert_one_line_error(result, 3, f"probe mode {mode}")
            continue
        report = json.loads(result.stdout.strip().splitlines()[-1])
        table, metas = read_recording(out)
        assert [m.probe for m in metas] == [mode]
        rows[mode] = sorted(table.to_pylist(), key=lambda r: r["ts_ns"])
        assert_calls_exact(rows[mode], report, rounds)
        assert_context(rows[mode])
    assert set(support.probe_modes()) <= set(rows), "a mode declared to work did not record"
    assert rows, "no probe mode records on this kernel"

    first, *others = rows
    expected = [tuple(r[k] for k in SAME) for r in rows[first]]
    for mode in others:
        assert [tuple(r[k] for k in SAME) for r in rows[mode]] == expected, (first, mode)
    medians = {m: statistics.median(r["latency_ns"] for r in rs) for m, rs in rows.items()}
    assert min(medians.values()) > 0
    assert max(medians.values()) < 10 * min(medians.values()), medians
