"""Call sites of processes that exit right after their calls are named, every time: the same
short-lived program run 20 times while both cores are busy, recorded at once by three
recorders (under `-- COMMAND`, system-wide and `--comm`), plus direct `-- PROGRAM` runs.

The program (tests/workloads/calls.c, 5 rounds, 3 threads, no linger) makes its 90 calls from
six functions within a few milliseconds of its exec and exits at once: reading /proc/PID/maps
after the first event arrives loses that race (issue 12: every call site was [unknown])."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sockopt_trace.recorder.elfsyms import ElfSymbols
from tests.kernel.support import cli, start_recorder
from tests.kernel.test_record import CALLS, read_recording

pytestmark = pytest.mark.kernel

RUNS, ROUNDS, THREADS = 20, 5, 3
PER_RUN = ROUNDS * THREADS * len(CALLS)
FUNCTION = {(level, optname, ret): fn for fn, level, optname, ret in CALLS}


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Both cores kept busy by spinning processes for the whole test."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for p in spinners:
        p.kill()
        p.wait()


def check_named(directory: Path, runs: list[dict], binary: Path, mode: str) -> None:
    """Every call of every run is there, and every call site names the function that made the
    call, in the right file, at the right place.

    A system-wide recorder also records the other processes of the host, whose calls may
    overflow its buffers on a busy machine: what it lost is counted, never made up for."""
    table, metas = read_recording(directory)
    elf = ElfSymbols(str(binary))
    pids = pa.array([run["pid"] for run in runs], pa.int32())
    rows = table.filter(pc.is_in(table["pid"], pids)).to_pylist()
    lost = sum(m.lost_total for m in metas)
    expected = len(runs) * PER_RUN
    assert len(rows) == expected or (lost and expected - lost <= len(rows) < expected), (
        f"{mode}: {len(rows)} of {expected} calls, {lost} lost"
    )
    for r in rows:
        expected = FUNCTION[(r["level"], r["optname"], r["ret"])]
        assert r["callsite"].split("+")[0] == expected, f"{mode}: pid {r['pid']} {r}"
        assert r["callsite_object"] == str(binary)
        assert r["callsite_build_id"] == elf.build_id
        assert elf.lookup(r["callsite_offset"])[0] == expected
        assert elf.address(r["callsite_offset"]) == r["callsite_address"]


def test_call_sites_of_short_lived_processes_are_named_every_time(
    tmp_path: Path, workload_bin: Path, busy_cores: None
) -> None:
    args = [str(workload_bin), str(ROUNDS), str(THREADS), "0"]
    everywhere = start_recorder("-o", str(tmp_path / "all"))
    by_comm = start_recorder("-o", str(tmp_path / "comm"), "--comm", workload_bin.name)
    try:
        loop = f"for i in $(seq {RUNS}); do {' '.join(args)} || exit 1; done"
        command = cli("record", "-q", "-o", str(tmp_path / "cmd"), "--", "sh", "-c", loop)
        assert command.returncode == 0, command.stderr
        runs = [json.loads(line) for line in command.stdout.splitlines()]
        direct = []
        for i in range(2):  # the program itself as the command, as a user would first try
            one = cli("record", "-q", "-o", str(tmp_path / f"direct{i}"), "--", *args)
            assert one.returncode == 0, one.stderr
            direct.append(json.loads(one.stdout))
    finally:
        for rec in (everywhere, by_comm):
            rec.send_signal(signal.SIGINT)
        for rec in (everywhere, by_comm):
            assert rec.wait(timeout=60) == 0, rec.stderr.read() if rec.stderr else ""
    assert len(runs) == RUNS
    check_named(tmp_path / "cmd", runs, workload_bin, "-- COMMAND")
    for i, run in enumerate(direct):
        check_named(tmp_path / f"direct{i}", [run], workload_bin, "direct")
    for mode in ("all", "comm"):
        check_named(tmp_path / mode, runs + direct, workload_bin, mode)
