"""A stripped program, recorded by the real recorder, named afterwards from its debug file as a
real debuginfod server (elfutils, on 127.0.0.1) serves it: `symbolize` names every function
that called getsockopt, with file:line and the inlined frame; reports use the names by
themselves; the recorded files stay byte for byte what the recorder wrote."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace.recorder.elfsyms import ElfSymbols
from tests.kernel.conftest import WORKLOADS
from tests.kernel.support import cli

pytestmark = pytest.mark.kernel

SOURCE = WORKLOADS / "layers.c"
ROUNDS = 50


def call_lines() -> dict[str, int]:
    """The line of each marked getsockopt call in the source."""
    lines = SOURCE.read_text().splitlines()
    return {m[1]: i for i, line in enumerate(lines, 1) if (m := re.search(r"CALL (\w+)", line))}


@pytest.fixture(scope="module")
def stripped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(stripped binary, its separate debug file, build-id), as distributions make them."""
    work = tmp_path_factory.mktemp("stripped")
    full, binary, debug = work / "full", work / "bin" / "layers", work / "debug" / "layers.debug"
    binary.parent.mkdir()
    debug.parent.mkdir()
    subprocess.run(["gcc", "-O2", "-g", "-o", str(full), str(SOURCE)], check=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(full), str(debug)], check=True)
    subprocess.run(["strip", "--strip-all", "-o", str(binary), str(full)], check=True)
    subprocess.run(["objcopy", f"--add-gnu-debuglink={debug}", str(binary)], check=True)
    build_id = ElfSymbols(str(binary)).build_id
    assert build_id and ElfSymbols(str(debug)).build_id == build_id
    assert not len(ElfSymbols(str(binary))), "stripped: no function symbols left"
    return binary, debug, build_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def debuginfod(
    stripped: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Debian's debuginfod serving the debug file's directory, until it answers for it."""
    _, debug, build_id = stripped
    db = tmp_path_factory.mktemp("debuginfod") / "index.sqlite"
    port = free_port()
    server = subprocess.Popen(
        ["debuginfod", "-F", "-p", str(port), "-d", str(db), "-g", "0", str(debug.parent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/buildid/{build_id}/debuginfo", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "debuginfod never served"
        time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=30)


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.parquet")}


def test_symbolize_names_a_stripped_program_from_debuginfod(
    tmp_path: Path, stripped: tuple[Path, Path, str], debuginfod: str
) -> None:
    binary, _, build_id = stripped
    rec = tmp_path / "rec"
    done = cli("record", "-q", "-o", str(rec), "--", str(binary), str(ROUNDS))
    assert done.returncode == 0, done.stderr
    pid = json.loads(done.stdout)["pid"]
    table = pq.read_table(rec).to_pylist()
    assert len(table) == 3 * ROUNDS and {r["pid"] for r in table} == {pid}
    # as recorded: only where, not what (the binary has no symbols)
    assert {r["callsite"].split("+")[0] for r in table} == {"layers"}
    assert {r["callsite_build_id"] for r in table} == {build_id}
    before = digests(rec)

    env = {**os.environ, "DEBUGINFOD_URLS": debuginfod, "XDG_CACHE_HOME": str(tmp_path / "c")}
    named = cli("symbolize", str(rec), "--format", "json", env=env)
    assert named.returncode == 0, named.stderr
    summary = json.loads(named.stdout)
    assert summary == [
        {
            "object": str(binary),
            "build_id": build_id,
            "locations": 3,
            "named": 3,
            "with_lines": 3,
            "from": f"debuginfod {debuginfod}",
        }
    ]
    assert digests(rec) == before, "the recorded files were changed"
    assert (rec / "sockopt-trace.symbols").is_file()

    lines = call_lines()
    query = "SELECT DISTINCT optname_name, callsite FROM events ORDER BY 1"
    rows = json.loads(cli("query", str(rec), query, "--format", "json").stdout)
    sites = {r["optname_name"]: r["callsite"] for r in rows}
    assert re.fullmatch(rf"check_connected\+0x[0-9a-f]+ \(layers\.c:{lines['check_connected']}\)",
                        sites["SO_ERROR"])  # fmt: skip
    assert re.fullmatch(rf"buffer_size\+0x[0-9a-f]+ \(layers\.c:{lines['buffer_size']}\)",
                        sites["SO_RCVBUF"])  # fmt: skip
    assert re.fullmatch(
        rf"log_request\+0x[0-9a-f]+ \(layers\.c:\d+\) > peer_rtt \(layers\.c:{lines['peer_rtt']}\)",
        sites["TCP_INFO"],
    ), "the inlined function is named, inside the function it was inlined into"


def test_reports_name_call_sites_by_themselves(
    tmp_path: Path, stripped: tuple[Path, Path, str], debuginfod: str
) -> None:
    """No `symbolize` run: the report finds the debug information itself (DEBUGINFOD_URLS),
    keeps it in the sidecar, and the next report needs no server."""
    binary, _, _ = stripped
    rec = tmp_path / "rec"
    assert cli("record", "-q", "-o", str(rec), "--", str(binary), "5").returncode == 0
    env = {**os.environ, "DEBUGINFOD_URLS": debuginfod, "XDG_CACHE_HOME": str(tmp_path / "c")}
    first = cli("report", str(rec), "callsites", "--format", "csv", env=env)
    assert first.returncode == 0, first.stderr
    assert "named 3 of 3" in first.stderr
    rows = csv.DictReader(io.StringIO(first.stdout))  # csv: the recorded text, then the name
    names = {row["callsite_name"].split("+")[0] for row in rows}
    assert names == {"check_connected", "buffer_size", "log_request"}
    shutil.rmtree(tmp_path / "c")  # no cache, no server: the sidecar is enough
    env.pop("DEBUGINFOD_URLS")
    again = cli("report", str(rec), "callsites", "--format", "csv", env=env)
    assert again.stdout == first.stdout and "named" not in again.stderr
