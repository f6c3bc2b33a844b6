"""Start `-- COMMAND ARGS` so that it is traced from its first instruction.

The child is forked first and waits on a pipe; the recorder puts its pid in the kernel filter,
attaches, and only then lets it exec. Its children join the filter in the kernel as they fork.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence

from sockopt_trace.errors import UserError


def check_command(argv: Sequence[str]) -> None:
    """Refuse a command that cannot be run, before anything is compiled or created."""
    if not argv:
        raise UserError("no command given after --")
    name = argv[0]
    if "/" in name:
        if not os.path.exists(name):
            raise UserError(f"cannot run {name!r}: No such file or directory", 127)
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise UserError(f"cannot run {name!r}: Permission denied", 126)
    elif shutil.which(name) is None:
        raise UserError(f"cannot run {name!r}: command not found in PATH", 127)


class Command:
    def __init__(self, argv: Sequence[str]) -> None:
        if not argv:
            raise UserError("no command given after --")
        self.argv = list(argv)
        self.status: int | None = None
        gate_r, self._gate_w = os.pipe()
        self._err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # child: wait for the gate, then exec; never return into the recorder
            try:
                os.close(self._gate_w)
                os.close(self._err_r)
                for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                if os.read(gate_r, 1) != b"g":
                    os._exit(127)  # the recorder gave up before attaching
                os.close(gate_r)
                os.execvp(self.argv[0], self.argv)
            except OSError as err:
                os.write(err_w, f"{err.errno}".encode())
            finally:
                os._exit(127)
        os.close(gate_r)
        os.close(err_w)
        self.pid = pid

    def release(self) -> None:
        """Let the child exec; raise UserError if the command cannot be run."""
        os.write(self._gate_w, b"g")
        os.close(self._gate_w)
        report = os.read(self._err_r, 64)
        os.close(self._err_r)
        if report:
            self.wait()
            errno = int(report)
            raise UserError(f"cannot run {self.argv[0]!r}: {os.strerror(errno)}", 127)

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._gate_w)
        with contextlib.suppress(OSError):
            os.close(self._err_r)
        self.wait()

    def poll(self) -> int | None:
        """Exit status if the child has exited (shell convention: 128+N for signal N)."""
        if self.status is None:
            pid, raw = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(raw)
                if self.status < 0:
                    self.status = 128 - self.status
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, raw = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(raw)
            self.status = 128 - code if code < 0 else code
        return self.status

    def stop(self, grace: float, hurry: Callable[[], bool] = lambda: False) -> str:
        """Stop the command: SIGTERM, then SIGKILL after `grace` seconds (at once when `grace`
        is 0 or `hurry()` turns true). Returns which signal ended it."""
        if grace > 0:
            self.signal(signal.SIGTERM)
            give_up = time.monotonic() + grace
            while time.monotonic() < give_up and not hurry():
                if self.poll() is not None:
                    return "SIGTERM"
                time.sleep(0.02)
        self.signal(signal.SIGKILL)
        return "SIGKILL" if grace <= 0 else "SIGTERM, then SIGKILL"

    def signal(self, sig: int) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
