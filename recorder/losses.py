"""The recording's loss accounting in one place: the kernel's counters, read from the probe,
and the session's own (calls taken from the kernel but not written), summed by reason into the
Tally every sealed file and the loss ledger carry."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sockopt_trace.recorder.attached import Probe

KERNEL_COUNTERS = (
    "ringbuf_full", "entry_map_full", "exit_without_entry", "stacks_lost", "sampled_out",
    "sampleable",
)  # fmt: skip


@dataclass
class Tally:
    """Cumulative counts since the recording started: losses by reason (schema.LOSS_REASONS),
    rows kept without their stack, and calls --max-rate's sampling left out (neither is a loss:
    the first are recorded, the second stood for by the rows kept)."""

    lost: dict[str, int]
    stacks_lost: int = 0
    sampled_out: int = 0


class Losses:
    """Cumulative and only growing: a failed read of the kernel's counters keeps the last
    values."""

    def __init__(self) -> None:
        self.probe: Probe | None = None
        self.write_errors = 0  # rows not written: the disk or the file failed
        self.discarded = 0  # rows not written: stopped at once by a second signal
        self.counters = dict.fromkeys(KERNEL_COUNTERS, 0)
        self._skipped_runs: int | None = None

    def probe_counters(self) -> dict[str, int]:
        """The kernel's counters, read now (the last values if the read fails)."""
        if self.probe is not None:
            with contextlib.suppress(OSError):
                self.counters = self.probe.counters()
        return self.counters

    def tally(self) -> Tally:
        """Losses by reason, as of now, with the stacks lost and the calls sampled out."""
        k = self.probe_counters()
        if self.probe is not None:
            with contextlib.suppress(OSError):
                self._skipped_runs = self.probe.skipped_runs()
        lost = {
            "ringbuf_full": k["ringbuf_full"],
            "entry_map_full": k["entry_map_full"],
            "exit_without_entry": k["exit_without_entry"],
            "write_error": self.write_errors,
            "discarded_at_stop": self.discarded,
        }
        if self._skipped_runs is not None:
            lost["kernel_skipped"] = self._skipped_runs
        unreadable = self.probe.stacks_unreadable if self.probe else 0
        return Tally(lost, k["stacks_lost"] + unreadable, k["sampled_out"])
