"""`record --max-rate N`: keep the recording near N calls per second, host-wide, whatever the
programs do, by sampling in the kernel with a period that adapts every second.

The kernel counts every sampleable call (successful, and not the first of its process and call
site) before deciding, so the rate measured here does not depend on the period in force: no
feedback, no oscillation. The period for the next stretch is the rate over the last second
divided by N, rounded up; the kernel keeps each sampleable call with probability 1/period and
writes the period as the row's weight. Failed calls and first calls come on top, weight 1.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 1.0
EVERY_S = 0.1


class RateController:
    def __init__(
        self,
        max_rate: int,
        sampleable: Callable[[], int],
        set_period: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rate = max_rate
        self.sampleable = sampleable  # cumulative count of sampleable calls (kernel counter)
        self.set_period = set_period
        self.clock = clock
        self.period = 1
        self.highest = 1
        self._seen: deque[tuple[float, int]] = deque([(clock(), sampleable())])

    def tick(self) -> None:
        """Called often; reads the kernel counter at most every EVERY_S."""
        now = self.clock()
        if now - self._seen[-1][0] < EVERY_S:
            return
        self._seen.append((now, self.sampleable()))
        while len(self._seen) > 2 and now - self._seen[1][0] >= WINDOW_S:
            self._seen.popleft()
        (t0, n0), (t1, n1) = self._seen[0], self._seen[-1]
        rate = (n1 - n0) / max(t1 - t0, EVERY_S)
        period = max(1, math.ceil(rate / self.max_rate - 0.01))  # no 101 for 100.0001
        if period != self.period:
            self.set_period(period)
            self.period = period
            self.highest = max(self.highest, period)
