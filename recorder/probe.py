"""Compile getsockopt.bpf.c with bcc, attach it in the best mode this kernel allows.

Modes, best first: fentry/fexit (cheapest, no tax on other syscalls), kprobe/kretprobe on
`__sys_getsockopt` (no tax on other syscalls), the syscall tracepoints (work everywhere, but make
every syscall on the host take the slow path while attached). `auto` tries them in that order and
keeps the first that loads and attaches, remembering why the others failed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.recorder import cgroups, environment, sockets
from sockopt_trace.recorder.events import record_dtype

SOURCE = Path(__file__).with_name("getsockopt.bpf.c")
MODES = ("fentry", "kprobe", "tracepoint")
# Where kprobe and fentry attach, best first: __sys_getsockopt takes the syscall's arguments
# (Linux 4.19 to at least 6.12, callers: the syscall and its compat twin); where it is inlined or
# renamed, the x86-64 syscall entry itself, whose argument is the caller's saved registers.
# (do_sock_getsockopt, 6.8+, takes a socket and sockptr_t instead of fd and user pointers.)
ATTACH_POINTS = ("__sys_getsockopt", "__x64_sys_getsockopt")
# What every mode needs of the kernel, by helper symbol: the oldest kernel we support is 5.15.
FEATURES = {
    "bpf_ringbuf_reserve": "the BPF ring buffer (Linux 5.8)",
    "bpf_task_storage_get": "BPF task storage (Linux 5.11)",
    "bpf_get_current_task_btf": "bpf_get_current_task_btf (Linux 5.11)",
}
CALLSITE_FEATURES = {"bpf_task_pt_regs": "bpf_task_pt_regs, for call sites (Linux 5.15)"}
OLDEST_KERNEL = "5.15"
COMM_LEN = 16
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class ProbeConfig:
    """What the kernel side is compiled for; each field becomes a -D macro."""

    mode: str = "auto"
    pids: list[int] = field(default_factory=list)
    comms: list[str] = field(default_factory=list)
    follow_forks: bool = False  # children of traced pids are traced (used for `-- COMMAND`)
    callsites: bool = True
    stacks: bool = False
    stack_sample_period: int = 1
    ringbuf_bytes: int = 32 << 20
    stack_entries: int = 16384
    max_rate: int = 0  # calls recorded per second, host-wide, by sampling; 0: every call
    seen_sites: int = 65536  # (process, call site) pairs remembered for "first call" (LRU)
    # cgroup, socket, value returned (issue 16): CONTEXT, SOCKET_FIELDS. Off by default: it
    # costs more than the budget (docs/benchmarks.md, "Context columns")
    context: bool = False
    cgroup: str = ""  # --cgroup: trace only tasks in this cgroup v2 directory or below it

    def cflags(self, mode: str, attach_fn: str = ATTACH_POINTS[0]) -> list[str]:
        records = self.ringbuf_size // record_dtype(self.context).itemsize
        flags = [
            f"-DMODE_{mode.upper()}",
            f"-DATTACH_FN={attach_fn}",
            f"-DRINGBUF_PAGES={self.ringbuf_size // PAGE}",
            f"-DSTACK_ENTRIES={self.stack_entries}",
            f"-DSTACK_SAMPLE_PERIOD={max(1, self.stack_sample_period)}",
            # wake the reader when a CPU has filled about 1/8 of the ring since the last wakeup
            f"-DWAKEUP_EVERY={max(1, records // (8 * (os.cpu_count() or 1)))}",
            f"-I{SOURCE.parent}",
        ]
        if self.pids or self.follow_forks:
            flags.append("-DFILTER_PID")
        if self.comms:
            flags.append("-DFILTER_COMM")
        if self.follow_forks:
            flags.append("-DFOLLOW_FORKS")
        if self.callsites:
            flags.append("-DCAPTURE_CALLSITE")
        if self.stacks:
            flags.append("-DCAPTURE_STACKS")
        if attach_fn != ATTACH_POINTS[0]:
            flags.append("-DATTACH_SYSCALL_WRAPPER")
        if self.max_rate:
            flags += ["-DSAMPLING", f"-DSEEN_SITES={self.seen_sites}"]
        if self.context:  # the socket's offsets are the running kernel's: part of the cache key
            flags += ["-DCONTEXT", *sockets.cflags()[0]]
        if self.cgroup:
            flags.append("-DFILTER_CGROUP")
        return flags

    @property
    def ringbuf_size(self) -> int:
        """--ringbuf rounded down to a power-of-two number of pages, as the kernel requires."""
        pages = max(1, self.ringbuf_bytes // PAGE)
        return (1 << (pages.bit_length() - 1)) * PAGE


class AttachError(Exception):
    """One mode failed to load or attach; the message is one line saying why."""


def kernel_symbols(names: set[str] | frozenset[str]) -> set[str]:
    """Which of `names` the running kernel has (vmlinux symbols in /proc/kallsyms)."""
    try:
        text = Path("/proc/kallsyms").read_bytes()
    except OSError:
        return set()
    return {n for n in names if f" {n}\n".encode() in text}


def missing_features(callsites: bool = True) -> list[str]:
    """What this kernel lacks that every probe mode needs: empty on 5.15 and later."""
    wanted = {**FEATURES, **(CALLSITE_FEATURES if callsites else {})}
    have = kernel_symbols(set(wanted))
    if not have and not Path("/proc/kallsyms").exists():
        return []  # cannot tell: let loading say what is wrong
    return [why for name, why in wanted.items() if name not in have]


def require_features(callsites: bool = True) -> None:
    """Refuse, in one line, a kernel older than the recorder supports."""
    missing = missing_features(callsites)
    if missing:
        raise UserError(
            f"kernel {platform.release()} is too old: sockopt-trace needs Linux "
            f"{OLDEST_KERNEL} or later (missing {'; '.join(missing)})",
            ExitCode.ENVIRONMENT,
        )


def attach_point(mode: str) -> str:
    """The kernel function kprobe/fentry attach to here ("" for tracepoint mode)."""
    if mode == "tracepoint":
        return ""
    found = kernel_symbols(set(ATTACH_POINTS))
    if mode == "fentry":  # a trampoline needs the function in ftrace's list
        listed = Path(environment.tracefs_dir(), "available_filter_functions")
        with contextlib.suppress(OSError):
            text = listed.read_bytes()
            found = {fn for fn in found if f"\n{fn}\n".encode() in b"\n" + text}
    for fn in ATTACH_POINTS:
        if fn in found:
            return fn
    raise AttachError(f"none of {', '.join(ATTACH_POINTS)} can be traced on this kernel")


def load_mode(bcc: Any, mode: str, config: ProbeConfig) -> Any:
    if mode == "kprobe" and not Path(environment.tracefs_dir(), "kprobe_events").exists():
        raise AttachError("this kernel is built without kprobes (CONFIG_KPROBE_EVENTS is not set)")
    if mode == "fentry":
        if not Path("/sys/kernel/btf/vmlinux").exists():
            raise AttachError("fentry needs kernel BTF (/sys/kernel/btf/vmlinux is missing)")
        if not bcc.BPF.support_kfunc():
            raise AttachError("this kernel or bcc does not support fentry (kfunc) programs")
    where = attach_point(mode)
    with captured_stderr() as noise:  # libbcc and clang print diagnostics on fd 2
        try:
            cflags = config.cflags(mode, where or ATTACH_POINTS[0])
            bpf = bcc.BPF(src_file=str(SOURCE).encode(), cflags=cflags)
        except Exception as err:
            raise AttachError(_one_line(err, noise())) from None
    try:
        if mode == "kprobe" and not bpf.num_open_kprobes():
            raise AttachError(f"no kprobe attached on {where}")
        if mode == "tracepoint" and not bpf.num_open_tracepoints():
            raise AttachError("syscall tracepoints did not attach")
    except AttachError:
        bpf.cleanup()
        raise
    return bpf


@contextlib.contextmanager
def captured_stderr() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 (C libraries write there) and hand back what was written."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)

        def text() -> str:
            tmp.seek(0)
            return tmp.read().decode(errors="replace")

        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _one_line(err: BaseException, noise: str = "") -> str:
    """A one-line reason from bcc's exception and what libbcc/clang printed."""
    text = " ".join(str(err).split())
    errors = [ln.strip() for ln in noise.splitlines() if "error:" in ln]
    if errors:
        return f"{text}: {errors[0][:200]}"
    if "Operation not permitted" in noise or "super-user" in text or "Permission denied" in text:
        return "the kernel refused to load the program (EPERM: a security module or lockdown)"
    detail = next((ln.strip() for ln in noise.splitlines() if ln.strip()), "")
    return (f"{text}: {detail[:200]}" if detail else text[:240]) or type(err).__name__


def validate(config: ProbeConfig) -> None:
    """Reject bad filters before compiling anything."""
    if config.mode not in ("auto", *MODES):
        raise UserError(f"unknown probe mode {config.mode!r}: use auto, {', '.join(MODES)}")
    for pid in config.pids:
        if pid <= 0 or not Path(f"/proc/{pid}").exists():
            raise UserError(f"no such process: --pid {pid}")
    for comm in config.comms:
        if not comm or len(comm.encode()) > COMM_LEN - 1:
            raise UserError(
                f"bad --comm {comm!r}: the kernel keeps 1 to {COMM_LEN - 1} bytes of a name"
            )
    if config.stack_sample_period < 1:
        raise UserError("--stack-sample must be 1 or more")
    if config.ringbuf_bytes < PAGE:
        raise UserError(f"--ringbuf must be at least {PAGE} bytes")
    if config.cgroup:
        cgroups.filter_directory(config.cgroup)
    if config.max_rate < 0:
        raise UserError("--max-rate must be a positive number of calls per second")
