#!/usr/bin/env bash
# How often a recorder names the call sites of a program that exits right after its calls,
# with both cores kept busy (docs/reliability.md, "Call sites"). As root:
#
#   bash bench/short_lived_callsites.sh [RECORDER] [RUNS]    (default: .venv/bin/sockopt-trace, 20)
#
# Each run: `RECORDER record -o DIR -- calls 5 3 0` (tests/workloads/calls.c: 90 calls from six
# functions in three threads, exiting as soon as they are done). Prints one line per run:
# calls recorded, calls whose call site is [unknown]; then the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
recorder=${1:-.venv/bin/sockopt-trace}
runs=${2:-20}
work=$(mktemp -d)
spinners=()
cleanup() { kill "${spinners[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
gcc -O2 -g -o "$work/calls" tests/workloads/calls.c -lpthread
for _ in 1 2; do sh -c 'while :; do :; done' & spinners+=($!); done
named=0 calls=0 unknown=0
for i in $(seq "$runs"); do
  "$recorder" record -q -o "$work/rec$i" -- "$work/calls" 5 3 0 >/dev/null
  read -r n u < <(.venv/bin/python -c "
import glob, sys, pyarrow.parquet as pq
sites = pq.read_table(glob.glob(sys.argv[1] + '/*.parquet'), columns=['callsite'])['callsite']
print(len(sites), sum(1 for s in sites.to_pylist() if s == '[unknown]'))" "$work/rec$i")
  echo "run $i: $n calls, $u [unknown]"
  calls=$((calls + n)) unknown=$((unknown + u))
  [ "$u" = 0 ] && named=$((named + 1))
done
echo "$runs runs, $calls calls, $unknown call sites [unknown]; every call site named in $named runs"
