"""Name call sites and stacks on the host, at record time, and keep what names them later.

An address is placed in its file through the process's mapping history (mappings.py), which
the kernel's side-band records keep complete whether the process still runs or not
(perfmaps.py). Each call site is then kept three ways: a name from the file's symbols
(`function+0xoff`, or `module+0xoff` where the binary is stripped), and the object's path,
GNU build-id, file offset and ELF address, which is what a debug file on another machine
needs (`sockopt-trace symbolize`).

Each distinct (pid, image, address) is resolved once; every cache is bounded (LRU).
"""

from __future__ import annotations

import os
import select
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from sockopt_trace.recorder.elfsyms import ElfSymbols
from sockopt_trace.recorder.grouping import dictionary, group_rows, ints
from sockopt_trace.recorder.mappings import Mapping, ProcessMaps
from sockopt_trace.recorder.perfmaps import MapTracker
from sockopt_trace.schema import UNKNOWN_FRAME

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond `capacity`. Thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._d.get(key)
            if value is not None:
                self._d.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


@dataclass(frozen=True, slots=True)
class Site:
    """One resolved address: a name for people, and where it is in which file."""

    frame: str  # function+0xoff, module+0xoff, or [unknown]
    function: str  # the function (or module) alone, for folded stacks
    object: str | None = None  # path of the mapped file
    build_id: str | None = None
    offset: int | None = None  # file offset
    address: int | None = None  # ELF virtual address (what debug files are keyed by)
    named: bool = False  # by a symbol of the file (else it shows as module+offset)

    @property
    def unresolved(self) -> bool:
        """Not named here, but where it is in a file is known: debug information may name it."""
        return not self.named and self.offset is not None and not self.frame.startswith("[")

    @property
    def location(self) -> str:
        """`KEY:0xOFFSET:0xADDRESS` (KEY the build-id, else the path): a stack frame as
        `stack_locations` keeps it, for symbolizing later."""
        if self.offset is None:
            return UNKNOWN_FRAME
        key = self.build_id or (self.object or "").replace("%", "%25").replace(";", "%3B")
        address = f"{self.address:#x}" if self.address is not None else ""
        return f"{key}:{self.offset:#x}:{address}"


UNKNOWN_SITE = Site(UNKNOWN_FRAME, UNKNOWN_FRAME)


class Ring(Protocol):
    def positions(self) -> tuple[int, int]: ...


class Symbolizer:
    """Resolves user addresses of any process, alive or exited, at the time of a call.

    The mapping records are taken in by a thread of their own from the moment the symbolizer
    exists (the kernel keeps only so many; loading the BPF program takes seconds), and again
    by `observe`, which runs on the thread that drains the ring, for each batch just before it
    is queued: the records of a batch's calls were written before the calls, so they are in.
    `decoded` runs on the writer once it has named a batch's rows. A process that exited is
    forgotten once every row it produced has been decoded.
    """

    def __init__(
        self,
        tracker: MapTracker | None = None,
        max_files: int = 256,
        max_addresses: int = 1 << 16,
    ) -> None:
        self.maps = ProcessMaps()
        self._tracker = tracker
        self._ring: Ring | None = None
        self._files: LRU[tuple[str, str | None], ElfSymbols | None] = LRU(max_files)
        self._sites: LRU[tuple[int, int, int], Site] = LRU(max_addresses)
        self._stacks: LRU[tuple[int, int, int, int], tuple[str, str, tuple[str, ...]]] = LRU(
            max_addresses
        )
        self._unresolved: set[str] = set()  # locations named module+offset since last asked
        # exits, with the ring's producer position once they were read (None: no ring yet)
        self._exiting: deque[tuple[int | None, int, int]] = deque()
        self._retiring: deque[tuple[int, int, int]] = deque()  # (rows seen, pid, time)
        self._rows_seen = 0
        self._rows_done = 0
        self._sync_lock = threading.Lock()
        self._forget_lock = threading.Lock()
        self._stopping = threading.Event()
        self._follower: threading.Thread | None = None
        if tracker is not None:
            self._follower = threading.Thread(target=self._follow, name="sockopt-maps", daemon=True)
            self._follower.start()

    def start(self, pids: Iterable[int] | None = None) -> None:
        """Read the maps of processes that run already: these, or all of them (in the
        background: ~0.6 ms each; a call of one not read yet has it read on the spot)."""
        if pids is None:
            threading.Thread(
                target=self.maps.snapshot_all, name="sockopt-snap", daemon=True
            ).start()
        else:
            for pid in pids:
                self.maps.snapshot(pid)

    def attach_ring(self, ring: Ring) -> None:
        """The ring the calls come through: exits read before it existed are placed at its
        current producer position (no call could be written before that)."""
        with self._sync_lock:
            produced = ring.positions()[1]
            self._exiting = deque(
                (produced if p is None else p, pid, t) for p, pid, t in self._exiting
            )
            self._ring = ring

    def _follow(self) -> None:
        assert self._tracker is not None
        poller = select.poll()
        for fd in self._tracker.fds:
            poller.register(fd, select.POLLIN)
        while not self._stopping.is_set():
            poller.poll(100)  # woken when a buffer is a quarter full, else 10 times a second
            self._sync()

    def _sync(self) -> None:
        """Take in the mapping records written so far; note the exits among them."""
        if self._tracker is None:
            return
        with self._sync_lock:
            exits = self.maps.apply(self._tracker.drain())
            if exits:
                produced = self._ring.positions()[1] if self._ring is not None else None
                self._exiting.extend((produced, e.pid, e.time) for e in exits)

    def observe(self, batch: np.ndarray) -> None:
        """Called on the thread that drains the ring with each batch before it is queued (an
        empty one when there was none): take in the records, retire processes that exited."""
        self._rows_seen += len(batch)
        if self._tracker is None:  # no mapping records: read new processes' maps at once
            for pid in np.unique(batch["pid"]).tolist() if len(batch) else []:
                if not self.maps.known(pid):
                    self.maps.snapshot(pid)
            return
        self._sync()
        if self._ring is None:
            return
        consumed = self._ring.positions()[0]
        with self._sync_lock:
            # every call of a process that exited was in the ring before its exit was read:
            # once the ring is read past that point, its last rows are on their way to `decoded`
            while self._exiting and (self._exiting[0][0] or 0) <= consumed:
                _, pid, when = self._exiting.popleft()
                self._retiring.append((self._rows_seen, pid, when))
        self._forget()

    def decoded(self, rows: int) -> None:
        self._rows_done += rows
        self._forget()

    def _forget(self) -> None:
        with self._forget_lock:
            while self._retiring and self._retiring[0][0] <= self._rows_done:
                _, pid, when = self._retiring.popleft()
                self.maps.forget(pid, when)

    def take_unresolved(self) -> int:
        """How many distinct call sites and frames were left unnamed since the last call."""
        count = len(self._unresolved)
        self._unresolved = set()
        return count

    @property
    def records_lost(self) -> int:
        """Mapping records the kernel could not hand over (its buffers were full)."""
        return self._tracker.lost if self._tracker is not None else 0

    def close(self) -> None:
        self._stopping.set()
        if self._follower is not None:
            self._follower.join(timeout=1)
        if self._tracker is not None:
            self._tracker.close()

    # -- resolving ------------------------------------------------------------------------
    def resolve(self, pid: int, addr: int, when: int) -> Site:
        """What address `addr` of process `pid` was at time `when` (CLOCK_MONOTONIC ns)."""
        if addr == 0:
            return UNKNOWN_SITE
        image = self.maps.image(pid, when)
        if image is None and self.maps.snapshot(pid):  # a process we have no records of
            image = self.maps.image(pid, when)
        key = (pid, -1 if image is None else image, addr)
        site = self._sites.get(key)
        if site is None:
            site = self._resolve(pid, addr, when)
            self._sites.put(key, site)
        return site

    def _resolve(self, pid: int, addr: int, when: int) -> Site:
        mapping = self.maps.find(pid, addr, when)
        if mapping is None and self.records_lost and self.maps.snapshot(pid, when):
            mapping = self.maps.find(pid, addr, when)  # the kernel dropped records: ask /proc
        if mapping is None:
            return UNKNOWN_SITE
        offset = addr - mapping.start + mapping.offset
        module = os.path.basename(mapping.path)
        if mapping.path.startswith("["):
            return Site(f"{module}+{offset:#x}", module, mapping.path, None, offset)
        elf = self._elf(pid, mapping)
        build_id = mapping.build_id or (elf.build_id if elf is not None else None)
        address = elf.address(offset) if elf is not None else None
        found = elf.lookup(offset) if elf is not None else None
        if found:
            frame, function = f"{found[0]}+{found[1]:#x}", found[0]
        else:
            frame, function = f"{module}+{offset:#x}", module
        return Site(frame, function, mapping.path, build_id, offset, address, found is not None)

    def _elf(self, pid: int, mapping: Mapping) -> ElfSymbols | None:
        """The mapped file's symbols; None if the file on disk is not the one that was mapped
        (replaced since: its names would be wrong)."""
        key = (mapping.path, mapping.build_id)
        elf = self._files.get(key)
        if elf is None:
            root = f"/proc/{pid}/root{mapping.path}"  # the process's own mount namespace
            elf = ElfSymbols(root if os.path.exists(root) else mapping.path)
            self._files.put(key, elf)
        if mapping.build_id and elf.build_id and elf.build_id != mapping.build_id:
            return None
        return elf

    # -- columns ----------------------------------------------------------------------------
    def _image_keys(self, pids: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Per row, which image of its process made the call, for processes that forked or
        exec'ed lately (0 for all the others, whose calls all come from their last image)."""
        keys = np.zeros(len(pids), np.int64)
        if not len(pids):
            return keys
        for pid, images in self.maps.images_since(int(times.min())).items():
            rows = np.flatnonzero(pids == pid)
            if len(rows):
                keys[rows] = np.searchsorted(np.array(images), times[rows], side="right")
        return keys

    def callsites(
        self, pids: np.ndarray, addrs: np.ndarray, times: np.ndarray
    ) -> dict[str, pa.Array]:
        """The call site columns; each distinct (pid, image, address) resolved once."""
        index, first = group_rows(pids, addrs, self._image_keys(pids, times))
        sites = [self.resolve(int(pids[r]), int(addrs[r]), int(times[r])) for r in first.tolist()]
        self._unresolved.update(s.location for s in sites if s.unresolved)
        return {
            "callsite": dictionary(index, [s.frame for s in sites]),
            "callsite_object": dictionary(index, [s.object for s in sites]),
            "callsite_build_id": dictionary(index, [s.build_id for s in sites]),
            "callsite_offset": ints(index, [s.offset for s in sites]),
            "callsite_address": ints(index, [s.address for s in sites]),
        }

    def folded_stacks(
        self,
        pids: np.ndarray,
        stack_ids: np.ndarray,
        callsites: np.ndarray,
        times: np.ndarray,
        walk: Callable[[int], list[int]],
    ) -> dict[str, pa.Array]:
        """Folded `outer;...;inner` per row (`stack`), and the same frames as locations in
        their files (`stack_locations`); null where no stack was captured.

        A frame-pointer walk from inside libc's wrapper follows the caller's frame pointer and so
        skips the caller itself; the call site read at the stack pointer is put back in its place.
        """
        if not (stack_ids >= 0).any():
            empty = dictionary(np.zeros(len(pids), np.int32), [None])
            return {"stack": empty, "stack_locations": empty}
        index, first = group_rows(pids, stack_ids, callsites, self._image_keys(pids, times))
        folded: list[tuple[str, str, tuple[str, ...]] | None] = []
        for row in first.tolist():
            pid, stack_id, site = int(pids[row]), int(stack_ids[row]), int(callsites[row])
            if stack_id < 0:
                folded.append(None)
                continue
            when = int(times[row])
            key = (pid, self.maps.image(pid, when) or 0, stack_id, site)
            text = self._stacks.get(key)
            if text is None:
                text = self._fold(pid, walk(stack_id), site, when)
                self._stacks.put(key, text)
            self._unresolved.update(text[2])
            folded.append(text)
        return {
            "stack": dictionary(index, [f[0] if f else None for f in folded]),
            "stack_locations": dictionary(index, [f[1] if f else None for f in folded]),
        }

    def _fold(
        self, pid: int, frames: list[int], callsite: int, when: int
    ) -> tuple[str, str, tuple[str, ...]]:
        """(folded names, folded locations, the unresolved locations among them)."""
        if frames and callsite:
            frames = [frames[0], callsite, *frames[1:]]
        sites = [self.resolve(pid, addr, when) for addr in reversed(frames)] or [UNKNOWN_SITE]
        return (
            ";".join(s.function for s in sites),
            ";".join(s.location for s in sites),
            tuple(s.location for s in sites if s.unresolved),
        )
