"""Naming call sites at record time, without a kernel: mapping histories, the perf side-band
records' layout, ELF symbols (symtab, dynsym, MiniDebugInfo), retiring exited processes."""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sockopt_trace.recorder import perfmaps
from sockopt_trace.recorder.elfsyms import ElfSymbols, demangle
from sockopt_trace.recorder.mappings import ProcessMaps, read_maps
from sockopt_trace.recorder.perfmaps import MapRecord, TaskRecord
from sockopt_trace.recorder.symbols import LRU, Symbolizer

ROOT = Path(__file__).resolve().parents[2]
needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "objcopy", "strip", "nm", "xz")),
    reason="needs gcc, binutils and xz",
)


def now() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def test_lru_forgets_the_least_recently_used() -> None:
    lru: LRU[int, str] = LRU(2)
    lru.put(1, "a")
    lru.put(2, "b")
    assert lru.get(1) == "a"
    lru.put(3, "c")
    assert lru.get(2) is None and len(lru) == 2


def test_symbolizer_names_a_libc_function_in_this_process() -> None:
    """No mapping records: a running process is read from /proc, and the site says where it
    is in which file (the build-id the file carries, the ELF address of the offset)."""
    libc = ctypes.CDLL("libc.so.6")
    addr = ctypes.cast(libc.getsockopt, ctypes.c_void_p).value + 4
    sym = Symbolizer()
    site = sym.resolve(os.getpid(), addr, now())
    assert (site.function, site.frame) == ("getsockopt", "getsockopt+0x4")
    assert site.object and "libc.so" in site.object
    elf = ElfSymbols(site.object)
    assert site.build_id == elf.build_id and len(site.build_id or "") == 40
    assert site.address is not None and elf.address(site.offset or 0) == site.address
    assert sym.resolve(os.getpid(), 0, now()).frame == "[unknown]"
    maps = read_maps(os.getpid())
    assert maps and all(m.start < m.end for m in maps)


def _mmap(when: int, pid: int, start: int, path: str, build_id: str = "ab" * 20) -> MapRecord:
    return MapRecord(when, pid, start, start + 0x1000, 0x2000, path, build_id)


def test_a_call_is_placed_in_the_image_it_ran_in() -> None:
    """A pid that forks, execs, exits and is reused: each call finds the mapping of its own
    process image at its own time, never another's."""
    maps = ProcessMaps()
    parent, child = 100, 200
    maps.apply(
        [
            _mmap(10, parent, 0x1000, "/bin/shell"),
            TaskRecord(20, "fork", child, parent, child),
            _mmap(25, parent, 0x5000, "/lib/late.so"),  # after the fork: not the child's
            TaskRecord(30, "exec", child, 0, child),
            _mmap(31, child, 0x1000, "/usr/bin/prog"),
            TaskRecord(40, "exit", child, parent, child),
            TaskRecord(50, "fork", child, parent, child),  # pid reused by a new process
        ]
    )
    path = lambda pid, addr, t: m.path if (m := maps.find(pid, addr, t)) else None  # noqa: E731
    assert path(child, 0x1000, 22) == "/bin/shell"  # the fork's copy of its parent
    assert path(child, 0x5000, 26) is None
    assert path(child, 0x1000, 35) == "/usr/bin/prog"  # after exec
    assert path(child, 0x1000, 55) == "/bin/shell"  # the new process, forked again
    assert path(parent, 0x5000, 26) == "/lib/late.so"
    assert maps.image(child, 35) == 30 and maps.image(child, 55) == 50
    maps.forget(child, 40)  # the first process exited: the second keeps its own
    assert path(child, 0x1000, 55) == "/bin/shell"
    assert path(child, 0x1000, 35) is None, "the exited image is gone"
    assert maps.images_since(45) == {child: [50]}


def test_perf_side_band_records_are_parsed() -> None:
    """The byte layout of mmap2 (with build-id), comm-exec, fork, exit and lost records, as
    the kernel writes them with sample_id_all and PERF_SAMPLE_TIME."""
    build_id = bytes(range(20))
    name = b"/usr/bin/prog\0\0\0"  # padded to 8 bytes
    ids = bytes([20, 0, 0, 0]) + build_id
    mmap2 = struct.pack("<IIQQQ24sII", 7, 7, 0x1000, 0x2000, 0x3000, ids, 5, 2) + name
    mmap2 += struct.pack("<Q", 111)
    records = [
        (10, 1 << 14, mmap2),
        (3, 1 << 13, struct.pack("<II", 7, 7) + b"prog\0\0\0\0" + struct.pack("<Q", 100)),
        (3, 0, struct.pack("<II", 7, 8) + b"thread\0\0" + struct.pack("<Q", 101)),  # not exec
        (7, 0, struct.pack("<IIIIQQ", 7, 6, 7, 6, 90, 90)),
        (7, 0, struct.pack("<IIIIQQ", 7, 7, 9, 7, 95, 95)),  # a thread: ignored
        (4, 0, struct.pack("<IIIIQQ", 7, 6, 7, 6, 120, 120)),
        (2, 0, struct.pack("<QQQ", 1, 3, 121)),
    ]
    data = b"".join(struct.pack("<IHH", k, m, 8 + len(b)) + b for k, m, b in records)
    tracker = object.__new__(perfmaps.MapTracker)
    tracker.lost = 0
    out = tracker._parse(data)
    assert out == [
        MapRecord(111, 7, 0x1000, 0x3000, 0x3000, "/usr/bin/prog", build_id.hex()),
        TaskRecord(100, "exec", 7, 0, 7),
        TaskRecord(90, "fork", 7, 6, 7),
        TaskRecord(120, "exit", 7, 6, 7),
    ]
    assert tracker.lost == 3


class _Tracker:
    def __init__(self) -> None:
        self.fds: list[int] = []
        self.records: list = []
        self.lost = 0

    def drain(self) -> list:
        out, self.records = self.records, []
        return out

    def close(self) -> None:
        pass


class _Ring:
    consumed = produced = 0

    def positions(self) -> tuple[int, int]:
        return self.consumed, self.produced


def test_an_exited_process_is_kept_until_its_calls_are_decoded() -> None:
    tracker, ring = _Tracker(), _Ring()
    sym = Symbolizer(tracker)  # type: ignore[arg-type]
    sym.attach_ring(ring)
    pid = 4_000_000  # no such process: /proc cannot answer for it
    tracker.records = [
        TaskRecord(10, "exec", pid, 0, pid),
        _mmap(11, pid, 0x1000, "/nonexistent/prog", None),
        TaskRecord(30, "exit", pid, 1, pid),
    ]
    ring.produced = 800  # its last call may still be in the ring, up to here
    rows = np.zeros(3, [("pid", "<u4")])
    sym.observe(rows)
    assert sym.maps.known(pid)
    ring.consumed = 800  # read: in a batch on its way to the writer
    sym.observe(rows[:0])
    assert sym.maps.known(pid)
    assert sym.resolve(pid, 0x1010, 20).frame == "prog+0x2010"  # the writer names it
    sym.decoded(3)
    assert not sym.maps.known(pid), "forgotten once its rows were decoded"
    sym.close()


@needs_tools
def test_elf_symbols_of_plain_stripped_and_minidebuginfo_binaries(tmp_path: Path) -> None:
    src = ROOT / "tests/workloads/calls.c"
    exe = tmp_path / "calls"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-lpthread"], check=True)
    nm = subprocess.run(["nm", "--defined-only", str(exe)], capture_output=True, text=True)
    addrs = {
        ln.split()[2]: int(ln.split()[0], 16)
        for ln in nm.stdout.splitlines()
        if len(ln.split()) == 3 and ln.split()[1] in "tT"
    }
    elf = ElfSymbols(str(exe))
    # in this PIE the text segment's file offsets equal its virtual addresses
    for name in ("poll_so_error", "query_tcp_info", "main"):
        assert elf.lookup(addrs[name] + 3) == (name, 3)
    assert elf.source == "symtab" and elf.build_id
    assert ElfSymbols(str(tmp_path / "missing")).lookup(0x1000) is None

    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), str(exe)], check=True)
    assert ElfSymbols(str(stripped)).lookup(addrs["poll_so_error"]) is None

    # MiniDebugInfo as Fedora makes it: the function symbols, xz'ed into .gnu_debugdata
    mini = tmp_path / "mini"
    subprocess.run(
        ["objcopy", "--only-keep-debug", "--strip-debug", str(exe), str(mini)], check=True
    )
    subprocess.run(["xz", "-k", str(mini)], check=True)
    subprocess.run(
        ["objcopy", "--add-section", f".gnu_debugdata={mini}.xz", str(stripped)], check=True
    )
    fedora = ElfSymbols(str(stripped))
    assert fedora.source == "gnu_debugdata"
    assert fedora.lookup(addrs["query_tcp_info"] + 5) == ("query_tcp_info", 5)


def test_cxx_names_are_demangled() -> None:
    assert demangle(b"_ZN3foo3barEi") == "foo::bar(int)"
    assert demangle(b"poll_so_error") == "poll_so_error"
    assert demangle(b"_Znot valid") == "_Znot valid"
