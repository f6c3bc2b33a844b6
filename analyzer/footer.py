"""A small pure-Python reader of a Parquet file's footer (its Thrift-encoded FileMetaData).

It exists so the analyzer can check a recording file (row count, key-value metadata, the
top-level columns and the Arrow type pyarrow would read each as) without importing pyarrow:
pyarrow and numpy cost about 0.12 s of a report's 0.35 s start-up. Only what that check needs
is decoded; everything else in the footer is skipped. Any damage raises FooterError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import pyarrow as pa

# From this many files on, pyarrow's C++ footer reader (0.14 ms a file here, read_footer
# 0.42 ms: docs/benchmarks.md, start-up) pays for its import (0.12 s with numpy). Local files
# on DuckDB are read by DuckDB itself first, any number of them (footerbatch.py).
ARROW_FROM_FILES = 400

MAGIC = b"PAR1"
_TAIL_READ = 64 * 1024  # read this much of the file's end at once, as pyarrow does
_MAX_DEPTH = 64  # nesting of Thrift structs/containers deeper than this is damage
_WIDTH = {1: 0, 2: 0, 3: 1, 7: 8, 13: 16}  # fixed-size Thrift types: bool (in the type), i8, ...


class FooterError(ValueError):
    """The bytes are not a readable Parquet footer."""


@dataclass(frozen=True)
class Footer:
    num_rows: int
    metadata: dict[bytes, bytes]  # key_value_metadata (key -> value; a missing value -> b"")
    columns: dict[str, str]  # top-level column name -> type name, in file order


# Many local files' footers at once (footerbatch.py, on DuckDB): those it could read and name.
FooterBatch = Callable[[Sequence[Path]], Mapping[Path, Footer]]


def read_footer(fh: BinaryIO, size: int) -> Footer:
    """fh: a seekable binary file (a local file or pyarrow's remote input file: only seek/read
    are used), size: its length in bytes."""
    if size < 12:
        raise FooterError("no Parquet footer (file truncated?)")
    tail_len = min(size, _TAIL_READ)
    tail = _read_at(fh, size - tail_len, tail_len)
    if tail[-4:] != MAGIC:
        raise FooterError("no Parquet footer (file truncated?)")
    length = int.from_bytes(tail[-8:-4], "little")
    if not 0 < length <= size - 12:  # 12: the leading magic, the length and the trailing magic
        raise FooterError(f"footer length {length} exceeds the file" if length else "empty footer")
    if length + 8 <= tail_len:
        data = tail[-8 - length : -8]
    else:
        data = _read_at(fh, size - 8 - length, length)
    try:
        return _file_metadata(_Reader(data))
    except FooterError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RecursionError, OverflowError) as e:
        raise FooterError(f"damaged Parquet footer ({type(e).__name__})") from None


def reader_for(files: int) -> Callable[[BinaryIO, int], Footer]:
    """The cheaper footer reader for a recording of this many files; both give equal Footers
    (tests/unit/test_footer.py)."""
    return read_footer_arrow if files >= ARROW_FROM_FILES else read_footer


def read_footer_arrow(fh: BinaryIO, size: int) -> Footer:
    """read_footer, by pyarrow: its types named as read_footer names them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if size < 12:
        raise FooterError("no Parquet footer (file truncated?)")
    try:
        pf = pq.ParquetFile(fh)
        fields = list(pf.schema_arrow)
        meta = pf.metadata
    except (pa.ArrowException, OSError, ValueError) as err:
        raise FooterError(str(err).strip().split("\n")[0] or type(err).__name__) from None

    columns = {f.name: _arrow_type_name(f.type) for f in fields}
    return Footer(meta.num_rows, dict(meta.metadata or {}), columns)


@functools.cache
def _arrow_type_name(t: pa.DataType) -> str:
    """Parquet has one string type: a dictionary or large string stored in an Arrow schema is
    a string (cached: a thousand files have the same few types)."""
    import pyarrow as pa

    t = t.value_type if pa.types.is_dictionary(t) else t
    return "string" if pa.types.is_large_string(t) else str(t)


def _read_at(fh: BinaryIO, offset: int, n: int) -> bytes:
    fh.seek(offset)
    data = fh.read(n)  # one read: pyarrow's remote files fetch each read on its own
    if len(data) != n:
        raise FooterError(f"read {len(data)} bytes of {n} (file truncated?)")
    return data


class _Reader:
    """The Thrift compact protocol over a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        result = shift = 0
        while shift < 70:
            b = self.data[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
        raise FooterError("damaged Parquet footer (varint too long)")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        n = self.varint()
        end = self.pos + n
        if end > len(self.data):
            raise FooterError("damaged Parquet footer (string past its end)")
        self.pos = end
        return self.data[end - n : end]

    def fields(self) -> Iterator[tuple[int, int]]:
        """Yield (field id, type) of each field of a struct, up to its stop byte."""
        last = 0
        while True:
            b = self.byte()
            if b == 0:
                return
            ftype, delta = b & 0x0F, b >> 4
            last = last + delta if delta else self.zigzag()
            yield last, ftype

    def count(self, n: int) -> int:
        """n, a container's size, if the bytes left can hold it (each element takes one)."""
        if n > len(self.data) - self.pos:
            raise FooterError(f"damaged Parquet footer (a container of {n} elements)")
        return n

    def list_header(self) -> tuple[int, int]:
        b = self.byte()
        return self.count(self.varint() if b >> 4 == 15 else b >> 4), b & 0x0F

    def skip(self, ftype: int, depth: int = 0) -> None:
        """Past one value of type ftype: the hot path, as row groups are most of a footer."""
        if depth > _MAX_DEPTH:
            raise FooterError("damaged Parquet footer (nested too deep)")
        data = self.data
        if ftype in _WIDTH:  # i8 is one plain byte, not a varint
            self.pos += _WIDTH[ftype]
        elif ftype in (4, 5, 6):
            self.varint()
        elif ftype == 8:
            n = self.varint()  # not `self.pos += self.varint()`: that reads pos first
            self.pos += n
        elif ftype in (9, 10):
            n, etype = self.list_header()
            for _ in range(n):  # booleans in a list take one byte each
                self.skip(3 if etype in (1, 2) else etype, depth + 1)
        elif ftype == 11:
            n = self.count(self.varint())
            if n:
                kv = self.byte()
                for _ in range(n):
                    self.skip(kv >> 4, depth + 1)
                    self.skip(kv & 0x0F, depth + 1)
        elif ftype == 12:
            while b := data[self.pos]:
                self.pos += 1
                if b < 0x10:  # the field id follows in full
                    self.varint()
                if (b & 0x0F) in (4, 5, 6):  # most fields are integers: pass the varint here
                    pos = self.pos
                    while data[pos] > 0x7F:
                        pos += 1
                    self.pos = pos + 1
                else:
                    self.skip(b & 0x0F, depth + 1)
            self.pos += 1
        else:
            raise FooterError(f"damaged Parquet footer (Thrift type {ftype})")
        if self.pos > len(data):
            raise FooterError("damaged Parquet footer (a value past its end)")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        """A struct's integer, boolean, binary and (nested) struct fields by id; others skipped."""
        if depth > _MAX_DEPTH:
            raise FooterError("damaged Parquet footer (nested too deep)")
        out: dict[int, Any] = {}
        for fid, t in self.fields():
            if t in (1, 2):
                out[fid] = t == 1
            elif t == 3:
                out[fid] = (self.byte() ^ 0x80) - 0x80
            elif t in (4, 5, 6):
                out[fid] = self.zigzag()
            elif t == 8:
                out[fid] = self.binary()
            elif t == 12:
                out[fid] = self.struct(depth + 1)
            else:
                self.skip(t)
        return out


def _file_metadata(r: _Reader) -> Footer:
    num_rows: int | None = None
    schema: list[dict[int, Any]] | None = None
    metadata: dict[bytes, bytes] = {}
    for fid, t in r.fields():
        if fid == 3 and t == 6:
            num_rows = r.zigzag()
        elif fid in (2, 5) and t == 9:
            n, etype = r.list_header()
            if etype != 12:
                raise FooterError("damaged Parquet footer (a list of non-structs)")
            items = [r.struct() for _ in range(n)]
            if fid == 2:
                schema = items
            else:
                for kv in items:
                    value = kv.get(2)
                    metadata[_bytes(kv, 1)] = value if isinstance(value, bytes) else b""
        else:
            r.skip(t)
    if num_rows is None or num_rows < 0 or not schema:
        raise FooterError("damaged Parquet footer (no schema or row count)")
    return Footer(num_rows, metadata, _columns(schema))


def _bytes(d: dict[int, Any], fid: int) -> bytes:
    v = d.get(fid)
    if not isinstance(v, bytes):
        raise FooterError("damaged Parquet footer (a required string is missing)")
    return v


def _columns(schema: list[dict[int, Any]]) -> dict[str, str]:
    """Top-level columns: the root's children, each group's descendants skipped."""
    columns: dict[str, str] = {}
    i = 1
    for _ in range(_int(schema[0], 5)):
        el = schema[i]  # IndexError: fewer elements than the root claims
        columns[_bytes(el, 4).decode()] = _type_name(el)
        pending = 1  # el and its descendants, still to pass
        while pending:
            children = _int(schema[i], 5)
            pending += children - 1
            i += 1
            if children < 0 or pending > len(schema):
                raise FooterError("damaged Parquet footer (schema tree)")
    return columns


def _int(d: dict[int, Any], fid: int, default: int = 0) -> int:
    v = d.get(fid, default)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _dict(d: dict[int, Any], fid: int) -> dict[int, Any]:
    v = d.get(fid)
    return v if isinstance(v, dict) else {}


_PHYSICAL = ["bool", "int32", "int64", "timestamp[ns]", "float", "double", "binary"]
_UNITS = {1: "ms", 2: "us", 3: "ns"}  # TimeUnit union field -> Arrow unit
# LogicalType union field -> name, where the kind alone decides it (ENUM, BSON: binary)
_LOGICAL = {1: "string", 6: "date32[day]", 11: "null", 12: "extension<arrow.json>",
            14: "extension<arrow.uuid>", 15: "halffloat"}  # fmt: skip
# converted_type (the legacy annotation) -> name, where it alone decides it
_CONVERTED = {0: "string", 6: "date32[day]", 7: "time32[ms]", 8: "time64[us]",
              9: "timestamp[ms, tz=UTC]", 10: "timestamp[us, tz=UTC]", 11: "uint8", 12: "uint16",
              13: "uint32", 14: "uint64", 15: "int8", 16: "int16", 17: "int32", 18: "int64",
              19: "extension<arrow.json>"}  # fmt: skip


def _type_name(el: dict[int, Any]) -> str:
    """The Arrow type pyarrow (26) reads a column as, as it prints it, without a stored schema."""
    logical = _dict(el, 10)  # a union: its one field's id says the kind
    kind = next(iter(logical), None)
    arg = _dict(logical, kind) if kind is not None else {}
    converted, physical = _int(el, 6, -1), _int(el, 1, -1)
    if 5 in el or 1 not in el:  # a group
        if kind == 3 or converted == 3 or el.get(3) == 2:  # LIST, or a repeated group
            return "list"
        return "map" if kind == 2 or converted in (1, 2) else "struct"
    if el.get(3) == 2:  # a repeated primitive at the top level reads as a list of it
        return "list"
    if kind in _LOGICAL:
        return _LOGICAL[kind]
    if kind == 5 or converted == 5:
        precision = _int(arg, 2) if kind == 5 else _int(el, 8)
        scale = _int(arg, 1) if kind == 5 else _int(el, 7)
        return f"decimal{128 if precision <= 38 else 256}({precision}, {scale})"
    if kind in (7, 8):  # TIME, TIMESTAMP {1 isAdjustedToUTC, 2 unit}
        unit = _UNITS.get(next(iter(_dict(arg, 2)), 0), "?")
        if kind == 7:
            return f"time{32 if unit == 'ms' else 64}[{unit}]"
        return f"timestamp[{unit}, tz=UTC]" if arg.get(1) is True else f"timestamp[{unit}]"
    if kind == 10 and (_int(arg, 1), physical) in ((8, 1), (16, 1), (32, 1), (64, 2)):
        return f"{'' if arg.get(2) is True else 'u'}int{_int(arg, 1)}"  # {1 bitWidth, 2 isSigned}
    if kind is None and converted in _CONVERTED:
        return _CONVERTED[converted]
    if physical == 7:
        return f"fixed_size_binary[{_int(el, 2)}]"
    if 0 <= physical < len(_PHYSICAL):
        return _PHYSICAL[physical]
    raise FooterError(f"damaged Parquet footer (physical type {physical})")
