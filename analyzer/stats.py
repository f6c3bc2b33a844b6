"""The statistical tests of `diff`, with numpy and the standard library only.

Each test returns a two-sided p-value for "no change"; `diff` then applies a Bonferroni
correction over every test it ran and a minimum effect size (see docs/diff.md). Counts may be
divided by an over-dispersion factor first (quasi-Poisson / quasi-binomial): calls come in bursts,
so a recording's counts vary more than a Poisson process's would, and the tests must not mistake
that for a change. The factor is estimated from how counts vary across time slots of each
recording (`rate_dispersion`, `error_dispersion`).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

NORMAL = NormalDist()
WIDTH = 40  # exact tests sum over the outcomes within this many standard deviations
_RELATIVE_TIE = 1 + 1e-7  # outcomes this close to the observed probability count as as extreme


def normal_quantile(p: float) -> float:
    return NORMAL.inv_cdf(p)


def _two_sided_exact(log_pmf: np.ndarray, observed: int) -> float:
    """Sum of the probabilities of outcomes no more likely than the observed one (an index of
    `log_pmf`, which may be known up to a constant)."""
    log_pmf = log_pmf - np.logaddexp.reduce(log_pmf)
    pmf = np.exp(log_pmf)
    return float(min(1.0, pmf[pmf <= pmf[observed] * _RELATIVE_TIE].sum()))


def _window(lo: int, hi: int, mean: float, sd: float, x: int) -> tuple[int, int] | None:
    """The outcomes within WIDTH standard deviations of the mean (the rest of the support holds
    less than 1e-300 of the probability), or None if x is outside them: its p-value is ~0."""
    a, b = max(lo, math.floor(mean - WIDTH * sd)), min(hi, math.ceil(mean + WIDTH * sd))
    return (a, b) if a <= x <= b else None


def binomial_p(k: int, n: int, p: float) -> float:
    """Two-sided p-value of k successes in n trials of probability p (exact)."""
    if n <= 0 or p <= 0 or p >= 1:
        return 1.0
    window = _window(0, n, n * p, math.sqrt(n * p * (1 - p)), k)
    if window is None:
        return 0.0
    x = np.arange(window[0], window[1], dtype=np.float64)
    # log pmf(x + 1) - log pmf(x); the normalisation in _two_sided_exact fixes the constant.
    steps = np.log(n - x) - np.log(x + 1) + math.log(p) - math.log1p(-p)
    return _two_sided_exact(np.concatenate(([0.0], np.cumsum(steps))), k - window[0])


def hypergeometric_p(x: int, total: int, successes: int, draws: int) -> float:
    """Fisher's exact test: two-sided p-value of x successes among `draws` taken without
    replacement from `total` items of which `successes` succeed."""
    lo, hi = max(0, draws - (total - successes)), min(successes, draws)
    if hi <= lo:
        return 1.0
    mean = draws * successes / total
    var = mean * (total - successes) / total * (total - draws) / max(1, total - 1)
    window = _window(lo, hi, mean, math.sqrt(var), x)
    if window is None:
        return 0.0
    k = np.arange(window[0], window[1], dtype=np.float64)
    steps = (
        np.log(successes - k)
        + np.log(draws - k)
        - np.log(k + 1)
        - np.log(total - successes - draws + k + 1)
    )
    return _two_sided_exact(np.concatenate(([0.0], np.cumsum(steps))), x - window[0])


def poisson_rates_p(k1: float, t1: float, k2: float, t2: float, dispersion: float = 1.0) -> float:
    """Two-sided p-value that k1 events in t1 seconds and k2 in t2 come from the same rate.

    Conditional test: given k1 + k2, k2 is binomial with p = t2 / (t1 + t2) under equal rates.
    Counts are divided by `dispersion` (>= 1) first, the quasi-Poisson effective counts.
    """
    phi = max(1.0, dispersion)
    a, b = round(k1 / phi), round(k2 / phi)
    return binomial_p(b, a + b, t2 / (t1 + t2))


def proportions_p(e1: float, n1: float, e2: float, n2: float, dispersion: float = 1.0) -> float:
    """Two-sided p-value that e1 of n1 and e2 of n2 have the same proportion (Fisher's exact
    test on counts divided by `dispersion`, the quasi-binomial effective counts)."""
    phi = max(1.0, dispersion)
    a, b = round(n1 / phi), round(n2 / phi)
    x1, x2 = min(a, round(e1 / phi)), min(b, round(e2 / phi))
    if a == 0 or b == 0:
        return 1.0
    return hypergeometric_p(x2, a + b, x1 + x2, b)


def rate_dispersion(calls: float, calls_sq: float, slots: int) -> float:
    """Variance over mean of a group's calls per time slot (>= 1; 1 for a Poisson process).

    `calls` and `calls_sq` are the sum of the per-slot counts and of their squares over the
    `slots` slots of the recording (slots without calls count as zeros).
    """
    if slots < 2 or calls <= 0:
        return 1.0
    mean = calls / slots
    var = (calls_sq - calls * calls / slots) / (slots - 1)
    return max(1.0, var / mean)


def error_dispersion(errors: float, calls: float, errors_sq_per_call: float, slots: int) -> float:
    """Pearson chi-square over degrees of freedom of a group's errors per time slot, given the
    calls in each slot (>= 1; 1 when errors fall independently at a constant rate).

    `errors_sq_per_call` is the sum over slots with calls of errors^2 / calls, and `slots` the
    number of such slots.
    """
    if slots < 2 or calls <= 0 or errors <= 0 or errors >= calls:
        return 1.0
    p = errors / calls
    chi2 = (errors_sq_per_call - p * p * calls) / (p * (1 - p))
    return max(1.0, chi2 / (slots - 1))


def quantile_test(
    bins: tuple[np.ndarray, np.ndarray], counts: tuple[np.ndarray, np.ndarray], p: float
) -> float:
    """Two-sided p-value that two samples have the same p-quantile (Mood's quantile test).

    Each sample is given as the ids of its ordered latency bins and the count in each. The cut
    is the bin edge where the pooled samples' cumulative share is nearest to p; Fisher's exact
    test then compares how many of each sample fall at or below it. Under no change the calls
    of both are exchangeable, so the test is exact whatever the ties: the cut depends on the
    pooled data only, and counts at a bin edge are exact.
    """
    edges = np.union1d(bins[0], bins[1])
    cum = []
    for ids, n in zip(bins, counts, strict=True):
        aligned = np.zeros(len(edges))
        aligned[np.searchsorted(edges, ids)] = n
        cum.append(np.concatenate(([0.0], np.cumsum(aligned))))
    pooled = cum[0] + cum[1]
    cut = int(np.argmin(np.abs(pooled / pooled[-1] - p)))
    return proportions_p(cum[0][cut], cum[0][-1], cum[1][cut], cum[1][-1])


def quantile_replicates(
    values: np.ndarray, counts: np.ndarray, p: float, rng: np.random.Generator, size: int
) -> np.ndarray:
    """Draws from the bootstrap distribution of a sample's p-quantile, the sample given as its
    sorted distinct `values` (or bins' largest values) with `counts`.

    In a resample of n values drawn with replacement, the m-th smallest (m = ceil(n p)) is the
    value at rank J, the m-th smallest of n uniform draws from 1..n; that order statistic is
    ceil(n U) with U ~ Beta(m, n - m + 1). So a replicate costs one Beta draw and a lookup in
    the cumulative counts, and no resample is ever materialised.
    """
    cum = np.cumsum(counts)
    n = int(cum[-1])
    m = min(n, max(1, math.ceil(n * p)))
    ranks = np.ceil(n * rng.beta(m, n - m + 1, size))
    return values[np.minimum(np.searchsorted(cum, ranks), len(values) - 1)]


# -- replicates: Student's t and the empirical Bayes variances of `diff.replicates` ------------


def t_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with `df` degrees of freedom (any df > 0; inf: normal)."""
    if math.isnan(t) or df <= 0:
        return 1.0
    if math.isinf(df):
        return 2 * NORMAL.cdf(-abs(t))
    return _beta_regularized(df / 2, 0.5, df / (df + t * t))


def _beta_regularized(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function (continued fraction, Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300

    def guard(v: float) -> float:
        return tiny if abs(v) < tiny else v

    c, d = 1.0, 1.0 / guard(1 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 500):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d, c = 1.0 / guard(1 + even * d), guard(1 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d, c = 1.0 / guard(1 + odd * d), guard(1 + odd / c)
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def digamma(x: float) -> float:
    """psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series."""
    out = 0.0
    while x < 10:
        out -= 1 / x
        x += 1
    f = 1 / (x * x)
    return out + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f / 240)))


def trigamma(x: float) -> float:
    """psi'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series."""
    out = 0.0
    while x < 10:
        out += 1 / (x * x)
        x += 1
    f = 1 / (x * x)
    return out + 1 / x + f / 2 + f / x * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30)))


def trigamma_inverse(y: float) -> float:
    """The x > 0 with trigamma(x) = y (trigamma decreases: bisection on log x)."""
    lo, hi = math.log(1e-8), math.log(1e12)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if trigamma(math.exp(mid)) > y else (lo, mid)
    return math.exp((lo + hi) / 2)


def prior_variance(variances: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """(s0^2, d0): the scaled inverse chi-square prior that the groups' sample variances are
    drawn from, fitted by moments of their logarithms (Smyth 2004, limma's fitFDist).

    d0 is inf when the variances differ no more than sampling alone explains (they share one
    variance), 0 when there are fewer than 3 of them (nothing to learn from).
    """
    ok = (variances > 0) & (df > 0)
    s2, d = variances[ok], df[ok]
    if len(s2) < 3:
        return 0.0, 0.0
    e = np.log(s2) - np.array([digamma(v / 2) - math.log(v / 2) for v in d])
    mean = float(e.mean())
    excess = float(e.var(ddof=1)) - float(np.mean([trigamma(v / 2) for v in d]))
    if excess <= 0:
        return math.exp(mean), math.inf
    d0 = 2 * trigamma_inverse(excess)
    return math.exp(mean + digamma(d0 / 2) - math.log(d0 / 2)), d0


def moderated_variances(variances: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group's variance shrunk toward the prior of `prior_variance`, and its degrees of
    freedom (its own plus the prior's, at most all the groups' together): with 3 recordings a
    side a group's own variance has 4 degrees of freedom, too few to test against alone."""
    s0, d0 = prior_variance(variances, df)
    total = float(df[df > 0].sum())
    if d0 == 0:
        return variances, df
    if math.isinf(d0):
        return np.full_like(variances, s0), np.where(df > 0, total, df)
    post = (d0 * s0 + df * variances) / (d0 + df)
    return post, np.where(df > 0, np.minimum(df + d0, total), df)
