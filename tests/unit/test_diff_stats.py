"""The tests behind diff (analyzer/stats.py) against reference values and simulations."""

from __future__ import annotations

import numpy as np
import pytest

from sockopt_trace.analyzer import stats

# Reference p-values from scipy 1.16 (scipy.stats.binomtest, scipy.stats.fisher_exact).
BINOMIAL = [
    ((3, 10, 0.5), 0.34375),
    ((17, 40, 0.3), 0.0870738218909456),
    ((480, 1000, 0.5), 0.2174482932041415),
    ((10, 1_000_000, 0.00002), 0.024284984135711705),
    ((1_000_500, 2_000_000, 0.5), 0.4799396324735668),
]
FISHER = [  # (errors, calls) before and after
    ((3, 4, 1, 4), 0.48571428571428565),
    ((12, 1000, 30, 1000), 0.007287953507168595),
    ((0, 500, 9, 500), 0.003766961759530913),
    ((500_000, 1_000_000, 501_000, 1_000_000), 0.1577145048697666),
]


@pytest.mark.parametrize(("args", "expected"), BINOMIAL)
def test_binomial_matches_scipy(args: tuple[int, int, float], expected: float) -> None:
    assert stats.binomial_p(*args) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("args", "expected"), FISHER)
def test_fisher_matches_scipy(args: tuple[int, int, int, int], expected: float) -> None:
    assert stats.proportions_p(*args) == pytest.approx(expected, rel=1e-9)


def test_far_tails_are_zero_not_errors() -> None:
    assert stats.binomial_p(0, 10**9, 0.5) == 0.0
    assert stats.proportions_p(0, 10**7, 10**6, 10**7) == 0.0
    assert stats.binomial_p(5, 0, 0.5) == 1.0 and stats.proportions_p(0, 0, 1, 5) == 1.0


def test_poisson_rates_and_dispersion() -> None:
    assert stats.poisson_rates_p(100, 10, 100, 10) == pytest.approx(1.0)
    assert stats.poisson_rates_p(1000, 10, 3000, 10) < 1e-100
    same_rate = stats.poisson_rates_p(1000, 10, 2000, 20)  # equal rates, different spans
    assert same_rate > 0.5
    plain = stats.poisson_rates_p(1000, 10, 1200, 10)
    assert plain < 1e-4 < stats.poisson_rates_p(1000, 10, 1200, 10, dispersion=20)
    rng = np.random.default_rng(1)
    poisson = rng.poisson(50, 30)
    phi = stats.rate_dispersion(poisson.sum(), (poisson**2).sum(), 30)
    assert 1.0 <= phi < 2.0
    bursty = np.where(rng.random(30) < 0.2, 250, 0)
    assert stats.rate_dispersion(bursty.sum(), (bursty**2).sum(), 30) > 50


def test_error_dispersion() -> None:
    rng = np.random.default_rng(2)
    calls = rng.integers(800, 1200, 30)
    steady = rng.binomial(calls, 0.05)
    sq = float((steady**2 / calls).sum())
    assert stats.error_dispersion(steady.sum(), calls.sum(), sq, 30) < 2.0
    bursts = np.where(np.arange(30) < 3, calls // 2, 0)  # every error in three slots
    sq = float((bursts**2 / calls).sum())
    assert stats.error_dispersion(bursts.sum(), calls.sum(), sq, 30) > 50


def test_bootstrap_replicates_match_a_brute_force_bootstrap() -> None:
    rng = np.random.default_rng(3)
    sample = (300 * rng.lognormal(0, 0.6, 3000)).astype(np.int64)
    values, counts = np.unique(sample, return_counts=True)
    for p in (0.5, 0.9, 0.99):
        drawn = stats.quantile_replicates(values.astype(float), counts, p, rng, 20_000)
        brute = [
            np.quantile(rng.choice(sample, sample.size), p, method="inverted_cdf")
            for _ in range(3000)
        ]
        assert drawn.std() == pytest.approx(np.std(brute), rel=0.1)
        assert np.median(drawn) == pytest.approx(np.median(brute), rel=0.02)


def _as_bins(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.unique(sample, return_counts=True)
    return values.astype(float), counts.astype(float)


@pytest.mark.parametrize("ties", [False, True])
def test_quantile_test_holds_its_level_and_finds_shifts(ties: bool) -> None:
    rng = np.random.default_rng(4)

    def sample(n: int, scale: float = 1.0) -> np.ndarray:
        x = 300 * scale * rng.lognormal(0, 0.6, n)
        return np.round(x, -1) if ties else np.round(x, 1)  # heavy ties: 10 ns steps

    p_values = {p: [] for p in (0.5, 0.9, 0.99)}
    for _ in range(300):
        a, b = _as_bins(sample(2000)), _as_bins(sample(2500))
        for p in p_values:
            p_values[p].append(stats.quantile_test((a[0], b[0]), (a[1], b[1]), p))
    for p, values in p_values.items():
        assert np.mean(np.array(values) < 0.05) <= 0.08, p
        assert np.mean(np.array(values) < 0.01) <= 0.025, p
    a, b = _as_bins(sample(5000)), _as_bins(sample(5000, scale=1.15))
    for p in (0.5, 0.9):
        assert stats.quantile_test((a[0], b[0]), (a[1], b[1]), p) < 1e-6
