"""Compiled programs kept per kernel build and configuration, so that bcc compiles only once.

Compiling getsockopt.bpf.c costs seconds of CPU at every start (bcc runs clang over the kernel
headers each time). What bcc hands the kernel afterwards is plain data (bpfload.py). The first
recorder of a configuration saves it here; later ones load it through bpf(2) without bcc. The
key covers everything that changes the compiled code: our source and header, the -D flags, the
kernel build (/proc/version), the kernel headers bcc compiled against, and libbcc itself.

Entries are trusted only in a directory owned by root and writable by no one else: whatever is
in it gets loaded into the kernel. A refused or damaged entry is ignored and rewritten. Only the
tracepoint mode is cached (the one this project's machines can test); kprobe and fentry always
compile. SOCKOPT_TRACE_PROGRAM_CACHE=0 turns the cache off.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from sockopt_trace.recorder import bpfload

CACHE_FORMAT = 1
CACHED_MODES = ("tracepoint",)
SOURCE_DIR = Path(__file__).parent


def cache_dir() -> Path | None:
    """The directory of cached programs, or None if caching is off or the place is unsafe."""
    if os.environ.get("SOCKOPT_TRACE_PROGRAM_CACHE", "1") == "0":
        return None
    base = Path(os.environ.get("SOCKOPT_TRACE_CACHE", "/var/cache/sockopt-trace"))
    directory = base / "programs"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = directory.stat()
    except OSError:
        return None
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return directory


def cache_key(mode: str, cflags: list[str], headers: str | None, libbcc: str) -> str:
    digest = hashlib.sha256()
    for name in ("getsockopt.bpf.c", "getsockopt.h"):
        digest.update((SOURCE_DIR / name).read_bytes())
    parts = [str(CACHE_FORMAT), mode, *cflags, _kernel_build(), headers or "", _identity(libbcc)]
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()[:32]


def _kernel_build() -> str:
    return Path("/proc/version").read_text()


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def load(directory: Path, key: str) -> dict[str, Any] | None:
    path = directory / f"{key}.json"
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            return None
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) and spec.get("format") == CACHE_FORMAT else None


def save(directory: Path, key: str, spec: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half an entry); failures only cost a compile."""
    tmp = directory / f".{key}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        os.rename(tmp, directory / f"{key}.json")
    with contextlib.suppress(OSError):
        tmp.unlink()


def bcc_tables(bpf: Any) -> dict[int, str]:
    """fd -> name of every map bcc created for the module."""
    lib = bpf_lib()
    names = {}
    for i in range(lib.bpf_num_tables(bpf.module)):
        name = lib.bpf_table_name(bpf.module, i)
        fd = lib.bpf_table_fd(bpf.module, name)
        if fd >= 0:
            names[fd] = name.decode()
    return names


def value_size(map_fd: int) -> int:
    """Size of one value (one CPU's, for per-CPU maps)."""
    return int(bpfload.map_info(map_fd).value_size)


def bpf_lib() -> Any:
    from bcc.libbcc import lib

    lib.bpf_num_tables.restype = ctypes.c_size_t
    lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    lib.bpf_table_name.restype = ctypes.c_char_p
    lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
    return lib


def extract(bpf: Any, mode: str) -> dict[str, Any]:
    """What bcc loaded, as data: BTF, maps, programs (map references by name) and attachments."""
    tables = bcc_tables(bpf)
    maps = []
    btf_ids = set()
    for fd, name in sorted(tables.items(), key=lambda kv: kv[1]):
        info = bpfload.map_info(fd)
        maps.append(
            {
                "name": name,
                "type": info.type,
                "key_size": info.key_size,
                "value_size": info.value_size,
                "max_entries": info.max_entries,
                "flags": info.map_flags,
                "btf_key_type_id": info.btf_key_type_id,
                "btf_value_type_id": info.btf_value_type_id,
            }
        )
        if info.btf_id:
            btf_ids.add(info.btf_id)
    progs = []
    for fn_name, fn in bpf.funcs.items():
        insns = bytes(bpf.dump_func(fn_name))
        pinfo, _ = bpfload.prog_info(fn.fd)
        if pinfo.btf_id:
            btf_ids.add(pinfo.btf_id)
        rec_size, records = bpfload.func_info(fn.fd)
        category, event = fn_name.decode().removeprefix("tracepoint__").split("__", 1)
        progs.append(
            {
                "name": fn_name.decode(),
                "type": pinfo.type,
                "insns": base64.b64encode(insns).decode(),
                "maps": bpfload.map_references(insns, tables),
                "func_info_rec_size": rec_size,
                "func_info": base64.b64encode(records).decode(),
                "tracepoint": [category, event],
                "group": "exit" if event.startswith("sys_exit") else "entry",
            }
        )
    if len(btf_ids) > 1:
        raise ValueError("programs and maps use more than one BTF object")
    btf = bpfload.btf_data(btf_ids.pop()) if btf_ids else b""
    return {
        "format": CACHE_FORMAT,
        "mode": mode,
        "license": bpf_lib().bpf_module_license(bpf.module).decode(),
        "btf": base64.b64encode(btf).decode(),
        "maps": maps,
        "progs": progs,
    }


class Loaded:
    """Descriptors of a program loaded from the cache; `close` releases all of them."""

    def __init__(self) -> None:
        self.maps: dict[str, int] = {}
        self.value_sizes: dict[str, int] = {}
        self.progs: dict[str, int] = {}
        self.groups: dict[str, list[int]] = {"entry": [], "exit": []}
        self.btf_fd = -1

    def close(self) -> None:
        fds = [
            *self.maps.values(),
            *self.progs.values(),
            *(fd for g in self.groups.values() for fd in g),
        ]
        for fd in [*fds, self.btf_fd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def instantiate(spec: dict[str, Any]) -> Loaded:
    """Maps and programs from a cached spec, not yet attached. Raises OSError."""
    loaded = Loaded()
    try:
        btf = base64.b64decode(spec["btf"])
        loaded.btf_fd = bpfload.load_btf(btf) if btf else -1
        for m in spec["maps"]:
            loaded.maps[m["name"]] = bpfload.create_map(m, loaded.btf_fd)
            loaded.value_sizes[m["name"]] = m["value_size"]
        for p in spec["progs"]:
            insns = bytearray(base64.b64decode(p["insns"]))
            for index, name in p["maps"]:
                insns[index * 8 + 4 : index * 8 + 8] = loaded.maps[name].to_bytes(4, "little")
            loaded.progs[p["name"]] = bpfload.load_program(
                p["type"],
                p["name"],
                bytes(insns),
                spec["license"],
                loaded.btf_fd,
                p["func_info_rec_size"],
                base64.b64decode(p["func_info"]),
            )
    except BaseException:
        loaded.close()
        raise
    return loaded


def attach(loaded: Loaded, spec: dict[str, Any], tracefs: Path) -> None:
    """Attach every program, the entry group first: an exit attached before its entry would
    see calls whose entry it missed. Raises OSError."""
    for group in ("entry", "exit"):
        for p in spec["progs"]:
            if p["group"] == group:
                category, event = p["tracepoint"]
                fd = bpfload.attach_tracepoint(loaded.progs[p["name"]], tracefs, category, event)
                loaded.groups[group].append(fd)
