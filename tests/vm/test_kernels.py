"""tests/kernel inside Debian's kernels: one outer test per inner test, per kernel.

An inner failure fails its outer test with the inner message and traceback; an inner skip fails
too (inside the VM every mode must work: that is what the tier is for)."""

from __future__ import annotations

import re

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


OLD = [k for k in tier.kernel_names() if not tier.KERNELS[k].supported]


if OLD:  # (an empty parametrization would show as a skip)

    @pytest.mark.parametrize("kernel", OLD)
    def test_older_kernel_is_refused_in_one_line(kernel: str, machines) -> None:
        """Below 5.15 (no task storage, no bpf_task_pt_regs): `record` says so in one line, before
        compiling anything, and doctor fails the kernel check with the fix."""
        share, run = machines.boot(kernel, tier.refusal_script)
        assert run.returncode == 0, run.log + run.console

        def output(name: str) -> tuple[int, str, str]:
            return (
                int((share / f"{name}.rc").read_text()),
                (share / f"{name}.out").read_text(),
                (share / f"{name}.err").read_text(),
            )

        code, _, err = output("record")
        assert code == 3, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "is too old: sockopt-trace needs Linux 5.15 or later" in err
        assert "bpf_task_pt_regs" in err and "task storage" in err
        code, out, err = output("doctor")
        assert code == 3, out + err
        assert re.search(r"^FAIL\s+kernel\s+\S+ lacks .*task storage", out, re.M), out
        assert "fix: Linux 5.15 or later" in out
        assert "recording: NOT possible" in out
