#!/usr/bin/env bash
# Set up everything and run the whole test suite. As root, the real-kernel recording tests run
# too (they record real getsockopt calls with eBPF); otherwise they are skipped and say why.
# CI sets SOCKOPT_TRACE_REQUIRE_KERNEL=1, which turns any such skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/setup.sh --system --dev
else
  bash scripts/setup.sh --dev
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest tests "$@"
