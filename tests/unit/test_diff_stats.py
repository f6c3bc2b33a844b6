"""The tests behind diff (analyzer/stats.py) against reference values and simulations."""

from __future__ import annotations

import math

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


# -- Student's t and the empirical Bayes variances behind replicates ------------------------


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 7.0, 40.0])
def test_t_matches_closed_forms(t: float) -> None:
    """df 1 (Cauchy) and df 2 have closed forms; df inf is the normal."""
    assert stats.t_p(t, 1) == pytest.approx(1 - 2 / np.pi * np.arctan(t), rel=1e-9, abs=1e-15)
    assert stats.t_p(t, 2) == pytest.approx(1 - t / np.sqrt(2 + t * t), rel=1e-9, abs=1e-15)
    assert stats.t_p(t, float("inf")) == pytest.approx(2 * stats.NORMAL.cdf(-t), rel=1e-12)


@pytest.mark.parametrize(("df", "t"), [(3, 5.84091), (4, 4.60409), (10, 3.16927), (4.5, 3.0)])
def test_t_matches_integrated_density(df: float, t: float) -> None:
    """Against the density integrated numerically (independent of the continued fraction)."""
    x = np.linspace(t, t + 4000, 4_000_001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - math.log(math.pi * df) / 2
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    tail = np.trapezoid(density, x) if hasattr(np, "trapezoid") else np.trapz(density, x)
    assert stats.t_p(t, df) == pytest.approx(2 * tail, rel=1e-4)


def test_digamma_trigamma_known_values() -> None:
    euler = 0.5772156649015329
    assert stats.digamma(1) == pytest.approx(-euler, rel=1e-12)
    assert stats.digamma(0.5) == pytest.approx(-euler - 2 * np.log(2), rel=1e-12)
    assert stats.trigamma(1) == pytest.approx(np.pi**2 / 6, rel=1e-12)
    assert stats.trigamma(0.5) == pytest.approx(np.pi**2 / 2, rel=1e-12)
    for x in (0.05, 0.7, 3.0, 55.0, 4000.0):
        assert stats.trigamma_inverse(stats.trigamma(x)) == pytest.approx(x, rel=1e-9)


def test_prior_variance_recovers_the_scaled_chi_square() -> None:
    """True variances drawn as s0^2 d0 / chi2(d0) (the prior), then each observed with 4
    degrees of freedom: the moments give d0 and s0^2 back, roughly; equal variances give
    d0 = inf."""
    rng = np.random.default_rng(1)
    true = 0.04 * 10 / rng.chisquare(10, 4000)
    observed = true * rng.chisquare(4, 4000) / 4
    s0, d0 = stats.prior_variance(observed, np.full(4000, 4.0))
    assert s0 == pytest.approx(0.04, rel=0.1) and 6 < d0 < 16
    s0, d0 = stats.prior_variance(np.full(5, 0.01), np.full(5, 4.0))
    assert d0 == float("inf")
    variances, df = stats.moderated_variances(np.full(5, 0.01), np.full(5, 4.0))
    assert np.allclose(df, 20) and np.allclose(variances, variances[0])
    assert stats.prior_variance(np.array([0.1, 0.2]), np.array([4.0, 4.0])) == (0.0, 0.0)
