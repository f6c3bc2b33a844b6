"""`sockopt-trace doctor`: can this host record, and if not, what exactly to do."""

from __future__ import annotations

import sys

from sockopt_trace.cli.app import app
from sockopt_trace.errors import ExitCode


@app.command()
def doctor() -> None:
    """Check privileges, bcc, kernel headers, tracefs, BTF and which probe modes attach.

    Exit status 0 if recording works here, 3 if not.
    """
    from sockopt_trace.recorder.doctor import can_record, run_checks

    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        line = f"{mark}  {c.name:<{width}}  {c.detail}"
        if not c.ok and c.fix:
            line += f"\n      {'':<{width}}  fix: {c.fix}"
        print(line)
    works = can_record(checks)
    modes = [c.name.split()[1] for c in checks if c.name.startswith("probe ") and c.ok]
    print(
        f"\nrecording: {'works, with probe ' + modes[0] + ' (auto)' if works else 'NOT possible'}"
    )
    sys.exit(ExitCode.OK if works else ExitCode.ENVIRONMENT)
