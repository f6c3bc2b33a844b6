"""Load a program bcc compiled earlier, straight through bpf(2) and perf_event_open(2).

bcc compiles the C source with its embedded clang on every start (seconds of CPU, see
docs/reliability.md, "time to first call"). What it hands the kernel is plain data: a BTF blob,
map definitions, instructions whose map references are file descriptors, and tracepoint
attachments. programcache.py keeps that data per kernel build and configuration; this module
turns it back into maps, programs and attachments without bcc.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from sockopt_trace.recorder.bpfsys import bpf, obj_info, prog_info
from sockopt_trace.recorder.libc import libc

BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
BPF_PSEUDO_MAP_FD = 1
LD_IMM64 = 0x18
PERF_TYPE_TRACEPOINT = 2
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408
SYS_PERF_EVENT_OPEN = 298  # x86_64


class _MapCreateAttr(ctypes.Structure):
    _fields_ = (
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("numa_node", ctypes.c_uint32),
        ("map_name", ctypes.c_char * 16),
        ("map_ifindex", ctypes.c_uint32),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    )


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = (
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
        ("prog_btf_fd", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("func_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("line_info_cnt", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
    )


class _BtfLoadAttr(ctypes.Structure):
    _fields_ = (
        ("btf", ctypes.c_uint64),
        ("btf_log_buf", ctypes.c_uint64),
        ("btf_size", ctypes.c_uint32),
        ("btf_log_size", ctypes.c_uint32),
        ("btf_log_level", ctypes.c_uint32),
    )


class _IdAttr(ctypes.Structure):
    _fields_ = (
        ("id", ctypes.c_uint32),
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    )


class MapInfo(ctypes.Structure):
    """`struct bpf_map_info`."""

    _fields_ = (
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    )


class _BtfInfo(ctypes.Structure):
    _fields_ = (
        ("btf", ctypes.c_uint64),
        ("btf_size", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("name", ctypes.c_uint64),
        ("name_len", ctypes.c_uint32),
        ("kernel_btf", ctypes.c_uint32),
    )


class _PerfEventAttr(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
    )


# -- reading what bcc loaded ----------------------------------------------------------------
def map_info(map_fd: int) -> MapInfo:
    info = MapInfo()
    obj_info(map_fd, info)
    return info


def btf_data(btf_id: int) -> bytes:
    """The raw BTF blob of a loaded BTF object."""
    fd = bpf(BPF_BTF_GET_FD_BY_ID, _IdAttr(btf_id, 0, 0))
    try:
        info = _BtfInfo()
        obj_info(fd, info)
        buf = ctypes.create_string_buffer(info.btf_size)
        info = _BtfInfo(ctypes.addressof(buf), len(buf.raw), 0, 0, 0, 0)
        obj_info(fd, info)
        return buf.raw[: info.btf_size]
    finally:
        os.close(fd)


def func_info(prog_fd: int) -> tuple[int, bytes]:
    """(record size, records) of a loaded program's BTF function info; (0, b"") if none."""
    info, _ = prog_info(prog_fd)
    if not info.nr_func_info:
        return 0, b""
    size = info.func_info_rec_size * info.nr_func_info
    buf = ctypes.create_string_buffer(size)
    request = type(info)()
    request.nr_func_info = info.nr_func_info
    request.func_info_rec_size = info.func_info_rec_size
    request.func_info = ctypes.addressof(buf)
    obj_info(prog_fd, request)
    return int(info.func_info_rec_size), buf.raw


def map_references(insns: bytes, fds: dict[int, str]) -> list[tuple[int, str]]:
    """(instruction index, map name) of every 64-bit load of a map file descriptor."""
    refs = []
    for i in range(0, len(insns) // 8):
        code, regs = insns[i * 8], insns[i * 8 + 1]
        if code == LD_IMM64 and (regs >> 4) == BPF_PSEUDO_MAP_FD:
            fd = int.from_bytes(insns[i * 8 + 4 : i * 8 + 8], "little", signed=True)
            refs.append((i, fds[fd]))
    return refs


# -- loading it again -----------------------------------------------------------------------
def load_btf(data: bytes) -> int:
    buf = ctypes.create_string_buffer(data, len(data))
    return bpf(BPF_BTF_LOAD, _BtfLoadAttr(ctypes.addressof(buf), 0, len(data), 0, 0))


def create_map(spec: dict, btf_fd: int) -> int:
    attr = _MapCreateAttr(
        map_type=spec["type"],
        key_size=spec["key_size"],
        value_size=spec["value_size"],
        max_entries=spec["max_entries"],
        map_flags=spec["flags"],
        map_name=spec["name"].encode()[:15],
        btf_fd=btf_fd if spec["btf_value_type_id"] else 0,
        btf_key_type_id=spec["btf_key_type_id"],
        btf_value_type_id=spec["btf_value_type_id"],
    )
    return bpf(BPF_MAP_CREATE, attr)


def load_program(
    prog_type: int,
    name: str,
    insns: bytes,
    license_: str,
    btf_fd: int,
    func_info_rec_size: int,
    func_info_records: bytes,
) -> int:
    """BPF_PROG_LOAD; on refusal the OSError carries the first lines of the verifier's log."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license_.encode())
    fi = ctypes.create_string_buffer(func_info_records, max(1, len(func_info_records)))
    attr = _ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(lic),
        prog_name=name.encode()[:15],
    )
    if func_info_rec_size:
        attr.prog_btf_fd = btf_fd
        attr.func_info_rec_size = func_info_rec_size
        attr.func_info = ctypes.addressof(fi)
        attr.func_info_cnt = len(func_info_records) // func_info_rec_size
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError:
        log = ctypes.create_string_buffer(1 << 16)
        attr.log_level, attr.log_size, attr.log_buf = 1, len(log.raw), ctypes.addressof(log)
        try:
            return bpf(BPF_PROG_LOAD, attr)
        except OSError as err:
            tail = " ".join(log.value.decode(errors="replace").splitlines()[-3:])
            raise OSError(err.errno, f"{err.strerror}: {tail[:300]}") from None


def attach_tracepoint(prog_fd: int, tracefs: Path, category: str, event: str) -> int:
    """A perf event on the tracepoint with the program attached and enabled: its fd."""
    tp_id = int(Path(tracefs, "events", category, event, "id").read_text())
    attr = _PerfEventAttr(
        type=PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(_PerfEventAttr), config=tp_id
    )
    attr.sample_period = 1
    attr.wakeup_events = 1
    fd = libc().syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"perf_event_open {category}:{event}: {os.strerror(err)}")
    for request, arg in ((PERF_EVENT_IOC_SET_BPF, prog_fd), (PERF_EVENT_IOC_ENABLE, 0)):
        if libc().ioctl(fd, request, arg) != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"attaching to {category}:{event}: {os.strerror(err)}")
    return int(fd)
