"""Make this host able to compile and attach our BPF program, or say exactly why it cannot.

bcc comes from the distro (python3-bpfcc is not on PyPI), kernel headers may exist only for an
older kernel (Debian's linux-headers-amd64), and tracefs may be unmounted: each is found or fixed
here, once, before bcc is imported.
"""

from __future__ import annotations

import ctypes
import glob
import importlib
import os
import platform
import re
import sys
from pathlib import Path
from types import ModuleType

from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.recorder.libc import libc

ENV_ERROR = ExitCode.ENVIRONMENT
# Where distros put bcc's Python module; SOCKOPT_TRACE_BCC_DIRS (colon-separated) overrides.
BCC_DIST_DIRS = ("/usr/lib/python3/dist-packages", "/usr/lib/python3/site-packages")
TRACEFS = Path("/sys/kernel/tracing")
HEADER_CACHE = Path(os.environ.get("SOCKOPT_TRACE_CACHE", "/var/cache/sockopt-trace"))

_bcc: ModuleType | None = None


def require_root() -> None:
    if os.geteuid() != 0:
        raise UserError(
            "recording needs root (CAP_BPF and CAP_PERFMON): run it with sudo", ENV_ERROR
        )


def import_bcc() -> ModuleType:
    """Import the distro's bcc even from a virtual environment, without shadowing our packages.

    The distro directory is put on sys.path only while `bcc` itself is imported: its submodules
    then load through the package's own path, and nothing else of the distro's leaks in.
    """
    global _bcc
    if _bcc is not None:
        return _bcc
    mount_tracefs()  # bcc picks its tracefs path at import time
    override = os.environ.get("SOCKOPT_TRACE_BCC_DIRS")
    if override is None:
        try:
            _bcc = importlib.import_module("bcc")
            return _bcc
        except ImportError:
            pass
    dirs = override.split(":") if override is not None else BCC_DIST_DIRS
    candidates = [d for d in dirs if Path(d, "bcc", "__init__.py").exists()]
    for directory in candidates:
        sys.path.insert(0, directory)
        try:
            _bcc = importlib.import_module("bcc")
            return _bcc
        except Exception as err:  # libbcc missing or broken: report below
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(
                f"bcc found in {directory} but failed to load ({reason}): "
                "reinstall it with apt-get install --reinstall python3-bpfcc libbpfcc",
                ENV_ERROR,
            ) from None
        finally:
            sys.path.remove(directory)
    raise UserError(
        "bcc (BPF Compiler Collection) is not installed: apt-get install python3-bpfcc", ENV_ERROR
    )


def _is_dir(path: Path) -> bool:
    """is_dir that answers False where a non-root user may not look (tracefs is 0700)."""
    try:
        return path.is_dir()
    except PermissionError:
        return False


def tracefs_dir() -> Path:
    debugfs = Path("/sys/kernel/debug/tracing")
    return debugfs if _is_dir(debugfs / "events") else TRACEFS


def mount_tracefs() -> str | None:
    """Mount tracefs at /sys/kernel/tracing if it is not there; return a problem or None."""
    if os.geteuid() != 0:
        return "tracefs needs root: run as root (sudo sockopt-trace ...)"
    if _is_dir(TRACEFS / "events") or _is_dir(Path("/sys/kernel/debug/tracing/events")):
        return None
    if libc().mount(b"nodev", str(TRACEFS).encode(), b"tracefs", 0, None) != 0:
        err = os.strerror(ctypes.get_errno())
        return f"cannot mount tracefs ({err}): mount -t tracefs nodev /sys/kernel/tracing"
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", Path(path).name))


def find_kernel_headers() -> tuple[str | None, str]:
    """Return (BCC_KERNEL_SOURCE to use or None for the running kernel's, description).

    Order: the running kernel's build tree; bcc's own in-kernel /sys/kernel/kheaders.tar.xz;
    else the newest installed Debian linux-headers pair (common + arch), merged into one tree of
    symlinks, since bcc takes a single source directory.
    """
    if os.environ.get("BCC_KERNEL_SOURCE"):
        source = os.environ["BCC_KERNEL_SOURCE"]
        if not Path(source, "include").is_dir():
            raise UserError(
                f"BCC_KERNEL_SOURCE={source} holds no kernel headers (no include/): unset it, "
                "or point it at a linux-headers tree",
                ENV_ERROR,
            )
        return source, "BCC_KERNEL_SOURCE from the environment"
    release = platform.release()
    build = Path("/lib/modules", release, "build")
    if (build / "include").is_dir():
        return None, f"running kernel's headers ({build})"
    if Path("/sys/kernel/kheaders.tar.xz").exists():
        return None, "in-kernel headers (/sys/kernel/kheaders.tar.xz)"
    arch_dirs = sorted(
        (d for d in glob.glob("/usr/src/linux-headers-*") if not d.endswith("-common")),
        key=_version_key,
    )
    for arch in reversed(arch_dirs):
        common = _common_for(arch)
        if common and Path(arch, "include").is_dir():
            return str(_merged_tree(Path(common), Path(arch))), (
                f"{Path(arch).name} (no headers for running kernel {release}; merged with "
                f"{Path(common).name})"
            )
    raise UserError(
        f"no kernel headers for {release}: apt-get install linux-headers-amd64 "
        f"(or linux-headers-{release})",
        ENV_ERROR,
    )


def _common_for(arch: str) -> str | None:
    """Debian splits headers into linux-headers-V-common and linux-headers-V-ARCH."""
    match = re.match(r"(.*linux-headers-\d+\.\d+\.\d+-\d+)-", arch)
    if not match:
        return None
    common = match.group(1) + "-common"
    return common if Path(common).is_dir() else None


def _merged_tree(common: Path, arch: Path) -> Path:
    """One directory of symlinks holding common and arch (arch wins), built once and reused."""
    base = HEADER_CACHE if os.access(HEADER_CACHE.parent, os.W_OK) else Path("/tmp/sockopt-trace")
    target = base / f"kernel-src-{arch.name}"
    done = target / ".complete"
    if done.exists():
        return target
    for source in (common, arch):
        for root, dirs, files in os.walk(source):
            rel = Path(root).relative_to(source)
            (target / rel).mkdir(parents=True, exist_ok=True)
            for name in files + [d for d in dirs if Path(root, d).is_symlink()]:
                link = target / rel / name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(Path(root, name).resolve())
            dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    done.write_text("merged by sockopt-trace\n")
    return target


def prepare() -> ModuleType:
    """Everything recording needs, in order; returns the bcc module."""
    require_root()
    problem = mount_tracefs()
    if problem:
        raise UserError(problem, ENV_ERROR)
    source, _ = find_kernel_headers()
    if source:
        os.environ["BCC_KERNEL_SOURCE"] = source
    return import_bcc()
