"""The shipped sample recordings (sample_traces/, made by sample_traces/record.sh) are whole,
readable with plain pyarrow, small, and hold what their programs really did.

The expectations are facts of the traced programs (which options they ask, how often per request
or connection), and counts come from the driving command stored in each file's metadata (ab -n,
curl's URL range, ...), so they hold for any re-recording, not just for the files shipped now.
"""

from __future__ import annotations

import errno
import re
import shutil
import socket
from collections import Counter
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"
NAMES = ("nginx-before", "nginx-after", "curl", "python-asyncio", "pgbench", "haproxy-nginx-unix")
REPLICATES = ("steady-before", "steady-after")  # 3 runs each, one subdirectory per run
CONTEXT = ("nginx-context",)  # recorded with --context: socket, value and cgroup columns
TOTAL_BUDGET = 10 * 1024 * 1024  # all of sample_traces/
FILE_BUDGET = 2 * 1024 * 1024  # any one recording file

SOCKET_SO_ERROR = (socket.SOL_SOCKET, socket.SO_ERROR)
SOCKET_SO_ACCEPTCONN = (socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
TCP_INFO = (socket.IPPROTO_TCP, socket.TCP_INFO)
IP_SO_ORIGINAL_DST = (socket.IPPROTO_IP, 80)  # linux/netfilter_ipv4.h; not in Python's socket


class Sample:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = SAMPLES / name
        self.files = sorted(self.dir.glob(f"*{schema.FILE_SUFFIX}"))
        self.table = pq.read_table(self.files)  # not the symbols sidecar a report may leave
        self.metadata = [schema.read_file_metadata(str(f)) for f in self.files]
        self.rows = self.table.to_pylist()

    @property
    def driver(self) -> list[str]:
        """The command the recording ran and traced (`record ... -- COMMAND`)."""
        return self.metadata[0].filters.command

    def option(self, row: dict) -> tuple[int, int]:
        return (row["level"], row["optname"])

    def calls(self, comm: str | None = None) -> Counter[tuple[int, int]]:
        """Calls per (level, optname), of one program or of all."""
        return Counter(self.option(r) for r in self.rows if comm in (None, r["comm"]))

    def rets(self, comm: str, option: tuple[int, int]) -> set[int]:
        return {r["ret"] for r in self.rows if r["comm"] == comm and self.option(r) == option}


@cache
def sample(name: str) -> Sample:
    return Sample(name)


def flag(argv: list[str], name: str) -> int:
    """The integer value of a command-line flag such as `-n 20000`."""
    return int(argv[argv.index(name) + 1])


def per_connection(calls: int, connections: int) -> None:
    """At most one call per connection, and one for most of them. CPython and libpq ask SO_ERROR
    only when a non-blocking connect did not complete at once, which on loopback is nearly always.
    """
    assert connections // 2 < calls <= connections


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_whole_and_self_describing(name: str) -> None:
    s = sample(name)
    assert s.files, f"{s.dir} holds no {schema.FILE_SUFFIX} file"
    assert not list(s.dir.glob(f"*{schema.PARTIAL_SUFFIX}"))
    # recorded before the columns of schema.ADDED_COLUMNS existed
    assert s.table.column_names == [c for c in schema.COLUMNS if c not in schema.ADDED_COLUMNS]
    for path, meta in zip(s.files, s.metadata, strict=True):
        assert meta.format == schema.FORMAT_NAME
        assert meta.format_version == schema.FORMAT_VERSION
        assert meta.probe == "tracepoint"
        assert meta.stacks == "callsite"
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", meta.recorder_version)
        assert meta.lost_total == 0, f"{path.name} lost events: {meta.lost}"
        assert meta.events == pq.ParquetFile(path).metadata.num_rows
        assert meta.start_ns <= meta.end_ns
        assert meta.command_line[1] == "record"
        assert meta.command_line[meta.command_line.index("-o") + 1] == f"sample_traces/{name}"
    assert len({m.recording_id for m in s.metadata}) == 1
    assert sum(m.events for m in s.metadata) == s.table.num_rows > 0


@pytest.mark.parametrize("name", [*NAMES, *CONTEXT])
def test_sample_rows_are_real_calls_with_named_call_sites(name: str) -> None:
    s = sample(name)
    start = min(m.start_ns for m in s.metadata)
    end = max(m.end_ns for m in s.metadata)
    for r in s.rows:
        assert start <= r["ts_ns"] <= end
        assert 0 < r["latency_ns"] < 10**9
        assert r["optlen_in"] > 0
        assert r["ret"] <= 0
        # symbolized at record time, while the process was alive: no `[unknown]` in the samples
        assert r["callsite"] and r["callsite"] != "[unknown]"
        assert r["stack"] is None


def test_samples_fit_the_size_budget() -> None:
    files = [p for p in SAMPLES.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for p in files:
        if p.suffix == ".parquet":
            assert p.stat().st_size < FILE_BUDGET, p
    assert sum(p.stat().st_size for p in files) < TOTAL_BUDGET
    dirs = {p.name for p in SAMPLES.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert dirs == {*NAMES, *REPLICATES, *CONTEXT, "stripped", "stripped-debug"}


def test_nginx_before_asks_so_error_once_per_proxied_request() -> None:
    s = sample("nginx-before")
    requests = flag(s.driver, "-n")
    assert s.driver[0] == "ab"
    assert {r["comm"] for r in s.rows} == {"nginx"}
    # a new upstream connection per request, checked with SO_ERROR; no TCP_INFO in this config
    assert s.calls() == {SOCKET_SO_ERROR: requests}
    assert s.rets("nginx", SOCKET_SO_ERROR) == {0}


def test_nginx_after_adds_tcp_info_once_per_request() -> None:
    before, after = sample("nginx-before"), sample("nginx-after")
    requests = flag(after.driver, "-n")
    assert after.driver == before.driver  # the same load; only nginx's log format changed
    assert {r["comm"] for r in after.rows} == {"nginx"}
    assert after.calls() == {SOCKET_SO_ERROR: requests, TCP_INFO: requests}
    assert after.rets("nginx", TCP_INFO) == {0}
    # two distinct call sites in nginx: the upstream connect check and the $tcpinfo_rtt variable
    sites = {after.option(r): r["callsite"] for r in after.rows}
    assert sites[SOCKET_SO_ERROR] != sites[TCP_INFO]
    assert sites[SOCKET_SO_ERROR] == before.rows[0]["callsite"]


def test_nginx_context_says_which_socket_what_value_which_cgroup() -> None:
    """nginx-after's load recorded with --context: the upstream connect check (SO_ERROR) is on a
    new connection to the backend each time and found no error; the $tcpinfo_rtt lookup
    (TCP_INFO) is on the client's connection to the proxy's port, established, with an RTT."""
    s, after = sample("nginx-context"), sample("nginx-after")
    assert s.driver == after.driver
    requests = flag(s.driver, "-n")
    proxy = int(re.search(r":(\d+)/", s.driver[-1])[1])
    assert s.table.column_names == [*schema.COLUMNS, *schema.CONTEXT_COLUMNS]
    assert all(m.lost_total == 0 and m.probe == "tracepoint" for m in s.metadata)
    assert s.calls() == {SOCKET_SO_ERROR: requests, TCP_INFO: requests}
    for r in s.rows:
        assert (r["family"], r["sock_type"], r["protocol"]) == (socket.AF_INET, 1, 6)
        assert r["state"] == 1 and r["local_addr"] == r["peer_addr"] == "127.0.0.1"  # ESTABLISHED
        assert r["cgroup"] and r["cgroup_id"] > 0
    upstream = [r for r in s.rows if s.option(r) == SOCKET_SO_ERROR]
    assert {r["value"] for r in upstream} == {0}  # SO_ERROR: no error
    (backend,) = {r["peer_port"] for r in upstream}  # one backend, a new local port each time
    assert backend != proxy and proxy not in {r["local_port"] for r in upstream}
    assert len({r["local_port"] for r in upstream}) > requests // 10
    clients = [r for r in s.rows if s.option(r) == TCP_INFO]
    assert {r["local_port"] for r in clients} == {proxy}
    assert {r["tcpi_state"] for r in clients} == {1} and all(r["tcpi_rtt_us"] > 0 for r in clients)
    assert all(r["value"] is None for r in clients)  # TCP_INFO has its own columns


def test_curl_asks_so_error_per_connection() -> None:
    s = sample("curl")
    assert s.driver[0] == "curl"
    first, last = map(int, re.search(r"\[(\d+)-(\d+)\]", s.driver[-1]).groups())
    assert {r["comm"] for r in s.rows} == {"curl"}
    assert set(s.calls()) == {SOCKET_SO_ERROR}
    # `Connection: close`: a new connection for every URL
    assert s.calls()[SOCKET_SO_ERROR] == last - first + 1
    # one call site, inside libcurl (stripped of internal symbols: shown as library+offset)
    (site,) = {r["callsite"] for r in s.rows}
    assert site.startswith("libcurl.so")


def test_python_asyncio_asks_so_error_per_connection() -> None:
    s = sample("python-asyncio")
    assert s.driver[0] == "/usr/bin/python3"
    assert {r["comm"] for r in s.rows} == {"python3"}
    assert set(s.calls()) == {SOCKET_SO_ERROR}
    per_connection(s.calls()[SOCKET_SO_ERROR], flag(s.driver, "--requests"))
    assert len({r["pid"] for r in s.rows}) == 1


def test_pgbench_libpq_asks_so_error_per_connection_and_the_server_none() -> None:
    s = sample("pgbench")
    assert s.driver[0].endswith("/pgbench") and "-C" in s.driver
    assert "postgres" in s.metadata[0].filters.comms  # the server was traced too...
    assert {r["comm"] for r in s.rows} == {"pgbench"}  # ...and made no call
    assert set(s.calls()) == {SOCKET_SO_ERROR}
    # -C: a connection per transaction, plus pgbench's first one
    per_connection(s.calls()[SOCKET_SO_ERROR], flag(s.driver, "-c") * flag(s.driver, "-t") + 1)
    assert {r["callsite"].split("+")[0] for r in s.rows} == {"PQconnectPoll"}


def test_haproxy_and_nginx_on_a_unix_socket_fail_per_request() -> None:
    s = sample("haproxy-nginx-unix")
    assert s.driver[0] == "haproxy"
    assert {r["comm"] for r in s.rows} == {"haproxy", "nginx"}
    nginx, haproxy = s.calls("nginx"), s.calls("haproxy")
    # $tcpinfo_rtt on a Unix socket: TCP_INFO fails with EOPNOTSUPP, once per request
    assert set(nginx) == {TCP_INFO}
    assert s.rets("nginx", TCP_INFO) == {-errno.EOPNOTSUPP}
    # haproxy looks for a NAT'ed original destination per request (none: ENOENT)
    assert haproxy[IP_SO_ORIGINAL_DST] == nginx[TCP_INFO] > 0
    assert s.rets("haproxy", IP_SO_ORIGINAL_DST) == {-errno.ENOENT}
    # and, traced from its start, sets up its listener with a few one-off questions
    assert haproxy[SOCKET_SO_ACCEPTCONN] == 1
    startup = set(haproxy) - {IP_SO_ORIGINAL_DST}
    assert len(startup) >= 3
    assert all(s.rets("haproxy", option) == {0} for option in startup)


@pytest.mark.parametrize("name", REPLICATES)
def test_replicate_samples_hold_each_run_of_steady_exactly(name: str) -> None:
    """`record --repeat 3` of tests/workloads/steady.c: one whole recording per run, each with
    exactly the calls its command line asks for (ROUNDS x THREADS per function; SO_TYPE on fd
    -1 one round in 10; with `xrs`, SO_RCVBUF twice per round and an SO_SNDBUF call site)."""
    runs = sorted(p for p in (SAMPLES / name).iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["1", "2", "3"]
    ids = set()
    for run in runs:
        files = sorted(run.glob(f"*{schema.FILE_SUFFIX}"))
        metas = [schema.read_file_metadata(str(f)) for f in files]
        assert files and not list(run.glob(f"*{schema.PARTIAL_SUFFIX}"))
        assert all(m.lost_total == 0 and m.probe == "tracepoint" for m in metas)
        assert metas[0].command_line[metas[0].command_line.index("-o") + 1] == (
            f"sample_traces/{name}"
        )
        ids |= {m.recording_id for m in metas}
        command = metas[0].filters.command
        rounds, threads = int(command[1]), int(command[2])
        changes = command[3] if len(command) > 3 else ""
        calls = rounds * threads
        rows = pq.read_table(files).to_pylist()
        counted = Counter((r["level"], r["optname"], r["ret"] < 0) for r in rows)
        expected = {
            (socket.SOL_SOCKET, socket.SO_ERROR, False): calls,
            (socket.SOL_SOCKET, socket.SO_RCVBUF, False): calls * (2 if "r" in changes else 1),
            (socket.IPPROTO_TCP, socket.TCP_INFO, False): calls,
            (socket.SOL_SOCKET, socket.SO_TYPE, False): calls - threads * (rounds // 10),
            (socket.SOL_SOCKET, socket.SO_TYPE, True): threads * (rounds // 10),
            (socket.SOL_SOCKET, 59, False): calls,  # SO_PEERGROUPS
        }
        if "x" in changes:
            expected[(socket.SOL_SOCKET, socket.SO_SNDBUF, False)] = calls
        assert counted == expected
        assert all(r["callsite"] and r["callsite"] != "[unknown]" for r in rows)
    assert len(ids) == 3  # told apart by their recording ids


@pytest.mark.skipif(shutil.which("llvm-symbolizer") is None, reason="needs llvm-symbolizer")
def test_stripped_sample_is_named_from_its_debug_file(tmp_path: Path) -> None:
    """A stripped program (tests/workloads/layers.c) as recorded: where each call is, not what;
    then named by `symbolize` from its debug file, with file:line and the inlined function."""
    from sockopt_trace.analyzer.debuginfo import DebugInfo
    from sockopt_trace.analyzer.load import load
    from sockopt_trace.analyzer.recording import open_recording
    from sockopt_trace.analyzer.symbolize import symbolize

    s = sample("stripped")
    assert len(s.rows) == 3 * int(s.driver[-1])
    assert {r["callsite"].split("+")[0] for r in s.rows} == {"layers"}
    assert len({r["callsite_build_id"] for r in s.rows}) == 1
    assert all(m.unresolved_sites == 3 for m in s.metadata)
    rec = tmp_path / "stripped"
    shutil.copytree(s.dir, rec)
    debug = DebugInfo([SAMPLES / "stripped-debug"], system=False, urls=[], cache=tmp_path / "c")
    done = symbolize(open_recording([rec]), debug)
    assert [(o.named, o.lines) for o in done.objects] == [(3, 3)]
    source = (SAMPLES.parent / "tests/workloads/layers.c").read_text().splitlines()
    line = {m[1]: i for i, t in enumerate(source, 1) if (m := re.search(r"CALL (\w+)", t))}
    sites = dict(
        load([rec]).con.execute("SELECT DISTINCT optname_name, callsite FROM events").fetchall()
    )
    assert re.fullmatch(rf"check_connected\+0x\w+ \(layers\.c:{line['check_connected']}\)",
                        sites["SO_ERROR"])  # fmt: skip
    assert re.fullmatch(rf"buffer_size\+0x\w+ \(layers\.c:{line['buffer_size']}\)",
                        sites["SO_RCVBUF"])  # fmt: skip
    assert re.fullmatch(rf"log_request\+0x\w+ \(layers\.c:\d+\) > peer_rtt \(layers\.c:"
                        rf"{line['peer_rtt']}\)", sites["TCP_INFO"])  # fmt: skip
