"""Every way `record` can be refused: one line on stderr naming the problem and the fix, a
non-zero exit, no traceback, and nothing left behind that looks like a complete file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel import support
from tests.kernel.support import cli

pytestmark = pytest.mark.kernel


def assert_one_line_error(result, code: int, *words: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("sockopt-trace: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_not_root(tmp_path: Path) -> None:
    # The interpreter lives under /root here, so an unprivileged user cannot even start it:
    # the recorder is made to see a non-root effective uid instead.
    out = tmp_path / "rec"
    code = "import os, sys; os.geteuid = lambda: 65534; from sockopt_trace.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "record", "-o", str(out), "--duration", "1s"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(result, 3, "root", "sudo")
    assert not out.exists() or not any(out.iterdir())


def test_unknown_pid(tmp_path: Path) -> None:
    result = cli("record", "-o", str(tmp_path / "r"), "--pid", "999999999")
    assert_one_line_error(result, 2, "no such process", "999999999")


@pytest.mark.parametrize("value", ["abc", "0s", "-5s", "10 parsecs"])
def test_bad_duration(tmp_path: Path, value: str) -> None:
    result = cli("record", "-o", str(tmp_path / "r"), "--duration", value)
    assert_one_line_error(result, 2, "--duration")


def test_bad_comm(tmp_path: Path) -> None:
    result = cli("record", "-o", str(tmp_path / "r"), "--comm", "a-name-longer-than-15")
    assert_one_line_error(result, 2, "--comm")


def test_output_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = cli("record", "-o", str(target), "--duration", "1s")
    assert_one_line_error(result, 4, "not a directory")


@pytest.mark.parametrize("where", ["/proc/sockopt-trace-test", "/proc"])
def test_output_not_writable(where: str) -> None:
    """/proc itself passes every permission check as root, and no file can be made in it."""
    result = cli("record", "-o", where, "--duration", "1s", timeout=60)
    assert_one_line_error(result, 4, where)


def test_output_already_holds_a_recording(tmp_path: Path) -> None:
    out = tmp_path / "rec"
    out.mkdir()
    (out / "old.parquet").write_bytes(b"x")
    result = cli("record", "-o", str(out), "--duration", "1s")
    assert_one_line_error(result, 4, "already holds a recording", "--force")
    assert (out / "old.parquet").read_bytes() == b"x"


def test_output_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    result = cli("record", "-o", str(link), "--duration", "1s")
    assert_one_line_error(result, 4, "symbolic link")


def test_kprobe_mode_attaches_or_says_why(tmp_path: Path) -> None:
    result = cli("record", "-o", str(tmp_path / "r"), "--probe", "kprobe", "--duration", "1s")
    if Path("/sys/kernel/tracing/kprobe_events").exists():  # a kernel with kprobes: it works
        assert result.returncode == 0, result.stderr
    else:  # this project's machines (docs/design.md): refused with the reason
        assert_one_line_error(result, 3, "kprobe", "CONFIG_KPROBE")


def test_unknown_probe_mode(tmp_path: Path) -> None:
    result = cli("record", "-o", str(tmp_path / "r"), "--probe", "uprobe")
    assert_one_line_error(result, 2, "uprobe", "tracepoint")


# Without the program cache: a cached program loads without bcc or headers (programcache.py).
NO_CACHE = {"SOCKOPT_TRACE_PROGRAM_CACHE": "0"}


def test_missing_bcc(tmp_path: Path) -> None:
    env = {**os.environ, **NO_CACHE, "SOCKOPT_TRACE_BCC_DIRS": str(tmp_path)}
    result = cli("record", "-o", str(tmp_path / "r"), "--duration", "1s", env=env)
    assert_one_line_error(result, 3, "python3-bpfcc")


def test_bad_kernel_headers(tmp_path: Path) -> None:
    env = {**os.environ, **NO_CACHE, "BCC_KERNEL_SOURCE": str(tmp_path / "nowhere")}
    result = cli("record", "-o", str(tmp_path / "r"), "--duration", "1s", env=env)
    assert_one_line_error(result, 3, "BCC_KERNEL_SOURCE")


def test_command_that_does_not_exist(tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = cli("record", "-o", str(out), "--", "/nonexistent/program")
    assert_one_line_error(result, 127, "/nonexistent/program", "No such file")
    assert not out.exists(), "refused before anything was created (or compiled)"


@pytest.mark.all_probes
def test_doctor_reports_every_check_and_the_working_mode() -> None:
    """Where SOCKOPT_TRACE_TEST_PROBE declares modes (the VM tier: all three), each of them must
    attach, at a named kernel function, and auto must pick the best (fentry)."""
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    names = ("privileges", "BTF", "tracefs", "kernel headers", "bcc", "mapping records")
    for name in (*names, "probe tracepoint"):
        assert any(
            line.split()[1:2] == name.split()[:1]
            for line in result.stdout.splitlines()
            if line.startswith(("ok", "FAIL"))
        ), name
    assert "recording: works" in result.stdout
    for line in result.stdout.splitlines():
        if line.startswith("FAIL"):  # every failure comes with its fix on the next line
            following = result.stdout.splitlines()[result.stdout.splitlines().index(line) + 1]
            assert "fix:" in following
    lines = {ln.split()[2]: ln for ln in result.stdout.splitlines() if ln[6:].startswith("probe ")}
    for mode in support.probe_modes():
        assert lines[mode].startswith("ok"), lines[mode]
        assert re.search(
            r"attaches at (__sys_getsockopt|__x64_sys_getsockopt|syscalls:)", lines[mode]
        )
    if set(support.probe_modes()) == set(support.MODES):
        assert "recording: works, with probe fentry (auto)" in result.stdout


def test_doctor_as_an_ordinary_user_says_what_needs_root() -> None:
    """tracefs is 0700: a user who may not look gets failed checks with their fixes, not an
    internal error. Run in a forked child that drops to nobody (the modules are imported first,
    so the checkout's permissions do not matter)."""
    from sockopt_trace.recorder.doctor import can_record, run_checks

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            checks = run_checks()
            lines = [f"{'ok' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks]
            lines += [f"can record: {can_record(checks)}"]
            os.write(write, "\n".join(lines).encode())
        except BaseException as err:  # reported to the parent
            os.write(write, f"raised {type(err).__name__}: {err}".encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    assert os.waitpid(pid, 0)[1] == 0, out
    assert "FAIL privileges: uid 65534" in out and "FAIL tracefs" in out, out
    assert "can record: False" in out, out
