"""One recording from start to sealed files: the library call behind `sockopt-trace record`.

Threads: the consumer drains the ring buffer into a bounded queue; the main thread writes
(symbolize, convert, Parquet), keeps the status line, watches the duration, signals and the
traced command. Stopping detaches the entry probe first and the exit probe a moment later, so
calls already in flight complete, then drains, writes and seals everything.
"""

from __future__ import annotations

import contextlib
import platform
import queue
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sockopt_trace import __version__
from sockopt_trace.errors import UserError
from sockopt_trace.recorder import environment
from sockopt_trace.recorder.allocator import keep_freed_memory
from sockopt_trace.recorder.consumer import Consumer, RingReader
from sockopt_trace.recorder.decode import Decoder
from sockopt_trace.recorder.launcher import Command
from sockopt_trace.recorder.perfmaps import open_tracker
from sockopt_trace.recorder.probe import Probe, ProbeConfig, attach, validate
from sockopt_trace.recorder.status import StatusLine
from sockopt_trace.recorder.symbols import Symbolizer
from sockopt_trace.recorder.writer import (
    OUTPUT_ERROR,
    RecordingWriter,
    WriteError,
    WriterConfig,
    prepare_directory,
)

DRAIN_GRACE_S = 0.05  # between detaching entry and exit: lets in-flight calls complete


@dataclass
class RecordOptions:
    output: Path
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    writer: WriterConfig | None = None
    duration: float | None = None
    command: list[str] = field(default_factory=list)
    force: bool = False
    status: bool | None = None  # None: only when stderr is a terminal
    quiet: bool = False  # no messages at all, errors only
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class RecordResult:
    files: list[Path]
    events: int
    lost: dict[str, int]
    probe: str
    exit_code: int
    kernel_counters: dict[str, int]


class _Stop:
    """Signal bookkeeping: the first SIGINT/SIGTERM asks to stop, a second insists."""

    def __init__(self) -> None:
        self.requested = 0
        self.signals: list[int] = []

    def __call__(self, signum: int, _frame: object) -> None:
        self.requested += 1
        self.signals.append(signum)


def _stacks_mode(cfg: ProbeConfig) -> str:
    return "full" if cfg.stacks else "callsite" if cfg.callsites else "off"


def record(opts: RecordOptions) -> RecordResult:
    """Record until the duration passes, a signal arrives, or the command exits."""
    if opts.duration is not None and opts.duration <= 0:
        raise UserError("--duration must be positive, e.g. 30s, 5m, 1h")
    validate(opts.probe)
    environment.require_root()
    prepare_directory(opts.output, opts.force)
    wcfg = opts.writer or WriterConfig(directory=opts.output)
    wcfg.directory = opts.output

    command = Command(opts.command) if opts.command else None
    if command:
        opts.probe.pids = [*opts.probe.pids, command.pid]
        opts.probe.follow_forks = True
    # mapping records start before the first call can be seen, so no process falls in between
    symbolizer, why = None, None
    if opts.probe.callsites or opts.probe.stacks:
        tracker, why = open_tracker()
        symbolizer = Symbolizer(tracker)
    try:
        probe = attach(opts.probe)
    except BaseException:
        if command:
            command.cancel()
        if symbolizer:
            symbolizer.close()
        raise
    try:
        return _run(opts, wcfg, probe, command, symbolizer, why)
    finally:
        probe.close()


def _run(
    opts: RecordOptions,
    wcfg: WriterConfig,
    probe: Probe,
    command: Command | None,
    symbolizer: Symbolizer | None,
    no_tracker: str | None,
) -> RecordResult:
    cfg = opts.probe
    keep_freed_memory()
    reader = RingReader(probe.ringbuf_fd, cfg.ringbuf_size)
    if symbolizer:  # processes that run already; a traced command is covered by the records
        symbolizer.attach_ring(reader)
        symbolizer.start(cfg.pids if cfg.pids and not cfg.comms else None)
    batches: queue.Queue = queue.Queue()
    consumer = Consumer(reader, batches, symbolizer.observe if symbolizer else lambda _b: None)
    write_errors = 0

    def losses() -> dict[str, int]:
        k = probe.counters()
        return {
            "ringbuf_full": k["ringbuf_full"],
            "entry_map_full": k["entry_map_full"],
            "exit_without_entry": k["exit_without_entry"],
            "queue_full": consumer.dropped,
            "write_error": write_errors,
            "stacks_lost": k["stacks_lost"],
        }

    base = {
        "host": wcfg.host,
        "kernel": platform.release(),
        "probe": probe.mode,
        "recorder_version": __version__,
        "command_line": opts.command_line,
        "filters": {"pids": cfg.pids, "comms": cfg.comms, "command": opts.command},
        "stacks": _stacks_mode(cfg),
        "stack_sample_period": cfg.stack_sample_period if cfg.stacks else 1,
    }
    decoder = Decoder(wcfg.host, symbolizer, probe.stack)
    writer = RecordingWriter(wcfg, base, decoder, losses, decoder.file_facts)
    status = StatusLine(opts.status, quiet=opts.quiet)
    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer.start()
    exit_code = 0
    error: str | None = None
    try:
        if command:
            command.release()
        if no_tracker:
            status.info(
                f"warning: no mapping records ({no_tracker}): call sites of processes that "
                "exit within milliseconds may be [unknown]"
            )
        skipped = "".join(f"; {m} not used: {why}" for m, why in probe.skipped.items())
        status.info(f"recording getsockopt calls ({probe.mode} probe{skipped}) into {opts.output}/")
        deadline = time.monotonic() + opts.duration if opts.duration else None
        stop_asked_at: float | None = None
        while True:
            try:
                batch = batches.get(timeout=0.1)
            except queue.Empty:
                batch = None
            if batch is not None:
                consumer.taken(len(batch))
                writer.add(batch)
            writer.tick()
            status.update(consumer.received, lambda: sum(_lost(losses())), writer.bytes_written)
            if consumer.error is not None:
                raise consumer.error
            if stop.requested and stop_asked_at is None:
                stop_asked_at = time.monotonic()
                if command:  # forward the first signal; keep recording while it winds down
                    command.signal(stop.signals[0])
            if command and command.poll() is not None:
                break
            if stop.requested > 1 or (
                stop_asked_at and (not command or time.monotonic() - stop_asked_at > 5)
            ):
                break
            if deadline and time.monotonic() >= deadline:
                break
        probe.detach_entry()
        time.sleep(DRAIN_GRACE_S)
        probe.detach_exit()
        consumer.stop_event.set()
        while (batch := batches.get()) is not None:
            consumer.taken(len(batch))
            writer.add(batch)
        consumer.join()
        if consumer.error is not None:
            raise consumer.error
        writer.close()
    except WriteError as err:
        error = f"{err}; stopped recording (files already sealed are intact)"
        exit_code = OUTPUT_ERROR
        probe.detach_entry()
        probe.detach_exit()
        consumer.stop_event.set()
        lost_in_flight = 0  # everything not yet written is lost to the write error, counted
        while (batch := batches.get()) is not None:
            consumer.taken(len(batch))
            lost_in_flight += len(batch)
        consumer.join()
        write_errors += err.rows_lost + writer.abandon() + lost_in_flight
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        consumer.stop_event.set()
        if symbolizer:  # first: its thread reads the ring's positions
            symbolizer.close()
        with contextlib.suppress(Exception):
            reader.close()
        status.finish()
    if command:
        with contextlib.suppress(ChildProcessError):
            exit_code = exit_code or command.wait()
    counters = probe.counters()
    final = losses()
    total_lost = _lost(final)
    status.info(
        f"{writer.rows_sealed:,} events in {len(writer.files)} files, "
        f"{writer.bytes_written:,} bytes, lost {sum(total_lost):,}"
        + (
            f" ({', '.join(f'{k} {v:,}' for k, v in final.items() if v and k != 'stacks_lost')})"
            if sum(total_lost)
            else ""
        )
    )
    if symbolizer and symbolizer.records_lost:
        status.info(
            f"warning: the kernel dropped {symbolizer.records_lost:,} mapping records (its "
            "buffers were full): call sites of processes that exited quickly may be [unknown]"
        )
    if error:
        raise UserError(error, OUTPUT_ERROR)
    return RecordResult(
        files=writer.files,
        events=writer.rows_sealed,
        lost={k: v for k, v in final.items() if k != "stacks_lost"},
        probe=probe.mode,
        exit_code=exit_code,
        kernel_counters=counters,
    )


def _lost(losses: dict[str, int]) -> list[int]:
    return [v for k, v in losses.items() if k != "stacks_lost"]
