"""Decode what each call was about (issue 16) into the format's context columns, vectorized.

The kernel sends raw bytes (getsockopt.h: cgroup id, the socket's family, addresses and ports,
8 bytes of *optval, TCP_INFO fields) and flags saying which were read. Here every column is one
numpy expression over the batch; addresses and cgroups are formatted once per distinct value
(group_rows) into dictionary columns, which Parquet then writes without hashing every row. Unix
sockets come as inode numbers, named by path by unixpaths.py (only when a batch has some).
"""

from __future__ import annotations

import socket

import numpy as np
import pyarrow as pa

from sockopt_trace.recorder.cgroups import CgroupNames, describe
from sockopt_trace.recorder.grouping import dictionary, group_rows
from sockopt_trace.recorder.unixpaths import UnixPaths

CTX_SOCKET, CTX_VALUE, CTX_VALUE4, CTX_TCP_INFO = 1, 2, 4, 8
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOL_TCP, TCP_INFO = 6, 11
# TCP_INFO column -> (event field, end of the field in struct tcp_info: valid if optlen >= it)
TCPI_FIELDS = {
    "tcpi_state": ("tcpi_state", 1),
    "tcpi_retransmits": ("tcpi_retransmits", 3),
    "tcpi_rtt_us": ("tcpi_rtt", 72),
    "tcpi_rttvar_us": ("tcpi_rttvar", 76),
    "tcpi_snd_cwnd": ("tcpi_snd_cwnd", 84),
    "tcpi_lost": ("tcpi_lost", 36),
    "tcpi_total_retrans": ("tcpi_total_retrans", 104),
    "tcpi_delivery_rate": ("tcpi_delivery_rate", 168),
}


def _masked(values: np.ndarray, valid: np.ndarray, typ: pa.DataType) -> pa.Array:
    """values where valid, nulls elsewhere (no mask at all when every row is valid)."""
    mask = None if valid.all() else ~valid
    return pa.array(values, typ, mask=mask)


def _format(family: int, raw: np.ndarray) -> str | None:
    if family == AF_INET:
        return socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))
    if family == AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, bytes(raw))
    return None


def addresses(
    family: np.ndarray, raw: np.ndarray, present: np.ndarray, unix: UnixPaths | None = None
) -> pa.Array:
    """One string per distinct (family, address) where `present`; null elsewhere. AF_UNIX
    addresses are inode numbers, named by `unix`."""
    words = np.ascontiguousarray(raw).view("<u8")
    fam = np.where(present, family, 0)
    index, first = group_rows(fam, words[:, 0], words[:, 1])
    names = [
        unix.path(int(words[r, 0])) if unix and fam[r] == AF_UNIX else _format(int(fam[r]), raw[r])
        for r in first.tolist()
    ]
    return dictionary(index, names)


def _unix_rows(ev: np.ndarray) -> np.ndarray:
    return ((ev["context"] & CTX_SOCKET) != 0) & (ev["family"] == AF_UNIX)


class ContextDecoder:
    """(events) -> the context columns; remembers cgroup names across batches."""

    def __init__(self, cgroups: CgroupNames | None = None, unix: UnixPaths | None = None) -> None:
        self.cgroups = cgroups if cgroups is not None else CgroupNames()
        self.unix = unix if unix is not None else UnixPaths()
        self._described: dict[int, tuple[str | None, ...]] = {}

    def observe(self, ev: np.ndarray) -> None:
        """On the consumer's thread, each batch as it is read: name its Unix sockets while they
        are open (the columns are made seconds later)."""
        if len(ev):
            self._name_unix(ev, _unix_rows(ev))

    def _name_unix(self, ev: np.ndarray, unix: np.ndarray) -> None:
        if unix.any():  # most batches have no AF_UNIX call: no pass over them
            rows = np.flatnonzero(unix)  # the fields needed, not whole records (10x the bytes)
            local = ev["local_addr"][rows].view("<u8")[:, 0]
            peer = ev["peer_addr"][rows].view("<u8")[:, 0]
            self.unix.resolve(local, peer, ev["pid"][rows], ev["ts_ns"][rows])

    def _cgroup(self, cgroup_id: int) -> tuple[str | None, ...]:
        if cgroup_id not in self._described:
            path = self.cgroups.path(cgroup_id)
            self._described[cgroup_id] = (path, *(describe(path) if path else (None,) * 3))
        return self._described[cgroup_id]

    def __call__(self, ev: np.ndarray) -> dict[str, pa.Array]:
        ctx = ev["context"]
        ids = ev["cgroup_id"].astype(np.int64)
        index, first = group_rows(ids)
        named = [self._cgroup(int(ids[r])) for r in first.tolist()]
        columns: dict[str, pa.Array] = {"cgroup_id": pa.array(ids)}
        for i, name in enumerate(("cgroup", "unit", "pod", "container")):
            columns[name] = dictionary(index, [n[i] for n in named])

        sock = (ctx & CTX_SOCKET) != 0
        family = ev["family"].astype(np.int32)
        inet = sock & ((family == AF_INET) | (family == AF_INET6))
        unix = sock & (family == AF_UNIX)
        self._name_unix(ev, unix)
        for name, src in (("family", "family"), ("sock_type", "sock_type")):
            columns[name] = _masked(ev[src].astype(np.int32), sock, pa.int32())
        columns["protocol"] = _masked(ev["protocol"].astype(np.int32), sock, pa.int32())
        columns["state"] = _masked(ev["state"].astype(np.int32), sock, pa.int32())
        peer_words = np.ascontiguousarray(ev["peer_addr"]).view("<u8")
        peer_port = ev["peer_port"].byteswap().astype(np.int32)  # kept in network order
        has_peer = inet & ((peer_port != 0) | (peer_words != 0).any(axis=1))
        local_present, peer_present = inet, has_peer
        if unix.any():  # inode 0: no peer (or not read)
            local_present = inet | unix
            peer_present = has_peer | (unix & (peer_words[:, 0] != 0))
        columns["local_addr"] = addresses(family, ev["local_addr"], local_present, self.unix)
        columns["local_port"] = _masked(ev["local_port"].astype(np.int32), inet, pa.int32())
        columns["peer_addr"] = addresses(family, ev["peer_addr"], peer_present, self.unix)
        columns["peer_port"] = _masked(peer_port, has_peer, pa.int32())

        optlen = ev["optlen_out"]
        tcp_info = (ev["level"] == SOL_TCP) & (ev["optname"] == TCP_INFO)
        ok = (ev["ret"] == 0) & ~tcp_info
        raw = ev["value"].astype(np.int64)
        value = np.where(
            optlen >= 8, raw, np.where(optlen >= 4, raw.astype(np.int32), raw & 0xFFFF)
        )
        value = np.where(optlen == 1, raw & 0xFF, value)
        full = (ctx & CTX_VALUE) != 0
        four = (ctx & CTX_VALUE4) != 0
        valid = ok & (optlen > 0) & (full | (four & (optlen <= 4)))
        columns["value"] = _masked(value.astype(np.int64), valid, pa.int64())
        read = ((ctx & CTX_TCP_INFO) != 0) & tcp_info & (ev["ret"] == 0)
        for name, (src, end) in TCPI_FIELDS.items():
            typ = pa.int64() if name == "tcpi_delivery_rate" else pa.int32()
            if not read.any():  # most batches: no TCP_INFO call, no pass over the records
                columns[name] = pa.nulls(len(ev), typ)
                continue
            values = ev[src].astype(np.int64 if typ == pa.int64() else np.int32)
            columns[name] = _masked(values, read & (optlen >= end), typ)
        return columns
