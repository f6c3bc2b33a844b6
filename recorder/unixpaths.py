"""Unix sockets named by path: the kernel side records inode numbers (getsockopt.h), this names
them from /proc/net/unix, the table `ss -x` shows (Num RefCount Protocol Flags Type St Inode
Path): a bound socket's path, '@' and the name for the abstract namespace (its NULs as '@'), the
listener's path for a socket it accepted, none for an unbound one.

The table is read again only when calls name an inode it did not hold (at most once per batch),
or, at most once every UNBOUND_REREAD_NS, when a socket unbound at the last read made a call since
(bind comes once, maybe after a first call). Sockets of another network namespace are in their
own table, read through a calling process (/proc/PID/net/unix). Names are taken in as the
consumer reads the calls (observe), so a socket closed within about 0.1 s of its call can be
gone unnamed (null), like a cgroup removed before its name was read.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

UNBOUND_REREAD_NS = 1_000_000_000
KEEP_NS = 120_000_000_000  # a name no longer in the table, for calls not yet written
MAX_NAMESPACES = 4  # other network namespaces' tables read at most per re-read
_LINE = re.compile(rb"^\S+: \S+ \S+ \S+ \S+ \S+ +(\d+)(?: (.*))?$", re.M)


def parse(table: bytes) -> dict[int, str | None]:
    """inode -> path (None: unbound) from the text of /proc/net/unix."""
    return {
        int(m[1]): None if m[2] is None else m[2].decode("utf-8", "backslashreplace")
        for m in _LINE.finditer(table)
    }


class UnixPaths:
    """inode numbers -> paths, shared by the consumer's thread (observe) and the writer's."""

    def __init__(self, proc: Path = Path("/proc"), clock: Callable[[], int] = time.monotonic_ns):
        self.proc = proc
        self.clock = clock
        self.names: dict[int, str | None] = {}
        self.read_at = -1  # CLOCK_MONOTONIC ns when the table was last read
        self.reads = 0
        self._used: dict[int, int] = {}  # inode -> when calls last named it
        self._lock = threading.Lock()

    def resolve(
        self, local: np.ndarray, peer: np.ndarray, pids: np.ndarray, ts: np.ndarray
    ) -> None:
        """Make sure the inodes of these calls (AF_UNIX rows) are named if they can be."""
        with self._lock:
            now = self.clock()
            own = _distinct(local)
            inodes = (own | _distinct(peer)) - {0}
            for inode in inodes:
                self._used[inode] = now
            missing = {i for i in inodes if i not in self.names}
            stale = (
                now - self.read_at >= UNBOUND_REREAD_NS
                and int(ts.max()) > self.read_at
                and any(self.names.get(i, "") is None for i in own)
            )
            if missing or stale:
                self._read(now, missing, local, peer, pids)

    def path(self, inode: int) -> str | None:
        return self.names.get(inode)

    def _read(
        self, now: int, missing: set[int], local: np.ndarray, peer: np.ndarray, pids: np.ndarray
    ) -> None:
        self.reads += 1
        fresh = parse(_read(self.proc / "self" / "net" / "unix"))  # /proc/net/unix
        missing = {i for i in missing if i not in fresh}
        if missing:  # sockets of other network namespaces, or gone
            rows = np.isin(local, list(missing)) | np.isin(peer, list(missing))
            seen = {_netns(self.proc / "self")}
            for pid in np.unique(pids[rows]).tolist():
                ns = _netns(self.proc / str(pid))
                if ns in seen or len(seen) > MAX_NAMESPACES:
                    continue
                seen.add(ns)
                fresh |= parse(_read(self.proc / str(pid) / "net" / "unix"))
        kept = {i: p for i, p in self.names.items() if self._used.get(i, -KEEP_NS) > now - KEEP_NS}
        self._used = {i: t for i, t in self._used.items() if t > now - KEEP_NS}
        self.names = kept | {i: None for i in missing} | fresh
        self.read_at = now


def _distinct(values: np.ndarray) -> set[int]:
    return set(pa.array(values).unique().to_pylist())  # by hashing: 10x np.unique's sort


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _netns(proc_pid: Path) -> int | None:
    try:
        return os.stat(proc_pid / "ns" / "net").st_ino
    except OSError:
        return None
