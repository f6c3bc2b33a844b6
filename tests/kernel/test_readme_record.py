"""README's recording commands, run as shown (as root, so without sudo)."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.unit.test_readme import readme_commands

pytestmark = pytest.mark.kernel

RECORD = [c for c in readme_commands() if c.startswith("sudo sockopt-trace record")]


@pytest.fixture(scope="module")
def web_server() -> Iterator[None]:
    """README's example command fetches from 127.0.0.1:8080."""
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "8080", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 8080)) == 0:
                break
        time.sleep(0.05)
    yield
    server.kill()
    server.wait()


def test_readme_has_record_examples() -> None:
    assert len(RECORD) >= 3
    assert any(" -- " in c for c in RECORD) and any("--comm" in c for c in RECORD)


@pytest.mark.parametrize("command", RECORD)
def test_readme_record_command_runs(command: str, tmp_path: Path, web_server: None) -> None:
    argv = shlex.split(command)[2:]  # drop "sudo sockopt-trace"
    result = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,  # --repeat 3: three recordings
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / argv[argv.index("-o") + 1]
    files = list(out.rglob("*.parquet"))
    assert files and not list(out.rglob("*.partial"))
    if "--repeat" in argv:  # one recording per run, in numbered subdirectories
        runs = int(argv[argv.index("--repeat") + 1])
        assert sorted(f.parent.name for f in files) == [str(i) for i in range(1, runs + 1)]
    if " -- " in command:  # the traced command's own calls: curl asks SO_ERROR once per connect
        table = pq.read_table(files)
        assert "curl" in table["comm"].to_pylist()
    if "--max-files" in command:  # retention kept the newest, and said what it removed
        assert len(files) <= int(argv[argv.index("--max-files") + 1])
    if "--max-rate" in command:
        rate = int(argv[argv.index("--max-rate") + 1])
        assert {schema.read_file_metadata(str(f)).max_rate for f in files} == {rate}
    if "--upload" in command:  # every sealed file, in the fleet layout, byte for byte
        dest = tmp_path / argv[argv.index("--upload") + 1]
        shipped = {p.name: p.read_bytes() for p in dest.glob("host=*/date=*/*.parquet")}
        assert shipped == {f.name: f.read_bytes() for f in files}
        assert "uploaded" in result.stderr
