"""The VM tier: which kernels, which of tests/kernel run inside each, and what came back.

The tests inside are the project's own real-kernel tests (tests/kernel), one suite: each runs
once per probe mode (SOCKOPT_TRACE_TEST_PROBE, see tests/kernel/conftest.py), and pytest's junit
report comes back through the shared directory, one outer test per inner test.

Choose with environment variables:
  SOCKOPT_TRACE_VM_KERNELS  comma-separated names from tests/vm/kernels.py, or "all"
                            (default: the CI set, CI_KERNELS below)
  SOCKOPT_TRACE_VM_TESTS    "ci" (default: chosen to fit CI's budget), "all" (every test in
                            tests/kernel, in every mode: hours under emulation), or a substring
                            that picks inner test ids out of "all" (e.g. test_reliability.py)
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.vm import machine
from tests.vm.kernels import KERNELS, Kernel

ROOT = Path(__file__).resolve().parents[2]
MODES = ("fentry", "kprobe", "tracepoint")
CI_KERNELS = ("6.1", "6.12", "5.10")  # 5.10: the refusal of a kernel older than 5.15
TIMEOUT_S = float(os.environ.get("SOCKOPT_TRACE_VM_TIMEOUT", "2400"))
TIME_SCALE = "30"  # emulation: inner commands get 30x their usual time limit

K = "tests/kernel/"
# Mode-independent: doctor loads every mode; test_modes records the same workload in each mode
# and checks each exactly (counts, call sites, arguments, `-- COMMAND`) and against the others.
EVERY_KERNEL = (
    K + "test_record_errors.py::test_doctor_reports_every_check_and_the_working_mode",
    K + "test_modes.py::test_every_mode_records_the_same_calls",
)
# The rest, spread over the CI kernels so that each test runs in two modes and each kernel sees
# every mode, within CI's budget (measured: a 6.1 run of 7 such tests took 14.5 min of a loaded
# machine). The traced command's exit status is mode-independent: it runs with "all" only.
SPREAD = {
    "6.1": (
        K + "test_record.py::test_signal_stops_cleanly_and_seals_the_file[{fentry}-2]",
        K + "test_reliability.py::test_forced_loss_is_counted_exactly_everywhere[{kprobe}]",
        K + "test_record.py::test_pid_filter_keeps_only_that_process[{tracepoint}]",
    ),
    "6.12": (
        K + "test_record.py::test_signal_stops_cleanly_and_seals_the_file[{kprobe}-15]",
        K + "test_reliability.py::test_forced_loss_is_counted_exactly_everywhere[{fentry}]",
        K + "test_record.py::test_comm_filter_keeps_only_that_name[{tracepoint}]",
        # the context columns' struct reads at offsets of a kernel other than bcc's headers
        # (6.1): every row's socket, Unix paths included, value and cgroup, exactly (~70 s)
        K + "test_context_record.py::test_every_rows_socket_value_and_cgroup_are_exact[{fentry}]",
    ),
}


def kernel_names() -> list[str]:
    wanted = os.environ.get("SOCKOPT_TRACE_VM_KERNELS", ",".join(CI_KERNELS))
    names = list(KERNELS) if wanted == "all" else [n for n in wanted.split(",") if n]
    unknown = [n for n in names if n not in KERNELS]
    if unknown:
        raise ValueError(f"SOCKOPT_TRACE_VM_KERNELS: unknown {unknown}; known: {list(KERNELS)}")
    return names


def _expand(node: str) -> str:
    for mode in MODES:
        node = node.replace("{" + mode + "}", mode)
    return node


def all_inner_tests() -> list[str]:
    """Every test id of tests/kernel, as pytest names it with all three modes."""
    env = {**os.environ, "SOCKOPT_TRACE_TEST_PROBE": ",".join(MODES)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", K],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith(K)]


def inner_tests(kernel: str) -> list[str]:
    """The tests/kernel ids to run inside `kernel` (only supported kernels run the suite)."""
    if not KERNELS[kernel].supported:
        return []
    choice = os.environ.get("SOCKOPT_TRACE_VM_TESTS", "ci")
    if choice == "ci":
        spread = SPREAD.get(kernel) or next(iter(SPREAD.values()))
        return [*EVERY_KERNEL, *(_expand(n) for n in spread)]
    tests = all_inner_tests()
    return tests if choice == "all" else [t for t in tests if choice in t]


@dataclass
class Outcome:
    status: str  # passed, failed, error, skipped
    message: str
    text: str
    seconds: float


def read_junit(path: Path) -> dict[str, Outcome]:
    """pytest's junit report, by test id (tests/kernel/FILE.py::NAME[PARAMS])."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        node = f"{module}.py::{case.get('name')}"
        status, message, text = "passed", "", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                status, message, text = tag, found.get("message", ""), found.text or ""
                break
        if status == "failure":
            status = "failed"
        outcomes[node] = Outcome(status, message, text, float(case.get("time", 0)))
    return outcomes


def pytest_script(tests: list[str], share: Path) -> str:
    """The guest's script: the inner pytest over `tests`, in every mode, kernel tests required."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "SOCKOPT_TRACE_REQUIRE_KERNEL": "1",
        "SOCKOPT_TRACE_TEST_PROBE": ",".join(MODES),
        "SOCKOPT_TRACE_TEST_TIME_SCALE": TIME_SCALE,
    }
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        f"--junitxml={share / 'junit.xml'}",
        *tests,
    ]
    return (
        f"cd {shlex.quote(str(ROOT))}\n{exports}"
        'echo "vm: $(uname -r) $(nproc) cpus $(date -u +%FT%TZ)"\n'
        + " ".join(shlex.quote(a) for a in args)
        + "\n"
    )


@dataclass
class SuiteRun:
    kernel: Kernel
    run: machine.Run | None
    outcomes: dict[str, Outcome]
    problem: str  # why nothing (or not everything) came back, with the evidence


def run_suite(kernel: Kernel, tests: list[str], share: Path) -> SuiteRun:
    """Boot `kernel` once, run `tests` inside, and read pytest's report."""
    (share / "junit.xml").unlink(missing_ok=True)
    try:
        run = machine.boot(kernel, pytest_script(tests, share), share, TIMEOUT_S)
    except machine.MachineError as err:
        return SuiteRun(kernel, None, {}, str(err))
    junit = share / "junit.xml"
    outcomes = read_junit(junit) if junit.exists() else {}
    problem = ""
    if not outcomes:
        problem = (
            f"the VM returned no pytest report (exit {run.returncode});\n"
            f"inner log:\n{run.log[-4000:]}\nconsole:\n{run.console}"
        )
    return SuiteRun(kernel, run, outcomes, problem)


def refusal_script(share: Path) -> str:
    """For a kernel older than the recorder supports: record and doctor, outputs kept apart."""
    py = shlex.quote(sys.executable)
    lines = [f"cd {shlex.quote(str(ROOT))}", "export HOME=/root LANG=C.UTF-8"]
    for name, command in (
        ("record", f"{py} -m sockopt_trace record -q -o /tmp/rec --duration 1s"),
        ("doctor", f"{py} -m sockopt_trace doctor"),
    ):
        out = shlex.quote(str(share / name))
        lines.append(f"{command} > {out}.out 2> {out}.err; echo $? > {out}.rc")
    return "\n".join(lines) + "\n"
