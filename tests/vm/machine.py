"""Boot a distribution kernel under qemu with this host's files and run one script inside.

The guest sees the host's / read-only (9p) under a tmpfs overlay, so the project's checkout, its
virtualenv and the distro's bcc are there unchanged; a second, writable 9p share is where the
script, its log and its exit code travel. The initramfs is busybox plus the few modules the
kernel needs for that (virtio, 9p, overlay), built once per kernel and cached beside it.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vm.kernels import Kernel

HERE = Path(__file__).resolve().parent
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
NEEDED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
MEMORY_MB = int(os.environ.get("SOCKOPT_TRACE_VM_MEMORY_MB", "3072"))
CPUS = int(os.environ.get("SOCKOPT_TRACE_VM_CPUS", str(min(2, os.cpu_count() or 1))))
HOSTNAME = "sockopt-vm"


class MachineError(Exception):
    pass


def missing_tools() -> str | None:
    """What this host lacks to run the VM tier, as the fix to apply; None if nothing."""
    wanted = {QEMU: "qemu-system-x86", "cpio": "cpio", str(BUSYBOX): "busybox-static"}
    lacking = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if lacking:
        return f"apt-get install {' '.join(lacking)} (or scripts/setup.sh --system)"
    if not _is_static(BUSYBOX):
        return "the busybox on PATH is dynamically linked: apt-get install busybox-static"
    return None


def _is_static(path: Path) -> bool:
    return b"ld-linux" not in path.read_bytes()[:65536]


def accelerator() -> tuple[list[str], str]:
    """qemu's -accel/-cpu arguments, and one line saying which and why.

    KVM where it can run an unmodified distribution kernel; this project's machines offer a
    software nested KVM (kvm_pvm) that cannot (docs/design.md), so they fall back to emulation."""
    forced = os.environ.get("SOCKOPT_TRACE_VM_ACCEL")
    tcg = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    kvm = ["-accel", "kvm", "-cpu", "host"]
    if forced in ("tcg", "kvm"):
        return (tcg if forced == "tcg" else kvm), f"{forced} (SOCKOPT_TRACE_VM_ACCEL)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return tcg, "no usable /dev/kvm: falling back to emulation (TCG), slow"
    if Path("/sys/module/kvm_pvm").exists():
        return (
            tcg,
            "/dev/kvm is a nested software KVM (kvm_pvm) that cannot run distribution "
            "kernels: falling back to emulation (TCG), slow",
        )
    return kvm, "KVM"


def _module_paths(kernel: Kernel) -> dict[str, Path]:
    paths = {}
    for path in (kernel.modules / "kernel").rglob("*.ko*"):
        paths[path.name.split(".ko")[0].replace("-", "_")] = path
    return paths


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def _load_order(kernel: Kernel) -> list[tuple[str, bytes]]:
    """Needed modules and their dependencies (from each module's own modinfo), deps first."""
    paths = _module_paths(kernel)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name not in paths:  # not a module: built in
            return
        seen.add(name)
        data = _module_bytes(paths[name])
        m = re.search(rb"depends=([^\0]*)\0", data)
        for dep in m[1].decode().split(",") if m and m[1] else []:
            visit(dep)
        order.append((name, data))

    for name in NEEDED_MODULES:
        visit(name)
    return order


def initramfs(kernel: Kernel) -> Path:
    """busybox, our init and the modules, as a newc cpio (built once per kernel)."""
    out = kernel.root / "sockopt-initrd.cpio"
    if out.exists() and out.stat().st_mtime >= (HERE / "init.sh").stat().st_mtime:
        return out
    stage = kernel.root / "initrd-stage"
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "proc", "sys", "dev", "modules"):
        (stage / d).mkdir(parents=True)
    shutil.copy(BUSYBOX, stage / "bin" / "busybox")
    shutil.copy(HERE / "init.sh", stage / "init")
    (stage / "init").chmod(0o755)
    names = []
    for name, data in _load_order(kernel):
        (stage / "modules" / f"{name}.ko").write_bytes(data)
        names.append(name)
    (stage / "modules" / "order").write_text("\n".join(names) + "\n")
    listing = subprocess.run(["find", "."], cwd=stage, capture_output=True, check=True).stdout
    packed = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        cwd=stage,
        input=listing,
        capture_output=True,
        check=True,
    ).stdout
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(packed)
    tmp.rename(out)
    shutil.rmtree(stage)
    return out


@dataclass
class Run:
    """What came back from one boot."""

    returncode: int | None  # the script's exit status; None if the machine never reported one
    seconds: float
    share: Path  # the writable share: run.log, rc, and whatever the script left there
    console: str  # the kernel's serial console

    @property
    def log(self) -> str:
        path = self.share / "run.log"
        return path.read_text(errors="replace") if path.exists() else ""


def boot(kernel: Kernel, script: str, share: Path, timeout: float) -> Run:
    """Boot `kernel`, run `script` (sh, as root, in the host's tree) and power off."""
    share.mkdir(parents=True, exist_ok=True)
    for name in ("rc", "run.log"):
        (share / name).unlink(missing_ok=True)
    (share / "run.sh").write_text(script)
    (share / "vm.conf").write_text(
        f"SHARE='{share}'\nKROOT='{kernel.root}'\nMODULES='{kernel.modules}'\n"
        f"RELEASE='{kernel.release}'\nVMHOST='{HOSTNAME}'\n"
    )
    accel, _ = accelerator()
    console = share / "console.log"
    cmd = [
        QEMU,
        *accel,
        "-smp", str(CPUS),
        "-m", str(MEMORY_MB),
        "-kernel", str(kernel.image),
        "-initrd", str(initramfs(kernel)),
        "-append", "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off",
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
        "multidevs=remap",
        "-virtfs", f"local,path={share},mount_tag=results,security_model=none,multidevs=remap",
    ]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise MachineError(
            f"the VM ({kernel.release}) did not finish in {timeout:.0f} s; console:\n"
            + _tail(console)
        ) from None
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise MachineError(f"qemu failed ({proc.returncode}): {out.decode(errors='replace')}")
    rc_file = share / "rc"
    rc = int(rc_file.read_text().strip()) if rc_file.exists() else None
    return Run(rc, seconds, share, _tail(console))


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no console output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
