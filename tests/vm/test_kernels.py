"""tests/kernel inside Debian's kernels: one outer test per inner test, per kernel.

An inner failure fails its outer test with the inner message and traceback; an inner skip fails
too (inside the VM every mode must work: that is what the tier is for)."""

from __future__ import annotations

import pytest

from tests.vm import tier

CASES = [(k, t) for k in tier.kernel_names() for t in tier.inner_tests(k)]


@pytest.mark.parametrize(("kernel", "inner"), CASES, ids=[f"{k}:{t}" for k, t in CASES])
def test_kernel_suite(kernel: str, inner: str, machines, record_property) -> None:
    suite = machines.suite(kernel)
    release = suite.kernel.release
    outcome = suite.outcomes.get(inner)
    if outcome is None:
        pytest.fail(
            f"{inner} did not run in the VM ({release}): "
            + (suite.problem or "not in its pytest report"),
            pytrace=False,
        )
    record_property("vm_seconds", outcome.seconds)
    if outcome.status != "passed":
        pytest.fail(
            f"in the VM ({release}), {outcome.status}: {outcome.message}\n{outcome.text}",
            pytrace=False,
        )
