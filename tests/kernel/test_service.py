"""The systemd unit's command lines, run for real under a supervisor this test controls.

systemd is not available here, so the test plays its part: it reads ExecStartPre/ExecStart
from contrib/systemd/sockopt-trace.service, expands the unit's variables as systemd does,
listens on NOTIFY_SOCKET (Type=notify), and goes through start, SIGTERM, restart, SIGKILL,
restart, SIGTERM, with a workload of known calls during each run. The recording must stay one
consistent directory, readable throughout, with no `recover` needed after SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.kernel.support import attached_programs, cli, program_loaded

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "sockopt-trace.service"
INSTALLED = "/usr/local/bin/sockopt-trace"  # the unit's literal path; here: this checkout


def unit_service() -> dict[str, list[str]]:
    """[Service] settings of the unit, each key with its values in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def expand(command: str, env: dict[str, str]) -> list[str]:
    """systemd's expansion: `$VAR` as a word splits at whitespace, `${VAR}` stays one word."""
    words: list[str] = []
    for word in shlex.split(command):
        m = re.fullmatch(r"\$(\w+)", word)
        if m:
            words += env.get(m[1], "").split()
            continue
        words.append(re.sub(r"\$\{(\w+)\}", lambda v: env.get(v[1], ""), word))
    if words[0] == INSTALLED:
        words[:1] = [sys.executable, "-m", "sockopt_trace"]
    return words


@dataclass
class Supervisor:
    """What systemd does for this unit: run ExecStartPre, start ExecStart with NOTIFY_SOCKET,
    wait for READY=1, stop with SIGTERM within TimeoutStopSec, keep the journal (stderr)."""

    env: dict[str, str]
    journal: Path
    notify: socket.socket = field(init=False)
    proc: subprocess.Popen | None = None
    messages: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = self.journal.with_suffix(".notify")
        self.notify.bind(str(path))
        self.env["NOTIFY_SOCKET"] = str(path)
        svc = unit_service()
        self.settings = svc
        for assignment in svc["Environment"]:
            key, _, value = assignment.strip('"').partition("=")
            self.env.setdefault(key, value)  # the test's values stand for /etc/default's

    def seconds(self, key: str) -> float:
        return float(self.settings[key][0])

    def start(self) -> subprocess.Popen:
        assert self.settings["Type"] == ["notify"]
        for pre in self.settings.get("ExecStartPre", []):
            may_fail = pre.startswith("-")
            done = subprocess.run(
                expand(pre.lstrip("-"), self.env), env=self.env, capture_output=True, text=True
            )
            assert may_fail or done.returncode == 0, done.stderr
        (start,) = self.settings["ExecStart"]
        with open(self.journal, "a") as journal:
            self.proc = subprocess.Popen(
                expand(start, self.env), env=self.env, stderr=journal, stdout=journal
            )
        self.messages = []
        deadline = time.monotonic() + self.seconds("TimeoutStartSec")
        while not any(m.get("READY") == "1" for m in self.messages):
            assert self.proc.poll() is None, f"exited before READY=1: {self.journal.read_text()}"
            assert time.monotonic() < deadline, "no READY=1 within TimeoutStartSec"
            self._receive(0.2)
        return self.proc

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=self.seconds("TimeoutStopSec"))
        while self._receive(0.05):
            pass
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def _receive(self, timeout: float) -> bool:
        self.notify.settimeout(timeout)
        try:
            data = self.notify.recv(4096).decode()
        except TimeoutError:
            return False
        self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))
        return True


def run_workload(workload_bin: Path, rounds: int) -> int:
    out = subprocess.run(
        [str(workload_bin), str(rounds), "2"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)["pid"]


def test_the_unit_under_a_supervisor(tmp_path: Path, workload_bin: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o750)  # StateDirectory= makes it
    env = {
        **os.environ,
        "SOCKOPT_TRACE_DIR": str(directory),
        "SOCKOPT_TRACE_OPTS": "--comm calls --rotate-interval 2s",
    }
    sup = Supervisor(env, tmp_path / "journal.log")
    calls_per_run = 6 * 50 * 2

    # 1. start: ready only once the probes are attached; SIGTERM: exit 0, everything sealed
    proc = sup.start()
    assert attached_programs(proc.pid), "READY=1 came before the probes were attached"
    assert sup.messages[0]["MAINPID"] == str(proc.pid)
    first = run_workload(workload_bin, 50)
    assert sup.stop() == 0
    assert any(m.get("STOPPING") == "1" for m in sup.messages)
    assert not list(directory.glob("*.partial")), "SIGTERM left a partial file"

    # 2. restart into the same directory; a file is sealed (2 s rotation), then SIGKILL
    # mid-recording: the calls since the last seal are lost with the recorder
    proc = sup.start()
    programs = attached_programs(proc.pid)
    second = run_workload(workload_bin, 50)
    time.sleep(3)
    killed = run_workload(workload_bin, 50)
    sup.kill()
    assert not any(program_loaded(p) for p in programs), "a SIGKILLed recorder left programs"

    # 3. restart: ExecStartPre's recover sets the killed run's partial file aside; SIGTERM
    proc = sup.start()
    assert not list(directory.glob("*.partial"))
    third = run_workload(workload_bin, 50)
    assert sup.stop() == 0
    assert not list(directory.glob("*.partial"))

    # One consistent directory: every file whole, calls of the cleanly stopped runs exact.
    files = sorted(directory.glob("*.parquet"))
    metas = {f.name: schema.read_file_metadata(str(f)) for f in files}
    table = pq.ParquetDataset(files).read(columns=["pid"])
    by_pid = Counter(table.column("pid").to_pylist())
    for pid in (first, second, third):
        assert by_pid[pid] == calls_per_run
    assert by_pid[killed] <= calls_per_run
    assert sum(m.events for m in metas.values()) == table.num_rows
    assert len({m.recording_id for m in metas.values()}) == 3
    info = cli("info", str(directory), "--format", "json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["recordings"][-1]["events"] == table.num_rows  # the total

    # The journal: one line per sealed file, with the counts its metadata holds.
    journal = sup.journal.read_text()
    sealed = dict(re.findall(r"sealed (\S+\.parquet): ([\d,]+) events", journal))
    assert {name: int(n.replace(",", "")) for name, n in sealed.items()} == {
        name: m.events for name, m in metas.items()
    }
