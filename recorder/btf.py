"""Struct member offsets of the running kernel, from its BTF (/sys/kernel/btf/vmlinux).

bcc compiles against whatever kernel headers it finds (6.1 here for a 6.18 kernel) and applies
no CO-RE relocations, so the kernel side must not take a struct layout from those headers: the
offsets it reads at come from here, at load time, as -D constants. Only what that needs is
parsed: the type section's record sizes (to walk it) and the members of named structs, through
anonymous struct/union members as C sees them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAGIC = 0xEB9F
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION = 1, 2, 3, 4, 5
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG = 8, 9, 10, 11, 18
_QUALIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
# Bytes after the 12-byte common header, per kind: fixed, and per vlen entry.
_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0)}
_EXTRA |= {15: (0, 12), 17: (4, 0), 19: (0, 12)}


class BTFError(ValueError):
    """Not BTF, or not a layout this parser knows; the message says which."""


@dataclass(frozen=True)
class Member:
    offset: int  # bytes from the start of the struct
    size: int  # bytes (pointers: 8)


class BTF:
    """The types of one BTF blob (vmlinux's: no base types elsewhere)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BTFError("too short for a BTF header")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data)
        if magic != MAGIC:
            raise BTFError(f"bad BTF magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.data = data
        self.strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[int] = [0]  # type id -> offset of its record in data (id 0: void)
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.Struct("<I").unpack_from
        while pos < end:
            info = unpack(data, pos + 4)[0]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, per = _EXTRA.get(kind, (0, 0))
            self.types.append(pos)
            pos += 12 + fixed + per * vlen
        if pos != end:
            raise BTFError("type section does not parse")

    def _header(self, type_id: int) -> tuple[int, int, int, bool, int]:
        """(name_off, kind, vlen, kind_flag, size_or_type) of a type."""
        name_off, info, size = struct.unpack_from("<III", self.data, self.types[type_id])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31), size

    def _name(self, offset: int) -> str:
        end = self.strings.index(b"\0", offset)
        return self.strings[offset:end].decode()

    def _name_offset(self, name: str) -> int:
        """Where `name` starts in the string section (-1 if absent): types are compared by it."""
        needle = b"\0" + name.encode() + b"\0"
        at = self.strings.find(needle)
        return -1 if at < 0 else at + 1

    def struct_id(self, name: str) -> int:
        """The id of the complete struct (or union) called `name`. Raises KeyError."""
        wanted = self._name_offset(name)
        if wanted >= 0:
            for type_id in range(1, len(self.types)):
                pos = self.types[type_id]
                if struct.unpack_from("<I", self.data, pos)[0] != wanted:
                    continue
                _, kind, vlen, _, _ = self._header(type_id)
                if kind in (KIND_STRUCT, KIND_UNION) and vlen:
                    return type_id
        raise KeyError(f"struct {name} is not in the kernel's BTF")

    def _resolve(self, type_id: int) -> int:
        """Through typedefs and qualifiers."""
        while True:
            _, kind, _, _, target = self._header(type_id)
            if kind not in _QUALIFIERS:
                return type_id
            type_id = target

    def size_of(self, type_id: int) -> int:
        type_id = self._resolve(type_id)
        _, kind, _, _, size = self._header(type_id)
        if kind == KIND_PTR:
            return 8
        if kind == KIND_ARRAY:
            elem, _index, count = struct.unpack_from("<III", self.data, self.types[type_id] + 12)
            return self.size_of(elem) * count
        return size

    def members(self, type_id: int) -> dict[str, Member]:
        """Members by name, anonymous structs/unions flattened in (as C names them); bitfields
        left out (not byte-addressable)."""
        _, _, vlen, kind_flag, _ = self._header(type_id)
        found: dict[str, Member] = {}
        base = self.types[type_id] + 12
        for i in range(vlen):
            name_off, member_type, offset = struct.unpack_from("<III", self.data, base + 12 * i)
            bits = offset & 0xFFFFFF if kind_flag else offset
            if kind_flag and offset >> 24:
                continue  # a bitfield
            if bits % 8:
                continue
            if name_off == 0:
                inner = self._resolve(member_type)
                if self._header(inner)[1] in (KIND_STRUCT, KIND_UNION):
                    for name, m in self.members(inner).items():
                        found.setdefault(name, Member(bits // 8 + m.offset, m.size))
                continue
            found[self._name(name_off)] = Member(bits // 8, self.size_of(member_type))
        return found

    def member(self, struct_name: str, member: str) -> Member:
        """Offset and size of `struct_name.member`. Raises KeyError naming what is missing."""
        members = self.members(self.struct_id(struct_name))
        if member not in members:
            raise KeyError(f"struct {struct_name} has no member {member} in the kernel's BTF")
        return members[member]


@cache
def vmlinux() -> BTF:
    """The running kernel's BTF. Raises OSError if it has none, BTFError if it is unreadable."""
    return BTF(VMLINUX.read_bytes())
