"""Every executable mapping, exec, fork and exit on the host, as the kernel announces them.

This is what `perf record --buildid-mmap` does to name the code of processes that are gone by
the time anyone looks: one "dummy" software perf event per CPU, system-wide, asking only for
side-band records (mmap2 with the file's GNU build-id, comm on exec, fork, exit), each stamped
with CLOCK_MONOTONIC, the clock of the BPF events. The kernel writes a mapping's record before
the mmap (or exec) returns, so by the time a call from that code reaches us, the record that
places it is already in these buffers: nothing depends on the process still being alive, and
reading /proc/PID/maps in time stops being a race (docs/reliability.md).

bcc cannot do this in BPF (no bpf_find_vma callbacks, docs/design.md), and needs not: the perf
side-band is a stable kernel ABI (mmap2 since 3.16, build-id in it since 5.12).
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import platform
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from sockopt_trace.recorder.libc import libc

PAGE = mmap.PAGESIZE
BUFFER_PAGES = 64  # 256 KiB per CPU: ~1,500 mmap records between two drains
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}

# perf_event_attr (uapi/linux/perf_event.h), the part up to aux_sample_size (VER6, 120 bytes)
_ATTR_SIZE = 120
_PERF_TYPE_SOFTWARE, _PERF_COUNT_SW_DUMMY = 1, 9
_PERF_SAMPLE_TIME = 1 << 2
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_BITS = {"mmap": 8, "comm": 9, "task": 13, "watermark": 14, "sample_id_all": 18, "mmap2": 23}
_BITS |= {"comm_exec": 24}
_BITS |= {"use_clockid": 25, "build_id": 34}
_CLOCK_MONOTONIC = 1

# record types and flags
_MMAP2, _LOST, _COMM, _EXIT, _FORK = 10, 2, 3, 4, 7
_MISC_COMM_EXEC, _MISC_MMAP_BUILD_ID = 1 << 13, 1 << 14
_HEADER = struct.Struct("<IHH")
_MMAP2_FIXED = struct.Struct("<IIQQQ24sII")  # pid tid addr len pgoff (ids) prot flags
_TASK = struct.Struct("<IIIIQ")  # pid ppid tid ptid time
_PROT_EXEC = 4


@dataclass(frozen=True, slots=True)
class MapRecord:
    """An executable file mapping made by process `pid` at `time` (CLOCK_MONOTONIC ns)."""

    time: int
    pid: int
    start: int
    end: int
    offset: int  # file offset of `start`
    path: str
    build_id: str | None  # hex, from the kernel; None if it could not read it


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """`kind` is "exec" (pid replaced its image), "fork" (pid is new, a child of parent) or
    "exit" (a thread of pid ended)."""

    time: int
    kind: str
    pid: int
    parent: int = 0
    tid: int = 0


Record = MapRecord | TaskRecord


class PerfUnavailable(Exception):
    """perf_event_open refused (no CAP_PERFMON, a seccomp or security policy...)."""


def _attr(build_id: bool, wakeup_bytes: int) -> bytes:
    flags = sum(1 << bit for name, bit in _BITS.items() if build_id or name != "build_id")
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIQQQQQI", attr, 0, _PERF_TYPE_SOFTWARE, _ATTR_SIZE, _PERF_COUNT_SW_DUMMY,
                     0, _PERF_SAMPLE_TIME, 0, flags, wakeup_bytes)  # fmt: skip
    struct.pack_into("<i", attr, 92, _CLOCK_MONOTONIC)  # clockid
    return bytes(attr)


def _perf_event_open(attr: bytes, cpu: int) -> int:
    number = _SYS_PERF_EVENT_OPEN.get(platform.machine())
    if number is None:
        raise PerfUnavailable(f"no perf_event_open number known for {platform.machine()}")
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc().syscall(number, buf, -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfUnavailable(f"perf_event_open: {os.strerror(err)}")
    return fd


def online_cpus() -> list[int]:
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


class _CpuBuffer:
    """One CPU's perf ring buffer: a control page, then 2^n data pages the kernel fills."""

    def __init__(self, fd: int, pages: int) -> None:
        self.fd = fd
        self.map = mmap.mmap(fd, (1 + pages) * PAGE, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        self.size = pages * PAGE

    def read(self) -> bytes:
        """Every record written since the last read, as one contiguous byte string."""
        head, tail = struct.unpack_from("<QQ", self.map, 1024)  # data_head, data_tail
        length = min(head - tail, self.size)
        if length <= 0:
            return b""
        start = tail % self.size
        first = min(length, self.size - start)  # up to the end of the buffer, then wrap
        data = self.map[PAGE + start : PAGE + start + first]
        if first < length:
            data += self.map[PAGE : PAGE + length - first]
        struct.pack_into("<Q", self.map, 1032, head)  # hand the space back (data_tail)
        return data

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class MapTracker:
    """Opens the per-CPU side-band events and turns what they carry into records.

    `drain()` returns, sorted by time, every record older than the moment it was called;
    anything newer stays for the next drain, so that records from different CPUs are always
    handed over in the order they happened.
    """

    def __init__(self, pages: int = BUFFER_PAGES) -> None:
        self.lost = 0  # records the kernel could not write (a buffer was full)
        self.kernel_build_ids = True
        self._buffers: list[_CpuBuffer] = []
        self._held: list[Record] = []
        self._wakeup = pages * PAGE // 4  # poll() says "readable" when a quarter is full
        try:
            for cpu in online_cpus():
                self._buffers.append(_CpuBuffer(self._open(cpu), pages))
        except (PerfUnavailable, OSError):
            self.close()
            raise

    def _open(self, cpu: int) -> int:
        if self.kernel_build_ids:
            try:
                return _perf_event_open(_attr(True, self._wakeup), cpu)
            except PerfUnavailable:  # before 5.12: mmap2 carries device and inode instead
                self.kernel_build_ids = False
        return _perf_event_open(_attr(False, self._wakeup), cpu)

    @property
    def fds(self) -> list[int]:
        return [buf.fd for buf in self._buffers]

    def drain(self) -> list[Record]:
        watermark = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        records = self._held
        for buf in self._buffers:
            records.extend(self._parse(buf.read()))
        records.sort(key=lambda r: r.time)
        cut = next((i for i, r in enumerate(records) if r.time >= watermark), len(records))
        self._held = records[cut:]
        return records[:cut]

    def _parse(self, data: bytes) -> list[Record]:
        out: list[Record] = []
        pos = 0
        while pos + 8 <= len(data):
            kind, misc, size = _HEADER.unpack_from(data, pos)
            if size < 8:
                break  # never happens with a sane kernel; stop rather than loop
            body = data[pos + 8 : pos + size]
            pos += size
            if kind == _MMAP2:
                record = _mmap2(body, misc)
                if record is not None:
                    out.append(record)
            elif kind in (_FORK, _EXIT):
                pid, ppid, tid, _ptid, when = _TASK.unpack_from(body)
                if kind == _EXIT:
                    out.append(TaskRecord(when, "exit", pid, ppid, tid))
                elif pid != ppid:  # a new process, not a new thread
                    out.append(TaskRecord(when, "fork", pid, ppid, tid))
            elif kind == _COMM and misc & _MISC_COMM_EXEC:
                pid, tid = struct.unpack_from("<II", body)
                out.append(TaskRecord(_time(body), "exec", pid, 0, tid))
            elif kind == _LOST:
                self.lost += struct.unpack_from("<Q", body, 8)[0]
        return out

    def close(self) -> None:
        for buf in self._buffers:
            with contextlib.suppress(OSError, ValueError):
                buf.close()
        self._buffers = []


def _time(body: bytes) -> int:
    """The sample_id trailer of a side-band record: only PERF_SAMPLE_TIME was asked for."""
    return struct.unpack_from("<Q", body, len(body) - 8)[0]


def _mmap2(body: bytes, misc: int) -> MapRecord | None:
    pid, _tid, addr, length, pgoff, ids, prot, _flags = _MMAP2_FIXED.unpack_from(body)
    if not prot & _PROT_EXEC:
        return None
    name = body[_MMAP2_FIXED.size : len(body) - 8]
    path = name[: name.find(b"\0")] if b"\0" in name else name
    build_id = None
    if misc & _MISC_MMAP_BUILD_ID and 0 < ids[0] <= 20:
        build_id = ids[4 : 4 + ids[0]].hex()
    return MapRecord(
        _time(body),
        pid,
        addr,
        addr + length,
        pgoff,
        path.decode(errors="surrogateescape"),
        build_id,
    )


def open_tracker() -> tuple[MapTracker | None, str | None]:
    """The kernel's mapping records, or None and why not (then call sites of processes that
    exit quickly may be [unknown]: their maps are read from /proc, if still there)."""
    with contextlib.suppress(OSError):
        try:
            return MapTracker(), None
        except PerfUnavailable as err:
            return None, str(err)
    return None, "cannot map the perf buffers"
