"""Exit codes and the one exception type that reaches the user as a single line.

Every exit status the command line can end with is defined here, once; README's "Exit codes"
table and `sockopt-trace --help` are made from `ExitCode.describe()`, so they cannot drift.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What `sockopt-trace` exits with. `record -- COMMAND` passes the command's own status."""

    OK = 0
    REGRESSION = 1  # diff --fail-on: a significant regression passed a threshold
    USAGE = 2  # bad input: arguments, files, filters, SQL
    ENVIRONMENT = 3  # this host cannot do it: privileges, bcc, headers, no probe attaches
    OUTPUT = 4  # cannot write: unwritable directory, disk full, I/O error
    INCONCLUSIVE = 5  # diff --fail-on: a change run-to-run noise could explain (no replicates)
    INTERNAL = 70  # a bug of ours (EX_SOFTWARE); SOCKOPT_TRACE_DEBUG=1 shows the traceback
    INTERRUPTED = 130  # stopped by Ctrl-C before anything was done
    BROKEN_PIPE = 141  # the reader of stdout went away (`| head`): a quiet stop

    @classmethod
    def describe(cls) -> list[tuple[int, str]]:
        """(code, meaning) for help texts and README."""
        return [(int(code), _MEANING[code]) for code in cls]


_MEANING = {
    ExitCode.OK: "success",
    ExitCode.REGRESSION: "diff --fail-on: a significant regression passed its threshold",
    ExitCode.USAGE: "bad input: arguments, files, filters or SQL",
    ExitCode.ENVIRONMENT: "this host cannot record: privileges, bcc, headers, probes",
    ExitCode.OUTPUT: "cannot write the output: unwritable directory, disk full, I/O error",
    ExitCode.INCONCLUSIVE: "diff --fail-on: a change that run-to-run noise could explain",
    ExitCode.INTERNAL: "a bug in sockopt-trace (SOCKOPT_TRACE_DEBUG=1 shows the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "the reader of the output went away (e.g. | head)",
}


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit status `code` (an ExitCode, or
    127/126 when `record -- COMMAND` cannot start the command, as a shell would, or 128+N when
    a second signal N stopped `record` at once)."""

    def __init__(self, message: str, code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = int(code)
