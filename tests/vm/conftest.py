"""The VM tier (marker `vm`): Debian's kernels booted under qemu, tests/kernel run inside.

Needs root, qemu-system-x86, busybox-static and cpio (scripts/setup.sh --system) and the
package archive for the first download of each kernel. Where those are missing it skips and says
why, except under SOCKOPT_TRACE_REQUIRE_KERNEL=1 (CI), where that is a failure.
It runs when asked for: named on the command line (`pytest tests/vm`), or with
SOCKOPT_TRACE_VM=1 (scripts/test.sh sets it), or in CI; a plain `pytest tests` skips it, saying
so, since it takes every core for many minutes. Run it alone, under the exclusive CPU lock:
`flock -x /work/locks/cpu.lock .venv/bin/python -m pytest tests/vm`; `-m "not vm"` leaves it out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vm import kernels, machine, tier

REQUIRED = os.environ.get("SOCKOPT_TRACE_REQUIRE_KERNEL") == "1"


def _asked_for(config: pytest.Config) -> bool:
    if REQUIRED or os.environ.get("SOCKOPT_TRACE_VM") == "1":
        return True
    here = Path(__file__).parent
    named = [Path(a.split("::")[0]).resolve() for a in config.args]
    return any(p == here or here in p.parents for p in named)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    asked = _asked_for(config)
    skip = pytest.mark.skip(reason="VM tier not asked for: pytest tests/vm or SOCKOPT_TRACE_VM=1")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.vm)
            if not asked:
                item.add_marker(skip)


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"the VM tier is required here but cannot run: {reason}")
    pytest.skip(f"the VM tier cannot run here: {reason}")


class Machines:
    """Kernels fetched and suites run, once each per session, one VM at a time."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.fetched: dict[str, kernels.Kernel] = {}
        self.suites: dict[str, tier.SuiteRun] = {}

    def kernel(self, name: str) -> kernels.Kernel:
        if name not in self.fetched:
            try:
                self.fetched[name] = kernels.fetch(kernels.KERNELS[name])
            except kernels.FetchError as err:
                _unavailable(f"cannot fetch kernel {name}: {err}")
        return self.fetched[name]

    def boot(self, name: str, script: Callable[[Path], str]) -> tuple[Path, machine.Run]:
        """Boot kernel `name` with the script `script(share)` writes; its share and the run."""
        share = self.base / f"{name}-{script.__name__}"
        try:
            return share, machine.boot(self.kernel(name), script(share), share, tier.TIMEOUT_S)
        except machine.MachineError as err:
            pytest.fail(str(err), pytrace=False)

    def suite(self, name: str) -> tier.SuiteRun:
        if name not in self.suites:
            kernel = self.kernel(name)
            self.suites[name] = tier.run_suite(kernel, tier.inner_tests(name), self.base / name)
        return self.suites[name]


@pytest.fixture(scope="session")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Machines:
    if os.geteuid() != 0:
        _unavailable("not root")
    missing = machine.missing_tools()
    if missing:
        _unavailable(missing)
    print(f"\nvm: {machine.accelerator()[1]}")
    return Machines(tmp_path_factory.mktemp("vm"))
