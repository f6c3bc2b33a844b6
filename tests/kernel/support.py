"""Helpers shared by the real-kernel tests."""

from __future__ import annotations

import json
import subprocess
import sys


def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `sockopt-trace ARGS` as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def attached_programs(pid: int) -> set[int]:
    """Ids of the BPF programs that process `pid` holds attached through perf events."""
    out = subprocess.run(
        ["bpftool", "-j", "perf", "list"], capture_output=True, text=True, check=True
    )
    return {p["prog_id"] for p in json.loads(out.stdout or "[]") if p["pid"] == pid}


def program_loaded(prog_id: int) -> bool:
    show = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True)
    return show.returncode == 0


def start_recorder(*args: str) -> subprocess.Popen:
    """`sockopt-trace record ARGS` in the background, returned once it is recording."""
    rec = subprocess.Popen(
        [sys.executable, "-m", "sockopt_trace", "record", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = rec.stderr.readline()
    while line and "recording getsockopt" not in line:
        line = rec.stderr.readline()
    assert line, "the recorder did not start"
    return rec
