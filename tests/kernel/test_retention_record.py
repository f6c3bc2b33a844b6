"""record --max-size with a busy workload and 1 s rotation: the sealed files on disk never
exceed the limit, what remains reads correctly, and `info` says what retention removed, so
that removed + remaining = every call the workload made."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sockopt_trace import schema
from sockopt_trace.retention import RETENTION_NAME, Removed
from tests.kernel.support import cli

pytestmark = pytest.mark.kernel
LIMIT = 300_000


def sealed_bytes(directory: Path) -> int:
    total = 0
    for p in directory.glob("*.parquet"):
        with contextlib.suppress(FileNotFoundError):  # removed since the listing
            total += p.stat().st_size
    return total


def test_bounded_disk_under_a_busy_workload(tmp_path: Path, loop_bin: Path) -> None:
    out, journal = tmp_path / "rec", tmp_path / "journal.log"
    args = ["record", "-o", str(out), "--rotate-interval", "1s", "--max-size", str(LIMIT)]
    args += ["--log", "--", str(loop_bin), "1500000", "1"]  # seconds of calls at full rate
    worst = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal worst
        while not done.is_set():
            worst = max(worst, sealed_bytes(out))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with open(journal, "w") as f:
            run = subprocess.run(
                [sys.executable, "-m", "sockopt_trace", *args],
                stderr=f,
                stdout=subprocess.PIPE,
                text=True,
                timeout=300,
            )
    finally:
        done.set()
        watcher.join()
    assert run.returncode == 0, journal.read_text()
    made = json.loads(run.stdout)["calls"]
    assert 0 < worst <= LIMIT, f"{worst:,} bytes of sealed files on disk, limit {LIMIT:,}"
    assert sealed_bytes(out) <= LIMIT

    removed = Removed.from_bytes((out / RETENTION_NAME).read_bytes())
    metas = [schema.read_file_metadata(str(p)) for p in out.glob("*.parquet")]
    assert removed.files > 0 and removed.by_limit == {"max-size": removed.files}
    kept = sum(m.events for m in metas)
    lost = removed.lost + sum(m.lost_total for m in metas)  # a loaded machine may lose some
    assert removed.calls + kept + lost == made  # what is gone is accounted for, exactly
    # oldest first: one recording, so names sort by sequence
    assert max(removed.last_round) < min(p.name for p in out.glob("*.parquet"))
    assert removed.from_ns < min(m.start_ns for m in metas)
    assert "retention removed" in journal.read_text()

    info = cli("info", str(out), "--format", "json")
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["recordings"][-1]["events"] == kept  # the recording (or their total)
    (section,) = [v for k, v in doc.items() if k.startswith("removed by retention")]
    assert section[0]["files"] == removed.files and section[0]["calls"] == removed.calls
    summary = cli("report", str(out), "summary", "--format", "json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)[0]["events"] == kept
    assert "retention removed" in summary.stderr
