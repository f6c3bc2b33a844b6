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

import numpy as np

from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.recorder import bpfsys, environment
from sockopt_trace.recorder.events import counter_names, record_dtype
from sockopt_trace.recorder.loader import Handles, load_in_child

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

    def cflags(self, mode: str, attach_fn: str = ATTACH_POINTS[0]) -> list[str]:
        records = self.ringbuf_size // record_dtype().itemsize
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
        return flags

    @property
    def ringbuf_size(self) -> int:
        """--ringbuf rounded down to a power-of-two number of pages, as the kernel requires."""
        pages = max(1, self.ringbuf_bytes // PAGE)
        return (1 << (pages.bit_length() - 1)) * PAGE


class AttachError(Exception):
    """One mode failed to load or attach; the message is one line saying why."""


class Probe:
    """An attached program, as the recording process holds it: file descriptors only.

    The loader child (loader.py) compiled, loaded and attached it and passed us the descriptors
    of its maps and attachments; closing an attachment detaches, closing everything unloads.
    """

    def __init__(self, handles: Handles, config: ProbeConfig) -> None:
        self.handles = handles
        self.mode = handles.mode
        self.skipped = handles.skipped
        self.config = config
        self._names = counter_names()

    @property
    def ringbuf_fd(self) -> int:
        return self.handles.maps["events"]

    def counters(self) -> dict[str, int]:
        """Kernel counters summed over CPUs, by name (see enum counter in getsockopt.h)."""
        size = self.handles.value_sizes["state"]
        stride = (size + 7) // 8 * 8
        raw = bpfsys.lookup(self.handles.maps["state"], bytes(4), stride * bpfsys.possible_cpus())
        per_cpu = np.frombuffer(raw or b"", dtype="<u8").reshape(-1, stride // 8)
        total = (
            per_cpu[:, : len(self._names)].sum(axis=0) if len(per_cpu) else [0] * len(self._names)
        )
        return dict(zip(self._names, (int(v) for v in total), strict=True))

    def stack(self, stack_id: int) -> list[int]:
        """Addresses of a user stack, innermost first; empty if it is gone."""
        fd = self.handles.maps.get("stacks")
        if stack_id < 0 or fd is None:
            return []
        raw = bpfsys.lookup(fd, stack_id.to_bytes(4, "little"), self.handles.value_sizes["stacks"])
        if raw is None:
            return []
        addrs = np.frombuffer(raw, dtype="<u8")
        end = np.flatnonzero(addrs == 0)
        return [int(a) for a in addrs[: end[0] if len(end) else len(addrs)]]

    def detach_entry(self) -> None:
        """Stop seeing new calls; calls already inside getsockopt still complete (detach_exit)."""
        self.handles.close_group("entry")

    def detach_exit(self) -> None:
        self.handles.close_group("exit")

    def close(self) -> None:
        self.handles.close_all()


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
            3,
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
        _fill_filters(bpf, config)
        if mode == "kprobe" and not bpf.num_open_kprobes():
            raise AttachError(f"no kprobe attached on {where}")
        if mode == "tracepoint" and not bpf.num_open_tracepoints():
            raise AttachError("syscall tracepoints did not attach")
    except AttachError:
        bpf.cleanup()
        raise
    return bpf


def _fill_filters(bpf: Any, config: ProbeConfig) -> None:
    if config.pids:
        table = bpf["pid_filter"]
        for pid in config.pids:
            table[table.Key(pid)] = table.Leaf(1)
    if config.comms:
        table = bpf["comm_filter"]
        for comm in config.comms:
            key = table.Key()
            key.name = comm.encode()[: COMM_LEN - 1]
            table[key] = table.Leaf(1)


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


def attach(config: ProbeConfig) -> Probe:
    """Load and attach; with mode auto, the best mode that works. Raises UserError if none.

    Compiling happens in a child process (loader.py), so that bcc's LLVM never inflates the
    memory of the recording process."""
    validate(config)
    environment.require_root()
    return Probe(load_in_child(config), config)


def try_modes(bcc: Any, config: ProbeConfig) -> tuple[Any, str, dict[str, str]]:
    """(bcc.BPF, mode, why other modes were skipped) for the first mode that attaches."""
    require_features(config.callsites)
    modes = MODES if config.mode == "auto" else (config.mode,)
    skipped: dict[str, str] = {}
    for mode in modes:
        try:
            return load_mode(bcc, mode, config), mode, skipped
        except AttachError as err:
            skipped[mode] = str(err)
    if config.mode == "auto":
        why = "; ".join(f"{m}: {r}" for m, r in skipped.items())
        raise UserError(
            f"no probe mode attaches on kernel {platform.release()} ({why})", ExitCode.ENVIRONMENT
        )
    raise UserError(
        f"probe mode {config.mode} does not work here: {skipped[config.mode]}", ExitCode.ENVIRONMENT
    )
