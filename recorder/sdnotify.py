"""sd_notify(3) without libsystemd: tell a supervisor that asks (NOTIFY_SOCKET) how we are doing.

systemd (`Type=notify`) treats the service as started only when it says READY=1; we say it only
once the probes are attached, so `systemctl start` returns when calls are being recorded, and a
host that cannot record fails its start instead of looking healthy. The protocol is one datagram
of newline-separated KEY=VALUE lines on a Unix socket; an address starting with `@` is in the
abstract namespace. Without NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import MutableMapping


class Notifier:
    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        # Taken out of the environment (as sd_notify's unset_environment does): a traced
        # command must not inherit it and speak for us.
        address = env.pop("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if not address or address[0] not in "/@":
            return
        self._address = b"\0" + address[1:].encode() if address[0] == "@" else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> None:
        """Send KEY=VALUE fields (e.g. READY=1, STATUS=...); a failure is not ours to report:
        the supervisor went away, and recording goes on."""
        if self._sock is None or self._address is None:
            return
        text = "\n".join(f"{k}={' '.join(str(v).split())}" for k, v in fields.items())
        with contextlib.suppress(OSError):
            self._sock.sendto(text.encode(), self._address)

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def stopping(self, status: str) -> None:
        self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
