"""Where each process's code was mapped, and when: an address of any process, alive or exited,
placed in its file at the moment of a call.

Fed by the kernel's side-band records (perfmaps.py) for everything that happens while we
record, and by /proc/PID/maps for the processes that already ran when we started (as perf
synthesizes them). Every mapping carries the time it was made, and every process the times
its image began (fork, exec), so a call is placed in the image it was made from: a pid reused
by a new process, or a process that exec'ed, never lends its names to another.

A process is forgotten only after it exited and every call it made before that has been
decoded (`retire` / `forget`); until then it costs a few hundred bytes.
"""

from __future__ import annotations

import bisect
import os
import sys
import threading
from dataclasses import dataclass, field

from sockopt_trace.recorder.perfmaps import MapRecord, Record, TaskRecord


@dataclass(frozen=True, slots=True)
class Mapping:
    """One executable, file-backed region of a process."""

    start: int
    end: int
    offset: int  # file offset of `start`
    path: str
    build_id: str | None = None  # hex; None if unknown


@dataclass
class _History:
    """One pid: when its images began, and its mappings by the time they were made."""

    images: list[int] = field(default_factory=lambda: [0])  # sorted start times
    times: list[int] = field(default_factory=list)  # sorted, parallel to `maps`
    maps: list[Mapping] = field(default_factory=list)

    def add(self, when: int, mapping: Mapping) -> None:
        i = bisect.bisect_right(self.times, when)  # after equal times: arrival order kept
        self.times.insert(i, when)
        self.maps.insert(i, mapping)

    def image_at(self, when: int) -> int:
        """Start time of the image a call made at `when` ran in."""
        return self.images[max(0, bisect.bisect_right(self.images, when) - 1)]

    def visible(self, when: int) -> list[Mapping]:
        """Mappings of the image running at `when` made by then, oldest first."""
        lo = bisect.bisect_left(self.times, self.image_at(when))
        hi = bisect.bisect_right(self.times, when)
        return self.maps[lo:hi]

    def find(self, addr: int, when: int) -> Mapping | None:
        for m in reversed(self.visible(when)):  # the latest mapping over an address wins
            if m.start <= addr < m.end:
                return m
        return None


MAX_PROCESSES = 1 << 16  # beyond this, histories of processes gone are dropped (see `_sweep`)
RECENT_NS = 10_000_000_000  # how far back a batch's calls may reach (a long call's entry)
SNAPSHOT = 0  # the time given to mappings read from /proc at start: before any record


def read_maps(pid: int) -> list[Mapping] | None:
    """Executable file mappings of a live process; None if it is gone or has none (exiting)."""
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
        path = sys.intern(parts[5].removesuffix(" (deleted)"))
        maps.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), path))
    return maps or None


class ProcessMaps:
    """The mapping history of every process seen; thread-safe (records arrive on the thread
    that drains the ring, lookups come from the writer)."""

    def __init__(self) -> None:
        self._pids: dict[int, _History] = {}
        self._recent: dict[int, int] = {}  # pid -> start of its last image, if recent
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pids)

    def snapshot(self, pid: int, when: int = SNAPSHOT) -> bool:
        """Take a running process's maps from /proc: for a process we have no records of (as
        of the start), or as of `when` when records were lost."""
        maps = read_maps(pid)
        if not maps:
            return False
        with self._lock:
            history = self._pids.setdefault(pid, _History())
            for m in maps:
                history.add(when, m)
            if len(self._pids) > MAX_PROCESSES:
                self._sweep()
        return True

    def snapshot_all(self) -> int:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        return sum(self.snapshot(pid) for pid in pids)

    def apply(self, records: list[Record]) -> list[TaskRecord]:
        """Apply records (sorted by time); returns the exits among them."""
        exits = []
        with self._lock:
            for r in records:
                if isinstance(r, MapRecord):
                    path = sys.intern(r.path)  # one copy of each path, however many maps
                    mapping = Mapping(r.start, r.end, r.offset, path, r.build_id)
                    self._pids.setdefault(r.pid, _History()).add(r.time, mapping)
                elif r.kind == "exit":
                    exits.append(r)
                elif r.kind == "fork":
                    self._fork(r)
                else:  # exec: a new image, empty until the kernel maps the program
                    bisect.insort(self._pids.setdefault(r.pid, _History()).images, r.time)
                if isinstance(r, TaskRecord) and r.kind != "exit":
                    self._recent[r.pid] = r.time
            if len(self._pids) > MAX_PROCESSES:
                self._sweep()
        return exits

    def _sweep(self) -> None:
        """Drop the histories of processes that no longer run: only reached when exits go
        unseen (no mapping records, or the kernel dropped some), so that memory stays bounded."""
        for pid in [p for p in self._pids if not os.path.exists(f"/proc/{p}")]:
            del self._pids[pid]

    def _fork(self, r: TaskRecord) -> None:
        child = self._pids.setdefault(r.pid, _History())
        bisect.insort(child.images, r.time)
        parent = self._pids.get(r.parent)
        for m in parent.visible(r.time) if parent else []:  # the child starts as a copy
            child.add(r.time, m)

    def find(self, pid: int, addr: int, when: int) -> Mapping | None:
        with self._lock:
            history = self._pids.get(pid)
            return history.find(addr, when) if history else None

    def image(self, pid: int, when: int) -> int | None:
        """Start time of the image of `pid` running at `when` (None: no history)."""
        with self._lock:
            history = self._pids.get(pid)
            return history.image_at(when) if history else None

    def known(self, pid: int) -> bool:
        return pid in self._pids

    def images_since(self, when: int) -> dict[int, list[int]]:
        """Image start times of the pids whose last image began after `when`: the only ones
        whose calls in a batch starting at `when` may belong to different images."""
        with self._lock:
            old = [p for p, t in self._recent.items() if t < when - RECENT_NS]
            for p in old:
                del self._recent[p]
            return {p: list(self._pids[p].images) for p, t in self._recent.items()
                    if t > when and p in self._pids}  # fmt: skip

    def forget(self, pid: int, exited: int) -> None:
        """Drop what process `pid` had before it exited at `exited` (CLOCK_MONOTONIC ns),
        unless it still runs (a thread exited, not the process), keeping any newer process
        that took over the pid."""
        with self._lock:
            history = self._pids.get(pid)
            if history is None:
                return
            newer = [t for t in history.images if t > exited]
            if not newer:
                if read_maps(pid):
                    return  # still running: only a thread ended (a zombie has no maps)
                del self._pids[pid]
                return
            cut = bisect.bisect_left(history.times, newer[0])
            history.images = newer
            del history.times[:cut], history.maps[:cut]
