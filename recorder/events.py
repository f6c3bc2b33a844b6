"""The numpy mirror of `struct event` (getsockopt.h), built by parsing that header.

Parsing rather than restating the struct keeps one definition: a field added in C appears here,
and a unit test compares the dtype's size with what the compiler says.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np

HEADER = Path(__file__).with_name("getsockopt.h")
_C_TYPES = {"u64": "<u8", "u32": "<u4", "s32": "<i4", "s64": "<i8", "u16": "<u2", "u8": "u1"}
# Each ring buffer record starts with an 8-byte header: u32 length (bit 31 busy, bit 30 discard)
# and u32 page offset; records are padded to 8 bytes.
RINGBUF_HEADER = np.dtype([("len", "<u4"), ("pg_off", "<u4")])
BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30


def _defines(text: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"#define\s+(\w+)\s+\(?(-?\d+)\)?", text)}


@cache
def event_dtype(context: bool = False) -> np.dtype:
    """The record of one call; with `context` (record --context), its fields under
    `#ifdef CONTEXT` too: without them the record stays small (ring space, copies)."""
    text = HEADER.read_text()
    body = re.search(r"struct event \{(.*?)\};", text, re.S)
    if body is None:
        raise RuntimeError(f"{HEADER}: struct event not found")
    consts = _defines(text)
    fields: list[tuple] = []
    skipping = False
    for line in re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S).splitlines():
        line = line.strip()
        if line == "#ifdef CONTEXT":
            skipping = not context
            continue
        if line == "#endif":
            skipping = False
            continue
        if not line or skipping:
            continue
        m = re.fullmatch(r"(\w+)\s+(\w+)(?:\[(\w+)\])?;", line)
        if m is None:
            raise RuntimeError(f"{HEADER}: cannot parse field {line!r}")
        ctype, name, count = m.groups()
        if ctype == "char":
            fields.append((name, f"S{consts.get(count, count)}"))
        elif count:
            fields.append((name, _C_TYPES[ctype], (int(consts.get(count, count)),)))
        else:
            fields.append((name, _C_TYPES[ctype]))
    return np.dtype(fields)


@cache
def counter_names() -> tuple[str, ...]:
    """Names of `enum counter` in order, e.g. ('submitted', 'ringbuf_full', ...)."""
    body = re.search(r"enum counter \{(.*?)\};", HEADER.read_text(), re.S)
    assert body is not None
    names = re.findall(r"CTR_(\w+)", body.group(1))
    return tuple(n.lower() for n in names)


@cache
def control_index(name: str) -> int:
    """Index of CONTROL_<NAME> in `enum control`, the slots of the map user space writes."""
    body = re.search(r"enum control \{(.*?)\};", HEADER.read_text(), re.S)
    assert body is not None
    names = [n.lower() for n in re.findall(r"CONTROL_(\w+)", body.group(1))]
    return names.index(name)


@cache
def record_dtype(context: bool = False) -> np.dtype:
    """One ring buffer record: header then event, padded to 8 bytes."""
    ev = event_dtype(context)
    size = RINGBUF_HEADER.itemsize + ev.itemsize
    padded = (size + 7) // 8 * 8
    return np.dtype(
        {
            "names": ["hdr", "ev"],
            "formats": [RINGBUF_HEADER, ev],
            "offsets": [0, 8],
            "itemsize": padded,
        }
    )
