"""Function names from an ELF file at record time: what a binary carries, stripped or not.

Looked up by file offset (what a mapping gives). Symbols come from `.symtab`; else from a
separate debug file under /usr/lib/debug/.build-id; else from `.gnu_debugdata` (MiniDebugInfo:
an xz-compressed ELF holding the function symbols a distribution strips, on Fedora/RHEL);
and `.dynsym` (exported functions) fills in whatever those lack. Parsed with numpy, since
walking half a million symbols through pyelftools takes seconds (~25 us each) and would stall
the writer. File:line and inlined frames need DWARF: that is the analyzer's `symbolize`.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import lzma
import os
from collections.abc import Callable
from functools import cache

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from sockopt_trace.recorder.libc import libc

# Elf64_Sym, as laid out in .symtab/.dynsym
ELF64_SYM = np.dtype(
    [
        ("name", "<u4"),
        ("info", "u1"),
        ("other", "u1"),
        ("shndx", "<u2"),
        ("value", "<u8"),
        ("size", "<u8"),
    ]
)
STT_FUNC, STT_GNU_IFUNC = 2, 10
DEBUG_ROOT = "/usr/lib/debug"


def build_id_of(elf: ELFFile) -> str | None:
    """The GNU build-id note, as hex."""
    for section in elf.iter_sections():
        if not isinstance(section, NoteSection):
            continue
        for note in section.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return str(note["n_desc"])
    return None


class ElfSymbols:
    """Function symbols and load segments of one ELF file."""

    def __init__(self, path: str) -> None:
        self.segments: list[tuple[int, int, int]] = []  # (file offset, vaddr, size)
        self.build_id: str | None = None
        self.source = ""  # where the names came from: symtab, debug file, gnu_debugdata, dynsym
        self.starts = np.empty(0, np.uint64)
        self.ends = np.empty(0, np.uint64)
        self._names: list[tuple[np.ndarray, bytes]] = []  # (name offsets, string table)
        self._which = np.empty(0, np.uint8)  # which string table each symbol's name is in
        self._offsets = np.empty(0, np.uint32)
        # not an ELF we can read: its frames show as module+offset
        with contextlib.suppress(OSError, ELFError, ValueError, lzma.LZMAError):
            self._load(path)

    def __len__(self) -> int:
        return len(self.starts)

    def _load(self, path: str) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or not elf.little_endian:
                return
            for seg in elf.iter_segments("PT_LOAD"):
                self.segments.append((seg["p_offset"], seg["p_vaddr"], seg["p_filesz"]))
            self.build_id = build_id_of(elf)
            tables = [("symtab", _symbols(elf, ".symtab"))]
            if tables[0][1] is None:
                tables = [("debug file", self._from_debug_file()), *self._minidebuginfo(elf)]
            dynsym = _symbols(elf, ".dynsym")
            found = [(name, t) for name, t in tables if t is not None]
            self.source = found[0][0] if found else "dynsym" if dynsym is not None else ""
            # exported names first: where two symbols name one address (getsockopt and
            # __getsockopt), callers know the exported one
            self._index([dynsym, *(t for _, t in found)])

    def _from_debug_file(self) -> tuple[np.ndarray, bytes] | None:
        if not self.build_id:
            return None
        debug = f"{DEBUG_ROOT}/.build-id/{self.build_id[:2]}/{self.build_id[2:]}.debug"
        if not os.path.exists(debug):
            return None
        with open(debug, "rb") as d:
            return _symbols(ELFFile(d), ".symtab")

    def _minidebuginfo(self, elf: ELFFile) -> list[tuple[str, tuple[np.ndarray, bytes] | None]]:
        section = elf.get_section_by_name(".gnu_debugdata")
        if section is None:
            return []
        mini = ELFFile(io.BytesIO(lzma.decompress(section.data())))
        return [("gnu_debugdata", _symbols(mini, ".symtab"))]

    def _index(self, tables: list[tuple[np.ndarray, bytes] | None]) -> None:
        """Merge the symbol tables, sorted by address; the first table's name wins where two
        name the same address."""
        present = [t for t in tables if t is not None]
        if not present:
            return
        syms = np.concatenate([t[0] for t in present])
        which = np.concatenate([np.full(len(t[0]), i, np.uint8) for i, t in enumerate(present)])
        order = np.lexsort((which, syms["value"]))
        syms, which = syms[order], which[order]
        keep = np.ones(len(syms), bool)
        keep[1:] = syms["value"][1:] != syms["value"][:-1]
        syms, which = syms[keep], which[keep]
        self.starts = syms["value"]
        self.ends = syms["value"] + np.maximum(syms["size"], 1)
        self._offsets = syms["name"]
        self._which = which
        self._names = present

    def address(self, file_offset: int) -> int | None:
        """The ELF virtual address of a file offset (what debug information is keyed by)."""
        for seg_off, vaddr, size in self.segments:
            if seg_off <= file_offset < seg_off + size:
                return file_offset - seg_off + vaddr
        return None

    def lookup(self, file_offset: int) -> tuple[str, int] | None:
        """(function, offset into it) for an offset in the file, or None."""
        addr = self.address(file_offset)
        if addr is None:
            return None
        i = int(np.searchsorted(self.starts, np.uint64(addr), side="right")) - 1
        if i < 0 or addr >= int(self.ends[i]):
            return None
        strtab = self._names[int(self._which[i])][1]
        off = int(self._offsets[i])
        return demangle(strtab[off : strtab.index(b"\0", off)]), addr - int(self.starts[i])


def _symbols(elf: ELFFile, name: str) -> tuple[np.ndarray, bytes] | None:
    """(function symbols, their string table) of one symbol table section, or None."""
    section = elf.get_section_by_name(name)
    if section is None or section["sh_type"] == "SHT_NOBITS":
        return None
    if section["sh_entsize"] != ELF64_SYM.itemsize:
        return None
    syms = np.frombuffer(section.data(), dtype=ELF64_SYM)
    kind = syms["info"] & 0xF
    syms = syms[((kind == STT_FUNC) | (kind == STT_GNU_IFUNC)) & (syms["value"] != 0)]
    if not len(syms):
        return None
    return syms, elf.get_section(section["sh_link"]).data()


@cache
def _cxa_demangle() -> Callable | None:
    try:
        fn = ctypes.CDLL("libstdc++.so.6").__cxa_demangle
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    return fn


def demangle(raw: bytes) -> str:
    """C++ (and legacy Rust) names as people read them, through libstdc++'s own demangler;
    the raw name if there is no demangler or the name is not mangled."""
    fn = _cxa_demangle() if raw.startswith(b"_Z") else None
    if fn is not None:
        status = ctypes.c_int()
        out = fn(raw, None, None, ctypes.byref(status))
        if out and status.value == 0:
            try:
                return ctypes.string_at(out).decode(errors="backslashreplace")
            finally:
                libc().free(out)
    return raw.decode(errors="backslashreplace")
