"""The live status line on a terminal (events/s, lost, bytes); quiet when stderr is not a tty."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class StatusLine:
    def __init__(
        self, enabled: bool | None = None, interval: float = 1.0, quiet: bool = False
    ) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.quiet = quiet
        self.interval = interval
        self._start = time.monotonic()
        self._last = self._start
        self._last_events = 0
        self._shown = False

    def update(self, events: int, lost: Callable[[], int], bytes_written: int) -> None:
        """Redraw at most once per interval; `lost` is only asked for then (a kernel read)."""
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        rate = (events - self._last_events) / (now - self._last)
        self._last, self._last_events = now, events
        sys.stderr.write(
            f"\r{now - self._start:7.1f}s  {events:,} events  {rate:,.0f}/s  "
            f"lost {lost():,}  {bytes_written / 1e6:,.1f} MB written\x1b[K"
        )
        sys.stderr.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            self._shown = False

    def info(self, message: str) -> None:
        """One line for the user, on stderr so stdout stays clean; none with --quiet."""
        self.finish()
        if not self.quiet:
            self.say(message)

    def say(self, message: str) -> None:
        """One line on stderr, even with --quiet (the event log asked for explicitly)."""
        self.finish()
        print(f"sockopt-trace: {message}", file=sys.stderr, flush=True)
