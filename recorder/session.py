"""One recording from start to sealed files: the library call behind `sockopt-trace record`.

Threads: the consumer drains the ring buffer into a bounded queue; the main thread writes
(symbolize, convert, Parquet), keeps the status line, watches the duration, signals and the
traced command.

Stopping (the duration, a first SIGINT/SIGTERM/SIGHUP, the command's end): the kernel is told
to take no new calls while calls in flight complete (at most STOP_WAIT_S), then the probes are
detached, the ring drained and written and the last file sealed; no call is counted lost that
was not made while recording. Every stop path ends in bounded time: a write error detaches at
once and counts what was not written (write_error); a second signal stops at once, whatever is
happening, and counts what was not written (discarded_at_stop). Losses no sealed file carries
stay in the loss ledger beside the files. A traced command still running when the recording
ends is stopped (SIGTERM, SIGKILL after COMMAND_GRACE_S), and the recorder says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import queue
import signal
import time
from typing import Any

from sockopt_trace import __version__
from sockopt_trace.errors import UserError
from sockopt_trace.recorder import environment, sockets
from sockopt_trace.recorder.allocator import keep_freed_memory
from sockopt_trace.recorder.attached import Probe, attach, kernel_reports_skipped_runs
from sockopt_trace.recorder.consumer import Consumer, RingReader
from sockopt_trace.recorder.context import ContextDecoder
from sockopt_trace.recorder.decode import Decoder
from sockopt_trace.recorder.eventlog import EventLog
from sockopt_trace.recorder.flight import FlightRecorder
from sockopt_trace.recorder.launcher import Command, check_command
from sockopt_trace.recorder.losses import Losses, Tally
from sockopt_trace.recorder.options import RecordOptions, RecordResult
from sockopt_trace.recorder.output import OUTPUT_ERROR, prepare_directory
from sockopt_trace.recorder.perfmaps import open_tracker
from sockopt_trace.recorder.probe import ProbeConfig, validate
from sockopt_trace.recorder.retention import Retention
from sockopt_trace.recorder.sampling import RateController
from sockopt_trace.recorder.sdnotify import Notifier
from sockopt_trace.recorder.service import Service
from sockopt_trace.recorder.status import StatusLine
from sockopt_trace.recorder.stopsignals import Aborted, Signals
from sockopt_trace.recorder.symbols import Symbolizer
from sockopt_trace.recorder.upload import Uploader
from sockopt_trace.recorder.writer import RecordingWriter, WriteError, WriterConfig
from sockopt_trace.schema import TraceFilters

STOP_WAIT_S = 1.0  # calls in flight when recording stops: how long they may take to complete
COMMAND_GRACE_S = 5.0  # a signalled command: how long it may take to exit
DRAIN_WAIT_S = 10.0  # after a write error: how long to count what the ring still holds
_NOTHING = object()
ENDINGS = {
    "duration": "the recording reached its --duration",
    "signal": "the recording was stopped by a signal",
    "failed": "the recording failed",
    "aborted": "the recording was stopped at once",
}


def _stacks_mode(cfg: ProbeConfig) -> str:
    return "full" if cfg.stacks else "callsite" if cfg.callsites else "off"


def record(opts: RecordOptions) -> RecordResult:
    """Record until the duration passes, a signal arrives, or the command exits.

    Everything that can be refused is refused before anything is compiled. `opts` is not
    changed."""
    if opts.duration is not None and opts.duration <= 0:
        raise UserError("--duration must be positive, e.g. 30s, 5m, 1h")
    notifier = Notifier()  # first: the traced command must not inherit NOTIFY_SOCKET
    validate(opts.probe)
    environment.require_root()
    if opts.command:
        check_command(opts.command)
    lock = prepare_directory(opts.output, opts.force)
    signals = Signals()  # before compiling: a signal then stops the recording at its start
    try:
        config = dataclasses.replace(
            opts.writer or WriterConfig(directory=opts.output),
            directory=opts.output,
            context=opts.probe.context,
        )
        if opts.retention.max_bytes:  # room for several files under the limit, not one
            limit = max(1, opts.retention.max_bytes // 4)
            config = dataclasses.replace(config, rotate_bytes=min(config.rotate_bytes, limit))
        status = StatusLine(opts.status, quiet=opts.quiet)
        log = EventLog(opts.log, status)
        # before anything is compiled: a bad URL is refused at once; files an earlier run in
        # this directory did not upload are queued first
        uploader = Uploader(opts.upload, opts.output, log) if opts.upload else None
        retention = Retention(opts.output, opts.retention, log) if opts.retention.active else None
        svc = Service(notifier, status, log, uploader, retention)
        return Session(opts, config, signals, svc).run()
    except Aborted as stop:
        raise UserError(f"stopped at once by a second {stop}", 128 + stop.signum) from None
    finally:
        signals.restore()
        lock.release()
        notifier.close()


class Session:
    def __init__(
        self, opts: RecordOptions, config: WriterConfig, signals: Signals, svc: Service
    ) -> None:
        self.opts = opts
        self.signals = signals
        self.svc = svc
        self.status = svc.status
        self.uploaded = 0
        self.probe: Probe | None = None
        self.losses = Losses()
        self.tally = self.losses.tally
        self.error: tuple[str, int] | None = None
        self.writer = self._writer(config)
        self.symbolizer: Symbolizer | None = None
        self.no_tracker: str | None = None
        self._hooks(self.writer)
        # --flight: the buffer stands in for the writer (which then only keeps the loss ledger),
        # and each dump has a writer of its own
        self.sink: RecordingWriter | FlightRecorder = self.writer
        self.dump_asked = False

    def _hooks(self, writer: RecordingWriter) -> None:
        writer.on_sealed = self.svc.sealed
        if self.svc.retention is not None:
            writer.before_seal = self.svc.retention.make_room

    def _dump_writer(self, since_mono_ns: int, counted_from: Tally) -> RecordingWriter:
        writer = self._writer(self.writer.config)
        self._hooks(writer)
        writer.begin(
            since_mono_ns,
            self.writer.base,
            self.writer.to_columns,
            self.writer.file_facts,
            counted_from=counted_from,
        )
        return writer

    def _ask_dump(self, _signum: int, _frame: object) -> None:
        self.dump_asked = True

    def _writer(self, config: WriterConfig) -> RecordingWriter:
        try:
            return RecordingWriter(config, self.tally)
        except WriteError as err:
            raise UserError(f"{err}: choose another -o DIR", OUTPUT_ERROR) from None

    # -- the whole run ----------------------------------------------------------------------
    def run(self) -> RecordResult:
        opts = self.opts
        cfg = opts.probe
        command = Command(opts.command) if opts.command else None
        if command:
            cfg = dataclasses.replace(cfg, pids=[*cfg.pids, command.pid], follow_forks=True)
        # mapping records start before the first call can be seen, so no process falls in between
        if cfg.callsites or cfg.stacks:
            tracker, self.no_tracker = open_tracker()
            self.symbolizer = Symbolizer(tracker)
        try:
            self.probe = self.losses.probe = attach(cfg)
        except BaseException:
            if command:
                command.cancel()
            if self.symbolizer:
                self.symbolizer.close()
            self.writer.sidecar.remove()
            raise
        try:
            return self._record(self.probe, cfg, command)
        finally:
            self.probe.close()

    def _record(self, probe: Probe, cfg: ProbeConfig, command: Command | None) -> RecordResult:
        keep_freed_memory()
        symbolizer = self.symbolizer
        self.reader = RingReader(probe.ringbuf_fd, cfg.ringbuf_size, cfg.context)
        if symbolizer:  # processes that run already; a traced command is covered by the records
            symbolizer.attach_ring(self.reader)
            symbolizer.start(cfg.pids if cfg.pids and not cfg.comms else None)
        self.batches: queue.Queue[Any] = queue.Queue()
        context = ContextDecoder() if cfg.context else None
        observers = [o.observe for o in (symbolizer, context) if o is not None]

        def observe(batch: Any) -> None:  # each batch as read, before it is queued
            for o in observers:
                o(batch)

        self.consumer = Consumer(self.reader, self.batches, observe)
        self.consumer_done = False
        self.caught_up_ns = 0
        decoder = Decoder(self.writer.config.host, symbolizer, probe.stack, context)
        self.writer.begin(
            probe.handles.attached_ns,
            self._base_metadata(probe, cfg),
            decoder,
            decoder.file_facts,
        )
        self.sampler = (
            RateController(
                cfg.max_rate,
                lambda: self.losses.probe_counters()["sampleable"],
                probe.set_sampling_period,
            )
            if cfg.max_rate
            else None
        )
        if self.opts.flight:
            flight = FlightRecorder(
                self.opts.flight, self._dump_writer, self.tally, self.svc.announce
            )
            self.sink = flight
        old_usr1 = signal.signal(signal.SIGUSR1, self._ask_dump)  # `sockopt-trace dump`
        self.consumer.start()
        if self.svc.uploader is not None:
            self.svc.uploader.start()
        reason = "failed"
        try:
            if command:
                command.release()
            if cfg.context and sockets.cflags()[1]:
                self.status.info(f"warning: {sockets.cflags()[1]}: sockets are not recorded")
            if self.no_tracker:
                self.status.info(
                    f"warning: no mapping records ({self.no_tracker}): call sites of processes "
                    "that exit within milliseconds may be [unknown]"
                )
            self.status.info(self._started(probe))
            self.svc.notifier.ready(
                f"recording getsockopt calls ({probe.mode} probe) into {self.opts.output}/"
            )
            try:
                reason = self._loop(command)
                self._stop_cleanly(probe)
            except WriteError as err:
                self._fail(probe, err)
        except Aborted as stop:
            reason = "aborted"
            self._abort(probe, stop)
        finally:
            self.signals.armed = False
            self.consumer.abort_event.set()
            if symbolizer:  # first: its thread reads the ring's positions
                symbolizer.close()
            with contextlib.suppress(Exception):
                self.reader.close()
            signal.signal(signal.SIGUSR1, old_usr1)
            self.uploaded = self.svc.finish(at_once=reason == "aborted")
            self.status.finish()
        exit_code = self._end_command(command, reason)
        return self._result(probe, exit_code)

    def _base_metadata(self, probe: Probe, cfg: ProbeConfig) -> dict[str, Any]:
        return {
            "host": self.writer.config.host,
            "kernel": platform.release(),
            "probe": probe.mode,
            "recorder_version": __version__,
            "command_line": self.opts.command_line,
            "filters": TraceFilters(
                list(cfg.pids), list(cfg.comms), list(self.opts.command), cfg.cgroup
            ),
            "stacks": _stacks_mode(cfg),
            "stack_sample_period": cfg.stack_sample_period if cfg.stacks else 1,
            "skipped_runs_counted": kernel_reports_skipped_runs(probe.mode),
            "max_rate": cfg.max_rate,
        }

    def _started(self, probe: Probe) -> str:
        how = "cached program" if probe.handles.cached else "compiled"
        skipped = "".join(f"; {m} not used: {why}" for m, why in probe.skipped.items())
        flight = self.opts.flight
        keep = (
            f", the last {flight.seconds:g} s kept in memory until a dump (flight recorder)"
            if flight
            else ""
        )
        return (
            f"recording getsockopt calls ({probe.mode} probe, {how}{skipped}) "
            f"into {self.opts.output}/{keep}"
        )

    # -- recording --------------------------------------------------------------------------
    def _pump(self, timeout: float) -> None:
        """Write the next batch, if one comes within `timeout`; keep the writer ticking with
        the consumer's last caught-up time that came through the queue (so every call before
        it has been added)."""
        try:
            item = self.batches.get(timeout=timeout)
        except queue.Empty:
            item = _NOTHING
        if item is None:
            self.consumer_done = True
        elif isinstance(item, int):
            self.caught_up_ns = item
        elif item is not _NOTHING:
            self.consumer.taken(len(item))
            self.sink.add(item)
        self.sink.tick(self.caught_up_ns)
        if self.dump_asked:
            self.dump_asked = False
            self.sink.seal_now()
        if self.sampler is not None:
            self.sampler.tick()
        self.svc.tick()

    def _loop(self, command: Command | None) -> str:
        """Record until a reason to stop: 'duration', 'signal' or 'command'."""
        deadline = time.monotonic() + self.opts.duration if self.opts.duration else None
        asked_at: float | None = None
        while True:
            self._pump(0.1)
            self.status.update(
                self.consumer.received,
                lambda: sum(self.tally().lost.values()),
                self.sink.bytes_written,
            )
            if self.consumer.error is not None:
                raise self.consumer.error
            now = time.monotonic()
            if self.signals.received and asked_at is None:
                asked_at = now
                if command:  # forward the first signal; keep recording while it winds down
                    command.signal(self.signals.received[0])
            if command and command.poll() is not None:
                return "command"
            if asked_at is not None and (not command or now - asked_at > COMMAND_GRACE_S):
                return "signal"
            if deadline is not None and now >= deadline:
                return "duration"

    def _stop_cleanly(self, probe: Probe) -> None:
        self.svc.notifier.stopping("stopping: sealing the last file")
        probe.stop_taking_calls()
        give_up = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < give_up and _in_flight(probe) > 0:
            self._pump(0.005)
        probe.detach()
        stop_ns = time.monotonic_ns()
        self.consumer.stop_event.set()
        while not self.consumer_done:  # the ring holds a bounded number of calls
            self._pump(0.05)
        self.consumer.join(timeout=1.0)
        if self.consumer.error is not None:
            raise self.consumer.error
        self.sink.close(stop_ns)
        if self.sink is not self.writer:  # the dumps carried what there was to carry
            self.writer.sidecar.remove()

    def _fail(self, probe: Probe, err: WriteError) -> None:
        """Writing failed: stop tracing now; what was not written is lost, and counted."""
        self.error = (f"{err}; stopped recording (files already sealed are intact)", OUTPUT_ERROR)
        probe.detach()
        self.consumer.stop_event.set()
        unwritten = self._count_unwritten(time.monotonic() + DRAIN_WAIT_S)
        self.losses.write_errors += err.rows_lost + unwritten
        self.losses.write_errors += self.writer.abandon()
        self.writer.finish_ledger("failed", {})

    def _abort(self, probe: Probe, stop: Aborted) -> None:
        """A second signal: nothing more is written; what was taken is counted as discarded."""
        probe.detach()
        self.consumer.abort_event.set()
        self.losses.discarded += self._count_unwritten(time.monotonic())
        self.losses.discarded += self.writer.abandon(write_footer=False)
        self.writer.finish_ledger("aborted", {})
        self.error = (
            f"stopped at once by a second {stop}: the last file stays .partial "
            f"(sockopt-trace recover {self.opts.output}); losses are in "
            f"{self.writer.sidecar.path.name}",
            128 + stop.signum,
        )

    def _count_unwritten(self, until: float) -> int:
        n, self.consumer_done = self.consumer.count_unwritten(until, self.consumer_done)
        return n

    # -- the end ----------------------------------------------------------------------------
    def _end_command(self, command: Command | None, reason: str) -> int:
        """The command's exit status, after stopping it if the recording ended first."""
        if command is None:
            if self.error:
                return self.error[1]
            return 0
        if command.poll() is None:
            gentle = reason in ("duration", "failed")
            seen = len(self.signals.received)
            how = command.stop(
                COMMAND_GRACE_S if gentle else 0.0, lambda: len(self.signals.received) > seen
            )
            self.status.info(
                f"{ENDINGS.get(reason, reason)} before {command.argv[0]} (pid {command.pid}) "
                f"exited: stopped it with {how}; its exit status: {command.wait()}"
            )
        status = command.wait()
        return self.error[1] if self.error else status

    def _result(self, probe: Probe, exit_code: int) -> RecordResult:
        final = self.tally().lost
        total = sum(final.values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in final.items() if v)
        w = self.sink
        self.status.info(
            f"{w.rows_sealed:,} events in {len(w.files)} files, {w.bytes_written:,} bytes, "
            f"lost {total:,}" + (f" ({reasons})" if total else "")
        )
        if self.symbolizer and self.symbolizer.records_lost:
            self.status.info(
                f"warning: the kernel dropped {self.symbolizer.records_lost:,} mapping records "
                "(its buffers were full): call sites of processes that exited quickly may be "
                "[unknown]"
            )
        if self.error:
            raise UserError(*self.error)
        return RecordResult(
            files=w.files,
            events=w.rows_sealed,
            lost=final,
            probe=probe.mode,
            exit_code=exit_code,
            kernel_counters=self.losses.counters,
            uploaded=self.uploaded,
        )


def _in_flight(probe: Probe) -> int:
    try:
        return probe.in_flight()
    except OSError:
        return 0
