"""Can this host record? Every prerequisite checked, each failure with the exact fix.

The checks run in the order recording needs them; probe modes are really loaded and attached
(and detached at once), so "works" means works, not "should work".
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sockopt_trace.errors import UserError
from sockopt_trace.recorder import environment, sockets
from sockopt_trace.recorder.attached import kernel_reports_skipped_runs
from sockopt_trace.recorder.perfmaps import open_tracker
from sockopt_trace.recorder.probe import (
    MODES,
    OLDEST_KERNEL,
    AttachError,
    ProbeConfig,
    attach_point,
    load_mode,
    missing_features,
)

TRACEPOINTS = "syscalls:sys_enter_getsockopt/sys_exit_getsockopt"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def run_checks() -> list[Check]:
    """Every check, in the order a user fixes them: the kernel and host, then the tools that
    build the program, then each probe mode loaded for real (root only)."""
    missing = missing_features()
    root = os.geteuid() == 0
    checks = [_kernel(missing), _privileges(root), *_host(root)]
    bcc = _toolchain(checks)
    if bcc is None or not root:
        return checks
    checks.append(_mapping_records())
    if missing or not all(c.ok for c in checks if c.name in ("kernel headers", "tracefs")):
        return checks
    checks += [_probe(bcc, mode) for mode in MODES]
    checks.append(_skipped_runs(checks))
    return checks


def _kernel(missing: list[str]) -> Check:
    lacks = f" lacks {'; '.join(missing)}" if missing else ""
    need = f"Linux {OLDEST_KERNEL} or later" if missing else ""
    return Check("kernel", not missing, platform.release() + lacks, need)


def _privileges(root: bool) -> Check:
    fix = "" if root else "run as root: sudo sockopt-trace record ..."
    return Check("privileges", root, "root" if root else f"uid {os.geteuid()}", fix)


def _host(root: bool) -> list[Check]:
    """Lockdown, BTF, the JIT and tracefs (mounted here if it is not)."""
    checks = []
    lockdown = _read("/sys/kernel/security/lockdown")
    if lockdown:
        mode = lockdown.split("[")[-1].split("]")[0] if "[" in lockdown else lockdown
        ok = mode != "confidentiality"
        fix = "" if ok else "lockdown=confidentiality forbids reading kernel memory"
        checks.append(Check("lockdown", ok, mode, fix))
    _, why = sockets.cflags()  # the socket's offsets come from BTF (recorder/sockets.py)
    fix = "" if not why else "a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    detail = why + ": socket family, addresses, ports and state are not recorded"
    checks.append(Check("BTF", not why, "/sys/kernel/btf/vmlinux" if not why else detail, fix))
    jit = _read("/proc/sys/net/core/bpf_jit_enable")
    fix = "" if jit != "0" else "sysctl net.core.bpf_jit_enable=1"
    checks.append(Check("BPF JIT", jit != "0", f"bpf_jit_enable={jit or '?'}", fix))
    problem = environment.mount_tracefs()
    where = (
        "not looked at (root only)"
        if not root
        else str(environment.tracefs_dir())
        if problem is None
        else "not mounted"
    )
    checks.append(Check("tracefs", problem is None, where, problem or ""))
    return checks


def _toolchain(checks: list[Check]) -> Any:
    """Kernel headers (BCC_KERNEL_SOURCE set for the loads below) and bcc; bcc or None."""
    try:
        source, how = environment.find_kernel_headers()
        if source:
            os.environ["BCC_KERNEL_SOURCE"] = source
        checks.append(Check("kernel headers", True, how))
    except UserError as err:
        checks.append(Check("kernel headers", False, "none usable", str(err)))
    try:
        bcc = environment.import_bcc()
    except UserError as err:
        checks.append(Check("bcc", False, "not importable", str(err)))
        return None
    checks.append(Check("bcc", True, str(Path(bcc.__file__ or "?").parent)))
    return bcc


def _probe(bcc: Any, mode: str) -> Check:
    """The program compiled, loaded and attached in one mode, then removed."""
    try:
        bpf = load_mode(bcc, mode, ProbeConfig(mode=mode, ringbuf_bytes=1 << 16))
        bpf.cleanup()
    except AttachError as err:
        return Check(f"probe {mode}", False, str(err), _mode_fix(mode))
    return Check(
        f"probe {mode}", True, f"loads and attaches at {attach_point(mode) or TRACEPOINTS}"
    )


def _mapping_records() -> Check:
    """The kernel's perf mapping records, which name call sites of processes that exit."""
    tracker, why = open_tracker()
    if tracker is None:
        fix = (
            "optional: without them, call sites of processes that exit within milliseconds may "
            "be [unknown]; allow perf_event_open (a seccomp or security policy refuses it)"
        )
        return Check("mapping records", False, why or "unavailable", fix)
    ids = "with build-ids" if tracker.kernel_build_ids else "without build-ids (kernel < 5.12)"
    tracker.close()
    return Check("mapping records", True, f"perf side-band on every CPU, {ids}")


def _skipped_runs(checks: list[Check]) -> Check:
    """Whether this kernel reports runs of our programs it skipped (the kernel_skipped loss
    reason); if not, a recording's counts are a lower bound (docs/reliability.md)."""
    modes = [c.name.split()[1] for c in checks if c.name.startswith("probe ") and c.ok]
    mode = modes[0] if modes else "tracepoint"
    if kernel_reports_skipped_runs(mode):
        return Check("skipped runs", True, "counted (bpf_prog_info.recursion_misses)")
    return Check(
        "skipped runs",
        False,
        f"not reported by Linux {platform.release()} for {mode} programs: "
        "calls the kernel skipped would be missing uncounted (counts are a lower bound)",
        "optional: Linux 6.7+ (5.12+ for fentry) counts them",
    )


def _mode_fix(mode: str) -> str:
    return {
        "fentry": "optional: auto falls back to kprobe or tracepoint",
        "kprobe": "optional: a kernel with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS",
        "tracepoint": "a kernel with CONFIG_FTRACE_SYSCALLS (syscall tracepoints)",
    }[mode]


def can_record(checks: list[Check]) -> bool:
    return any(c.ok for c in checks if c.name.startswith("probe "))
