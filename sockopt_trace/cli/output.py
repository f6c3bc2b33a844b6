"""Where the commands that write files (export, html) put their output."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sockopt_trace.errors import ExitCode, UserError


@contextlib.contextmanager
def output_stream(path: Path | None) -> Iterator[BinaryIO]:
    """The file at `path` (written whole under a temporary name, then renamed), or stdout; a
    closed pipe (`| head`) stops quietly, a failed write is a one-line error."""
    if path is None:
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(ExitCode.BROKEN_PIPE) from None
        return
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as fh:
            yield fh
        partial.replace(path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write: {err.strerror or err}", ExitCode.OUTPUT) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
