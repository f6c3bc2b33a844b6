"""The C library, loaded once, when a command first needs it (not at import): the recorder's few
direct calls (bpf(2) and perf_event_open(2) by number, mount(2), mallopt, free) go through it."""

from __future__ import annotations

import ctypes
from functools import cache


@cache
def libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.syscall.restype = ctypes.c_long  # fds and errors fit; addresses would not fit an int
    lib.free.argtypes = [ctypes.c_void_p]
    return lib
