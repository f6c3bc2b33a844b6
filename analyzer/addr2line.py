"""Addresses to function, file:line and inlined frames, by LLVM's `llvm-symbolizer`.

Chosen over elfutils' eu-addr2line and pyelftools by measurement (docs/reliability.md): on a
23 MB libpython with DWARF, 1,000 addresses with inlined frames took llvm-symbolizer 0.4 s,
eu-addr2line 3-7 s and pyelftools 22 s for 100 (line tables alone). One process per file,
all its addresses through stdin, JSON out. llvm-symbolizer reads `.symtab`, `.dynsym` and
`.gnu_debuglink`; MiniDebugInfo (`.gnu_debugdata`, which it does not read) is unpacked first
into an ELF of its own (`minidebuginfo`).
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sockopt_trace.errors import UserError

TOOL = "llvm-symbolizer"
UNKNOWN = "??"


@dataclass(frozen=True)
class Frame:
    function: str
    file: str  # "" when there is no line information
    line: int


@dataclass(frozen=True)
class Symbolized:
    """One address: its frames outermost first (the function the code is in, then the
    functions inlined into it, down to the one whose code it is), and its offset from the
    start of the outermost function."""

    frames: tuple[Frame, ...]
    offset: int | None

    @property
    def has_lines(self) -> bool:
        return any(f.line for f in self.frames)


def tool() -> str:
    found = shutil.which(TOOL) or next(
        (p for v in range(30, 10, -1) if (p := shutil.which(f"{TOOL}-{v}"))), None
    )
    if found is None:
        raise UserError(
            f"{TOOL} is not installed: apt-get install llvm (or run scripts/setup.sh --system)"
        )
    return found


def symbolize(
    path: Path, addresses: Sequence[int], *, return_addresses: bool = True
) -> list[Symbolized | None]:
    """Frames for each address of the ELF file `path` (None where it names nothing).

    A call site is a return address, the instruction after the call: its line is looked up at
    the address before it (as perf and gdb do), and its offset counted from the address itself.
    """
    if not addresses:
        return []
    lookups = [a - 1 if return_addresses and a > 0 else a for a in addresses]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBUGINFOD")}
    try:
        done = subprocess.run(
            [
                tool(),
                f"--obj={path}",
                "--output-style=JSON",
                "--inlines",
                "--demangle",
                "--functions=linkage",
            ],
            input="\n".join(f"{a:#x}" for a in lookups),
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"{TOOL} took over 10 minutes on {path}") from None
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(answers) != len(addresses):
        error = done.stderr.strip().splitlines()[:1] or [f"exit status {done.returncode}"]
        raise UserError(f"{TOOL} failed on {path}: {error[0]}")
    return [_parse(answer, address) for answer, address in zip(answers, addresses, strict=True)]


def _parse(answer: dict, address: int) -> Symbolized | None:
    frames = [
        Frame(s.get("FunctionName") or UNKNOWN, s.get("FileName") or "", int(s.get("Line") or 0))
        for s in answer.get("Symbol", [])
    ]
    if not frames or all(f.function == UNKNOWN for f in frames):
        return None
    start = next((s.get("StartAddress") for s in reversed(answer["Symbol"])), "")
    offset = address - int(start, 16) if start else None
    return Symbolized(tuple(reversed(frames)), offset)


def minidebuginfo(binary: Path, out: Path) -> Path | None:
    """The symbols a stripped binary keeps in `.gnu_debugdata` (xz), written to `out` as an
    ELF file of their own; None if it has none."""
    try:
        with binary.open("rb") as f:
            elf = ELFFile(f)
            if elf.get_section_by_name(".symtab") is not None:
                return None
            section = elf.get_section_by_name(".gnu_debugdata")
            if section is None:
                return None
            data = lzma.decompress(section.data())
    except (OSError, ELFError, ValueError, lzma.LZMAError):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
