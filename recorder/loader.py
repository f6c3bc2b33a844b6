"""Compile, load and attach the BPF program in a short-lived child; keep only its descriptors.

bcc compiles with an embedded LLVM that costs ~180 MB of memory (measured here: 65 MB before,
244 MB after loading) and never gives it back. A forked child does the compiling (or loads a
program compiled earlier, programcache.py), loading and attaching, passes the map, program and
attachment descriptors back over a socket (SCM_RIGHTS) and exits; programs stay alive as long as
we hold their descriptors. The child dies with the recorder (PR_SET_PDEATHSIG), so a recorder
killed while compiling leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.recorder import bpfsys, cgroups, environment, probe, programcache
from sockopt_trace.recorder.probe import MODES, AttachError, ProbeConfig

# Maps the recording process reads or writes; the others stay inside the kernel.
MAP_NAMES = ("events", "state", "stacks", "control")
MAX_FDS = 64
PR_SET_PDEATHSIG = 1
ENV_ERROR = ExitCode.ENVIRONMENT


@dataclass
class Handles:
    """What the recording process holds of an attached program."""

    mode: str
    skipped: dict[str, str]
    maps: dict[str, int]  # map name -> fd
    value_sizes: dict[str, int]  # map name -> size of one value (per CPU for per-CPU maps)
    groups: dict[str, list[int]]  # "entry" / "exit" -> attachment fds, closed to detach
    progs: dict[str, int] = field(default_factory=dict)  # program name -> fd
    kprobe_events: list[str] = field(default_factory=list)  # legacy tracefs events to remove
    attached_ns: int = 0  # CLOCK_MONOTONIC when every attachment was in place
    cached: bool = False  # loaded from the program cache, not compiled

    def close_group(self, name: str) -> None:
        for fd in self.groups.pop(name, []):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_all(self) -> None:
        for name in list(self.groups):
            self.close_group(name)
        for event in self.kprobe_events:
            with contextlib.suppress(OSError):
                Path(environment.tracefs_dir(), "kprobe_events").write_text(f"-:{event}\n")
        self.kprobe_events = []
        for fd in [*self.progs.values(), *self.maps.values()]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.maps, self.progs = {}, {}


def load_in_child(config: ProbeConfig) -> Handles:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    me = os.getpid()
    pid = os.fork()
    if pid == 0:  # never returns into the caller's code
        status = 1
        try:
            _die_with(me)
            parent.close()
            _child(config, child)
            status = 0
        finally:
            os._exit(status)
    child.close()
    try:
        message, fds = _receive(parent)
    except BaseException:  # e.g. the recorder stopped at once by a second signal
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        parent.close()
        os.waitpid(pid, 0)
    if "error" in message:
        for fd in fds:
            os.close(fd)
        raise UserError(message["error"], message["code"])
    it = iter(fds)
    return Handles(
        mode=message["mode"],
        skipped=message["skipped"],
        maps={name: next(it) for name in message["maps"]},
        value_sizes=message["value_sizes"],
        progs={name: next(it) for name in message["progs"]},
        groups={g: [next(it) for _ in range(n)] for g, n in message["groups"].items()},
        kprobe_events=message["kprobe_events"],
        attached_ns=message["attached_ns"],
        cached=message["cached"],
    )


def _die_with(parent: int) -> None:
    """The kernel kills this child when the recorder dies; if it already has, exit now."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child(config: ProbeConfig, sock: socket.socket) -> None:
    try:
        loaded = _load(config)
    except UserError as err:
        _send(sock, {"error": str(err), "code": err.code}, [])
        return
    except Exception as err:  # anything else bcc raises: still one line for the user
        _send(sock, {"error": f"loading the BPF program failed: {err}", "code": int(ENV_ERROR)}, [])
        return
    maps = {n: fd for n, fd in loaded["maps"].items() if n in MAP_NAMES}
    groups = loaded["groups"]
    fds = [*maps.values(), *loaded["progs"].values(), *(fd for g in groups.values() for fd in g)]
    message = {
        "mode": loaded["mode"],
        "skipped": loaded["skipped"],
        "maps": list(maps),
        "value_sizes": {n: loaded["value_sizes"][n] for n in maps},
        "progs": list(loaded["progs"]),
        "groups": {g: len(v) for g, v in groups.items()},
        "kprobe_events": loaded.get("kprobe_events", []),
        "attached_ns": loaded["attached_ns"],
        "cached": loaded["cached"],
    }
    _send(sock, message, fds)


def _load(config: ProbeConfig) -> dict[str, Any]:
    """The first mode that loads and attaches: from the cache when it holds the program,
    else compiled by bcc (and then saved to the cache)."""
    environment.require_root()
    problem = environment.mount_tracefs()
    if problem:
        raise UserError(problem, ENV_ERROR)
    probe.require_features(config.callsites)
    modes = MODES if config.mode == "auto" else (config.mode,)
    skipped: dict[str, str] = {}
    directory = programcache.cache_dir()
    for mode in modes:
        key = _key(config, mode) if directory else ""
        remembered = _remembered_failure(directory, key) if config.mode == "auto" else None
        if remembered:
            skipped[mode] = f"{remembered} (found on an earlier try since boot)"
            continue
        if directory and mode in programcache.CACHED_MODES:
            spec = programcache.load(directory, key)
            if spec is not None:
                # Refused by the kernel, or damaged: compile it afresh below, and replace it.
                with contextlib.suppress(Exception):
                    return {**_from_cache(spec, config), "mode": mode, "skipped": skipped}
        try:
            result = _compile(mode, config, directory, key)
        except AttachError as err:
            skipped[mode] = str(err)
            if directory and mode != MODES[-1]:  # the last resort is always tried again
                _remember_failure(directory, key, str(err))
            continue
        return {**result, "mode": mode, "skipped": skipped}
    if config.mode == "auto":
        import platform

        why = "; ".join(f"{m}: {r}" for m, r in skipped.items())
        raise UserError(f"no probe mode attaches on kernel {platform.release()} ({why})", ENV_ERROR)
    raise UserError(
        f"probe mode {config.mode} does not work here: {skipped[config.mode]}", ENV_ERROR
    )


def _key(config: ProbeConfig, mode: str) -> str:
    headers, _ = environment.find_kernel_headers()
    libs = sorted(glob.glob("/usr/lib/*/libbcc.so.*") + glob.glob("/usr/lib*/libbcc.so.*"))
    return programcache.cache_key(mode, config.cflags(mode), headers, ";".join(libs))


def _from_cache(spec: dict[str, Any], config: ProbeConfig) -> dict[str, Any]:
    loaded = programcache.instantiate(spec)
    try:
        fill_filters(loaded.maps, config)
        programcache.attach(loaded, spec, environment.tracefs_dir())
    except BaseException:
        loaded.close()
        raise
    return {
        "maps": loaded.maps,
        "value_sizes": loaded.value_sizes,
        "progs": loaded.progs,
        "groups": loaded.groups,
        "attached_ns": time.monotonic_ns(),
        "cached": True,
    }


def _compile(mode: str, config: ProbeConfig, directory: Path | None, key: str) -> dict[str, Any]:
    bcc = environment.prepare()
    bpf = probe.load_mode(bcc, mode, config)
    attached_ns = time.monotonic_ns()
    tables = programcache.bcc_tables(bpf)
    maps = {name: fd for fd, name in tables.items()}
    fill_filters(maps, config)
    if directory and mode in programcache.CACHED_MODES:
        with contextlib.suppress(Exception):  # a cache that cannot be written costs a compile
            programcache.save(directory, key, programcache.extract(bpf, mode))
    return {
        "maps": maps,
        "value_sizes": {n: programcache.value_size(fd) for n, fd in maps.items()},
        "progs": {name.decode(): fn.fd for name, fn in bpf.funcs.items()},
        "groups": _attachments(bpf),
        "kprobe_events": _legacy_kprobe_events(),
        "attached_ns": attached_ns,
        "cached": False,
    }


def _remembered_failure(directory: Path | None, key: str) -> str | None:
    """Why this mode failed to load on an earlier try since this boot (auto mode only)."""
    if directory is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        note = json.loads((directory / f"{key}.failed").read_text())
        if note.get("boot_id") == _boot_id():
            return str(note["reason"])
    return None


def _remember_failure(directory: Path, key: str, reason: str) -> None:
    note = json.dumps({"boot_id": _boot_id(), "reason": reason})
    with contextlib.suppress(OSError):
        path = directory / f"{key}.failed"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(note)


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def fill_filters(maps: dict[str, int], config: ProbeConfig) -> None:
    """Put the --pid, --comm and --cgroup filters into their kernel maps."""
    if config.cgroup:  # the map holds the cgroup itself, not our descriptor
        fd = os.open(cgroups.filter_directory(config.cgroup), os.O_RDONLY | os.O_DIRECTORY)
        try:
            bpfsys.update(maps["cgroup_filter"], bytes(4), fd.to_bytes(4, "little"))
        finally:
            os.close(fd)
    one = b"\x01"
    for pid in config.pids:
        bpfsys.update(maps["pid_filter"], pid.to_bytes(4, "little"), one)
    for comm in config.comms:
        name = comm.encode()[: probe.COMM_LEN - 1]
        bpfsys.update(maps["comm_filter"], name.ljust(probe.COMM_LEN, b"\0"), one)


def _attachments(bpf: Any) -> dict[str, list[int]]:
    """Attachment fds by group. Entry includes the fork follower: both stop new tracing."""
    entry: list[int] = []
    exit_: list[int] = []
    for tp, fd in bpf.tracepoint_fds.items():
        (exit_ if b"sys_exit" in tp else entry).append(fd)
    for ev, by_fn in bpf.kprobe_fds.items():
        (exit_ if ev.startswith(b"r_") else entry).extend(by_fn.values())
    entry.extend(bpf.kfunc_entry_fds.values())
    exit_.extend(bpf.kfunc_exit_fds.values())
    return {"entry": entry, "exit": exit_}


def _legacy_kprobe_events() -> list[str]:
    """kprobes bcc had to create through tracefs (old kernels) outlive our fds: list them."""
    group = Path(environment.tracefs_dir(), "events", "kprobes")
    suffix = f"_bcc_{os.getpid()}"
    if not group.is_dir():
        return []
    return [f"kprobes/{p.name}" for p in group.iterdir() if p.name.endswith(suffix)]


def _send(sock: socket.socket, message: dict, fds: list[int]) -> None:
    payload = json.dumps(message).encode()
    header = struct.pack("<I", len(payload))
    socket.send_fds(sock, [header + payload], fds)


def _receive(sock: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 20, MAX_FDS)
    for fd in fds:  # nothing started later (the traced command's children) may inherit them
        os.set_inheritable(fd, False)
    if len(data) < 4:
        raise UserError(
            "the BPF loader process died before answering (see messages above)", ENV_ERROR
        )
    (length,) = struct.unpack_from("<I", data)
    while len(data) < 4 + length:
        more = sock.recv(1 << 20)
        if not more:
            raise UserError("the BPF loader process died mid-answer", ENV_ERROR)
        data += more
    return json.loads(data[4 : 4 + length]), list(fds)
