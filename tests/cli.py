"""Run the command line in-process, as the console script does (`cli.main`): the exit code,
stdout and stderr, in a fraction of a subprocess's start-up."""

from __future__ import annotations

import sys

import pytest

from sockopt_trace import cli


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `sockopt-trace ARGS`."""
    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["sockopt-trace", *map(str, args)]
    try:
        cli.main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """The one-line error of a command that must fail with exit code 2 and print nothing."""
    code, out, err = run(capsys, *args)
    lines = err.splitlines()
    assert code == 2, (args, code, out, err)
    assert len(lines) == 1 and lines[0].startswith("sockopt-trace: error: "), (args, err)
    assert out == "", args
    return lines[0]
