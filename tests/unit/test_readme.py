"""Every command README.md shows runs, as shown, on the shipped sample recordings.

Commands are taken from the ```sh blocks of README.md. Recording commands (sudo ... record,
doctor) need root and the kernel: tests/kernel/test_readme_record.py runs those. The test
command itself (scripts/test.sh) is what CI runs, so it is not run again from inside it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDS_ROOT = ("sudo ", "sockopt-trace doctor")
NOT_HERE = ("bash scripts/test.sh", "s3://")  # s3: tests/unit/test_storage.py, with a server


def readme_commands() -> list[str]:
    """The command lines of README's ```sh blocks, comments stripped, in order."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def analysis_commands() -> list[str]:
    return [
        c
        for c in readme_commands()
        if not c.startswith(NEEDS_ROOT) and not any(n in c for n in NOT_HERE)
    ]


def test_readme_shows_the_commands_we_test() -> None:
    commands = readme_commands()
    assert any(c.startswith("bash scripts/setup.sh && ") for c in commands)
    assert "bash scripts/test.sh" in commands  # no sudo: a root shell in a container has none
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("bash scripts/test.sh")
    for name in ("info", "report", "query", "queries", "diff", "html", "export"):
        assert any(f"sockopt-trace {name}" in c for c in analysis_commands()), name


def run_as_shown(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`sockopt-trace` is this checkout's CLI (README says `.venv/bin/sockopt-trace`)."""
    argv = shlex.split(command)
    if argv[0] == "sockopt-trace":
        argv = [sys.executable, "-m", "sockopt_trace", *argv[1:]]
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the samples, so that commands writing files (html, export) write there."""
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "sample_traces", work / "sample_traces")
    return work


@pytest.mark.parametrize("command", analysis_commands())
def test_readme_command_runs(command: str, workdir: Path) -> None:
    cwd = ROOT if command.startswith("bash scripts/setup.sh") else workdir
    result = run_as_shown(command, cwd)
    expected = 1 if "--fail-on" in command else 0  # README: exits 1 on a significant regression
    assert result.returncode == expected, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    if "--fail-on" not in command and " -o " not in command:
        assert result.stdout.strip(), command
    if " -o " in command:
        out = workdir / shlex.split(command)[shlex.split(command).index("-o") + 1]
        assert out.stat().st_size > 0


def test_readme_exit_codes_are_the_enum() -> None:
    """README's exit-code table is ExitCode, as `--help` prints it: documented once."""
    from sockopt_trace.errors import ExitCode

    text = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| (\d+) \| (.+) \|$", text, re.M)
    assert [(int(c), m) for c, m in table] == ExitCode.describe()
