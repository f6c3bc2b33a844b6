"""`sockopt-trace dump DIR`: make a running recorder write out what it holds, now."""

from __future__ import annotations

from pathlib import Path

import typer

from sockopt_trace.cli.app import app


@app.command(
    epilog="Examples: dump /var/lib/sockopt-trace | dump rec/ --pid 4242 --timeout 2m",
)
def dump(
    directory: Path = typer.Argument(..., help="The -o DIR of the running recorder."),
    pid: int = typer.Option(None, "--pid", help="The recorder's pid (default: DIR's lock file)."),
    timeout: str = typer.Option("60s", "--timeout", help="Wait this long for the files."),
) -> None:
    """Ask the recorder writing into DIR for its data now (the same as SIGUSR1).

    A flight recorder (record --flight) writes out its buffer as a recording of its own and goes
    on; a plain recorder seals the file it is writing. Prints the files written.
    """
    from sockopt_trace.recorder.flight import ask_dump
    from sockopt_trace.units import parse_duration

    for path in ask_dump(directory, pid, parse_duration(timeout, "--timeout")):
        print(path)
