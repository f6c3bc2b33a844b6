"""Debian's distribution kernels, fetched from the package archive and unpacked (not installed).

A kernel is its image, its modules and its headers (bcc compiles against the running kernel's
headers): `apt-get download` + `dpkg -x` into one directory per release, cached between runs
under SOCKOPT_TRACE_VM_CACHE (default /var/cache/sockopt-trace-vm). Suites the host's apt does
not carry (bookworm-backports, bullseye) are read through a private sources list on the same
mirror the host uses, without touching the system's apt configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("SOCKOPT_TRACE_VM_CACHE", "/var/cache/sockopt-trace-vm"))
LISTS_MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class KernelSpec:
    """One kernel line: the newest package whose name matches `pattern` is used."""

    name: str  # short name, used in test ids and SOCKOPT_TRACE_VM_KERNELS
    pattern: str  # regular expression over linux-image package names
    suites: tuple[str, ...] = ()  # private suites to read (empty: the host's own apt sources)
    supported: bool = True  # False: the recorder must refuse it in one line


KERNELS = {
    spec.name: spec
    for spec in (
        KernelSpec("6.1", r"linux-image-6\.1\.0-\d+-amd64"),
        KernelSpec("6.12", r"linux-image-6\.12\.\d+\+deb12-amd64"),
        # bookworm-backports holds only an older 6.12 than bookworm-security: the newest
        # kernel Debian builds for amd64 comes from trixie-backports
        KernelSpec(
            "newest", r"linux-image-\d+\.\d+\.\d+\+deb13-amd64", suites=("trixie-backports",)
        ),
        KernelSpec(
            "5.10",
            r"linux-image-5\.10\.0-\d+-amd64",
            suites=("bullseye", "bullseye-security"),
            supported=False,
        ),
    )
}


@dataclass(frozen=True)
class Kernel:
    """A kernel unpacked on disk: `root` holds boot/, lib/modules/REL and usr/src/."""

    spec: KernelSpec
    release: str
    root: Path

    @property
    def modules(self) -> Path:
        """lib/modules/REL (usr/lib/modules/REL in Debian 13's merged-/usr packages)."""
        for base in ("lib", "usr/lib"):
            path = self.root / base / "modules" / self.release
            if path.is_dir():
                return path
        return self.root / "lib" / "modules" / self.release

    @property
    def image(self) -> Path:
        boot = self.root / "boot" / f"vmlinuz-{self.release}"
        return boot if boot.exists() else self.modules / "vmlinuz"


class FetchError(Exception):
    pass


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise FetchError(f"{' '.join(cmd[:3])} ... failed: {last}")
    return done.stdout


def _host_mirrors() -> dict[str, str]:
    """suite -> archive URI, as the host's apt is configured (so a local mirror is honoured)."""
    out = _run(["apt-cache", "policy"])
    mirrors: dict[str, str] = {}
    for m in re.finditer(r"^\s*\d+ (\S+) (\S+)/main amd64 Packages", out, re.M):
        mirrors.setdefault(m[2], m[1])
    return mirrors


def _apt_options(spec: KernelSpec) -> list[str]:
    """apt-get/apt-cache options: none for the host's sources, else a private list, updated."""
    if not spec.suites:
        return []
    mirrors = _host_mirrors()
    base = mirrors.get("bookworm") or next(iter(mirrors.values()), None)
    security = mirrors.get("bookworm-security", base)
    if base is None:
        raise FetchError("the host's apt has no Debian source to borrow a mirror from")
    home = CACHE / "apt" / spec.name
    (home / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (home / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = home / "sources.list"
    lines = [f"deb {security if 'security' in s else base} {s} main" for s in spec.suites]
    sources.write_text("\n".join(lines) + "\n")
    opts = [
        f"-o=Dir::Etc::sourcelist={sources}",
        "-o=Dir::Etc::sourceparts=-",
        f"-o=Dir::State::Lists={home / 'lists'}",
        f"-o=Dir::Cache::archives={home / 'archives'}",
        f"-o=Dir::Cache::pkgcache={home / 'pkgcache.bin'}",
        f"-o=Dir::Cache::srcpkgcache={home / 'srcpkgcache.bin'}",
        "-o=APT::Sandbox::User=root",
    ]
    stamp = home / "updated"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime > LISTS_MAX_AGE_S:
        _run(["apt-get", *opts, "-qq", "update"])
        stamp.touch()
    return opts


def _natural(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def resolve(spec: KernelSpec) -> tuple[str, list[str]]:
    """(release, packages to download) for the newest kernel of this line in the archive."""
    opts = _apt_options(spec)
    posix = "^" + spec.pattern.replace(r"\d", "[0-9]") + "$"  # apt speaks POSIX regex
    out = _run(["apt-cache", *opts, "search", "--names-only", posix])
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    names = [n for n in names if re.fullmatch(spec.pattern, n)]
    if not names:
        raise FetchError(f"no package matches {spec.pattern} in the archive")
    image = max(names, key=_natural)
    release = image.removeprefix("linux-image-")
    headers = f"linux-headers-{release}"
    base = release.removesuffix("-amd64")
    # newer Debian kernels split the image package (linux-binary-*, linux-modules-*): take every
    # linux-* package of this release that the image and headers depend on, and kbuild
    depends = _run(["apt-cache", *opts, "depends", image, headers])
    extra = sorted(
        {
            m[1]
            for m in re.finditer(r"Depends: (linux-[a-z]+-\S+)", depends)
            if (base in m[1] or m[1].startswith("linux-kbuild-"))
            and m[1] not in (image, headers)
            and not m[1].endswith("-unsigned")
        }
    )
    return release, [image, headers, *extra]


def fetch(spec: KernelSpec) -> Kernel:
    """The kernel of this line, downloaded and unpacked once, then served from the cache."""
    cached = sorted(CACHE.glob(f"{spec.name}/*/.complete"), key=lambda p: p.stat().st_mtime)
    if os.environ.get("SOCKOPT_TRACE_VM_OFFLINE") == "1" and cached:
        root = cached[-1].parent
        return Kernel(spec, root.name, root)
    release, packages = resolve(spec)
    root = CACHE / spec.name / release
    if (root / ".complete").exists():
        return Kernel(spec, release, root)
    shutil.rmtree(root, ignore_errors=True)
    debs = CACHE / spec.name / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir(parents=True)
    _run(["apt-get", *_apt_options(spec), "-qq", "download", *packages], cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    shutil.rmtree(debs)
    kernel = Kernel(spec, release, root)
    if not kernel.image.exists():
        raise FetchError(f"{kernel.image} is missing after unpacking {packages}")
    for old in (CACHE / spec.name).iterdir():  # one release per line is enough
        if old != root and old.name != "debs":
            shutil.rmtree(old, ignore_errors=True)
    (root / ".complete").write_text(" ".join(packages) + "\n")
    return kernel
