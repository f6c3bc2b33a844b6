"""--max-rate's controller: the period follows the rate of sampleable calls over the last second."""

from __future__ import annotations

import itertools

from sockopt_trace.recorder.sampling import RateController


class Host:
    """Sampleable calls arriving at `rate` per second on a fake clock."""

    def __init__(self) -> None:
        self.t = 0.0
        self.calls = 0.0
        self.rate = 0.0
        self.periods: list[int] = []

    def advance(self, seconds: float, controller: RateController) -> None:
        for _ in range(round(seconds / 0.05)):
            self.t += 0.05
            self.calls += self.rate * 0.05
            controller.tick()


def test_period_follows_the_rate_within_a_second() -> None:
    host = Host()
    c = RateController(1000, lambda: int(host.calls), host.periods.append, lambda: host.t)
    host.advance(2, c)
    assert c.period == 1 and host.periods == []  # idle: every call kept, the kernel not told
    host.rate = 100_000
    host.advance(1.2, c)
    assert c.period == 100  # 100k calls/s for 1,000 kept per second
    host.rate = 1_000_000
    host.advance(1.2, c)
    assert c.period == 1000
    host.rate = 500
    host.advance(1.2, c)
    assert c.period == 1 and host.periods[-1] == 1
    assert c.highest == 1000
    # told the kernel only on changes, and every change on the way
    assert all(a != b for a, b in itertools.pairwise(host.periods))


def test_reads_the_kernel_at_most_ten_times_a_second() -> None:
    host = Host()
    reads = []

    def sampleable() -> int:
        reads.append(host.t)
        return int(host.calls)

    c = RateController(1000, sampleable, host.periods.append, lambda: host.t)
    host.advance(3, c)
    assert len(reads) <= 31
