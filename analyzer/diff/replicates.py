"""Judge a change against the variation between recordings (replicates) of the same workload.

Two recordings of one program never match: the CPU's frequency, caches, placement and the
neighbours differ from run to run, and shift every call of a run together. A test that treats
calls as independent draws cannot see that (issue 13: 10 of 15 pairs of identical runs failed
`--fail-on p99:+20%`). With several recordings per side, each recording is one observation:

- each group gets one value per recording: ln calls/s, ln p50/p90/p99, or its error share;
- a recording as a whole is faster or slower than its side's average (its *recording effect*,
  the median over the groups, which every group in it shares: a randomized block design with
  recordings as blocks). For rates and latencies the groups' values are compared net of it;
  error shares do not scale with the host's speed and are compared as they are;
- a group's change is its change beyond the host's (the median group's change), tested
  against the scatter of its own values around their side's mean and recording effects, with
  Student's t; that variance is moderated by empirical Bayes over the groups (Smyth 2004,
  `stats.moderated_variances`), since 3 recordings a side leave a group 4 degrees of freedom;
- the host's change (every group moving together) is tested against the scatter of the
  recording effects within each side: a slower host after a change and a slower run look
  alike, and only the runs' own spread tells them apart.

Values are never more precise than one recording's sampling allows (`floor`, per group): a
deterministic workload makes exactly as many calls each run, and its zero spread must not make
a one-call difference certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sockopt_trace.analyzer import stats
from sockopt_trace.analyzer.diff.group import Group, Spread
from sockopt_trace.analyzer.diff.model import MIN_BEYOND, PERCENTILES, SCALED, SIDES, SLOTS, Side

MIN_REFERENCE = 3  # groups in every recording needed to estimate recording effects


@dataclass(frozen=True)
class HostShift:
    """How every group moved together between the sides, on the metric's scale (ln)."""

    shift: float  # the median group's change
    spread: float  # standard deviation of the recordings' effects within a side
    p: float  # two-sided, unadjusted: "the host did not change"


@dataclass(frozen=True)
class Compared:
    """Per group (rows of the input): the raw p-value (nan: not tested) and the change beyond
    the host's; and the host's shift (None when recording effects could not be estimated)."""

    p: np.ndarray
    beyond: np.ndarray
    host: HostShift | None


def compare(y: np.ndarray, new: np.ndarray, floor: np.ndarray, *, blocks: bool) -> Compared:
    """Test each group's change between the recordings of the two sides.

    `y`: groups x recordings (nan where a group has no value in a recording); `new`: which
    recordings are the new side's; `floor`: each group's least variance of one recording's value;
    `blocks`: estimate recording effects (rates, latencies), or not (error shares).
    """
    y = np.asarray(y, dtype=np.float64)
    new = np.asarray(new, dtype=bool)
    present = ~np.isnan(y)
    sides = (~new, new)
    counts = [present[:, s].sum(axis=1) for s in sides]
    means = [_side_mean(y[:, s], c) for s, c in zip(sides, counts, strict=True)]
    n = counts[0] + counts[1]
    testable = (counts[0] >= 1) & (counts[1] >= 1) & (n >= 3)
    change = means[1] - means[0]
    centred = y - np.where(new, means[1][:, None], means[0][:, None])

    reference = testable & present.all(axis=1)
    refs = int(reference.sum())
    effects = np.zeros(y.shape[1])
    shift = 0.0
    if blocks and refs >= MIN_REFERENCE:
        effects = np.median(centred[reference], axis=0)
        for s in sides:
            effects[s] -= effects[s].mean()
        shift = float(np.median(change[reference]))
    else:
        refs = 0
    residual = centred - effects
    for s, c in zip(sides, counts, strict=True):  # groups missing in some recordings
        residual[:, s] -= _side_mean(residual[:, s], c)[:, None]
    lost = 1 - 1 / refs if refs else 1.0  # the recording effects took their share
    df = np.where(testable, (n - 2) * lost, 0.0)
    squares = np.nansum(residual * residual, axis=1)
    own = np.divide(squares, df, out=np.zeros_like(squares), where=df > 0)
    variance, dof = stats.moderated_variances(np.maximum(own, floor), df)
    inflate = 1 + math.pi / (2 * refs) if refs else 1.0  # the host shift is estimated too
    se = np.sqrt(variance * inflate * (1 / np.maximum(counts[0], 1) + 1 / np.maximum(counts[1], 1)))
    beyond = change - shift
    p = np.full(len(y), np.nan)
    for g in np.flatnonzero(testable & (dof > 0)):
        p[g] = _t_p(beyond[g], se[g], dof[g])

    host = None
    k = [int(s.sum()) for s in sides]
    if refs and sum(k) > 2:
        effects_var = float(effects @ effects) / (sum(k) - 2)
        typical = float(np.median(variance[reference]))
        var = (effects_var + math.pi / 2 * typical / refs) * (1 / k[0] + 1 / k[1])
        host = HostShift(shift, math.sqrt(effects_var), _t_p(shift, math.sqrt(var), sum(k) - 2))
    return Compared(p, beyond, host)


def _side_mean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of each row over its present values (nan where it has none)."""
    total = np.nansum(values, axis=1)
    return np.divide(total, counts, out=np.full(len(total), np.nan), where=counts > 0)


def _t_p(effect: float, se: float, df: float) -> float:
    if se <= 0:
        return 1.0 if effect == 0 else 0.0
    return stats.t_p(effect / se, df)


def median_shift(changes: np.ndarray) -> float | None:
    """The host's shift between two single recordings: the median group's change (ln), or
    None with fewer than `MIN_REFERENCE` groups to take it from."""
    changes = changes[np.isfinite(changes)]
    return float(np.median(changes)) if len(changes) >= MIN_REFERENCE else None


# -- a diff's groups ---------------------------------------------------------------------------


def test_groups(groups: list[Group], base: Side, new: Side) -> dict[str, HostShift]:
    """Each metric of every group in both sides, against the variation between recordings;
    returns the host's shift per scaled metric (when estimable)."""
    recordings = [(0, r) for r in base.replicates] + [(1, r) for r in new.replicates]
    column = {(side, r.recording_id): j for j, (side, r) in enumerate(recordings)}
    is_new = np.array([side == 1 for side, _ in recordings])
    seconds = np.array([r.seconds for _, r in recordings])
    shape = (len(groups), len(recordings))
    calls, errors = np.zeros(shape), np.zeros(shape)
    q = np.full((*shape, len(PERCENTILES)), np.nan)
    for i, g in enumerate(groups):
        for row in g.replicates:
            j = column[(int(row["side"]), row["recording_id"])]
            calls[i, j], errors[i, j] = float(row["calls"]), float(row["errors"])
            for k, p in enumerate(PERCENTILES.values()):
                if row["q"] is not None and calls[i, j] * min(p, 1 - p) >= MIN_BEYOND:
                    q[i, j, k] = float(row["q"][k])
    # (ln) values per recording, the least variance one recording's sampling allows (Poisson
    # counts, binomial errors, a nanosecond's resolution), and the values as shown
    values: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    rate = (calls + 0.5) / seconds
    values["rate"] = (np.log(rate), _row_mean(1 / (calls + 0.5)), calls / seconds)
    for k, name in enumerate(PERCENTILES):
        values[name] = (np.log(q[:, :, k]), _row_mean(1 / q[:, :, k] ** 2), q[:, :, k])
    share = np.divide(errors, calls, out=np.full(shape, np.nan), where=calls > 0)
    pooled = (errors.sum(axis=1) + 0.5) / (calls.sum(axis=1) + 1)
    per_call = np.divide(1.0, calls, out=np.full(shape, np.nan), where=calls > 0)
    values["errors"] = (share, pooled * (1 - pooled) * _row_mean(per_call), 100 * share)

    hosts = {}
    for metric, (y, least, shown) in values.items():
        testable = np.ones(len(groups), dtype=bool)
        if metric == "errors":
            testable = errors.sum(axis=1) > 0
        compared = compare(
            np.where(testable[:, None], y, np.nan), is_new, least, blocks=metric in SCALED
        )
        if compared.host is not None:
            hosts[metric] = compared.host
        for i, g in enumerate(groups):
            g.spread[metric] = _spread(shown[i], is_new)
            if not math.isnan(compared.p[i]):
                g.p[metric] = float(compared.p[i])
                g.beyond[metric] = float(compared.beyond[i])
    return hosts


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite values (0 where it has none)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
    return total / np.maximum(finite.sum(axis=1), 1)


def _spread(values: np.ndarray, is_new: np.ndarray) -> Spread:
    def span(v: np.ndarray) -> tuple[float, float]:
        v = v[np.isfinite(v)]
        return (float(v.min()), float(v.max())) if len(v) else (math.nan, math.nan)

    return span(values[~is_new]), span(values[is_new])


def test_appeared(g: Group, base: Side, new: Side) -> None:
    """A group on one side only: every recording of that side must show more calls than
    chance allows against none in all the other side's time (the largest p-value is the test's)."""
    present, absent = (new, base) if g.status == "new" else (base, new)
    side = SIDES.index(present.name)
    rows = {row["recording_id"]: row for row in g.replicates if int(row["side"]) == side}
    worst = 0.0
    for r in present.replicates:
        row = rows.get(r.recording_id)
        if row is None:
            worst = 1.0
            break
        calls = float(row["calls"])
        phi = stats.rate_dispersion(calls, float(row["calls_sq"]), SLOTS)
        worst = max(worst, stats.poisson_rates_p(0, absent.seconds, calls, r.seconds, phi))
    g.p["rate"] = worst
