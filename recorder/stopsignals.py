"""The recorder's signal contract: a first SIGINT/SIGTERM/SIGHUP asks the recording to stop
cleanly; a second stops it at once, wherever the main thread is, so every stop path ends in
bounded time even when the clean one hangs on a failing disk."""

from __future__ import annotations

import signal


class Aborted(Exception):
    """A second SIGINT/SIGTERM/SIGHUP: stop at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """The first signal asks to stop; a second raises Aborted wherever the main thread is."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self.armed = True
        self._old = {s: signal.signal(s, self) for s in self.HANDLED}

    def __call__(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if len(self.received) >= 2 and self.armed:
            self.armed = False
            raise Aborted(signum)

    def restore(self) -> None:
        self.armed = False
        for s, handler in self._old.items():
            signal.signal(s, handler)
