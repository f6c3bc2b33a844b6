"""The loss ledger of the recording being written (format: sockopt_trace/ledger.py).

Created when the recording starts, with its room reserved, so that it can still be rewritten
in place when the disk has filled up: that is exactly when losses happen and no file can be
sealed to carry them. A rewrite is one pwrite of a fixed-size block; it is fsync'ed when what
it says about losses changes (a heartbeat alone needs no fsync: it only has to survive the
recorder, not the machine).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sockopt_trace.ledger import LEDGER_SUFFIX, Ledger

SIZE = 4096


class Sidecar:
    def __init__(
        self, directory: Path, prefix: str, host: str, recording_id: str, start_ns: int, mode: int
    ) -> None:
        """Raises OSError if it cannot be created (then nothing could be recorded here)."""
        self.path = directory / f"{prefix}{LEDGER_SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, mode)
        try:
            os.fchmod(self._fd, mode)
            os.pwrite(self._fd, b" " * SIZE, 0)  # the room every later rewrite uses
            self.ledger = Ledger(host, recording_id, "recording", 0, start_ns, start_ns)
            self.write(sync=True)
        except OSError:
            self.remove()
            raise

    def write(self, sync: bool) -> bool:
        """Rewrite the ledger in place; False if that failed (the disk or the file is gone)."""
        if self._fd is None:
            return False
        data = self.ledger.to_bytes()
        data += b" " * (SIZE - len(data))
        try:
            os.pwrite(self._fd, data, 0)
            if sync:
                os.fsync(self._fd)
        except OSError:
            return False
        return True

    def remove(self) -> None:
        """The recording ended cleanly: its files say everything."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
