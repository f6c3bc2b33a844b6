#!/usr/bin/env bash
# Set up sockopt-trace in ./.venv. Idempotent: fast when everything is there already.
#   --system   also install the distro packages recording needs (root): bcc, kernel headers, gcc,
#              qemu, busybox-static and cpio for the VM tier (tests/vm), and a Java runtime for
#              --engine spark (PySpark starts a JVM)
#   --dev      also install the test tools (pytest, hypothesis, ruff, ...) and the spark extra
#              (PySpark), whose tests run every canned report on a local Spark
# The analysis side always comes with the html extra (plotly), so every README command runs.
set -euo pipefail
cd "$(dirname "$0")/.."
system=0 dev=0
for arg in "$@"; do
  case "$arg" in
    --system) system=1 ;;
    --dev) dev=1 ;;
    *) echo "usage: scripts/setup.sh [--system] [--dev]" >&2; exit 2 ;;
  esac
done

if [ "$system" = 1 ]; then
  # qemu-system-x86, busybox-static, cpio: the VM tier (tests/vm) boots Debian kernels under qemu;
  # llvm: llvm-symbolizer for `symbolize`; debuginfod and xz-utils: its tests (a real server,
  # MiniDebugInfo as distributions make it)
  pkgs=(python3-bpfcc linux-headers-amd64 gcc libc6-dev bpftool chromium curl
        qemu-system-x86 busybox-static cpio openjdk-17-jre-headless
        llvm debuginfod xz-utils)
  missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "scripts/setup.sh: installing ${missing[*]} needs root: run it with sudo" >&2; exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extra="[html]"
[ "$dev" = 1 ] && extra="[html,test,spark]"
stamp=".venv/.installed${extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}"
  touch "$stamp"
fi
