"""The attached program as the recording process holds it: file descriptors only.

The loader child (loader.py) compiled or loaded the program, attached it and passed us the
descriptors of its maps, programs and attachments; closing an attachment detaches, closing
everything unloads. Through them we read the kernel's counters, stop taking new calls when the
recording stops, and ask the kernel how many program runs it skipped.
"""

from __future__ import annotations

import contextlib
import platform

import numpy as np

from sockopt_trace.recorder import bpfsys, environment
from sockopt_trace.recorder.events import control_index, counter_names
from sockopt_trace.recorder.loader import Handles, load_in_child
from sockopt_trace.recorder.probe import ProbeConfig, validate


class Probe:
    def __init__(self, handles: Handles, config: ProbeConfig) -> None:
        self.handles = handles
        self.mode = handles.mode
        self.skipped = handles.skipped
        self.config = config
        self._names = counter_names()
        self.stacks_unreadable = 0  # stack ids whose map lookup failed (rows kept, stack lost)

    @property
    def ringbuf_fd(self) -> int:
        return self.handles.maps["events"]

    def counters(self) -> dict[str, int]:
        """Kernel counters summed over CPUs, by name (see enum counter in getsockopt.h).
        Raises OSError if the map cannot be read."""
        size = self.handles.value_sizes["state"]
        stride = (size + 7) // 8 * 8
        raw = bpfsys.lookup(self.handles.maps["state"], bytes(4), stride * bpfsys.possible_cpus())
        per_cpu = np.frombuffer(raw or b"", dtype="<u8").reshape(-1, stride // 8)
        total = (
            per_cpu[:, : len(self._names)].sum(axis=0) if len(per_cpu) else [0] * len(self._names)
        )
        return dict(zip(self._names, (int(v) for v in total), strict=True))

    def in_flight(self) -> int:
        """Threads inside getsockopt whose entry was taken and whose exit has not been seen."""
        k = self.counters()
        return k["entries"] - k["submitted"] - k["ringbuf_full"]

    def stack(self, stack_id: int) -> list[int]:
        """Addresses of a user stack, innermost first; empty if it is gone or unreadable (a
        failed map read costs that row its stack, never the recording)."""
        fd = self.handles.maps.get("stacks")
        if stack_id < 0 or fd is None:
            return []
        try:
            raw = bpfsys.lookup(
                fd, stack_id.to_bytes(4, "little"), self.handles.value_sizes["stacks"]
            )
        except OSError:
            self.stacks_unreadable += 1
            return []
        if raw is None:
            return []
        addrs = np.frombuffer(raw, dtype="<u8")
        end = np.flatnonzero(addrs == 0)
        return [int(a) for a in addrs[: end[0] if len(end) else len(addrs)]]

    def stop_taking_calls(self) -> None:
        """From now on the kernel takes no new entries; calls in flight still complete, and an
        exit without an entry is no longer counted as a loss (getsockopt.bpf.c, `control`)."""
        key = control_index("stopping").to_bytes(4, "little")
        bpfsys.update(self.handles.maps["control"], key, (1).to_bytes(4, "little"))

    def set_sampling_period(self, period: int) -> None:
        """Record 1 in `period` sampleable calls from now on (SAMPLING in getsockopt.bpf.c)."""
        key = control_index("sampling_period").to_bytes(4, "little")
        bpfsys.update(self.handles.maps["control"], key, int(period).to_bytes(4, "little"))

    def skipped_runs(self) -> int | None:
        """Calls lost because the kernel skipped our exit program (a BPF program already
        running on that CPU); None when this kernel cannot report them. Only the exit program
        counts: a call whose entry run was skipped is counted as exit_without_entry when its
        exit runs, and once only when both were skipped."""
        if not kernel_reports_skipped_runs(self.mode):
            return None
        total = 0
        for name, fd in self.handles.progs.items():
            if not is_exit_program(name):
                continue
            info, length = bpfsys.prog_info(fd)
            if length < bpfsys.RECURSION_MISSES_END:
                return None
            total += info.recursion_misses
        return total

    def detach(self) -> None:
        """Stop tracing: no new entries first (so that no exit is left without its entry, and
        counted lost, between the two detaches), then both probes."""
        with contextlib.suppress(OSError):
            self.stop_taking_calls()
        self.handles.close_group("entry")
        self.handles.close_group("exit")

    def close(self) -> None:
        self.handles.close_all()


def is_exit_program(name: str) -> bool:
    """bcc's names: tracepoint__syscalls__sys_exit_*, kretprobe__*, kretfunc__*."""
    return "__sys_exit_" in name or name.startswith(("kretprobe__", "kretfunc__"))


def kernel_reports_skipped_runs(mode: str) -> bool:
    """Linux counts skipped runs per program (`recursion_misses` in bpf_prog_info) since 5.12
    for fentry programs, and since 6.7 for tracepoint and kprobe programs too (the kernel's
    trace_call_bpf counts them there)."""
    version = _kernel_version()
    return version >= ((5, 12) if mode == "fentry" else (6, 7))


def _kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def attach(config: ProbeConfig) -> Probe:
    """Load and attach; with mode auto, the best mode that works. Raises UserError if none.

    Compiling happens in a child process (loader.py), so that bcc's LLVM never inflates the
    memory of the recording process."""
    validate(config)
    environment.require_root()
    return Probe(load_in_child(config), config)
