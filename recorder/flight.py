"""`record --flight DURATION`: keep only the last DURATION of calls in memory, write them out on
demand (SIGUSR1, `sockopt-trace dump`) or when a trigger fires, and go on.

The buffer holds the kernel's records as the consumer delivers them (numpy batches, 88 bytes a
call), and is bounded twice: by time (batches whose newest call completed more than DURATION
ago are dropped) and by memory (the oldest batches go first once `max_bytes` is reached; what
that cut is counted, and a dump then covers less than DURATION). A trigger is a condition over
the calls that completed in the last second, checked as batches arrive, e.g. `errors>100/s` or
`p99>2ms`; counts honour each row's weight (--max-rate), so they estimate all calls.
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sockopt_trace.errors import UserError
from sockopt_trace.recorder.clock import clock_mapping
from sockopt_trace.recorder.eventlog import utc_clock
from sockopt_trace.recorder.losses import Tally
from sockopt_trace.recorder.writer import RecordingWriter
from sockopt_trace.schema import FILE_SUFFIX, LOCK_NAME, PARTIAL_SUFFIX
from sockopt_trace.units import parse_duration

SECOND_NS = 1_000_000_000
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999, "max": 1.0}
RATES = ("errors", "calls")
_TRIGGER = re.compile(r"\s*([a-z0-9]+)\s*>\s*([0-9.]+\s*[a-z]*)\s*(/\s*s)?\s*")


def completed(batch: np.ndarray) -> np.ndarray:
    """When each call completed, on CLOCK_MONOTONIC (the kernel's bpf_ktime_get_ns)."""
    return batch["ts_ns"] + batch["latency_ns"]


BUCKETS_PER_OCTAVE = 32  # latency histogram for triggers: buckets 2.2% wide
NBUCKETS = 48 * BUCKETS_PER_OCTAVE  # up to 2^48 ns (3 days)


@dataclass
class Summary:
    """One batch, as triggers need it: weighted counts and a latency histogram."""

    end_ns: int
    calls: float
    errors: float
    max_ns: int
    hist: np.ndarray


class LastSecond:
    """Summaries of the batches whose calls completed in the last second: what a trigger reads,
    at a cost per batch, not per call of the window."""

    def __init__(self) -> None:
        self._parts: deque[Summary] = deque()

    def add(self, batch: np.ndarray) -> None:
        if not len(batch):
            return
        weight = batch["weight"].astype(np.float64)
        latency = np.maximum(batch["latency_ns"], 1).astype(np.float64)
        index = np.minimum(np.log2(latency) * BUCKETS_PER_OCTAVE, NBUCKETS - 1).astype(np.intp)
        self._parts.append(
            Summary(
                int(completed(batch).max()),
                float(weight.sum()),
                float(weight[batch["ret"] < 0].sum()),
                int(batch["latency_ns"].max()),
                np.bincount(index, weights=weight, minlength=NBUCKETS),
            )
        )

    def window(self, now_ns: int) -> Summary:
        """Everything that completed in (now - 1 s, now], summed."""
        while self._parts and self._parts[0].end_ns <= now_ns - SECOND_NS:
            self._parts.popleft()
        hist = np.zeros(NBUCKETS)
        total = Summary(now_ns, 0.0, 0.0, 0, hist)
        for part in self._parts:
            total.calls += part.calls
            total.errors += part.errors
            total.max_ns = max(total.max_ns, part.max_ns)
            hist += part.hist
        return total


@dataclass(frozen=True)
class Trigger:
    """`METRIC>VALUE` over the last second: errors or calls per second (`errors>100/s`), or a
    latency percentile (to 2.2%, from a histogram) or the maximum (`p99>2ms`, `max>1s`)."""

    metric: str
    threshold: float  # calls per second, or nanoseconds
    text: str

    def value(self, last: Summary) -> float:
        if self.metric == "errors":
            return last.errors
        if self.metric == "calls":
            return last.calls
        if self.metric == "max":
            return float(last.max_ns)
        cumulative = np.cumsum(last.hist)
        if not len(cumulative) or cumulative[-1] <= 0:
            return 0.0
        index = int(np.searchsorted(cumulative, QUANTILES[self.metric] * cumulative[-1]))
        return float(2.0 ** ((min(index, NBUCKETS - 1) + 0.5) / BUCKETS_PER_OCTAVE))

    def fired(self, last: Summary) -> bool:
        return self.value(last) > self.threshold


def parse_trigger(text: str) -> Trigger:
    m = _TRIGGER.fullmatch(text.lower())
    usage = "use errors>N/s, calls>N/s, or p50|p90|p99|p999|max>DURATION (e.g. p99>2ms)"
    if not m:
        raise UserError(f"bad --trigger {text!r}: {usage}")
    metric, value, per_second = m.groups()
    if metric in RATES:
        if not per_second or not re.fullmatch(r"[0-9.]+", value.strip()):
            raise UserError(f"bad --trigger {text!r}: a rate, e.g. {metric}>100/s")
        return Trigger(metric, float(value), text)
    if metric in QUANTILES and not per_second:
        return Trigger(metric, parse_duration(value, f"--trigger {text!r}") * 1e9, text)
    raise UserError(f"bad --trigger {text!r}: {usage}")


class FlightBuffer:
    """The last `seconds` of calls, at most `max_bytes` of them."""

    def __init__(self, seconds: float, max_bytes: int, now_ns: int | None = None) -> None:
        self.span_ns = int(seconds * SECOND_NS)
        self.max_bytes = max_bytes
        self._batches: deque[np.ndarray] = deque()
        self.bytes = 0
        self.rows = 0
        self.cut_for_memory = 0  # calls dropped before their time, to stay under max_bytes
        # the buffer holds every call completed since then (that memory did not cut)
        self.since_ns = time.monotonic_ns() if now_ns is None else now_ns

    def add(self, batch: np.ndarray, now_ns: int | None = None) -> None:
        if len(batch):
            self._batches.append(batch)
            self.bytes += batch.nbytes
            self.rows += len(batch)
        self.trim(time.monotonic_ns() if now_ns is None else now_ns)

    def trim(self, now_ns: int) -> None:
        horizon = now_ns - self.span_ns
        while self._batches and (
            self.bytes > self.max_bytes or int(completed(self._batches[0]).max()) < horizon
        ):
            old = self._batches.popleft()
            self.bytes -= old.nbytes
            self.rows -= len(old)
            ends = int(completed(old).max())
            if ends >= horizon:  # cut for memory, not age
                self.cut_for_memory += len(old)
            self.since_ns = max(self.since_ns, ends + 1)
        self.since_ns = max(self.since_ns, horizon)

    def take(self, now_ns: int | None = None) -> tuple[list[np.ndarray], int]:
        """Everything held, oldest first, and the start of the span it covers; then empty."""
        self.trim(time.monotonic_ns() if now_ns is None else now_ns)
        batches, since = list(self._batches), self.since_ns
        self._batches.clear()
        self.bytes = self.rows = 0
        self.since_ns = time.monotonic_ns() if now_ns is None else now_ns
        return batches, since


@dataclass
class FlightConfig:
    seconds: float
    max_bytes: int = 256 << 20
    triggers: tuple[Trigger, ...] = ()


class FlightRecorder:
    """Stands in for the recording's writer with --flight: calls go to the buffer, and each dump
    (a signal, `sockopt-trace dump`, a trigger) is written by a writer of its own, as a whole
    recording of its own (its own recording id), in a thread, so that the buffer keeps taking
    calls meanwhile. A trigger fires at most once per DURATION, so dumps never overlap."""

    def __init__(
        self,
        config: FlightConfig,
        new_writer: Callable[[int, Tally], RecordingWriter],
        tally: Callable[[], Tally],
        log: Callable[[str], None],
    ) -> None:
        self.config = config
        self.new_writer = new_writer  # (span start, CLOCK_MONOTONIC ns; counts at that start)
        self.tally = tally
        self.log = log
        self.buffer = FlightBuffer(config.seconds, config.max_bytes)
        self.last = LastSecond()
        self.files: list[Path] = []
        self.rows_sealed = 0
        self.bytes_closed = 0
        self.dumps = 0
        self._base = tally()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last_trigger = -math.inf
        self._next_check = 0.0

    def add(self, batch: np.ndarray) -> None:
        self.buffer.add(batch)
        if self.config.triggers:
            self.last.add(batch)

    def tick(self, _caught_up_ns: int = 0) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        now = time.monotonic()
        if not self.config.triggers or now < self._next_check:
            return
        self._next_check = now + 0.1
        if now - self._last_trigger < self.config.seconds:
            return
        window = self.last.window(time.monotonic_ns())
        for trigger in self.config.triggers:
            if trigger.fired(window):
                self._last_trigger = now
                value = trigger.value(window)
                self.dump(f"trigger {trigger.text} ({value:,.0f})")
                return

    def dump(self, why: str) -> bool:
        """Write out what the buffer holds, in the background; False if a dump is running."""
        if self._thread is not None and self._thread.is_alive():
            self.log(f"dump ({why}) not started: the previous one is still being written")
            return False
        taken = time.monotonic_ns()
        batches, since = self.buffer.take(taken)
        base, self._base = self._base, self.tally()
        cut, self.buffer.cut_for_memory = self.buffer.cut_for_memory, 0
        self._thread = threading.Thread(
            target=self._write, args=(batches, since, taken, base, why, cut), name="sockopt-dump"
        )
        self._thread.start()
        return True

    def _write(
        self,
        batches: list[np.ndarray],
        since: int,
        taken: int,
        base: Tally,
        why: str,
        cut: int,
    ) -> None:
        """One dump: the span [since, taken) (CLOCK_MONOTONIC) and every call in it."""
        try:
            writer = self.new_writer(since, base)
            for batch in batches:
                writer.add(batch)
            writer.close(taken)
        except BaseException as err:  # surfaced by tick() in the recording's thread
            self._error = err
            return
        self.files += writer.files
        self.rows_sealed += writer.rows_sealed
        self.bytes_closed += writer.bytes_written
        self.dumps += 1
        note = f"; {cut:,} older calls had been cut to stay under --flight-memory" if cut else ""
        wall = since + clock_mapping().offset_ns
        self.log(
            f"dump ({why}): {writer.rows_sealed:,} calls from {utc_clock(wall)} UTC in "
            f"{len(writer.files)} files, recording {writer.recording_id[:8]}{note}"
        )

    def seal_now(self) -> None:
        self.dump("asked")

    def close(self, _stop_mono_ns: int = 0) -> None:
        """Stop: wait for a dump being written; what the buffer holds is not written (only a
        dump writes), and the log says how much that was."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        if self.buffer.rows:
            self.log(f"stopped with {self.buffer.rows:,} calls in the flight buffer, not dumped")

    def abandon(self, write_footer: bool = True) -> int:
        return 0

    def finish_ledger(self, state: str, extra: dict[str, int]) -> None:
        """Dumps keep their own ledgers while they are written; the buffer has none."""

    def update_ledger(self) -> None:
        pass

    def tick_ledger(self) -> None:
        pass

    @property
    def bytes_written(self) -> int:
        return self.bytes_closed


def ask_dump(directory: Path, pid: int | None, timeout: float) -> list[Path]:
    """`sockopt-trace dump DIR`: signal the recorder writing into DIR (SIGUSR1) and wait for
    the files it writes; returns them. A flight recorder dumps its buffer; a plain recorder
    seals its current file."""
    if pid is None:
        lock = directory / LOCK_NAME
        try:
            pid = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise UserError(
                f"no recorder is writing into {directory} (no {LOCK_NAME}): is it the -o DIR "
                "of a running `sockopt-trace record`? --pid N names the recorder"
            ) from None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        raise UserError(f"no process {pid}: the recorder is not running") from None
    if not any(b"sockopt" in a for a in argv) or b"record" not in argv:
        raise UserError(f"process {pid} is not a sockopt-trace recorder: not signalled")
    before = set(directory.glob(f"*{FILE_SUFFIX}"))
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as err:
        raise UserError(f"cannot signal the recorder (pid {pid}): {err.strerror}") from None
    deadline = time.monotonic() + timeout
    new: set[Path] = set()
    settled_at = math.inf
    while time.monotonic() < deadline:
        now_new = set(directory.glob(f"*{FILE_SUFFIX}")) - before
        busy = any(directory.glob(f"*{PARTIAL_SUFFIX}"))
        if now_new != new or busy:
            new, settled_at = now_new, time.monotonic() + 1.0
        elif new and time.monotonic() >= settled_at:  # nothing more for a second: done
            return sorted(new)
        time.sleep(0.1)
    if new:
        return sorted(new)
    raise UserError(f"the recorder (pid {pid}) wrote no file within {timeout:g} s")
