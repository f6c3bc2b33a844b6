"""analyzer.footer reads a Parquet footer as pyarrow does (row count, key-value metadata, the
top-level columns and the Arrow type names pyarrow prints), and a damaged file only ever raises
FooterError, quickly."""

from __future__ import annotations

import datetime
import decimal
import io
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
import pytest

from sockopt_trace.analyzer.footer import (
    ARROW_FROM_FILES,
    Footer,
    FooterError,
    read_footer,
    read_footer_arrow,
    reader_for,
)

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "sample_traces").rglob("*.parquet"))
NESTED = ("struct", "list", "map")


def footer_of(path: Path) -> Footer:
    with open(path, "rb") as fh:
        return read_footer(fh, path.stat().st_size)


def footer_of_bytes(data: bytes) -> Footer:
    return read_footer(io.BytesIO(data), len(data))


def pyarrow_footer(path: Path) -> Footer:
    pf = pq.ParquetFile(path)
    columns = {f.name: str(f.type) for f in pf.schema_arrow}
    return Footer(pf.metadata.num_rows, dict(pf.metadata.metadata or {}), columns)


def assert_matches_pyarrow(path: Path) -> None:
    ours, theirs = footer_of(path), pyarrow_footer(path)
    assert (ours.num_rows, ours.metadata) == (theirs.num_rows, theirs.metadata)
    assert list(ours.columns) == list(theirs.columns)
    for name, expected in theirs.columns.items():
        if expected.startswith(tuple(f"{n}<" for n in NESTED)):  # nested: only the kind
            expected = expected.split("<")[0]
        assert ours.columns[name] == expected, name


def test_samples_exist() -> None:
    assert len(SAMPLES) >= 7


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.parent.name)
def test_sample_matches_pyarrow(path: Path) -> None:
    assert_matches_pyarrow(path)
    ours = footer_of(path)
    assert ours.columns["pid"] == "int32" and ours.columns["ts_ns"] == "int64"
    assert ours.columns["comm"] == "string" and b"sockopt_trace" in ours.metadata


def test_pyarrow_remote_input_file() -> None:
    """pyarrow's input files (what s3:// recordings are opened as) have only seek and read."""
    path = SAMPLES[0]
    with pyarrow.fs.LocalFileSystem().open_input_file(str(path)) as fh:
        assert read_footer(fh, fh.size()) == footer_of(path)


UTC = datetime.timezone.utc
T0 = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
# name -> (arrow type, two values)
TYPES: dict[str, tuple[pa.DataType, list[object]]] = {
    "bool": (pa.bool_(), [True, None]),
    "i8": (pa.int8(), [-1, 2]),
    "i16": (pa.int16(), [-1, 2]),
    "i32": (pa.int32(), [-1, None]),
    "i64": (pa.int64(), [-(2**40), 2]),
    "u8": (pa.uint8(), [1, 255]),
    "u16": (pa.uint16(), [1, 2]),
    "u32": (pa.uint32(), [1, 2**32 - 1]),
    "u64": (pa.uint64(), [1, 2**64 - 1]),
    "f16": (pa.float16(), [None, None]),
    "f32": (pa.float32(), [1.5, None]),
    "f64": (pa.float64(), [1.5, -2.0]),
    "str": (pa.string(), ["a", None]),
    "lstr": (pa.large_string(), ["a", "b"]),
    "bin": (pa.binary(), [b"\x00", b"x"]),
    "lbin": (pa.large_binary(), [b"\x00", b"x"]),
    "fixed": (pa.binary(3), [b"abc", b"def"]),
    "dict": (pa.dictionary(pa.int32(), pa.string()), ["a", "a"]),
    "date32": (pa.date32(), [T0.date(), None]),
    "date64": (pa.date64(), [T0.date(), None]),
    "t32s": (pa.time32("s"), [T0.time().replace(microsecond=0), None]),
    "t32ms": (pa.time32("ms"), [T0.time().replace(microsecond=123000), None]),
    "t64us": (pa.time64("us"), [T0.time(), None]),
    "t64ns": (pa.time64("ns"), [T0.time(), None]),
    "ts_s": (pa.timestamp("s"), [T0.replace(microsecond=0), None]),
    "ts_ms": (pa.timestamp("ms"), [T0.replace(microsecond=123000), None]),
    "ts_us": (pa.timestamp("us"), [T0, None]),
    "ts_ns": (pa.timestamp("ns"), [T0, None]),
    "ts_us_utc": (pa.timestamp("us", tz="UTC"), [T0.replace(tzinfo=UTC), None]),
    "ts_ns_paris": (pa.timestamp("ns", tz="Europe/Paris"), [T0.replace(tzinfo=UTC), None]),
    "dec_small": (pa.decimal128(9, 2), [decimal.Decimal("1.25"), None]),
    "dec_mid": (pa.decimal128(18, 3), [decimal.Decimal("1.250"), None]),
    "dec_big": (pa.decimal128(30, 4), [decimal.Decimal("1.2500"), None]),
    "dec_256": (pa.decimal256(50, 5), [decimal.Decimal("1.25000"), None]),
    "null": (pa.null(), [None, None]),
    "struct": (pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]), [None, None]),
    "list": (pa.list_(pa.int64()), [[1, 2], None]),
    "list_of_struct": (pa.list_(pa.struct([("x", pa.int8())])), [[{"x": 1}], []]),
    "map": (pa.map_(pa.string(), pa.int32()), [[("k", 1)], None]),
    "after_nested": (pa.int32(), [1, 2]),  # a column after the groups: their children skipped
}


def typed_table(rows: int = 2) -> pa.Table:
    return pa.table(
        {n: pa.array(vals * (rows // 2), type=t) for n, (t, vals) in TYPES.items()},
        metadata={b"schema_key": b"kept"},
    )


WRITES: dict[str, dict[str, object]] = {
    "plain": {"store_schema": False},
    "no_dictionary": {"store_schema": False, "use_dictionary": False},
    "zstd_v1": {"store_schema": False, "compression": "zstd", "version": "1.0"},
    "data_page_v2": {"store_schema": False, "data_page_version": "2.0"},
    "row_groups": {"store_schema": False, "row_group_size": 3},
}


@pytest.mark.parametrize("kwargs", WRITES.values(), ids=WRITES.keys())
def test_types_match_pyarrow(tmp_path: Path, kwargs: dict[str, object]) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(typed_table(rows=10), path, **kwargs)
    assert_matches_pyarrow(path)
    if kwargs.get("row_group_size"):
        assert pq.ParquetFile(path).metadata.num_row_groups > 1
    ours = footer_of(path)
    assert ours.num_rows == 10
    assert ours.columns["dict"] == "string" and ours.columns["lstr"] == "string"
    assert ours.columns["ts_ns"] == ("timestamp[us]" if kwargs.get("version") else "timestamp[ns]")


def test_stored_arrow_schema(tmp_path: Path) -> None:
    """With store_schema=True pyarrow restores Arrow types Parquet has no name for (large_string,
    dictionary, timestamp[s], a time zone name); the footer reader names the Parquet types, as
    pyarrow reads a file without a stored schema. Every type Parquet does name matches."""
    plain, stored = tmp_path / "plain.parquet", tmp_path / "stored.parquet"
    table = typed_table(rows=4)
    pq.write_table(table, plain, store_schema=False)
    pq.write_table(table, stored, store_schema=True)
    ours = footer_of(stored)
    assert ours.columns == footer_of(plain).columns
    assert b"ARROW:schema" in ours.metadata and ours.metadata[b"schema_key"] == b"kept"
    theirs = pyarrow_footer(stored)
    assert ours.metadata == theirs.metadata
    restored = {"lstr", "lbin", "dict", "date64", "t32s", "ts_s", "ts_ns_paris"}
    for name, expected in theirs.columns.items():
        if name not in restored and not expected.startswith(tuple(NESTED)):
            assert ours.columns[name] == expected, name


def test_empty_table_and_key_value_metadata(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    meta = {b"a": b"1", b"b": b"", b"\xffbinary": bytes(range(256)), b"json": b'{"x": [1]}'}
    schema = pa.schema([("pid", pa.int32()), ("comm", pa.string())])
    with pq.ParquetWriter(path, schema, store_schema=False, compression="zstd") as writer:
        writer.add_key_value_metadata(meta)
    assert_matches_pyarrow(path)
    ours = footer_of(path)
    assert ours.num_rows == 0 and ours.columns == {"pid": "int32", "comm": "string"}
    assert ours.metadata == meta


def test_project_writer_options(tmp_path: Path) -> None:
    try:
        from sockopt_trace import schema

        options = schema.parquet_write_options()
    except Exception:  # schema.py mid-edit elsewhere: the options it documents
        options = {"compression": "zstd", "store_schema": False}
    table = pq.read_table(SAMPLES[0])
    path = tmp_path / "project.parquet"
    with pq.ParquetWriter(path, table.schema, **options) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({b"sockopt_trace": b"{}"})
    assert_matches_pyarrow(path)
    assert footer_of(path).num_rows == table.num_rows


# --- damage: only ever FooterError, and fast


def expect_footer_error(data: bytes, size: int | None = None) -> None:
    start = time.perf_counter()
    with pytest.raises(FooterError):
        read_footer(io.BytesIO(data), len(data) if size is None else size)
    assert time.perf_counter() - start < 0.5


def sample_bytes() -> bytes:
    return max(SAMPLES, key=lambda p: p.stat().st_size).read_bytes()


def test_not_parquet() -> None:
    expect_footer_error(b"")
    expect_footer_error(b"PAR1")
    expect_footer_error(b"PAR1PAR1PAR1")
    expect_footer_error(b"hello, this is a text file and not Parquet at all\n" * 10)
    expect_footer_error(b"PAR1" + b"\x00" * 4 + b"PAR1")  # a zero-length footer
    expect_footer_error(b"PAR1" + b"\xff\xff\xff\x7f" + b"PAR1")  # longer than the file


def test_short_read() -> None:
    data = sample_bytes()
    expect_footer_error(data, size=len(data) + 100)  # the file is shorter than it was said to be


def test_truncated_anywhere() -> None:
    data = sample_bytes()
    footer_len = int.from_bytes(data[-8:-4], "little")
    cuts = set(range(0, len(data), 997)) | set(range(len(data) - footer_len - 16, len(data)))
    for cut in sorted(cuts):
        expect_footer_error(data[:cut])


def test_last_8_bytes_mangled() -> None:
    data = sample_bytes()
    for i in range(len(data) - 8, len(data)):
        for value in (0x00, 0x7F, 0xFF, data[i] ^ 0x01, data[i] ^ 0x80):
            if value != data[i]:
                expect_footer_error(data[:i] + bytes([value]) + data[i + 1 :])


@pytest.mark.parametrize("flips", [1, 3, 20])
def test_footer_bytes_flipped(flips: int) -> None:
    """A flipped byte may still leave a readable footer (in a statistic, say), but never raises
    anything but FooterError; most flips in the schema or lengths are caught."""
    data = sample_bytes()
    footer_len = int.from_bytes(data[-8:-4], "little")
    rng = random.Random(flips)
    errors = 0
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(flips):
            damaged[len(data) - 8 - rng.randrange(footer_len)] = rng.randrange(256)
        start = time.perf_counter()
        try:
            footer_of_bytes(bytes(damaged))
        except FooterError:
            errors += 1
        assert time.perf_counter() - start < 0.5
    assert errors > 0


# A minimal Thrift compact encoder, to build footers pyarrow would not write.
def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def zz(n: int) -> bytes:
    return varint((n << 1) ^ (n >> 63))


def field(fid: int, ftype: int, value: bytes, last: int = 0) -> bytes:
    if 0 < fid - last <= 15:
        return bytes([(fid - last) << 4 | ftype]) + value
    return bytes([ftype]) + zz(fid) + value


def struct(*fields: tuple[int, int, bytes]) -> bytes:
    out, last = b"", 0
    for fid, ftype, value in fields:
        out += field(fid, ftype, value, last)
        last = fid
    return out + b"\x00"


def binary(b: bytes) -> bytes:
    return varint(len(b)) + b


def struct_list(items: list[bytes]) -> bytes:
    n = len(items)
    head = bytes([n << 4 | 12]) if n < 15 else bytes([0xFC]) + varint(n)
    return head + b"".join(items)


def parquet(footer: bytes) -> bytes:
    return b"PAR1" + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def element(name: bytes, ptype: int | None = None, *rest: tuple[int, int, bytes]) -> bytes:
    typ = [(1, 5, zz(ptype))] if ptype is not None else []
    return struct(*typ, (3, 5, zz(1)), (4, 8, binary(name)), *rest)  # an OPTIONAL column


def file_metadata(elements: list[bytes], kv: list[bytes] | None = None) -> bytes:
    """No rows, no row groups, and an unknown field (skipped) at the end."""
    fields = [(1, 5, zz(2)), (2, 9, struct_list(elements)), (3, 6, zz(0)), (4, 9, b"\x0c")]
    if kv is not None:
        fields.append((5, 9, struct_list(kv)))
    fields.append((6, 8, binary(b"hand made")))
    fields.append(
        (
            99,
            12,
            struct((1, 7, b"\0" * 8), (2, 10, b"\x21\x01\x02"), (3, 11, b"\x01\x58\x02\x03abc")),
        )
    )
    return struct(*fields)


def root(n: int) -> bytes:
    return struct((4, 8, binary(b"schema")), (5, 5, zz(n)))


def assert_crafted_matches_pyarrow(tmp_path: Path, elements: list[bytes]) -> Footer:
    path = tmp_path / "crafted.parquet"
    path.write_bytes(parquet(file_metadata([root(len(elements)), *elements])))
    assert_matches_pyarrow(path)
    return footer_of(path)


def test_legacy_converted_types(tmp_path: Path) -> None:
    """A writer older than logical types annotates with converted_type alone."""
    # name -> (physical type, converted type)
    converted = {"u8": (1, 11), "u16": (1, 12), "u32": (1, 13), "u64": (2, 14), "i8": (1, 15),
                 "i16": (1, 16), "i32": (1, 17), "i64": (2, 18), "utf8": (6, 0), "enum": (6, 4),
                 "json": (6, 19), "bson": (6, 20), "date": (1, 6), "time_ms": (1, 7),
                 "time_us": (2, 8), "ts_ms": (2, 9), "ts_us": (2, 10)}  # fmt: skip
    elements = [element(n.encode(), p, (6, 5, zz(c))) for n, (p, c) in converted.items()]
    elements.append(element(b"dec", 7, (2, 5, zz(9)), (6, 5, zz(5)), (7, 5, zz(2)), (8, 5, zz(20))))
    elements.append(element(b"int96", 3))
    elements.append(element(b"interval", 7, (2, 5, zz(12)), (6, 5, zz(21))))
    footer = assert_crafted_matches_pyarrow(tmp_path, elements)
    assert footer.columns["u32"] == "uint32" and footer.columns["ts_ms"] == "timestamp[ms, tz=UTC]"


def test_logical_types(tmp_path: Path) -> None:
    def unit(u: int) -> bytes:
        return struct((u, 12, b"\0"))

    def integer(bits: int, signed: bool) -> bytes:
        return struct((1, 3, bytes([bits])), (2, 1 if signed else 2, b""))

    def temporal(utc: bool, u: int) -> bytes:
        return struct((1, 1 if utc else 2, b""), (2, 12, unit(u)))

    # name -> (physical type, LogicalType union field, its value)
    logical = {"string": (6, 1, b"\0"), "enum": (6, 4, b"\0"), "json": (6, 12, b"\0"),
               "bson": (6, 13, b"\0"), "null": (1, 11, b"\0"), "date": (1, 6, b"\0"),
               "time_ms": (1, 7, temporal(True, 1)), "time_us": (2, 7, temporal(True, 2)),
               "time_ns": (2, 7, temporal(False, 3)), "ts_ms": (2, 8, temporal(False, 1)),
               "ts_us_utc": (2, 8, temporal(True, 2)), "ts_ns": (2, 8, temporal(False, 3)),
               "i16": (1, 10, integer(16, True)), "u64": (2, 10, integer(64, False)),
               "u32_on_int64": (2, 10, integer(32, False)),  # invalid: pyarrow says int64
               "dec_i32": (1, 5, struct((1, 5, zz(2)), (2, 5, zz(7)))),
               "dec_bytes": (6, 5, struct((1, 5, zz(2)), (2, 5, zz(40))))}  # fmt: skip
    elements = [
        element(n.encode(), p, (10, 12, struct((k, 12, v)))) for n, (p, k, v) in logical.items()
    ]
    for name, length, kind in ((b"uuid", 16, 14), (b"f16", 2, 15)):
        elements.append(element(name, 7, (2, 5, zz(length)), (10, 12, struct((kind, 12, b"\0")))))
    assert_crafted_matches_pyarrow(tmp_path, elements)


def test_missing_value_in_key_value_metadata() -> None:
    kv = [struct((1, 8, binary(b"k"))), struct((1, 8, binary(b"k2")), (2, 8, binary(b"v")))]
    footer = footer_of_bytes(parquet(file_metadata([root(1), element(b"far_id", 5)], kv)))
    assert footer == Footer(0, {b"k": b"", b"k2": b"v"}, {"far_id": "double"})


CRAFTED: dict[str, Callable[[], bytes]] = {
    "list of 2**40": lambda: struct((2, 9, bytes([0xFC]) + varint(2**40))),
    "string of 2**40": lambda: struct((6, 8, varint(2**40))),
    "map of 2**40": lambda: struct((7, 11, varint(2**40) + b"\x88")),
    "bools of 2**40": lambda: struct((7, 9, bytes([0xF1]) + varint(2**40))),
    "endless varint": lambda: struct((3, 6, b"\xff" * 10000)),
    "deep nesting": lambda: field(7, 12, b"\x1c" * 100000),
    "deep nesting in schema": lambda: struct((2, 9, b"\x1c" + b"\x1c" * 100000)),
    "unknown type": lambda: struct((7, 14, b"")),
    "no schema": lambda: struct((3, 6, zz(1))),
    "no row count": lambda: struct((2, 9, struct_list([root(0)]))),
    "root claims more": lambda: file_metadata([root(3), element(b"a", 1)]),
    "group claims more": lambda: file_metadata([root(1), element(b"g", None, (5, 5, zz(9)))]),
    "negative children": lambda: file_metadata([root(1), element(b"g", None, (5, 5, zz(-9)))]),
    "name not utf-8": lambda: file_metadata([root(1), element(b"\xff\xfe", 1)]),
    "no name": lambda: file_metadata([root(1), struct((1, 5, zz(1)))]),
    "bad physical type": lambda: file_metadata([root(1), element(b"a", 99)]),
    "schema of ints": lambda: struct((2, 9, bytes([0x25]) + zz(1) + zz(2)), (3, 6, zz(1))),
    "key not a string": lambda: file_metadata([root(0)], [struct((1, 5, zz(1)))]),
}


@pytest.mark.parametrize("make", CRAFTED.values(), ids=CRAFTED.keys())
def test_crafted_damage(make: Callable[[], bytes]) -> None:
    expect_footer_error(parquet(make()))


def test_crafted_well_formed() -> None:
    footer = footer_of_bytes(parquet(file_metadata([root(0)])))
    assert footer == Footer(0, {}, {})


def test_import_does_not_load_pyarrow() -> None:
    code = "import sys, sockopt_trace.analyzer.footer as f; print(sorted(set(sys.modules) & {'pyarrow', 'numpy'}))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- pyarrow's reader, for recordings of many files: the same Footers, the same errors


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.parent.name)
def test_both_readers_agree_on_samples(path: Path) -> None:
    with open(path, "rb") as fh:
        assert read_footer_arrow(fh, path.stat().st_size) == footer_of(path)


def test_both_readers_agree_on_the_project_writer_and_stored_schemas(tmp_path: Path) -> None:
    """A stored Arrow schema's dictionary and large string read as the one Parquet string."""
    table = pa.table(
        {
            "s": pa.array(["a", "b"]).dictionary_encode(),
            "l": pa.array(["x", None], pa.large_string()),
            "i": pa.array([1, 2], pa.int32()),
            "t": pa.array([1, 2], pa.timestamp("ns")),
        }
    ).replace_schema_metadata({b"k": b"v"})
    for store in (False, True):
        path = tmp_path / f"t{store}.parquet"
        pq.write_table(table, path, store_schema=store, compression="zstd")
        with open(path, "rb") as fh:
            assert read_footer_arrow(fh, path.stat().st_size) == footer_of(path), store


def test_pyarrow_reader_raises_only_footer_error() -> None:
    data = sample_bytes()
    for bad in (b"", b"PAR1PAR1PAR1", data[: len(data) // 2], data[:-3] + b"XYZ"):
        with pytest.raises(FooterError):
            read_footer_arrow(io.BytesIO(bad), len(bad))


def test_many_files_use_pyarrow_few_do_not() -> None:
    assert reader_for(1) is read_footer and reader_for(ARROW_FROM_FILES - 1) is read_footer
    assert reader_for(ARROW_FROM_FILES) is read_footer_arrow
