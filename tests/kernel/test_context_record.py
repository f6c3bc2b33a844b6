"""Record the context of real calls (issue 16): the socket, the value returned, the cgroup.

tests/workloads/sockets.py makes getsockopt calls on sockets of every kind and reports what
each call returned and what the socket is by the kernel's other interfaces (getsockname,
getpeername, SO_DOMAIN/SO_TYPE/SO_PROTOCOL); it runs in a cgroup made here. Every row must
say exactly that, Unix sockets' paths too (both ends of a connection, abstract names, unbound).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace.recorder.cgroups import v2_root
from tests.kernel.support import cli, start_recorder

pytestmark = pytest.mark.kernel
WORKLOAD = Path(__file__).resolve().parents[1] / "workloads" / "sockets.py"
SOL_SOCKET, SO_TYPE, SO_DOMAIN, SO_PROTOCOL = 1, 3, 39, 38
TCPI = (
    "tcpi_state",
    "tcpi_retransmits",
    "tcpi_lost",
    "tcpi_rtt_us",
    "tcpi_rttvar_us",
    "tcpi_snd_cwnd",
    "tcpi_total_retrans",
    "tcpi_delivery_rate",
)


@contextlib.contextmanager
def cgroup(*parts: str) -> Iterator[Path]:
    """A new cgroup v2 directory (and its parents), removed afterwards."""
    root = v2_root()
    assert root is not None, "no cgroup v2 hierarchy to make a cgroup in"
    made = []
    path = root
    for part in parts:
        path = path / part
        path.mkdir()
        made.append(path)
    try:
        yield path
    finally:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()


def in_cgroup(directory: Path, *command: str) -> list[str]:
    """COMMAND run inside `directory`'s cgroup from its first instruction."""
    return ["sh", "-c", f'echo $$ > "{directory}/cgroup.procs" && exec "$@"', "sh", *command]


def expected_rows(report: dict, cgroup_id: int) -> list[dict]:
    """The rows the recording must hold for one run of the workload, in order."""
    ident: dict[int, dict[int, int]] = {}
    for c in report["calls"]:
        if c["level"] == SOL_SOCKET and c["optname"] in (SO_DOMAIN, SO_TYPE, SO_PROTOCOL):
            ident.setdefault(c["fd"], {})[c["optname"]] = c["value"]
    unit = report["cgroup"].rsplit("/", 1)[-1]
    rows = []
    for c in report["calls"]:
        socket_known = "state" in c
        sock = ident.get(c["fd"], {}) if socket_known else {}
        tcp_info = (c["level"], c["optname"]) == (6, 11) and c["ret"] == 0
        rows.append(
            {
                "fd": c["fd"],
                "level": c["level"],
                "optname": c["optname"],
                "ret": c["ret"],
                "cgroup_id": cgroup_id,
                "cgroup": report["cgroup"],
                "unit": unit,
                "pod": None,
                "container": None,
                "family": sock.get(SO_DOMAIN),
                "sock_type": sock.get(SO_TYPE),
                "protocol": sock.get(SO_PROTOCOL),
                "state": c.get("state"),
                "local_addr": c.get("local_addr"),
                "local_port": c.get("local_port"),
                "peer_addr": c.get("peer_addr"),
                "peer_port": c.get("peer_port"),
                "value": c["value"],
                **{k: c.get(k) if tcp_info else None for k in TCPI},
            }
        )
    return rows


def recorded_rows(out: Path, pid: int, columns: list[str]) -> list[dict]:
    files = sorted(out.glob("*.parquet"))
    assert files, f"no files in {out}"
    rows = [r for f in files for r in pq.read_table(f).to_pylist() if r["pid"] == pid]
    rows.sort(key=lambda r: r["ts_ns"])
    return [{k: r[k] for k in columns} for r in rows]


def test_every_rows_socket_value_and_cgroup_are_exact(tmp_path: Path) -> None:
    name = f"sockopt-trace-test-{os.getpid()}.scope"
    with cgroup(name) as directory:
        out = tmp_path / "rec"
        command = in_cgroup(directory, sys.executable, str(WORKLOAD), str(tmp_path / "u.sock"))
        result = cli("record", "--context", "-q", "-o", str(out), "--", *command)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["cgroup"].endswith("/" + name)
        expected = expected_rows(report, os.stat(directory).st_ino)
    got = recorded_rows(out, report["pid"], list(expected[0]))
    assert len(got) == len(expected) == 49
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, (i, {k: (g[k], e[k]) for k in e if g[k] != e[k]})
    # every kind the issue names is in there
    kinds = {(e["family"], e["sock_type"], e["state"], e["peer_addr"] is None) for e in expected}
    assert {(2, 1, 1, False), (10, 1, 1, False), (2, 2, 7, True), (2, 1, 10, True)} <= kinds
    assert {(1, 1, 1, True), (2, 1, 8, False), (None, None, None, True)} <= kinds
    assert {(1, 1, 1, False), (1, 2, 1, False), (1, 1, 10, True)} <= kinds
    unix = {(e["local_addr"], e["peer_addr"]) for e in expected if e["family"] == 1}
    path = str(tmp_path / "u.sock")
    tag = f"@sockopt-trace-{report['pid']}"
    assert unix == {  # client, accepted, listener, abstract datagram client, socketpair
        (None, path),
        (path, None),
        (f"{tag}-client", f"{tag}-server@x"),
        (None, None),
    }


def test_cgroup_filter_keeps_that_cgroup_and_those_below_it(tmp_path: Path) -> None:
    name = f"sockopt-trace-filter-{os.getpid()}.slice"
    with cgroup(name, "inner.scope") as inner:
        out = tmp_path / "rec"
        rec = start_recorder("--context", "-o", str(out), "--cgroup", f"/{name}")
        try:
            runs = {}
            for label, command in (
                ("inside", in_cgroup(inner, sys.executable, str(WORKLOAD), str(tmp_path / "a"))),
                ("outside", [sys.executable, str(WORKLOAD), str(tmp_path / "b")]),
            ):
                done = subprocess.run(command, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stderr
                runs[label] = json.loads(done.stdout)
        finally:
            rec.send_signal(signal.SIGINT)
            assert rec.wait(timeout=60) == 0, rec.stderr.read() if rec.stderr else ""
    rows = [r for f in sorted(out.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert {r["pid"] for r in rows} == {runs["inside"]["pid"]}
    assert len(rows) == len(runs["inside"]["calls"]) == len(runs["outside"]["calls"])
    assert {r["cgroup"] for r in rows} == {f"/{name}/inner.scope"}


def test_a_cgroup_that_does_not_exist_is_refused_in_one_line(tmp_path: Path) -> None:
    result = cli("record", "-o", str(tmp_path / "rec"), "--cgroup", "/no/such/cgroup")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "bad --cgroup" in result.stderr
