"""Command line: one module per command, each a few lines over a library function."""

from __future__ import annotations

import os
import sys

from sockopt_trace.cli import (  # noqa: F401 (each command module registers itself on app)
    diff,
    doctor,
    export,
    html,
    info,
    queries,
    query,
    record,
    recover,
    report,
)
from sockopt_trace.cli.app import app
from sockopt_trace.errors import UserError


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and its exit code, never a traceback."""
    try:
        app()
    except UserError as err:
        print(f"sockopt-trace: error: {err}", file=sys.stderr)
        sys.exit(err.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("SOCKOPT_TRACE_DEBUG"):
            raise
        detail = " ".join(str(err).split())[:300]
        print(
            f"sockopt-trace: internal error: {type(err).__name__}: {detail} "
            "(run with SOCKOPT_TRACE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        sys.exit(1)
