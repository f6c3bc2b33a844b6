"""Helpers shared by the real-kernel tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MODES = ("fentry", "kprobe", "tracepoint")
# SOCKOPT_TRACE_TEST_PROBE=kprobe,fentry,... runs every recording test once per listed mode
# (conftest.py parametrizes them), each recorder started with --probe MODE; it also declares
# that these modes work on this kernel. Unset, recorders use --probe auto.
PROBE_ENV = "SOCKOPT_TRACE_TEST_PROBE"
probe: str | None = None  # the mode of the test now running (set by conftest's probe_mode)
# Under emulation (tests/vm) everything is 10-50x slower: commands get this many times longer.
TIME_SCALE = float(os.environ.get("SOCKOPT_TRACE_TEST_TIME_SCALE", "1"))


def probe_modes() -> list[str]:
    modes = [m for m in os.environ.get(PROBE_ENV, "").split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"{PROBE_ENV}: unknown probe mode(s) {bad}; use {', '.join(MODES)}")
    return modes


def expected_probes() -> tuple[str, ...]:
    """What a recording made by this test may say its probe mode was."""
    return (probe,) if probe else MODES


def with_probe(args: tuple[str, ...] | list[str]) -> list[str]:
    """`record ARGS` with --probe MODE of the running test added (other commands untouched)."""
    args = list(args)
    if probe and args[:1] == ["record"] and "--probe" not in args:
        return ["record", "--probe", probe, *args[1:]]
    return args


def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `sockopt-trace ARGS` as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *with_probe(args)],
        capture_output=True,
        text=True,
        timeout=timeout * TIME_SCALE,
        **kw,
    )


def _fd_objects(pid: int) -> list[dict[str, str]]:
    """The BPF maps, programs and links process `pid` holds, from /proc/PID/fdinfo."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            kind = os.readlink(fd)
            info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
        except OSError:
            continue
        if kind.startswith("anon_inode:bpf"):
            fields = dict(ln.split(":\t", 1) for ln in info.splitlines() if ":\t" in ln)
            found.append({"kind": kind, **{k: v.strip() for k, v in fields.items()}})
    return found


def attached_programs(pid: int) -> set[int]:
    """Ids of the BPF programs that process `pid` holds attached: through perf events (kprobe,
    tracepoint) or BPF links (fentry)."""
    out = subprocess.run(
        ["bpftool", "-j", "perf", "list"], capture_output=True, text=True, check=True
    )
    ids = {p["prog_id"] for p in json.loads(out.stdout or "[]") if p["pid"] == pid}
    return ids | {int(o["prog_id"]) for o in _fd_objects(pid) if "prog_id" in o}


def held_maps(pid: int) -> set[int]:
    """Ids of the BPF maps process `pid` holds."""
    return {int(o["map_id"]) for o in _fd_objects(pid) if "map_id" in o}


def map_exists(map_id: int) -> bool:
    show = subprocess.run(["bpftool", "map", "show", "id", str(map_id)], capture_output=True)
    return show.returncode == 0


def program_loaded(prog_id: int) -> bool:
    show = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True)
    return show.returncode == 0


def start_recorder(*args: str) -> subprocess.Popen:
    """`sockopt-trace record ARGS` in the background, returned once it is recording."""
    rec = subprocess.Popen(
        [sys.executable, "-m", "sockopt_trace", *with_probe(["record", *args])],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = rec.stderr.readline()
    while line and "recording getsockopt" not in line:
        line = rec.stderr.readline()
    assert line, "the recorder did not start"
    return rec
