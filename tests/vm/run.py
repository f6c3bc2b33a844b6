"""Boot one of the tier's kernels and run a shell command inside, for trying things by hand.

    flock -x /work/locks/cpu.lock .venv/bin/python -m tests.vm.run 6.12 -- \\
        .venv/bin/python -m sockopt_trace doctor

The command runs as root in this checkout, in the host's tree (read-only, with a tmpfs overlay);
its output is printed, and its exit status becomes ours. Kernels: see tests/vm/kernels.py.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from tests.vm import kernels, machine, tier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.vm.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("kernel", choices=list(kernels.KERNELS))
    parser.add_argument("command", nargs="+", help="the command to run inside (after --)")
    args = parser.parse_args(argv)
    missing = machine.missing_tools()
    if missing:
        print(f"vm: cannot run: {missing}", file=sys.stderr)
        return 3
    kernel = kernels.fetch(kernels.KERNELS[args.kernel])
    print(f"vm: {kernel.release}; {machine.accelerator()[1]}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="sockopt-vm-") as share:
        script = f"cd {shlex.quote(str(tier.ROOT))}\n{shlex.join(args.command)}\n"
        run = machine.boot(kernel, script, Path(share), tier.TIMEOUT_S)
        sys.stdout.write(run.log)
        if run.returncode is None:
            print(f"vm: no exit status came back; console:\n{run.console}", file=sys.stderr)
            return 125
        print(f"vm: exit {run.returncode} after {run.seconds:.0f} s", file=sys.stderr)
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())
