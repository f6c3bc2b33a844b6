"""Name call sites and stacks on the host, at record time, where binaries and /proc/PID/maps are.

Each distinct (pid, address) is resolved once; every cache is bounded (LRU), so a host with
thousands of processes and stacks cannot grow the recorder without limit. A process's maps are
loaded as soon as its first event arrives (`prepare`), since an exited process can no longer be
symbolized (DESIGN.md).
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Generic, TypeVar

import numpy as np
import pyarrow as pa
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sockopt_trace.schema import UNKNOWN_FRAME

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond `capacity`. Thread-safe: the
    consumer thread adds process maps while the writer thread resolves addresses."""

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        self.capacity = capacity
        self.on_evict = on_evict
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._d.get(key)
            if value is not None:
                self._d.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        evicted = []
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.capacity:
                evicted.append(self._d.popitem(last=False))
        if self.on_evict:
            for old_key, old_value in evicted:
                self.on_evict(old_key, old_value)

    def __len__(self) -> int:
        return len(self._d)


REUSE_CHECK_S = 1.0


def process_start(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


@dataclass(frozen=True)
class Mapping:
    """One executable, file-backed region of a process (a line of /proc/PID/maps)."""

    start: int
    end: int
    offset: int
    path: str


def read_maps(pid: int) -> list[Mapping] | None:
    """Executable file mappings of a live process, sorted by address; None if it is gone, or
    if it is exiting or exec'ing (its executable is not among them: a torn-down or half-built
    map must never replace a whole one)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            text = f.read().decode(errors="surrogateescape")
    except OSError:
        return None
    maps = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith(("/", "[vdso")):
            continue
        lo, hi = parts[0].split("-")
        maps.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), parts[5]))
    if not any(m.path == exe for m in maps):
        return None
    return sorted(maps, key=lambda m: m.start)


# Elf64_Sym, as laid out in .symtab/.dynsym: parsed with numpy, since walking half a million
# symbols through pyelftools takes seconds (measured: ~25 us each) and would stall the writer.
ELF64_SYM = np.dtype(
    [
        ("name", "<u4"),
        ("info", "u1"),
        ("other", "u1"),
        ("shndx", "<u2"),
        ("value", "<u8"),
        ("size", "<u8"),
    ]
)
STT_FUNC, STT_GNU_IFUNC = 2, 10


class ElfSymbols:
    """Function symbols of one ELF file, looked up by file offset (what /proc/PID/maps gives)."""

    def __init__(self, path: str) -> None:
        self.segments: list[tuple[int, int, int]] = []  # (file offset, vaddr, size)
        self.starts = np.empty(0, np.uint64)
        self.ends = np.empty(0, np.uint64)
        self._name_offsets = np.empty(0, np.uint32)
        self._strtab = b""
        # not an ELF we can read: its frames show as module+offset
        with contextlib.suppress(OSError, ELFError, ValueError):
            self._load(path)

    def __len__(self) -> int:
        return len(self.starts)

    def _load(self, path: str) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or not elf.little_endian:
                return
            for seg in elf.iter_segments("PT_LOAD"):
                self.segments.append((seg["p_offset"], seg["p_vaddr"], seg["p_filesz"]))
            if not self._read_symbols(elf):
                debug = _debug_file(elf)
                if debug:
                    with open(debug, "rb") as d:
                        self._read_symbols(ELFFile(d))

    def _read_symbols(self, elf: ELFFile) -> bool:
        """Function symbols of .symtab (which holds the dynamic ones too), else .dynsym."""
        for name in (".symtab", ".dynsym"):
            section = elf.get_section_by_name(name)
            if section is None or section["sh_entsize"] != ELF64_SYM.itemsize:
                continue
            syms = np.frombuffer(section.data(), dtype=ELF64_SYM)
            kind = syms["info"] & 0xF
            syms = syms[((kind == STT_FUNC) | (kind == STT_GNU_IFUNC)) & (syms["value"] != 0)]
            if not len(syms):
                continue
            order = np.argsort(syms["value"], kind="stable")
            syms = syms[order]
            self.starts = syms["value"]
            self.ends = syms["value"] + np.maximum(syms["size"], 1)
            self._name_offsets = syms["name"]
            self._strtab = elf.get_section(section["sh_link"]).data()
            return True
        return False

    def lookup(self, file_offset: int) -> tuple[str, int] | None:
        """(function, offset into it) for an offset in the file, or None."""
        for seg_off, vaddr, size in self.segments:
            if seg_off <= file_offset < seg_off + size:
                addr = file_offset - seg_off + vaddr
                break
        else:
            return None
        i = int(np.searchsorted(self.starts, np.uint64(addr), side="right")) - 1
        if i < 0 or addr >= int(self.ends[i]):
            return None
        off = int(self._name_offsets[i])
        raw = self._strtab[off : self._strtab.index(b"\0", off)]
        return demangle(raw), addr - int(self.starts[i])


@cache
def _cxa_demangle() -> Callable | None:
    try:
        fn = ctypes.CDLL("libstdc++.so.6").__cxa_demangle
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    return fn


def demangle(raw: bytes) -> str:
    """C++ (and legacy Rust) names as people read them, through libstdc++'s own demangler;
    the raw name if there is no demangler or the name is not mangled."""
    fn = _cxa_demangle() if raw.startswith(b"_Z") else None
    if fn is not None:
        status = ctypes.c_int()
        out = fn(raw, None, None, ctypes.byref(status))
        if out and status.value == 0:
            try:
                return ctypes.string_at(out).decode(errors="backslashreplace")
            finally:
                _libc_free(out)
    return raw.decode(errors="backslashreplace")


_libc_free = ctypes.CDLL(None).free
_libc_free.argtypes = [ctypes.c_void_p]


def _debug_file(elf: ELFFile) -> str | None:
    """A separate debug file holding the symbols (/usr/lib/debug/.build-id/xx/rest.debug)."""
    note = elf.get_section_by_name(".note.gnu.build-id")
    if note is None:
        return None
    for n in note.iter_notes():
        if n["n_type"] == "NT_GNU_BUILD_ID":
            bid = n["n_desc"]
            debug = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
            if os.path.exists(debug):
                return debug
    return None


class Symbolizer:
    """Resolves user addresses per process from snapshots of /proc/PID/maps and ELF symbols.

    Snapshots are taken as early as possible (`prepare`: on a process's first event, and right
    after a traced command execs) and kept after the process exits, so calls of short-lived
    processes are still named; files are read once per path. All caches are bounded.
    """

    def __init__(
        self, max_processes: int = 4096, max_files: int = 256, max_addresses: int = 1 << 16
    ) -> None:
        self._maps: LRU[int, list[Mapping]] = LRU(max_processes)
        self._started: LRU[int, tuple[int | None, float]] = LRU(max_processes)
        self._generation: dict[int, int] = {}  # bumped when a pid is reused by a new process
        self._exec_watcher = ExecWatcher(self._maps)
        self._files: LRU[str, ElfSymbols] = LRU(max_files)
        self._addresses: LRU[tuple[int, int, int], tuple[str, str]] = LRU(max_addresses)
        self._stacks: LRU[tuple[int, int, int, int], str] = LRU(max_addresses)

    def prepare(self, pids: Iterable[int]) -> None:
        """Snapshot the maps of these processes now, while they are alive."""
        for pid in pids:
            maps = read_maps(int(pid))
            if maps:
                self._maps.put(int(pid), maps)

    def observe(self, pids: Iterable[int]) -> None:
        """Called with the processes of every batch as it arrives: snapshot new processes at
        once, and notice a pid reused by a new process (its start time changed; checked at
        most once a second per pid), whose cached names must not be reused."""
        now = time.monotonic()
        for pid in (int(p) for p in pids):
            seen = self._started.get(pid)
            if seen is not None and now - seen[1] < REUSE_CHECK_S:
                continue
            start = process_start(pid)
            if seen is None or (start is not None and start != seen[0]):
                if seen is not None:
                    self._generation[pid] = self._generation.get(pid, 0) + 1
                self.prepare([pid])
            if start is None and seen is not None:
                start = seen[0]  # gone: remember the process we knew
            self._started.put(pid, (start, now))

    def prepare_exec(self, pid: int, wait: float = 0.0) -> None:
        """A traced process has just exec'ed: watch its memory map from another thread while
        its loader maps its libraries, so that a program that exits a millisecond after its
        last call still has its call sites named (see ExecWatcher). With `wait`, first read it
        here until its executable is mapped (the caller just released it: no thread could be
        quicker than that)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            maps = read_maps(pid)
            if maps:
                self._maps.put(pid, maps)
                break
            time.sleep(0.0001)
        self._exec_watcher.watch(pid)

    def close(self) -> None:
        self._exec_watcher.stop()

    def _mapping(self, pid: int, addr: int) -> Mapping | None:
        for attempt in range(2):
            maps = self._maps.get(pid)
            if maps:
                i = bisect.bisect_right([m.start for m in maps], addr) - 1
                if i >= 0 and addr < maps[i].end:
                    return maps[i]
            if attempt == 0:
                self.prepare([pid])  # a library loaded since the snapshot, or no snapshot yet
        return None

    def _elf(self, pid: int, path: str) -> ElfSymbols:
        elf = self._files.get(path)
        if elf is None:
            root = f"/proc/{pid}/root{path}"  # the process's own mount namespace, if alive
            elf = ElfSymbols(root if os.path.exists(root) else path)
            self._files.put(path, elf)
        return elf

    def resolve(self, pid: int, addr: int) -> tuple[str, str]:
        """(frame with offset, function name only) for one address in one process."""
        if addr == 0:
            return UNKNOWN_FRAME, UNKNOWN_FRAME
        key = (pid, self._generation.get(pid, 0), addr)
        hit = self._addresses.get(key)
        if hit is None:
            hit = self._resolve(pid, addr)
            self._addresses.put(key, hit)
        return hit

    def _resolve(self, pid: int, addr: int) -> tuple[str, str]:
        mapping = self._mapping(pid, addr)
        if mapping is None:
            return UNKNOWN_FRAME, UNKNOWN_FRAME
        file_offset = addr - mapping.start + mapping.offset
        found = (
            None
            if mapping.path.startswith("[")
            else self._elf(pid, mapping.path).lookup(file_offset)
        )
        if found:
            return f"{found[0]}+{found[1]:#x}", found[0]
        module = os.path.basename(mapping.path)
        return f"{module}+{file_offset:#x}", module

    def callsites(self, pids: np.ndarray, addrs: np.ndarray) -> pa.Array:
        """Symbolized call site per row; each distinct (pid, address) pair resolved once."""
        index, first = group_rows(pids, addrs)
        names = [self.resolve(int(pids[r]), int(addrs[r]))[0] for r in first.tolist()]
        return dictionary(index, names)

    def folded_stacks(
        self, pids: np.ndarray, stack_ids: np.ndarray, callsites: np.ndarray, walk: Callable
    ) -> pa.Array:
        """Folded `outer;...;inner` per row, null where no stack was captured.

        A frame-pointer walk from inside libc's wrapper follows the caller's frame pointer and so
        skips the caller itself; the call site read at the stack pointer is put back in its place.
        """
        if not (stack_ids >= 0).any():
            return dictionary(np.zeros(len(pids), np.int32), [None])
        index, first = group_rows(pids, stack_ids, callsites)
        folded: list[str | None] = []
        for row in first.tolist():
            pid, stack_id, site = int(pids[row]), int(stack_ids[row]), int(callsites[row])
            if stack_id < 0:
                folded.append(None)
                continue
            key = (pid, self._generation.get(pid, 0), stack_id, site)
            text = self._stacks.get(key)
            if text is None:
                text = self._fold(pid, walk(stack_id), site)
                self._stacks.put(key, text)
            folded.append(text)
        return dictionary(index, folded)

    def _fold(self, pid: int, frames: list[int], callsite: int) -> str:
        if frames and callsite:
            frames = [frames[0], callsite, *frames[1:]]
        names = [self.resolve(pid, addr)[1] for addr in frames] or [UNKNOWN_FRAME]
        return ";".join(reversed(names))


def group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by the tuple of their values: (group index per row, first row of each group).

    Runs on every batch of the hot path, so: one hash-based pass (Arrow dictionary encoding) over
    a 64-bit mix of the columns, then a vectorized check that every row equals its group's first
    row; only if two different tuples collided in the mix is the exact, slower path taken.
    """
    n = len(columns[0])
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    mixed = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, column in enumerate(columns):
            mixed = mixed * np.uint64(0x9E3779B97F4A7C15 + 2 * i) + column.astype(np.uint64)
    index, _ = _encode(mixed)
    first = _first_rows(index)
    if all((column == column[first][index]).all() for column in columns):
        return index, first
    combined = np.zeros(n, dtype=np.int64)
    for column in columns:
        idx, uniq = _encode(column)
        combined, _ = _encode(combined * len(uniq) + idx)
        combined = combined.astype(np.int64)
    return combined, _first_rows(combined)


def _first_rows(index: np.ndarray) -> np.ndarray:
    first = np.empty(int(index.max()) + 1, dtype=np.int64)
    first[index[::-1]] = np.arange(len(index) - 1, -1, -1)
    return first


def dictionary(index: np.ndarray, values: list[str | None]) -> pa.DictionaryArray:
    """A dictionary-typed string column (None values become nulls): Parquet writes it without
    hashing every row again."""
    missing = np.array([v is None for v in values], dtype=bool)
    mask = missing[index] if missing.any() else None
    return pa.DictionaryArray.from_arrays(
        pa.array(index.astype(np.int32), mask=mask),
        pa.array(["" if v is None else v for v in values], pa.string()),
    )


class ExecWatcher(threading.Thread):
    """Re-reads the memory maps of just-exec'ed processes while their dynamic loader maps their
    libraries, many processes at once, without holding up the thread that drains the ring
    buffer: a program that exits a few milliseconds after its last call still has its call
    sites named. Each process is watched until it exits or for `timeout` seconds, often at
    first and less often later (its first getsockopt call triggers a fresh read anyway)."""

    def __init__(self, maps: LRU[int, list[Mapping]], timeout: float = 0.2) -> None:
        super().__init__(name="sockopt-maps", daemon=True)
        self._maps = maps
        self._timeout = timeout
        self._new: list[tuple[int, float]] = []
        self._wake = threading.Event()
        self._stopping = False
        self._launched = False
        self._start_lock = threading.Lock()

    def watch(self, pid: int) -> None:
        with self._start_lock:  # the consumer and the main thread may both be first
            if not self._launched and not self._stopping:
                self.start()
                self._launched = True
        self._new.append((pid, time.monotonic()))  # list.append is atomic under the GIL
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def run(self) -> None:
        pending: dict[
            int, tuple[float, float, list[Mapping] | None]
        ] = {}  # pid -> since, next, last
        while not self._stopping:
            if not pending:
                self._wake.wait()
                self._wake.clear()
            while self._new:
                pid, since = self._new.pop()
                pending[pid] = (since, 0.0, None)
            now = time.monotonic()
            for pid, (since, due, last) in list(pending.items()):
                if now < due:
                    continue
                age = now - since
                maps = read_maps(pid)
                gone = maps is None and not os.path.exists(f"/proc/{pid}/maps")
                if gone or age > self._timeout:
                    del pending[pid]  # gone, or watched long enough: keep what we have
                    continue
                if maps and maps != last:
                    self._maps.put(pid, maps)
                # every 0.2 ms for the first 20 ms (while the loader runs), then every 5 ms
                pending[pid] = (since, now + (0.0002 if age < 0.02 else 0.005), maps)
            time.sleep(0.0002)


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index per row, distinct values) by hashing: O(n), no sort."""
    encoded = pa.array(values).dictionary_encode()
    return (
        encoded.indices.to_numpy(zero_copy_only=False),
        encoded.dictionary.to_numpy(zero_copy_only=False),
    )
