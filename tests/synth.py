"""Synthetic recordings that follow the format contract exactly, for tests and the benchmark.

Rows come from numpy with a fixed seed, so a test can regenerate the same rows (`synth_events`)
and compute its expected answers independently of DuckDB. Files are written the way the
recorder writes them: `parquet_write_options()`, rows sorted by time, and the metadata added as
a key-value pair when the file is closed (`parquet_write_options` stores no Arrow schema, so
metadata on the schema would not reach the file). Sequence numbers start at 1, as the
recorder's do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sockopt_trace.schema import (
    CONTEXT_COLUMNS,
    FORMAT_VERSION,
    LOSS_REASONS,
    METADATA_KEY,
    FileName,
    RecordingMetadata,
    arrow_schema,
    parquet_write_options,
)

START_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
# The contract's columns and the context columns (which the recorder writes when asked to)
SYNTH_SCHEMA = pa.schema([*arrow_schema(), *arrow_schema(CONTEXT_COLUMNS)])

# (comm, pid, threads): a handful of processes with different habits.
PROCESSES: tuple[tuple[str, int, int], ...] = (
    ("nginx", 1200, 4),
    ("curl", 3400, 1),
    ("python3", 5100, 2),
    ("java", 7000, 8),
    ("envoy", 8800, 3),
)
PROCESS_WEIGHTS = (0.40, 0.05, 0.15, 0.30, 0.10)

# (level, optname, median latency ns): known options, plus one unknown pair.
OPTIONS: tuple[tuple[int, int, float], ...] = (
    (1, 4, 300.0),  # SOL_SOCKET / SO_ERROR
    (6, 11, 900.0),  # IPPROTO_TCP / TCP_INFO
    (1, 8, 250.0),  # SOL_SOCKET / SO_RCVBUF
    (1, 7, 260.0),  # SOL_SOCKET / SO_SNDBUF
    (0, 80, 1500.0),  # IPPROTO_IP / SO_ORIGINAL_DST
    (41, 26, 280.0),  # IPPROTO_IPV6 / IPV6_V6ONLY
    (6, 999, 200.0),  # IPPROTO_TCP / unknown option 999
)
OPTION_WEIGHTS = (0.30, 0.30, 0.15, 0.10, 0.08, 0.05, 0.02)

# Return values: success, and a few errnos (EBADF, ENOTSOCK, ENOPROTOOPT, EINVAL, unknown 4000).
RETS = (0, -9, -88, -92, -22, -4000)
RET_WEIGHTS = (0.95, 0.01, 0.01, 0.015, 0.01, 0.005)

# Sockets: (family, sock_type, protocol, state, local_addr, local_port, peer_addr, peer_port).
SOCKETS: tuple[tuple[int, int, int, int, str, int | None, str | None, int | None], ...] = (
    (2, 1, 6, 1, "10.0.0.5", 8080, "10.0.3.17", 51234),  # TCP, ESTABLISHED
    (2, 1, 6, 1, "10.0.0.5", 41000, "10.0.5.7", 8080),  # TCP upstream
    (10, 1, 6, 1, "2001:db8::5", 443, "2001:db8::99", 40000),  # TCP over IPv6
    (2, 1, 6, 10, "0.0.0.0", 8080, None, None),  # TCP, LISTEN
    (2, 2, 17, 7, "127.0.0.1", 5353, None, None),  # UDP, unconnected
    (1, 1, 0, 1, "/run/app.sock", None, None, None),  # Unix, server side
)
SOCKET_WEIGHTS = (0.40, 0.25, 0.15, 0.05, 0.05, 0.10)
CGROUPS: tuple[tuple[int, str, str | None, str | None, str | None], ...] = (
    (1001, "/system.slice/nginx.service", "nginx.service", None, None),
    (1002, "/user.slice/user-1000.slice/session-2.scope", "session-2.scope", None, None),
    (
        1003,
        "/kubepods.slice/kubepods-pod0f0e0d0c_0b0a_0908_0706_050403020100.slice/"
        "cri-containerd-" + "ab" * 32 + ".scope",
        "cri-containerd-" + "ab" * 32 + ".scope",
        "0f0e0d0c-0b0a-0908-0706-050403020100",
        "ab" * 32,
    ),
)

CALLSITES = tuple(f"fn_{i}+0x{16 * i + 3:x}" for i in range(12))
STACKS = tuple(f"main;loop_{i % 3};handler_{i};fn_{i}" for i in range(12))


def synth_events(
    n: int,
    *,
    seed: int = 0,
    host: str = "host-a",
    start_ns: int = START_NS,
    rate_per_s: float = 1_000_000.0,
    stacks: str = "callsite",
    stack_sample_period: int = 1,
) -> pa.Table:
    """`n` rows in `SYNTH_SCHEMA`, sorted by time; the same arguments give the same rows."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1e9 / rate_per_s, n).astype(np.int64) + 1
    ts = start_ns + np.cumsum(gaps)
    proc = rng.choice(len(PROCESSES), n, p=PROCESS_WEIGHTS)
    comm_idx = proc
    pids = np.array([p for _, p, _ in PROCESSES], dtype=np.int32)[proc]
    nthreads = np.array([t for _, _, t in PROCESSES])[proc]
    tids = pids + (rng.integers(0, 1 << 20, n) % nthreads).astype(np.int32)
    opt = rng.choice(len(OPTIONS), n, p=OPTION_WEIGHTS)
    level = np.array([lv for lv, _, _ in OPTIONS], dtype=np.int32)[opt]
    optname = np.array([o for _, o, _ in OPTIONS], dtype=np.int32)[opt]
    median = np.array([m for _, _, m in OPTIONS])[opt]
    latency = (median * rng.lognormal(0.0, 0.6, n)).astype(np.int64) + 50
    outliers = rng.random(n) < 1e-4
    latency[outliers] *= 100
    ret = np.array(RETS, dtype=np.int32)[rng.choice(len(RETS), n, p=RET_WEIGHTS)]
    site = (proc * 3 + opt) % len(CALLSITES)
    optlen_in = np.where(optname == 11, 232, 4).astype(np.int32)
    optlen_out = np.where(ret < 0, optlen_in, optlen_in).astype(np.int32)
    columns: dict[str, Any] = {
        "ts_ns": ts,
        "latency_ns": latency,
        "host": _repeat(host, n),
        "pid": pids,
        "tid": tids,
        "comm": _take([c for c, _, _ in PROCESSES], comm_idx),
        "uid": np.where(proc == 0, 33, 1000).astype(np.int64),
        "fd": (rng.integers(3, 200, n)).astype(np.int32),
        "level": level,
        "optname": optname,
        "optlen_in": optlen_in,
        "optlen_out": optlen_out,
        "ret": ret,
        "callsite": _take(CALLSITES, site) if stacks != "off" else pa.nulls(n, pa.string()),
        "stack": _stacks(n, site, stacks, stack_sample_period),
        **_context(rng, proc, level, optname, ret),
        **_locations(n, site, stacks, stack_sample_period),
        "weight": np.ones(n, dtype=np.int32),
    }
    return pa.table(columns, schema=SYNTH_SCHEMA)


def _context(
    rng: np.random.Generator,
    proc: np.ndarray,
    level: np.ndarray,
    optname: np.ndarray,
    ret: np.ndarray,
) -> dict[str, Any]:
    """Socket, value and cgroup columns (drawn after the others: those stay as they were)."""
    n = len(proc)
    sock = rng.choice(len(SOCKETS), n, p=SOCKET_WEIGHTS)
    no_socket = (ret == -9) | (ret == -88)  # EBADF, ENOTSOCK: the fd was not read as a socket
    columns: dict[str, Any] = {}
    names = ("family", "sock_type", "protocol", "state", "local_addr", "local_port")
    for i, name in enumerate((*names, "peer_addr", "peer_port")):
        values = [s[i] for s in SOCKETS]
        typ = pa.string() if isinstance(values[0], str) else pa.int32()
        taken = pc.take(pa.array(values, typ), pa.array(sock.astype(np.int32)))
        columns[name] = pc.if_else(pa.array(no_socket), pa.nulls(n, typ), taken)
    cg = proc % len(CGROUPS)
    columns["cgroup_id"] = np.array([c[0] for c in CGROUPS], dtype=np.int64)[cg]
    for i, name in enumerate(("cgroup", "unit", "pod", "container")):
        columns[name] = pc.take(pa.array([c[i + 1] for c in CGROUPS], pa.string()), cg)
    ok = ret == 0
    tcp_info = ok & (level == 6) & (optname == 11)
    so_error = (level == 1) & (optname == 4)
    errnos = rng.choice(np.array([0, 111, 110, 104]), n, p=(0.9, 0.05, 0.03, 0.02))
    value = np.where(so_error, errnos, np.where(optname == 8, 212992, 1)).astype(np.int64)
    columns["value"] = pa.array(value, mask=~(ok & ~tcp_info))
    rtt = (rng.lognormal(np.log(200 + 3000 * (sock == 1)), 0.5, n)).astype(np.int32)
    fields = {
        "tcpi_state": np.ones(n, np.int32),
        "tcpi_retransmits": np.zeros(n, np.int32),
        "tcpi_rtt_us": rtt,
        "tcpi_rttvar_us": (rtt // 4).astype(np.int32),
        "tcpi_snd_cwnd": np.full(n, 10, np.int32),
        "tcpi_lost": np.zeros(n, np.int32),
        "tcpi_total_retrans": rng.poisson(0.1, n).astype(np.int32),
        "tcpi_delivery_rate": (rng.lognormal(18, 1, n)).astype(np.int64),
    }
    for name, data in fields.items():
        columns[name] = pa.array(data, mask=~tcp_info)
    return columns


def _locations(n: int, site: np.ndarray, stacks: str, period: int) -> dict[str, Any]:
    """Where the call sites are: one synthetic object, each site at its own offset."""
    if stacks == "off":
        return {
            "callsite_object": pa.nulls(n, pa.string()),
            "callsite_build_id": pa.nulls(n, pa.string()),
            "callsite_offset": pa.nulls(n, pa.int64()),
            "callsite_address": pa.nulls(n, pa.int64()),
            "stack_locations": pa.nulls(n, pa.string()),
        }
    offsets = (0x1000 + 16 * site + 3).astype(np.int64)
    return {
        "callsite_object": _repeat("/opt/synth/bin/server", n),
        "callsite_build_id": _repeat(SYNTH_BUILD_ID, n),
        "callsite_offset": offsets,
        "callsite_address": offsets,
        "stack_locations": _stacks(n, site, stacks, period, STACK_LOCATIONS),
    }


SYNTH_BUILD_ID = "5e" * 20


def frame_address(frame: str) -> int:
    """Where a synthetic frame is: each distinct name at its own address of the one object."""
    return 0x2000 + 16 * sorted({f for s in STACKS for f in s.split(";")}).index(frame)


STACK_LOCATIONS = tuple(
    ";".join(f"{SYNTH_BUILD_ID}:{frame_address(f):#x}:{frame_address(f):#x}" for f in s.split(";"))
    for s in STACKS
)


def _repeat(value: str, n: int) -> pa.Array:
    return pc.take(pa.array([value]), pa.array(np.zeros(n, dtype=np.int32)))


def _take(vocab: Sequence[str], idx: np.ndarray) -> pa.Array:
    return pc.take(pa.array(list(vocab)), pa.array(idx.astype(np.int32)))


def _stacks(
    n: int, site: np.ndarray, stacks: str, period: int, vocab: Sequence[str] = STACKS
) -> pa.Array:
    if stacks != "full":
        return pa.nulls(n, pa.string())
    arr = _take(vocab, site)
    keep = np.arange(n) % period == 0
    return pc.if_else(pa.array(keep), arr, pa.nulls(n, pa.string()))


def make_metadata(table: pa.Table | None = None, **overrides: Any) -> RecordingMetadata:
    """Metadata for a file holding `table`, with any field overridden."""
    ts = table.column("ts_ns") if table is not None else None
    start = int(pc.min(ts).as_py()) - 1000 if ts is not None and len(ts) else START_NS
    end = int(pc.max(ts).as_py()) + 1000 if ts is not None and len(ts) else START_NS + 10**9
    fields: dict[str, Any] = {
        "host": "host-a",
        "kernel": "6.18.0-synthetic",
        "probe": "tracepoint",
        "recorder_version": "0.1.0",
        "recording_id": "rec-0000",
        "sequence": 1,
        "command_line": ["sockopt-trace", "record", "-o", "rec"],
        "filters": {},
        "clock": {"monotonic_ns": 0, "realtime_ns": START_NS},
        "start_ns": start,
        "end_ns": end,
        "events": table.num_rows if table is not None else 0,
        "lost": dict.fromkeys(LOSS_REASONS, 0),
    }
    fields.update(overrides)
    return RecordingMetadata(**fields)


def write_file(
    path: Path, table: pa.Table, meta: RecordingMetadata, row_group_rows: int = 1 << 20
) -> Path:
    """Write one recording file the way the recorder does."""
    with pq.ParquetWriter(path, table.schema, **parquet_write_options()) as writer:
        for start in range(0, max(table.num_rows, 1), row_group_rows):
            writer.write_table(table.slice(start, row_group_rows))
        writer.add_key_value_metadata({METADATA_KEY: meta.to_bytes()})
    return path


def write_recording(
    directory: Path,
    n_events: int,
    *,
    files: int = 2,
    seed: int = 0,
    host: str = "host-a",
    recording_id: str | None = None,
    start_ns: int = START_NS,
    lost: dict[str, int] | None = None,
    stacks: str = "callsite",
    stack_sample_period: int = 1,
    skip_sequences: Sequence[int] = (),
    row_group_rows: int = 1 << 20,
) -> list[Path]:
    """A recording directory of `files` consecutive files holding `n_events` rows in all.

    File i (sequence i + 1) holds the rows of `synth_events(..., seed=seed + i)`; `lost` is put
    on the first file; sequences in `skip_sequences` are not written (to make gaps).
    """
    directory.mkdir(parents=True, exist_ok=True)
    recording_id = recording_id or uuid.uuid5(uuid.NAMESPACE_URL, f"{host}/{seed}").hex
    paths = []
    per_file = [n_events // files + (1 if i < n_events % files else 0) for i in range(files)]
    t0 = start_ns
    for i, n in enumerate(per_file):
        seq = i + 1
        table = synth_events(
            n,
            seed=seed + i,
            host=host,
            start_ns=t0,
            stacks=stacks,
            stack_sample_period=stack_sample_period,
        )
        t0 = int(table.column("ts_ns")[-1].as_py()) + 10_000 if n else t0 + 10**9
        if seq in skip_sequences:
            continue
        meta = make_metadata(
            table,
            host=host,
            recording_id=recording_id,
            sequence=seq,
            lost={**dict.fromkeys(LOSS_REASONS, 0), **(lost if i == 0 and lost else {})},
            stacks=stacks,
            stack_sample_period=stack_sample_period,
        )
        name = FileName(FileName.recording_prefix(host, recording_id), seq)
        paths.append(write_file(directory / name.final, table, meta, row_group_rows))
    return paths


def write_events(directory: Path, table: pa.Table, *, files: int = 1, **meta: Any) -> list[Path]:
    """A recording directory holding the rows of `table` (any order: sorted by time here), in
    `files` consecutive files; `meta` overrides metadata fields of every file (host, probe,
    filters, lost, stacks, ...). For tables built by a test, e.g. with changes injected."""
    directory.mkdir(parents=True, exist_ok=True)
    table = table.sort_by("ts_ns")
    host = meta.get("host", "host-a")
    meta.setdefault("recording_id", uuid.uuid5(uuid.NAMESPACE_URL, str(directory)).hex)
    paths = []
    for i, part in enumerate(np.array_split(np.arange(table.num_rows), files)):
        chunk = table.take(pa.array(part))
        name = FileName(FileName.recording_prefix(host, meta["recording_id"]), i + 1)
        paths.append(
            write_file(directory / name.final, chunk, make_metadata(chunk, sequence=i + 1, **meta))
        )
    return paths


def read_rows(paths: Sequence[Path]) -> pa.Table:
    """All rows of `paths` read back with pyarrow (independent of the analyzer)."""
    return pa.concat_tables(pq.read_table(p, schema=arrow_schema()) for p in paths)


# -- files that are not valid recordings, for the bad-input tests ------------------------------

BAD_KINDS = ("zero-byte", "text", "truncated", "other-schema", "future-version")


def bad_file(directory: Path, kind: str) -> Path:
    """A `*.parquet` file in `directory` that the analyzer must refuse, of the given kind."""
    path = directory / f"{kind}.parquet"
    table = synth_events(50, seed=3)
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("host,pid\nh,1\n")
    elif kind == "truncated":
        write_file(path, table, make_metadata(table))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "other-schema":
        pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    elif kind == "future-version":
        write_with_metadata(path, metadata_json(format_version=FORMAT_VERSION + 1), table)
    else:
        raise ValueError(kind)
    return path


def write_with_metadata(path: Path, raw: bytes, table: pa.Table | None = None) -> Path:
    """A Parquet file of `table` whose format metadata is exactly `raw`."""
    table = table if table is not None else synth_events(20, seed=4)
    with pq.ParquetWriter(path, table.schema, **parquet_write_options()) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({METADATA_KEY: raw})
    return path


def metadata_json(**changes: Any) -> bytes:
    data = json.loads(make_metadata().to_bytes())
    data.update(changes)
    return json.dumps(data).encode()


def metadata_without(field: str) -> bytes:
    data = json.loads(metadata_json())
    del data[field]
    return json.dumps(data).encode()
