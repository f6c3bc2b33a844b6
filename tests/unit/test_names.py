"""The decoding tables against the Linux uapi headers (when installed) and the lookup rules."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from sockopt_trace.analyzer import names

HEADERS = sorted(Path("/usr/src").glob("linux-headers-*-common/include"))
_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Z][A-Z0-9_]*)\s+([^/\n]*?)\s*(?:/\*.*)?$")

# name -> header files (relative to include/) that define it, by prefix
SOURCES = {
    "SO_": ["uapi/asm-generic/socket.h", "uapi/linux/netfilter_ipv4.h"],
    "SOL_SOCKET": ["uapi/asm-generic/socket.h"],
    "SOL_": ["linux/socket.h"],
    "IP_VS_": ["uapi/linux/ip_vs.h"],
    "IP_": ["uapi/linux/in.h"],
    "MCAST_": ["uapi/linux/in.h"],
    "IPV6_": ["uapi/linux/in6.h"],
    "IPT_": ["uapi/linux/netfilter_ipv4/ip_tables.h"],
    "IP6T_": ["uapi/linux/netfilter_ipv6/ip6_tables.h"],
    "ARPT_": ["uapi/linux/netfilter_arp/arp_tables.h"],
    "EBT_": ["uapi/linux/netfilter_bridge/ebtables.h"],
    "MRT6_": ["uapi/linux/mroute6.h"],
    "MRT_": ["uapi/linux/mroute.h"],
    "TCP_": ["uapi/linux/tcp.h"],
    "UDP_": ["uapi/linux/udp.h"],
    "UDPLITE_": ["net/udplite.h"],
    "PACKET_": ["uapi/linux/if_packet.h"],
    "NETLINK_": ["uapi/linux/netlink.h"],
    "TLS_": ["uapi/linux/tls.h"],
    "MPTCP_": ["uapi/linux/mptcp.h"],
    "ICMP_": ["uapi/linux/icmp.h"],
    "ICMPV6_": ["uapi/linux/icmpv6.h"],
    "E": ["uapi/asm-generic/errno-base.h", "uapi/asm-generic/errno.h", "linux/errno.h"],
}
# NETLINK_* protocol numbers share the prefix with the NETLINK_* socket options; read options only.
OPTION_SECTION = {"uapi/linux/netlink.h": "NETLINK_ADD_MEMBERSHIP"}


def header_values(root: Path, files: list[str]) -> dict[str, int]:
    """Evaluate the integer #defines of `files` (first definition wins, like the C headers)."""
    raw: dict[str, str] = {}
    for rel in files:
        text = (root / rel).read_text(errors="replace")
        if rel in OPTION_SECTION:
            text = text[text.index(OPTION_SECTION[rel]) - len("#define ") :]
        for line in text.splitlines():
            m = _DEFINE.match(line)
            if m:
                raw.setdefault(m.group(1), m.group(2))

    def evaluate(name: str, depth: int = 0) -> int:
        if depth > 10:
            raise ValueError(name)  # a define that refers to itself
        expr = re.sub(
            r"\b([A-Z][A-Z0-9_]*)\b",
            lambda m: str(evaluate(m.group(1), depth + 1)) if m.group(1) in raw else m.group(0),
            raw[name],
        )
        if not re.fullmatch(r"[0-9xXa-fA-F+\-()\s]+", expr):
            raise ValueError(expr)
        return int(eval(expr, {}))  # digits, + and - only (checked above)

    values = {}
    for name in raw:
        with contextlib.suppress(ValueError, SyntaxError):
            values[name] = evaluate(name)
    return values


def sources_for(name: str) -> list[str]:
    prefix = max((p for p in SOURCES if name.startswith(p)), key=len)
    return SOURCES[prefix]


def all_entries() -> list[tuple[str, int]]:
    entries = [(n, v) for lvl in names.OPTNAMES.values() for v, n in lvl.items()]
    entries += [(n, v) for v, n in names.ERRNOS.items()]
    entries += [(n, v) for v, n in names.LEVELS.items() if n.startswith("SOL_")]
    entries += [("SOL_" + n[len("IPPROTO_") :], v) for v, n in names.LEVELS.items() if "PROTO" in n]
    return entries


@pytest.mark.skipif(not HEADERS, reason="Linux headers not installed")
def test_every_name_has_its_header_value() -> None:
    root = HEADERS[0]
    cache: dict[tuple[str, ...], dict[str, int]] = {}
    checked, mismatched = 0, []
    for name, value in all_entries():
        files = tuple(sources_for(name))
        values = cache.setdefault(files, header_values(root, list(files)))
        if name in values:
            checked += 1
            if values[name] != value:
                mismatched.append((name, value, values[name]))
    assert not mismatched, mismatched
    assert checked > 400  # nearly all entries; the rest are newer than the installed headers


@pytest.mark.skipif(not HEADERS, reason="Linux headers not installed")
def test_no_socket_level_option_or_errno_missing() -> None:
    root = HEADERS[0]
    so = header_values(root, ["uapi/asm-generic/socket.h"])
    so_values = {v for k, v in so.items() if k.startswith("SO_")}
    assert so_values <= set(names.OPTNAMES[1])
    tcp = header_values(root, ["uapi/linux/tcp.h"])
    options = {v for k, v in tcp.items() if k.startswith("TCP_") and 0 < v < 64}
    assert options <= set(names.OPTNAMES[6])
    errnos = header_values(root, SOURCES["E"])
    assert {v for k, v in errnos.items() if k.startswith("E")} <= set(names.ERRNOS)


def test_lookups_decode_per_level_and_show_unknowns_as_numbers() -> None:
    assert names.level_name(1) == "SOL_SOCKET"
    assert names.level_name(6) == "IPPROTO_TCP"
    assert names.level_name(4242) == "4242"
    assert names.optname_name(1, 8) == "SO_RCVBUF"
    assert names.optname_name(6, 11) == "TCP_INFO"
    assert names.optname_name(0, 80) == "SO_ORIGINAL_DST"
    assert names.optname_name(41, 26) == "IPV6_V6ONLY"
    assert names.optname_name(6, 8) == "TCP_LINGER2"  # same number, other level
    assert names.optname_name(1, 26) == "SO_GET_FILTER"  # the getsockopt name of the alias
    assert names.optname_name(6, 9999) == "9999"
    assert names.optname_name(4242, 1) == "1"
    assert names.errno_name(0) == "OK"
    assert names.errno_name(92) == "ENOPROTOOPT"
    assert names.errno_name(11) == "EAGAIN"
    assert names.errno_name(512) == "ERESTARTSYS"
    assert names.errno_name(4000) == "4000"
