"""Read the BPF ring buffer in bulk: the map's memory is mmap'ed and records are parsed by numpy.

One Python call per event (bcc's callback API) costs about 1 us and loses events at the rate of
one busy thread (docs/design.md, reference figures). Here a drain copies every ready record in
one numpy operation, about 0.1 us per event, and the kernel wakes us only now and then (see
getsockopt.bpf.c).

Ring buffer layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (we write it),
page 1 the producer position, then the data area. The kernel offers the data area mapped twice
in a row so that a run wrapping around the end is contiguous; we map it once (every page we
touch counts in our resident memory) and join the two pieces of a wrapping run ourselves. Each
record has an 8-byte header (length with BUSY and DISCARD bits, page offset) and is padded to 8
bytes.
"""

from __future__ import annotations

import mmap
import queue
import select
import threading
import time
from collections.abc import Callable

import numpy as np

from sockopt_trace.recorder.events import BUSY_BIT, DISCARD_BIT, event_dtype, record_dtype

PAGE = mmap.PAGESIZE
CAUGHT_UP_EVERY_NS = 5_000_000


class RingReader:
    """Zero-copy view of one BPF_MAP_TYPE_RINGBUF map; `drain` returns ready events."""

    def __init__(self, map_fd: int, size: int, context: bool = False) -> None:
        self._fd = map_fd
        self._size = size
        self._rec = record_dtype(context)
        self._ev = event_dtype(context)
        self._event_len = self._ev.itemsize
        self._cons_map = mmap.mmap(map_fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._prod_map = mmap.mmap(
            map_fd, PAGE + size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE
        )
        self._cons = np.frombuffer(self._cons_map, dtype="<u8", count=1)
        self._prod = np.frombuffer(self._prod_map, dtype="<u8", count=1)
        self._data = np.frombuffer(self._prod_map, dtype=np.uint8, offset=PAGE)

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def size(self) -> int:
        return self._size

    @property
    def record_size(self) -> int:
        return self._rec.itemsize

    def pending_bytes(self) -> int:
        return int(self._prod[0]) - int(self._cons[0])

    def positions(self) -> tuple[int, int]:
        """(consumer, producer) positions: bytes read and written since the ring was made."""
        return int(self._cons[0]), int(self._prod[0])

    def empty(self) -> np.ndarray:
        """A batch of no events, of this ring's record type."""
        return np.empty(0, dtype=self._ev)

    def drain(self, max_records: int = 1 << 16) -> np.ndarray:
        """Copy out up to max_records committed events and release their space to the kernel."""
        cons = int(self._cons[0])
        prod = int(self._prod[0])  # x86 keeps load order: data read below is at least this new
        recsize = self._rec.itemsize
        n = min((prod - cons) // recsize, max_records)
        if n <= 0:
            return np.empty(0, dtype=self._ev)
        records = self._run(cons & (self._size - 1), n * recsize).view(self._rec)
        lengths = records["hdr"]["len"]
        busy = (lengths & BUSY_BIT) != 0
        if busy.any():  # a producer is still writing this record: stop before it
            n = int(np.argmax(busy))
            records, lengths = records[:n], lengths[:n]
        sizes = lengths & ~np.uint32(BUSY_BIT | DISCARD_BIT)
        if n and (sizes != self._event_len).any():
            raise RuntimeError("ring buffer holds a record of unexpected size: format mismatch")
        # Copy as bytes: numpy copies a field of a structured array field by field (~30 ns per
        # event); a 2-D byte copy of the event part of each record is a strided memcpy.
        raw = records.view(np.uint8).reshape(n, recsize)
        out = np.ascontiguousarray(raw[:, 8 : 8 + self._event_len]).view(self._ev).reshape(n)
        self._cons[0] = cons + n * recsize  # hand the space back (one aligned 8-byte store)
        discarded = (lengths & DISCARD_BIT) != 0
        return out[~discarded] if discarded.any() else out

    def _run(self, start: int, length: int) -> np.ndarray:
        """`length` bytes of the data area from `start`, joined across the end if they wrap."""
        end = start + length
        if end <= self._size:
            return self._data[start:end]
        return np.concatenate((self._data[start:], self._data[: end - self._size]))

    def close(self) -> None:
        for name in ("_cons", "_prod", "_data"):
            setattr(self, name, None)
        self._cons_map.close()
        self._prod_map.close()


class Consumer(threading.Thread):
    """Drains the ring buffer into a bounded queue of batches; the writer thread takes them from
    there.

    Back-pressure reaches the kernel: when the queue holds `max_queued` events, the consumer
    stops taking calls out of the ring (which then is the buffer) until the writer catches up,
    so calls are lost only when the ring too is full, and then counted by the kernel
    (`ringbuf_full`). Calls are read in batches every `batch_interval`. `on_batch` sees each
    batch just before it is queued, and an empty one when there was none (or while waiting for
    the writer), so that what names the calls (the kernel's mapping records, symbols.py) is
    taken in before the writer needs it.

    Besides batches, the queue carries ints: CLOCK_MONOTONIC times before which every call
    reserved in the ring has been put on the queue (ahead of the int), which tell the writer
    where it may cut files (see writer.py); and finally None.
    """

    def __init__(
        self,
        reader: RingReader,
        out: queue.Queue,
        on_batch: Callable[[np.ndarray], None] = lambda _batch: None,
        max_queued: int = 1 << 18,  # 20 MB of events: the bound on user-space buffering
        poll_ms: int = 50,
        batch_interval: float = 0.02,
    ) -> None:
        super().__init__(name="sockopt-consumer", daemon=True)
        self.reader = reader
        self.out = out
        self.on_batch = on_batch
        self.max_queued = max_queued
        self.poll_ms = poll_ms
        self.batch_interval = batch_interval
        self.stop_event = threading.Event()  # drain what is left, then end
        self.abort_event = threading.Event()  # end now, leave the rest
        self.received = 0
        self.caught_up_ns = 0  # the last such time put on the queue
        self._queued = 0
        self._room = threading.Condition()
        self.error: BaseException | None = None

    def taken(self, n: int) -> None:
        """The writer calls this when it has taken n events off the queue."""
        with self._room:
            self._queued -= n
            self._room.notify()

    def run(self) -> None:
        idle = select.poll()  # nothing to read: sleep until calls arrive
        idle.register(self.reader.fd, select.POLLIN)
        try:
            while not self.stop_event.is_set() and not self.abort_event.is_set():
                if self.drain_all():
                    # Reading lines the producing CPU has just written costs a cross-core
                    # transfer each (measured: ~250 ns per event when chasing the producer,
                    # ~10 ns when reading behind it).
                    if self.reader.pending_bytes() < self.reader.size // 2:
                        time.sleep(self.batch_interval)
                else:
                    self.on_batch(self.reader.empty())
                    idle.poll(self.poll_ms)
            if not self.abort_event.is_set():
                self.drain_all()  # what the kernel wrote before detach
        except BaseException as err:  # surfaced by the session, never silently
            self.error = err
        finally:
            self.out.put(None)

    def drain_all(self) -> int:
        """Take every call committed so far, as fast as the writer takes them; return how many
        that was."""
        started = time.monotonic_ns()
        total = 0
        end = self.reader.pending_bytes()
        while end > 0:
            room = self._wait_for_room()
            if room == 0:  # aborted
                return total
            batch = self.reader.drain(min(room, 1 << 16))
            if not len(batch):
                break
            end -= len(batch) * self.reader.record_size
            total += len(batch)
            self.received += len(batch)
            with self._room:
                self._queued += len(batch)
            self.on_batch(batch)
            self.out.put(batch)
        if end <= 0 and started - self.caught_up_ns >= CAUGHT_UP_EVERY_NS:
            self.caught_up_ns = started
            self.out.put(started)
        return total

    def count_unwritten(self, until: float, ended: bool) -> tuple[int, bool]:
        """For a recording that will write no more: the calls taken from the kernel and not
        written, those queued and those left in the ring (read until `until`, then counted
        where they lie). `ended`: the queue's end marker was taken already; returned updated."""
        n = 0
        while not ended:
            try:
                batch = self.out.get(timeout=max(0.0, min(0.05, until - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= until:
                    break
                continue
            if batch is None:
                ended = True
            elif not isinstance(batch, int):
                self.taken(len(batch))
                n += len(batch)
        if not ended:
            self.abort_event.set()
            self.join(timeout=1.0)
            while True:
                try:
                    batch = self.out.get_nowait()
                except queue.Empty:
                    break
                n += len(batch) if batch is not None and not isinstance(batch, int) else 0
            n += self.reader.pending_bytes() // self.reader.record_size
        return n, ended

    def _wait_for_room(self) -> int:
        """Events the queue can take now, waiting (and taking in mapping records) while it is
        full."""
        while not self.abort_event.is_set():
            with self._room:
                room = self.max_queued - self._queued
                if room <= 0:
                    self._room.wait(0.005)
                    room = self.max_queued - self._queued
            if room > 0:
                return room
            self.on_batch(self.reader.empty())
        return 0
