#!/usr/bin/env bash
# Set up everything and run the whole test suite. As root, the real-kernel recording tests run
# too (they record real getsockopt calls with eBPF); otherwise they are skipped and say why.
# CI sets SOCKOPT_TRACE_REQUIRE_KERNEL=1, which turns any such skip into a failure. The VM tier
# (tests/vm) boots Debian's kernels under qemu and runs the kernel tests inside, in every probe
# mode: under emulation that takes a while (docs/reliability.md#kernels-tested).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/setup.sh --system --dev
else
  bash scripts/setup.sh --dev
fi
.venv/bin/ruff check .
# the VM tier (tests/vm: Debian kernels under qemu, every probe mode) runs here; SOCKOPT_TRACE_VM=0
# leaves it out
export SOCKOPT_TRACE_VM="${SOCKOPT_TRACE_VM:-1}"
.venv/bin/python -m pytest tests "$@"
