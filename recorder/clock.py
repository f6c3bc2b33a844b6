"""The recorder's one mapping from the kernel's clock to the wall clock. Calls are timed with
bpf_ktime_get_ns (CLOCK_MONOTONIC); files carry wall-clock (CLOCK_REALTIME) times, and every
row and span of a file is converted with the same mapping, so that rows never fall outside
their file's span."""

from __future__ import annotations

import time

from sockopt_trace import schema

# A new file re-reads the clock mapping but keeps the old one unless the wall clock stepped by
# more than this: re-read offsets jitter by some ns, and a file's rows converted with an offset
# a few ns smaller than the one its start was computed with would fall before its start.
CLOCK_STEP_NS = 1_000_000


def clock_mapping() -> schema.Clock:
    """Pair CLOCK_MONOTONIC (bpf_ktime_get_ns) with CLOCK_REALTIME, from the tightest of a few
    reads, so that wall = mono - monotonic_ns + realtime_ns."""
    best: tuple[int, int, int] | None = None
    for _ in range(5):
        r0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if best is None or r1 - r0 < best[0]:
            best = (r1 - r0, m, (r0 + r1) // 2)
    assert best is not None
    return schema.Clock(monotonic_ns=best[1], realtime_ns=best[2])


def unless_stepped(current: schema.Clock | None, fresh: schema.Clock) -> schema.Clock:
    """The mapping to use from now on: `current`, unless the wall clock stepped since."""
    if current is None or abs(fresh.offset_ns - current.offset_ns) > CLOCK_STEP_NS:
        return fresh
    return current
