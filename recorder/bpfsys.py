"""The few bpf(2) operations the recording process needs, without loading bcc.

The program is compiled and attached in a short-lived child (see loader.py), because bcc's
embedded LLVM alone costs the process ~180 MB of memory that would never be given back. The
recording process keeps only file descriptors: maps, programs and attachments. It reads and
writes maps and asks the kernel about its programs through them.
"""

from __future__ import annotations

import ctypes
import errno
import os
from functools import cache
from pathlib import Path

from sockopt_trace.recorder.libc import libc

SYS_BPF = 321  # x86_64
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_OBJ_GET_INFO_BY_FD = 15


class _MapElemAttr(ctypes.Structure):
    _fields_ = (
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    )


class _InfoAttr(ctypes.Structure):
    _fields_ = (
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    )


class ProgInfo(ctypes.Structure):
    """`struct bpf_prog_info` (include/uapi/linux/bpf.h) up to the fields we read."""

    _fields_ = (
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32),
        ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64),
        ("recursion_misses", ctypes.c_uint64),  # Linux 5.12+
    )


RECURSION_MISSES_END = ProgInfo.recursion_misses.offset + 8


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(2); raises OSError on failure."""
    ret = libc().syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def lookup(map_fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under key, or None if there is none. Raises OSError."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    attr = _MapElemAttr(map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, attr)
    except OSError as err:
        if err.errno == errno.ENOENT:
            return None
        raise OSError(err.errno, f"bpf map lookup: {err.strerror}") from None
    return v.raw


def update(map_fd: int, key: bytes, value: bytes) -> None:
    """Store value under key (create or replace). Raises OSError."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    attr = _MapElemAttr(map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    try:
        bpf(BPF_MAP_UPDATE_ELEM, attr)
    except OSError as err:
        raise OSError(err.errno, f"bpf map update: {err.strerror}") from None


def obj_info(fd: int, info: ctypes.Structure) -> int:
    """Fill `info` for a BPF object (program, map, BTF); return how many bytes the kernel knew
    of (older kernels fill less than newer structs hold). Raises OSError."""
    attr = _InfoAttr(fd, ctypes.sizeof(info), ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return int(attr.info_len)


def prog_info(prog_fd: int) -> tuple[ProgInfo, int]:
    """The program's info and the length the kernel filled. Raises OSError."""
    info = ProgInfo()
    return info, obj_info(prog_fd, info)


@cache
def possible_cpus() -> int:
    """Per-CPU maps hold one value per possible CPU (not online): parse e.g. '0-63'."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count
