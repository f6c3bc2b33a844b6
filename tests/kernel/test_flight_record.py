"""record --flight: the last DURATION in memory, written out by `sockopt-trace dump`, by
SIGUSR1 and by a trigger, each dump a recording of its own; then it goes on.

The workload's own counts are the ground truth: a dump holds every call of a workload that ran
within DURATION before it, none of one that ran longer ago, and a burst split by a trigger's
dump and the next one is whole across the two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.kernel.support import cli

pytestmark = pytest.mark.kernel


def workload(binary: Path, rounds: int) -> int:
    out = subprocess.run([str(binary), str(rounds), "2"], capture_output=True, text=True)
    return json.loads(out.stdout)["pid"]


def calls(files: list[Path]) -> Counter[int]:
    return Counter(pq.read_table(files, columns=["pid"]).column("pid").to_pylist())


def test_flight_recorder_dumps_on_demand_and_on_a_trigger(
    tmp_path: Path, workload_bin: Path
) -> None:
    out, journal = tmp_path / "rec", tmp_path / "journal.log"
    # a name of our own: other suites on this machine run the same workload beside us
    binary = tmp_path / f"flight{os.getpid() % 100000}"
    shutil.copy(workload_bin, binary)
    args = ["record", "-o", str(out), "--comm", binary.name, "--flight", "4s"]
    args += ["--trigger", "errors>3000/s", "--log"]
    with open(journal, "w") as f:
        rec = subprocess.Popen([sys.executable, "-m", "sockopt_trace", *args], stderr=f)
    try:
        deadline = time.monotonic() + 120
        while "recording getsockopt" not in journal.read_text():
            assert rec.poll() is None and time.monotonic() < deadline, journal.read_text()
            time.sleep(0.1)
        assert "flight recorder" in journal.read_text()

        old = workload(binary, 50)  # 300 errors: under the trigger
        time.sleep(5)  # older than the flight's 4 s by the time of the dump
        recent = workload(binary, 50)
        time.sleep(0.5)
        assert not list(out.glob("*.parquet")), "something was written before any dump"
        first = cli("dump", str(out))  # the recorder found from its lock file in DIR
        assert first.returncode == 0, first.stderr
        dump1 = [Path(p) for p in first.stdout.split()]
        got = calls(dump1)
        assert got[recent] == 600 and got[old] == 0 and sum(got.values()) == 600

        burst = workload(binary, 2000)  # 12,000 errors within a second: the trigger fires
        deadline = time.monotonic() + 30
        while "trigger errors>3000/s" not in journal.read_text():
            assert time.monotonic() < deadline, journal.read_text()
            time.sleep(0.1)
        time.sleep(1.5)
        before = set(out.glob("*.parquet"))
        rec.send_signal(signal.SIGUSR1)  # the rest of the burst, if the trigger cut it
        deadline = time.monotonic() + 30
        while len(set(out.glob("*.parquet")) - before) == 0 or list(out.glob("*.partial")):
            assert time.monotonic() < deadline, journal.read_text()
            time.sleep(0.1)
        time.sleep(1)
    finally:
        rec.send_signal(signal.SIGTERM)
        assert rec.wait(60) == 0

    files = sorted(out.glob("*.parquet"))
    metas = [schema.read_file_metadata(str(f)) for f in files]
    by_recording = Counter(m.recording_id for m in metas)
    assert len(by_recording) == 3  # three dumps, each a recording of its own
    assert calls(files)[burst] == 2000 * 2 * 6  # whole across the trigger's dump and the next
    assert sum(m.events for m in metas) == sum(calls(files).values())
    info = cli("info", str(out), "--format", "json")
    assert info.returncode == 0, info.stderr
    rows = json.loads(info.stdout)["recordings"]
    assert [r["recording"] for r in rows].count("total") == 1 and len(rows) == 3 + 1
    assert journal.read_text().count("sockopt-trace: dump (") == 3
