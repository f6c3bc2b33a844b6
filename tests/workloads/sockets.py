"""A workload that knows its own sockets, for the kernel test of the context columns.

usage: python3 sockets.py UNIX_PATH
Opens an IPv4 and an IPv6 TCP connection, a listening socket, an unconnected and a connected
UDP socket, a Unix stream connection to a listener bound to UNIX_PATH (both ends), Unix datagram
sockets bound to abstract names, a socketpair, a TCP socket whose peer closed, and a pipe; calls
getsockopt on each, and prints one JSON object: its pid, its cgroup v2 path (from
/proc/self/cgroup) and, for every getsockopt call in the order made, what the call returned and
what the socket is by the kernel's other interfaces (getsockname, getpeername, SO_DOMAIN, ...).
It makes no getsockopt call that it does not report. Its sockets stay open LINGER_S (times
SOCKOPT_TRACE_TEST_TIME_SCALE, as under emulation in a VM) after the
last call: the recorder names Unix sockets from /proc/net/unix as it reads the calls.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

TCP_INFO_LEN = 232  # glibc's struct tcp_info
TCPI = {  # UAPI struct tcp_info: field -> (offset, format)
    "tcpi_state": (0, "B"),
    "tcpi_retransmits": (2, "B"),
    "tcpi_lost": (32, "I"),
    "tcpi_rtt_us": (68, "I"),
    "tcpi_rttvar_us": (72, "I"),
    "tcpi_snd_cwnd": (80, "I"),
    "tcpi_total_retrans": (100, "I"),
    "tcpi_delivery_rate": (160, "Q"),
}
LINGER_S = 1.0
calls: list[dict] = []


def _name(addr: object) -> tuple[str | None, int | None]:
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    if isinstance(addr, bytes):  # AF_UNIX, abstract: as /proc/net/unix shows it
        return "@" + addr[1:].decode().replace("\0", "@"), None
    assert isinstance(addr, str)
    return addr or None, None  # AF_UNIX: a path, or "" unbound


def call(
    sock: socket.socket | int, level: int, optname: int, state: int | None = None, buflen: int = 0
) -> None:
    """One getsockopt call, reported with its result and the socket's identity."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    row: dict = {"fd": fd, "level": level, "optname": optname, "ret": 0, "value": None}
    try:
        if isinstance(sock, int):  # not a socket: libc's call itself
            value, size = ctypes.c_int(0), ctypes.c_uint32(4)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.getsockopt(fd, level, optname, ctypes.byref(value), ctypes.byref(size)):
                raise OSError(ctypes.get_errno(), "getsockopt")
        got = sock.getsockopt(level, optname, buflen) if buflen else sock.getsockopt(level, optname)
        if isinstance(got, bytes):
            row["optlen_out"] = len(got)
            row |= {  # the fields the returned length covers
                k: struct.unpack_from(f, got, o)[0] if o + struct.calcsize(f) <= len(got) else None
                for k, (o, f) in TCPI.items()
            }
        else:
            row["value"] = got
    except OSError as err:
        row["ret"] = -err.errno
    if not isinstance(sock, int):
        row["local_addr"], row["local_port"] = _name(sock.getsockname())
        try:
            row["peer_addr"], row["peer_port"] = _name(sock.getpeername())
        except OSError as err:
            assert err.errno == errno.ENOTCONN
            row["peer_addr"] = row["peer_port"] = None
        row["state"] = state
    calls.append(row)


def identify(sock: socket.socket, state: int) -> None:
    """family, type and protocol as the kernel answers them (calls reported like the others)."""
    for opt in (socket.SO_DOMAIN, socket.SO_TYPE, socket.SO_PROTOCOL):
        call(sock, socket.SOL_SOCKET, opt, state)


def main() -> None:
    unix_path = sys.argv[1]
    ESTABLISHED, CLOSE_WAIT, CLOSE, LISTEN = 1, 8, 7, 10
    sol, tcp = socket.SOL_SOCKET, socket.IPPROTO_TCP

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    c4 = socket.create_connection(listener.getsockname())
    s4, _ = listener.accept()
    identify(c4, ESTABLISHED)
    call(c4, sol, socket.SO_RCVBUF, ESTABLISHED)
    call(c4, tcp, socket.TCP_INFO, ESTABLISHED, TCP_INFO_LEN)
    call(c4, tcp, socket.TCP_INFO, ESTABLISHED, 100)  # an older, shorter struct tcp_info
    call(c4, sol, 12345, ESTABLISHED)  # ENOPROTOOPT: no value, the socket still known
    identify(s4, ESTABLISHED)
    call(s4, sol, socket.SO_SNDBUF, ESTABLISHED)
    identify(listener, LISTEN)
    call(listener, sol, socket.SO_ACCEPTCONN, LISTEN)

    listener6 = socket.socket(socket.AF_INET6)
    listener6.bind(("::1", 0))
    listener6.listen()
    c6 = socket.create_connection(listener6.getsockname()[:2])
    identify(c6, ESTABLISHED)
    call(c6, sol, socket.SO_ERROR, ESTABLISHED)
    call(c6, tcp, socket.TCP_NODELAY, ESTABLISHED)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    identify(udp, CLOSE)
    udp_connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_connected.connect(udp.getsockname())
    identify(udp_connected, ESTABLISHED)

    unix_server = socket.socket(socket.AF_UNIX)
    unix_server.bind(unix_path)
    unix_server.listen()
    unix_client = socket.socket(socket.AF_UNIX)
    unix_client.connect(unix_path)
    unix_accepted, _ = unix_server.accept()  # before: the client's peer has no inode yet
    identify(unix_client, ESTABLISHED)  # unbound, its peer named by the listener's path
    call(unix_client, sol, socket.SO_RCVBUF, ESTABLISHED)
    identify(unix_accepted, ESTABLISHED)  # named by the listener's path, its peer unbound
    call(unix_accepted, sol, socket.SO_PEERCRED, ESTABLISHED)
    identify(unix_server, LISTEN)
    call(unix_server, sol, socket.SO_ACCEPTCONN, LISTEN)
    tag = f"sockopt-trace-{os.getpid()}"
    dgram_server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram_server.bind(f"\0{tag}-server\0x".encode())  # abstract, a NUL in the name
    dgram_client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram_client.bind(f"\0{tag}-client".encode())
    dgram_client.connect(dgram_server.getsockname())
    identify(dgram_client, ESTABLISHED)  # (no call on dgram_server: its state varies)
    pair = socket.socketpair()  # connected, neither named
    identify(pair[0], ESTABLISHED)

    closing = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    peer.close()
    assert closing.recv(1) == b""  # the FIN has arrived
    identify(closing, CLOSE_WAIT)
    call(closing, tcp, socket.TCP_INFO, CLOSE_WAIT, TCP_INFO_LEN)

    r, w = os.pipe()
    call(r, sol, socket.SO_TYPE)  # ENOTSOCK: no socket
    os.close(r)
    os.close(w)

    lines = Path("/proc/self/cgroup").read_text().splitlines()
    cgroup = next(line[3:] for line in lines if line[:3] == "0::")
    print(json.dumps({"pid": os.getpid(), "cgroup": cgroup, "calls": calls}), flush=True)
    # every socket still open (the pipe aside); scaled as the tests' time limits are (VMs emulate
    # the CPU, and the recorder sees the calls seconds later there)
    time.sleep(LINGER_S * float(os.environ.get("SOCKOPT_TRACE_TEST_TIME_SCALE", "1")))


if __name__ == "__main__":
    main()
