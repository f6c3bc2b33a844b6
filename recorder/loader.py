"""Compile, load and attach the BPF program in a short-lived child; keep only its descriptors.

bcc compiles with an embedded LLVM that costs ~180 MB of memory (measured here: 65 MB before,
244 MB after loading) and never gives it back. A forked child does the compiling, loading and
attaching, passes the map and attachment descriptors back over a socket (SCM_RIGHTS) and exits;
programs stay alive as long as we hold their attachments, maps as long as we hold their fds.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sockopt_trace.errors import ExitCode, UserError

if TYPE_CHECKING:
    from sockopt_trace.recorder.probe import ProbeConfig

MAP_NAMES = ("events", "state", "stacks")
MAX_FDS = 64


@dataclass
class Handles:
    """What the recording process holds of an attached program."""

    mode: str
    skipped: dict[str, str]
    maps: dict[str, int]  # map name -> fd
    value_sizes: dict[str, int]  # map name -> size of one value (per CPU for per-CPU maps)
    groups: dict[str, list[int]]  # "entry" / "exit" -> attachment fds, closed to detach
    kprobe_events: list[str] = field(default_factory=list)  # legacy tracefs events to remove

    def close_group(self, name: str) -> None:
        for fd in self.groups.pop(name, []):
            with contextlib.suppress(OSError):
                os.close(fd)

    def close_all(self) -> None:
        for name in list(self.groups):
            self.close_group(name)
        for event in self.kprobe_events:
            with contextlib.suppress(OSError):
                from sockopt_trace.recorder.environment import tracefs_dir

                Path(tracefs_dir(), "kprobe_events").write_text(f"-:{event}\n")
        self.kprobe_events = []
        for fd in self.maps.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.maps = {}


def load_in_child(config: ProbeConfig) -> Handles:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # never returns into the caller's code
        status = 1
        try:
            parent.close()
            _child(config, child)
            status = 0
        finally:
            os._exit(status)
    child.close()
    try:
        message, fds = _receive(parent)
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
        groups={g: [next(it) for _ in range(n)] for g, n in message["groups"].items()},
        kprobe_events=message["kprobe_events"],
    )


def _child(config: ProbeConfig, sock: socket.socket) -> None:
    from sockopt_trace.recorder import environment, probe

    try:
        bcc = environment.prepare()
        bpf, mode, skipped = probe.try_modes(bcc, config)
    except UserError as err:
        _send(sock, {"error": str(err), "code": err.code}, [])
        return
    except Exception as err:  # anything else bcc raises: still one line for the user
        _send(sock, {"error": f"loading the BPF program failed: {err}", "code": 3}, [])
        return
    maps: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for name in MAP_NAMES:
        try:
            table = bpf[name]
        except KeyError:
            continue
        maps[name] = table.map_fd
        # bcc's per-CPU tables widen Leaf to an array over CPUs; sLeaf is one CPU's value
        sizes[name] = ctypes.sizeof(getattr(table, "sLeaf", table.Leaf))
    groups = _attachments(bpf, mode)
    fds = [*maps.values(), *(fd for g in groups.values() for fd in g)]
    message = {
        "mode": mode,
        "skipped": skipped,
        "maps": list(maps),
        "value_sizes": sizes,
        "groups": {g: len(v) for g, v in groups.items()},
        "kprobe_events": _legacy_kprobe_events(),
    }
    _send(sock, message, fds)


def _attachments(bpf: Any, mode: str) -> dict[str, list[int]]:
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
    from sockopt_trace.recorder.environment import tracefs_dir

    group = Path(tracefs_dir(), "events", "kprobes")
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
            "the BPF loader process died before answering (see messages above)",
            ExitCode.ENVIRONMENT,
        )
    (length,) = struct.unpack_from("<I", data)
    while len(data) < 4 + length:
        more = sock.recv(1 << 20)
        if not more:
            raise UserError("the BPF loader process died mid-answer", ExitCode.ENVIRONMENT)
        data += more
    return json.loads(data[4 : 4 + length]), list(fds)
