"""Name the caller's cgroup at record time: its path from the v2 root, and the systemd unit,
Kubernetes pod and container id the path shows.

The kernel gives the cgroup id (bpf_get_current_cgroup_id), which is the inode number of the
cgroup's directory under the v2 hierarchy: one scan of that tree names every cgroup alive, and
a later scan happens only for an id not seen before. Ids are never reused, so an id whose
cgroup was gone before it could be named stays unnamed (null), and costs one scan.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sockopt_trace.errors import ExitCode, UserError

ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))  # v2; v2 beside v1 (hybrid)
CGROUP2_MAGIC = 0x63677270
_UNIT = re.compile(r"\.(service|scope|slice|socket|mount|swap|timer|path|target|device)$")
_POD = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$"
)
_CONTAINER = re.compile(r"(?:^|[-:])([0-9a-f]{64})(?:\.scope)?$")


def v2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (None: no cgroup v2)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    points = {f[1] for f in (line.split() for line in lines) if len(f) > 2 and f[2] == "cgroup2"}
    return next((r for r in ROOTS if str(r) in points), None)


def describe(path: str) -> tuple[str | None, str | None, str | None]:
    """(unit, pod, container) in a cgroup path: the innermost systemd unit, the Kubernetes pod
    uid (dashed), the innermost 64-hex container id (Docker, containerd, CRI-O, podman)."""
    unit = pod = container = None
    for part in path.strip("/").split("/"):
        if _UNIT.search(part):
            unit = part
        m = _POD.search(part)
        if m:
            pod = m[1].replace("_", "-")
        m = _CONTAINER.search(part)
        if m:
            container = m[1]
    return unit, pod, container


def filter_directory(path: str) -> Path:
    """The cgroup v2 directory `--cgroup PATH` names: a directory in the v2 hierarchy, or a
    path from its root as recordings show it (/system.slice/nginx.service). Raises UserError."""
    root = v2_root()
    if root is None:
        raise UserError("--cgroup needs cgroup v2, which is not mounted here", ExitCode.ENVIRONMENT)
    for candidate in (Path(path), root / path.lstrip("/")):
        resolved = candidate.resolve()
        inside = resolved == root or root in resolved.parents
        if inside and (resolved / "cgroup.procs").is_file():
            return resolved
    raise UserError(f"bad --cgroup {path!r}: no such cgroup under {root}")


class CgroupNames:
    """Cgroup id -> path from the v2 root ("/" for the root), scanned when an id is new."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else v2_root()
        self.paths: dict[int, str | None] = {}

    def path(self, cgroup_id: int) -> str | None:
        if cgroup_id not in self.paths:
            self._scan()
            self.paths.setdefault(cgroup_id, None)
        return self.paths[cgroup_id]

    def _scan(self) -> None:
        if self.root is None:
            return
        try:
            self.paths[os.stat(self.root).st_ino] = "/"
        except OSError:
            return
        stack = [(str(self.root), "")]
        while stack:
            directory, rel = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:  # removed meanwhile
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    path = f"{rel}/{entry.name}"
                    self.paths[entry.inode()] = path
                    stack.append((entry.path, path))
