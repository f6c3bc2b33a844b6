"""Where the kernel side finds a call's socket: struct offsets of the running kernel, as -D flags.

From the fd to the socket: task_struct.files -> files_struct.fdt -> fdtable.fd[fd] (bounded by
fdtable.max_fds) -> file.private_data (a struct socket when socket.file points back at the file)
-> socket.sk -> sock_common's addresses, ports, family and state, and sock's type and protocol.
Every offset comes from the running kernel's BTF (btf.py), never from the headers bcc compiles
with; without BTF the socket is not read (doctor says so) and the rest is still recorded.

AF_UNIX sockets have no address the kernel side can copy into 16 bytes: it records their inode
numbers instead (UNIX_FIELDS, the numbers /proc/net/unix and `ss -x` show), which user space
names by path (unixpaths.py). The socket's own: the struct socket sits in a socket_alloc beside
its vfs_inode (inode.i_ino); the peer's: unix_sock.peer (a struct sock) -> sock.sk_socket -> its
inode the same way. Where BTF lacks one of those, Unix sockets are just not named.
"""

from __future__ import annotations

from sockopt_trace.recorder import btf

# -D name -> (struct, member)
FIELDS = {
    "TASK_FILES": ("task_struct", "files"),
    "FILES_FDT": ("files_struct", "fdt"),
    "FDT_MAX_FDS": ("fdtable", "max_fds"),
    "FDT_FD": ("fdtable", "fd"),
    "FILE_PRIVATE_DATA": ("file", "private_data"),
    "SOCKET_FILE": ("socket", "file"),
    "SOCKET_SK": ("socket", "sk"),
    "SKC_DADDR": ("sock_common", "skc_daddr"),
    "SKC_RCV_SADDR": ("sock_common", "skc_rcv_saddr"),
    "SKC_DPORT": ("sock_common", "skc_dport"),
    "SKC_NUM": ("sock_common", "skc_num"),
    "SKC_FAMILY": ("sock_common", "skc_family"),
    "SKC_STATE": ("sock_common", "skc_state"),
    "SKC_V6_DADDR": ("sock_common", "skc_v6_daddr"),
    "SKC_V6_RCV_SADDR": ("sock_common", "skc_v6_rcv_saddr"),
    "SK_COMMON": ("sock", "__sk_common"),
    "SK_TYPE": ("sock", "sk_type"),
    "SK_PROTOCOL": ("sock", "sk_protocol"),
}
# Optional (UNIX_FIELDS): without them, inet sockets are still read
UNIX_FIELDS = {
    "SOCKET_ALLOC_SOCKET": ("socket_alloc", "socket"),
    "SOCKET_ALLOC_INODE": ("socket_alloc", "vfs_inode"),
    "INODE_INO": ("inode", "i_ino"),
    "UNIX_SK": ("unix_sock", "sk"),
    "UNIX_PEER": ("unix_sock", "peer"),
    "SK_SOCKET": ("sock", "sk_socket"),
}
# The sizes the kernel program reads them with; another size means a layout it does not know.
SIZES = {
    "TASK_FILES": 8, "FILES_FDT": 8, "FDT_MAX_FDS": 4, "FDT_FD": 8, "FILE_PRIVATE_DATA": 8,
    "SOCKET_FILE": 8, "SOCKET_SK": 8, "SKC_DADDR": 4, "SKC_RCV_SADDR": 4, "SKC_DPORT": 2,
    "SKC_NUM": 2, "SKC_FAMILY": 2, "SKC_STATE": 1, "SKC_V6_DADDR": 16, "SKC_V6_RCV_SADDR": 16,
    "SK_TYPE": 2, "SK_PROTOCOL": 2, "INODE_INO": 8, "UNIX_PEER": 8, "SK_SOCKET": 8,
}  # fmt: skip
# Read in one go each: sock_common's v4 addresses, ports, family and state (adjacent on every
# kernel since 2.6), and sock's type and protocol.
SKC_BLOCK = ("SKC_DADDR", "SKC_RCV_SADDR", "SKC_DPORT", "SKC_NUM", "SKC_FAMILY", "SKC_STATE")
SK_BLOCK = ("SK_TYPE", "SK_PROTOCOL")
MAX_BLOCK = 64


def offsets(types: btf.BTF, fields: dict[str, tuple[str, str]] = FIELDS) -> dict[str, int]:
    """The offsets by -D name. Raises KeyError (a struct or member missing) or ValueError (a
    member of an unexpected size)."""
    found = {}
    for name, (struct_name, member) in fields.items():
        m = types.member(struct_name, member)
        if name in SIZES and m.size != SIZES[name]:
            raise ValueError(f"{struct_name}.{member} is {m.size} bytes, not {SIZES[name]}")
        found[name] = m.offset
    if found.get("SK_COMMON", 0) != 0:
        raise ValueError("struct sock does not start with its sock_common")
    return found


def _block(found: dict[str, int], names: tuple[str, ...], prefix: str) -> dict[str, int]:
    start = min(found[n] for n in names)
    end = max(found[n] + SIZES[n] for n in names)
    if end - start > MAX_BLOCK:
        raise ValueError(f"{', '.join(names)} span {end - start} bytes")
    return {f"{prefix}_START": start, f"{prefix}_LEN": (end - start + 7) // 8 * 8}


def unix_offsets(types: btf.BTF) -> dict[str, int]:
    """What the kernel side adds to a pointer to reach each inode number: from a struct socket
    (SOCKET_INO: its inode's i_ino) and from a struct sock that is a unix_sock (PEER: the
    peer pointer); SK_SOCKET as is. Raises like offsets()."""
    f = offsets(types, UNIX_FIELDS)
    return {
        "SOCKET_INO": f["SOCKET_ALLOC_INODE"] + f["INODE_INO"] - f["SOCKET_ALLOC_SOCKET"],
        "PEER": f["UNIX_PEER"] - f["UNIX_SK"],
        "SK_SOCKET": f["SK_SOCKET"],
    }


def cflags() -> tuple[list[str], str]:
    """(-D flags for the kernel program, "") or ([], why the socket cannot be read here)."""
    try:
        found = offsets(btf.vmlinux())
        found |= _block(found, SKC_BLOCK, "SKC_BLOCK") | _block(found, SK_BLOCK, "SK_BLOCK")
    except OSError as err:
        return [], f"no kernel BTF ({btf.VMLINUX}: {err.strerror})"
    except (KeyError, ValueError) as err:
        return [], f"kernel BTF: {str(err).strip(chr(34) + chr(39))}"
    flags = ["-DSOCKET_FIELDS"]
    try:
        found |= {f"UNIX_{k}": v for k, v in unix_offsets(btf.vmlinux()).items()}
        flags.append("-DUNIX_FIELDS")
    except (KeyError, ValueError):
        pass  # Unix sockets keep their family, type and state, unnamed
    return [*flags, *(f"-DOFF_{k}={v}" for k, v in sorted(found.items()))], ""
