"""recorder/unixpaths.py: Unix sockets' inode numbers named by path from /proc/net/unix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sockopt_trace.recorder.cgroups import CgroupNames
from sockopt_trace.recorder.context import ContextDecoder
from sockopt_trace.recorder.events import event_dtype
from sockopt_trace.recorder.unixpaths import UNBOUND_REREAD_NS, UnixPaths, parse

# Captured here (6.18): a listener on a path, its accepted socket (the listener's path), the
# unbound client, a datagram socket bound to an abstract name with a NUL in it, the unbound one
# connected to it, a socketpair; and a low inode (padded), a path with a space.
SAMPLE = b"""\
Num       RefCount Protocol Flags    Type St Inode Path
000000004dbfce93: 00000003 00000000 00000000 0001 03    28
00000000f71ff798: 00000002 00000000 00000000 0002 03 72071
000000005960f599: 00000002 00000000 00010000 0001 01 72067 /tmp/st-sample.sock
00000000d1c6fc46: 00000003 00000000 00000000 0001 03 72069 /tmp/st-sample.sock
000000008d9ff409: 00000003 00000000 00000000 0001 03 72073
0000000066431f45: 00000003 00000000 00000000 0001 03 72072
000000002ce85020: 00000003 00000000 00000000 0001 03 72068
00000000f28891f0: 00000003 00000000 00000000 0002 03 72070 @st-a@x
0000000000000000: 00000002 00000000 00010000 0001 01 4294967296 /run/a b\xff
"""


def test_the_table_parses_to_paths_by_inode() -> None:
    assert parse(SAMPLE) == {
        28: None,
        72071: None,
        72067: "/tmp/st-sample.sock",
        72069: "/tmp/st-sample.sock",
        72073: None,
        72072: None,
        72068: None,
        72070: "@st-a@x",
        2**32: "/run/a b\\xff",
    }
    assert parse(b"") == {}


class Proc:
    """A /proc with a table for our network namespace and for the processes given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.now = 10**12
        self.table(root / "self", b"", "a")

    def table(self, where: Path, text: bytes, netns: str) -> None:
        (where / "net").mkdir(parents=True, exist_ok=True)
        (where / "net" / "unix").write_bytes(SAMPLE.splitlines(keepends=True)[0] + text)
        (where / "ns").mkdir(exist_ok=True)
        shared = self.root / f"netns-{netns}"
        shared.touch()
        if not (where / "ns" / "net").exists():
            (where / "ns" / "net").hardlink_to(shared)

    def paths(self) -> UnixPaths:
        return UnixPaths(self.root, lambda: self.now)


def line(inode: int, path: str = "") -> bytes:
    named = f" {path}" if path else ""
    return f"0000000000000000: 00000002 00000000 00000000 0001 01 {inode}{named}\n".encode()


def calls(local: list[int], peer: list[int], ts: int, pids: list[int] | None = None):
    n = len(local)
    return (
        np.array(local, np.uint64),
        np.array(peer, np.uint64),
        np.array(pids or [1] * n, np.uint32),
        np.full(n, ts, np.uint64),
    )


def test_read_again_only_for_an_inode_not_held(tmp_path: Path) -> None:
    proc = Proc(tmp_path)
    proc.table(tmp_path / "self", line(5, "/run/s") + line(6), "a")
    paths = proc.paths()
    paths.resolve(*calls([6], [5], proc.now - 1))
    assert (paths.path(5), paths.path(6), paths.reads) == ("/run/s", None, 1)
    proc.now += 10
    paths.resolve(*calls([6, 5], [5, 0], proc.now - 1))  # both known: no read
    assert paths.reads == 1
    # a new socket: read again; one gone since (7, never in the table) is null, and not read
    # again for its next calls
    proc.table(tmp_path / "self", line(5, "/run/s") + line(6) + line(8, "@x"), "a")
    paths.resolve(*calls([8, 7], [0, 0], proc.now - 1))
    assert (paths.path(8), paths.path(7), paths.reads) == ("@x", None, 2)
    paths.resolve(*calls([7], [0], proc.now - 1))
    assert paths.reads == 2


def test_a_socket_unbound_at_the_last_read_is_read_again_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    proc = Proc(tmp_path)
    proc.table(tmp_path / "self", line(6), "a")
    paths = proc.paths()
    paths.resolve(*calls([6], [0], proc.now - 1))
    proc.table(tmp_path / "self", line(6, "/run/late"), "a")  # bound after its first call
    proc.now += UNBOUND_REREAD_NS // 2
    paths.resolve(*calls([6], [0], proc.now - 1))  # a call since the read, but too soon
    assert (paths.path(6), paths.reads) == (None, 1)
    proc.now += UNBOUND_REREAD_NS
    paths.resolve(*calls([6], [0], proc.now - UNBOUND_REREAD_NS * 2))  # a call before the read
    assert paths.reads == 1
    paths.resolve(*calls([6], [0], proc.now - 1))
    assert (paths.path(6), paths.reads) == ("/run/late", 2)


def test_a_name_stays_for_calls_not_yet_written_after_its_socket_is_gone(tmp_path: Path) -> None:
    proc = Proc(tmp_path)
    proc.table(tmp_path / "self", line(5, "/run/s") + line(6), "a")
    paths = proc.paths()
    paths.resolve(*calls([6], [5], proc.now - 1))
    proc.table(tmp_path / "self", line(9, "/run/n"), "a")  # 5 and 6 closed
    proc.now += 10
    paths.resolve(*calls([9], [0], proc.now - 1))
    assert (paths.path(5), paths.path(9), paths.reads) == ("/run/s", "/run/n", 2)
    proc.now += 200 * 10**9  # long unused: forgotten at the next read
    paths.resolve(*calls([10], [0], proc.now - 1))
    assert 5 not in paths.names and paths.reads == 3


def test_sockets_of_another_network_namespace_are_read_through_their_process(
    tmp_path: Path,
) -> None:
    proc = Proc(tmp_path)
    proc.table(tmp_path / "self", line(5, "/run/host"), "a")
    proc.table(tmp_path / "41", b"", "a")  # our namespace: not read again
    proc.table(tmp_path / "42", line(7, "/run/pod.sock") + line(8), "b")
    proc.table(tmp_path / "43", line(7, "/run/pod.sock") + line(8), "b")
    paths = proc.paths()
    paths.resolve(*calls([5, 8, 8, 8], [0, 7, 7, 7], proc.now - 1, [41, 42, 43, 99]))
    assert (paths.path(5), paths.path(7), paths.path(8)) == ("/run/host", "/run/pod.sock", None)
    assert paths.reads == 1


def test_unix_rows_get_paths_and_no_ports(tmp_path: Path) -> None:
    proc = Proc(tmp_path)
    table = line(5, "/run/s") + line(6, "/run/s") + line(7) + line(8, "@abs@x") + line(9)
    proc.table(tmp_path / "self", table, "a")
    ev = np.zeros(5, event_dtype(context=True))
    ev["context"] = [1, 1, 1, 1, 0]
    ev["family"] = [1, 1, 1, 1, 1]
    ev["local_port"] = [0, 0, 0, 0, 0]
    words = {"local_addr": [7, 6, 5, 9, 5], "peer_addr": [6, 7, 0, 8, 6]}
    for field, inodes in words.items():
        ev[field].view("<u8")[:, 0] = inodes
    cols = ContextDecoder(CgroupNames(tmp_path), proc.paths())(ev)
    got = {k: cols[k].to_pylist() for k in ("local_addr", "peer_addr", "local_port", "peer_port")}
    assert got == {
        # client (unbound) -> accepted socket; accepted -> client; listener; bound to a peer's
        # abstract name; a row whose socket was not read
        "local_addr": [None, "/run/s", "/run/s", None, None],
        "peer_addr": ["/run/s", None, None, "@abs@x", None],
        "local_port": [None] * 5,
        "peer_port": [None] * 5,
    }


def test_batches_without_unix_sockets_never_read_the_table(tmp_path: Path) -> None:
    proc = Proc(tmp_path)
    decoder = ContextDecoder(CgroupNames(tmp_path), proc.paths())
    ev = np.zeros(3, event_dtype(context=True))
    ev["context"] = 1
    ev["family"] = [2, 10, 2]
    decoder.observe(ev)
    decoder(ev)
    decoder.observe(ev[:0])
    assert decoder.unix.reads == 0
