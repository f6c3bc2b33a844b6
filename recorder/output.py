"""The recording directory: checked, created and locked before anything is compiled.

Refusing late is expensive (seconds of compiling, and a directory left behind) and refusing
wrongly loses data, so everything that can be known up front is checked here: the path, that a
file can really be created in it (`-o /proc` passes every permission check and then fails), that
it holds no recording already (sealed, partial, quarantined or a loss ledger) unless --force,
and that no other recorder writes into it at the same time (a lock file, held while recording).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.ledger import LEDGER_SUFFIX

OUTPUT_ERROR = ExitCode.OUTPUT
RECORDING_SUFFIXES = (
    schema.FILE_SUFFIX,
    schema.PARTIAL_SUFFIX,
    schema.QUARANTINE_SUFFIX,
    LEDGER_SUFFIX,
)


class DirectoryLock:
    """An exclusive lock on a recording directory (flock on its lock file), held until
    `release`; the lock file is removed then, so a finished recording holds only its files."""

    def __init__(self, directory: Path, created: bool = False) -> None:
        self.directory = directory
        self.created = created  # by us: removed again if the recording never wrote anything
        self.path = directory / schema.LOCK_NAME
        while True:
            try:
                fd = os.open(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
                )
            except OSError as err:
                raise UserError(
                    f"cannot write in {directory}: {err.strerror}: choose another -o DIR",
                    OUTPUT_ERROR,
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read_holder(fd)
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise UserError(
                        f"another recorder{holder} is writing into {directory}: use another -o DIR",
                        OUTPUT_ERROR,
                    ) from None
                raise UserError(f"cannot lock {self.path}: {err.strerror}", OUTPUT_ERROR) from None
            # The previous holder may have removed the file between our open and our flock:
            # then we hold a lock on a file nobody else can find. Start over.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        with contextlib.suppress(OSError):  # who holds it, for the message; a full disk is
            os.ftruncate(fd, 0)  # refused later, where it is named
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
        if self.created:
            with contextlib.suppress(OSError):  # only if empty: never touches a file
                self.directory.rmdir()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" (pid {pid})"
    return ""


def prepare_directory(path: Path, force: bool) -> DirectoryLock:
    """Create the output directory and lock it, or refuse one that already holds a recording.

    Returns the lock; the caller releases it when the recording ends."""
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link: give a real directory", OUTPUT_ERROR)
    if path.exists() and not path.is_dir():
        raise UserError(
            f"{path} exists and is not a directory: choose another -o DIR", OUTPUT_ERROR
        )
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as err:
        raise UserError(f"cannot create {path}: {err.strerror}", OUTPUT_ERROR) from None
    if not path.is_dir():
        raise UserError(f"{path} exists and is not a directory", OUTPUT_ERROR)
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path} is not writable: choose another -o DIR", OUTPUT_ERROR)
    lock = DirectoryLock(path, created)
    existing = [p.name for p in path.iterdir() if p.name.endswith(RECORDING_SUFFIXES)]
    if existing and not force:
        lock.release()
        raise UserError(
            f"{path} already holds a recording ({len(existing)} files): "
            "use another -o DIR, or --force to add to it",
            OUTPUT_ERROR,
        )
    return lock
