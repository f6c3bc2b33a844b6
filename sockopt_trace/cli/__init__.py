"""Command line: one module per command, each a few lines over a library function.

Only the module of the command being run is imported (`COMMANDS`), and command modules import
their half (recorder or analyzer) inside the command function: `record` on a production host
never loads DuckDB, and `--help` costs little more than Python's own start-up.
"""

from __future__ import annotations

import importlib
import os
import sys

from typer.exceptions import TyperException

from sockopt_trace.errors import ExitCode, UserError

# command name -> module under sockopt_trace.cli that registers it on the typer app
COMMANDS = {
    "record": "record",
    "doctor": "doctor",
    "recover": "recover",
    "dump": "dump",
    "info": "info",
    "queries": "queries",
    "report": "report",
    "query": "query",
    "diff": "diff",
    "html": "html",
    "export": "export",
    "symbolize": "symbolize",
}


def _register(argv: list[str]) -> None:
    """Import the module of the command named in argv, or every command module when there is
    none (`--help`, a typo), so that click lists them all."""
    wanted = next((a for a in argv if not a.startswith("-")), None)
    names = [COMMANDS[wanted]] if wanted in COMMANDS else sorted(set(COMMANDS.values()))
    for name in names:
        importlib.import_module(f"sockopt_trace.cli.{name}")


def _usage_error(err: TyperException) -> None:
    """Bad usage (an unknown option, `--format nonsense`): one line and the usage exit code; no
    arguments at all: the help."""
    if type(err).__name__ == "NoArgsIsHelpError":
        print(err.format_message(), file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    ctx = getattr(err, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    message = " ".join(err.format_message().split())
    print(f"sockopt-trace: error: {message}{where}", file=sys.stderr)
    sys.exit(ExitCode.USAGE if getattr(err, "exit_code", 2) == 2 else err.exit_code)


def main() -> None:
    """Entry point: a UserError becomes one line on stderr and its exit code, never a traceback."""
    try:
        _register(sys.argv[1:])
        from sockopt_trace.cli.app import app

        code = app(standalone_mode=False)  # usage errors come here, to be one line too
        sys.exit(code if isinstance(code, int) else ExitCode.OK)
    except TyperException as err:
        _usage_error(err)
    except UserError as err:
        print(f"sockopt-trace: error: {err}", file=sys.stderr)
        sys.exit(err.code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as err:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("SOCKOPT_TRACE_DEBUG"):
            raise
        detail = " ".join(str(err).split())[:300]
        print(
            f"sockopt-trace: internal error: {type(err).__name__}: {detail} "
            "(run with SOCKOPT_TRACE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        sys.exit(ExitCode.INTERNAL)
