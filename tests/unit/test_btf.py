"""recorder/btf.py: member offsets from BTF, against a blob built here and the real kernel's."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from sockopt_trace.recorder import btf, sockets

has_vmlinux = pytest.mark.skipif(not btf.VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")


def _blob() -> bytes:
    """struct outer { int a; union { int b; struct { short c; short d; }; }; unsigned e:3;
    const pint f; char g[6]; } with typedef int *pint."""
    names = b"\0int\0outer\0a\0b\0c\0d\0e\0f\0g\0short\0pint\0char\0"
    words = ("int", "outer", "a", "b", "c", "d", "e", "f", "g", "short", "pint", "char")
    at = {n: names.index(b"\0" + n.encode() + b"\0") + 1 for n in words}
    types = b""

    def t(name: int, kind: int, vlen: int, size: int, flag: int = 0, extra: bytes = b"") -> None:
        nonlocal types
        types += struct.pack("<III", name, flag << 31 | kind << 24 | vlen, size) + extra

    t(at["int"], 1, 0, 4, extra=struct.pack("<I", 32))  # 1 int
    t(at["short"], 1, 0, 2, extra=struct.pack("<I", 16))  # 2 short
    t(0, 4, 2, 4, extra=struct.pack("<6I", at["c"], 2, 0, at["d"], 2, 16))  # 3 anon struct
    t(0, 5, 2, 4, extra=struct.pack("<6I", at["b"], 1, 0, 0, 3, 0))  # 4 anon union
    t(0, 2, 0, 1)  # 5 int *
    t(at["pint"], 8, 0, 5)  # 6 typedef pint
    t(0, 10, 0, 6)  # 7 const pint
    t(at["char"], 1, 0, 1, extra=struct.pack("<I", 8))  # 8 char
    t(0, 3, 0, 0, extra=struct.pack("<III", 8, 1, 6))  # 9 char[6]
    members = struct.pack(
        "<15I",
        *(at["a"], 1, 0),
        *(0, 4, 32),
        *(at["e"], 1, 3 << 24 | 64),  # a bitfield
        *(at["f"], 7, 128),
        *(at["g"], 9, 192),
    )
    t(at["outer"], 4, 5, 32, flag=1, extra=members)  # 10
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(names))
    return header + types + names


def test_members_through_anonymous_unions_typedefs_and_arrays() -> None:
    types = btf.BTF(_blob())
    assert types.member("outer", "a") == btf.Member(0, 4)
    assert types.member("outer", "b") == btf.Member(4, 4)
    assert types.member("outer", "c") == btf.Member(4, 2)
    assert types.member("outer", "d") == btf.Member(6, 2)
    assert types.member("outer", "f") == btf.Member(16, 8)
    assert types.member("outer", "g") == btf.Member(24, 6)
    with pytest.raises(KeyError, match="no member e"):  # bitfields are not byte-addressable
        types.member("outer", "e")
    with pytest.raises(KeyError, match="struct nope"):
        types.member("nope", "a")


def test_not_btf_is_refused() -> None:
    with pytest.raises(btf.BTFError, match="magic"):
        btf.BTF(b"\x7fELF" + bytes(40))
    with pytest.raises(btf.BTFError, match="short"):
        btf.BTF(b"")


@has_vmlinux
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="no bpftool to compare with")
def test_the_running_kernels_offsets_match_bpftool() -> None:
    raw = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(btf.VMLINUX), "format", "raw"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    types = btf.vmlinux()
    checked = 0
    for struct_name, member in [*sockets.FIELDS.values(), *sockets.UNIX_FIELDS.values()]:
        block = re.search(rf"STRUCT '{struct_name}' size=\d+ vlen=\d+\n((?:\t.*\n)+)", raw)
        assert block is not None, struct_name
        m = re.search(rf"\t'{member}' type_id=\d+ bits_offset=(\d+)", block[1])
        if m:  # a direct member (the others sit in anonymous unions: checked below)
            assert types.member(struct_name, member).offset * 8 == int(m[1]), member
            checked += 1
    assert checked >= 12


@has_vmlinux
def test_the_running_kernels_socket_layout_is_whole() -> None:
    found = sockets.offsets(btf.vmlinux())
    # skc_addrpair and skc_portpair: each a pair of adjacent fields, on every kernel
    assert found["SKC_RCV_SADDR"] == found["SKC_DADDR"] + 4
    assert found["SKC_NUM"] == found["SKC_DPORT"] + 2
    assert found["SK_COMMON"] == 0 and found["FDT_MAX_FDS"] == 0
    flags, why = sockets.cflags()
    assert why == "" and "-DSOCKET_FIELDS" in flags
    assert f"-DOFF_TASK_FILES={found['TASK_FILES']}" in flags
    # Unix sockets' inodes: a struct socket is the start of its socket_alloc, unix_sock that
    # of its struct sock, on every kernel so far
    unix = sockets.offsets(btf.vmlinux(), sockets.UNIX_FIELDS)
    assert unix["SOCKET_ALLOC_SOCKET"] == 0 and unix["UNIX_SK"] == 0
    ino = unix["SOCKET_ALLOC_INODE"] + unix["INODE_INO"]
    assert "-DUNIX_FIELDS" in flags and f"-DOFF_UNIX_SOCKET_INO={ino}" in flags


@has_vmlinux
def test_without_unix_sock_in_btf_inet_sockets_are_still_read(monkeypatch) -> None:
    real = btf.vmlinux()

    class NoUnix:
        def member(self, struct_name: str, member: str) -> btf.Member:
            if struct_name == "unix_sock":
                raise KeyError("struct unix_sock is not in the kernel's BTF")
            return real.member(struct_name, member)

    monkeypatch.setattr(btf, "vmlinux", NoUnix)
    flags, why = sockets.cflags()
    assert why == "" and "-DSOCKET_FIELDS" in flags
    assert not [f for f in flags if "UNIX" in f]
