"""Helpers shared by the real-kernel tests."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `sockopt-trace ARGS` as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
