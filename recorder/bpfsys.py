"""The one bpf(2) map operation the recording process needs, without loading bcc.

The program is compiled and attached in a short-lived child (see loader.py), because bcc's
embedded LLVM alone costs the process ~180 MB of memory that would never be given back. The
recording process keeps only file descriptors: maps and attachments. It reads maps through them.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

from sockopt_trace.recorder.libc import libc

SYS_BPF = 321  # x86_64
BPF_MAP_LOOKUP_ELEM = 1


class _MapElemAttr(ctypes.Structure):
    _fields_ = (
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    )


def _bpf(cmd: int, attr: _MapElemAttr) -> int:
    return libc().syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))


def lookup(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under key, or None if there is none."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    if _bpf(BPF_MAP_LOOKUP_ELEM, attr) != 0:
        err = ctypes.get_errno()
        if err == 2:  # ENOENT
            return None
        raise OSError(err, f"bpf map lookup: {os.strerror(err)}")
    return v.raw


@cache
def possible_cpus() -> int:
    """Per-CPU maps hold one value per possible CPU (not online): parse e.g. '0-63'."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count
