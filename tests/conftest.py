"""In CI (SOCKOPT_TRACE_REQUIRE_KERNEL=1, set by .ci/run) no test may skip: a tool, kernel
feature or browser missing there is a failure to fix, not a pass. The kernel and VM tiers
already fail instead of skipping; this covers every other skip site (skipif on a missing
llvm-symbolizer, bpftool, Chromium, headers...) at once.

Every test run gets its own user cache (XDG_CACHE_HOME: the footer index, debuginfod's
downloads), so that no run sees what an earlier one, or the user, left there."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

REQUIRED = os.environ.get("SOCKOPT_TRACE_REQUIRE_KERNEL") == "1"


def pytest_configure(config: pytest.Config) -> None:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sockopt-trace-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRED and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run (CI): {report.longrepr}"
