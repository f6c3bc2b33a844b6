"""The VM tier's pure parts: reading pytest's junit report back, the guest's script, the kernel
selection; and the recorder's kernel checks on this host's real /proc/kallsyms."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sockopt_trace.recorder import probe
from tests.vm import kernels, tier

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.kernel.test_record" name="test_a[kprobe]" time="12.5"/>
<testcase classname="tests.kernel.test_record" name="test_b[fentry-2]" time="3">
  <failure message="assert 1 == 2">trace here</failure></testcase>
<testcase classname="tests.kernel.test_modes" name="test_c" time="1">
  <skipped message="no reason" type="pytest.skip">skip text</skipped></testcase>
</testsuite></testsuites>"""


def test_junit_report_reads_back_by_test_id(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    got = tier.read_junit(path)
    assert got["tests/kernel/test_record.py::test_a[kprobe]"].status == "passed"
    assert got["tests/kernel/test_record.py::test_a[kprobe]"].seconds == 12.5
    failed = got["tests/kernel/test_record.py::test_b[fentry-2]"]
    assert (failed.status, failed.message, failed.text) == ("failed", "assert 1 == 2", "trace here")
    assert got["tests/kernel/test_modes.py::test_c"].status == "skipped"


def test_the_ci_selection_names_real_tests() -> None:
    """Every id the CI set names exists in tests/kernel (a typo would fail only in CI)."""
    known = set(tier.all_inner_tests())
    for kernel in ("6.1", "6.12"):
        chosen = tier.inner_tests(kernel)
        assert chosen and set(chosen) <= known, set(chosen) - known
        modes = {m for t in chosen for m in tier.MODES if f"[{m}" in t}
        assert modes == set(tier.MODES), (kernel, modes)


def test_guest_script_runs_the_inner_suite_in_every_mode(tmp_path: Path) -> None:
    script = tier.pytest_script(["tests/kernel/test_modes.py::test_c"], tmp_path)
    assert "SOCKOPT_TRACE_TEST_PROBE=fentry,kprobe,tracepoint" in script
    assert "SOCKOPT_TRACE_REQUIRE_KERNEL=1" in script
    assert f"--junitxml={tmp_path / 'junit.xml'}" in script
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_kernel_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOCKOPT_TRACE_VM_KERNELS", raising=False)
    assert tier.kernel_names() == list(tier.CI_KERNELS)
    monkeypatch.setenv("SOCKOPT_TRACE_VM_KERNELS", "all")
    assert tier.kernel_names() == list(kernels.KERNELS)
    monkeypatch.setenv("SOCKOPT_TRACE_VM_KERNELS", "4.4")
    with pytest.raises(ValueError, match="unknown"):
        tier.kernel_names()
    assert tier.inner_tests("5.10") == []  # an unsupported kernel runs the refusal test only


@pytest.mark.skipif(not Path("/proc/kallsyms").exists(), reason="no /proc/kallsyms")
def test_kernel_checks_on_this_host() -> None:
    """This host's kernel (6.18) has every helper the recorder needs, and __sys_getsockopt."""
    if "__sys_getsockopt" not in probe.kernel_symbols({"__sys_getsockopt"}):
        pytest.skip("kallsyms names are hidden from this user")
    assert probe.missing_features() == []
    assert probe.kernel_symbols({"no_such_function_here", "__sys_getsockopt"}) == {
        "__sys_getsockopt"
    }
    assert probe.attach_point("kprobe") == "__sys_getsockopt"
    assert probe.attach_point("tracepoint") == ""
    cflags = probe.ProbeConfig().cflags("kprobe", "__x64_sys_getsockopt")
    assert "-DATTACH_FN=__x64_sys_getsockopt" in cflags and "-DATTACH_SYSCALL_WRAPPER" in cflags
    assert "-DATTACH_SYSCALL_WRAPPER" not in probe.ProbeConfig().cflags("fentry")
