"""Fixtures for the real-kernel tests: they load our BPF program into the running kernel and
record real getsockopt(2) calls made by real processes.

They need root, bcc and kernel headers. Where those are missing they skip and say why, except
when SOCKOPT_TRACE_REQUIRE_KERNEL=1 (set by CI), where a skip would hide that recording was
never tested, so it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel import support

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "tests" / "workloads"
REQUIRED = os.environ.get("SOCKOPT_TRACE_REQUIRE_KERNEL") == "1"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("gcc") is None:
        return "no C compiler (apt-get install gcc)"
    try:
        from sockopt_trace.recorder import environment

        environment.prepare()
    except Exception as err:  # any reason recording cannot work here
        return str(err)
    return None


@pytest.fixture(scope="session", autouse=True)
def kernel_available() -> None:
    reason = _missing()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"real-kernel tests are required here but cannot run: {reason}")
    pytest.skip(f"real-kernel tests need root, bcc and headers: {reason}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test once per mode in SOCKOPT_TRACE_TEST_PROBE, except those that cover all modes
    themselves (marker all_probes)."""
    modes = support.probe_modes()
    if modes and not metafunc.definition.get_closest_marker("all_probes"):
        metafunc.parametrize("probe_mode", modes, indirect=True)


@pytest.fixture(autouse=True)
def probe_mode(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The probe mode every recorder this test starts is given (None: --probe auto)."""
    support.probe = getattr(request, "param", None)
    yield support.probe
    support.probe = None


@pytest.fixture(scope="session")
def loop_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench/loop.c: getsockopt in a tight loop, exactly CALLS times per thread."""
    out = tmp_path_factory.mktemp("bin") / "loop"
    subprocess.run(
        ["gcc", "-O2", "-o", str(out), str(ROOT / "bench" / "loop.c"), "-lpthread"], check=True
    )
    return out


@pytest.fixture(scope="session")
def workload_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/workloads/calls.c, compiled with frame pointers and symbols."""
    out = tmp_path_factory.mktemp("bin") / "calls"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-g",
            "-fno-omit-frame-pointer",
            "-o",
            str(out),
            str(WORKLOADS / "calls.c"),
            "-lpthread",
        ],
        check=True,
    )
    return out


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen]]:
    """Processes started by a test; killed and reaped at its end whatever happens."""
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
