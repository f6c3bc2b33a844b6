"""recorder/context.py and cgroups.py: the context columns from raw kernel events."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from sockopt_trace.recorder.cgroups import CgroupNames, describe
from sockopt_trace.recorder.context import ContextDecoder
from sockopt_trace.recorder.events import event_dtype

POD = "0f0e0d0c-0b0a-0908-0706-050403020100"
CID = "ab" * 32


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/system.slice/nginx.service", ("nginx.service", None, None)),
        ("/user.slice/user-1000.slice/session-2.scope", ("session-2.scope", None, None)),
        (
            f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/cri-containerd-{CID}.scope",
            (f"cri-containerd-{CID}.scope", POD, CID),
        ),
        (f"/kubepods/burstable/pod{POD}/{CID}", (None, POD, CID)),
        (f"/system.slice/docker-{CID}.scope", (f"docker-{CID}.scope", None, CID)),
        ("/", (None, None, None)),
    ],
)
def test_unit_pod_and_container_from_the_path(path: str, expected: tuple) -> None:
    assert describe(path) == expected


def test_cgroup_ids_are_the_inodes_of_their_directories(tmp_path: Path) -> None:
    (tmp_path / "a.slice" / "b.service").mkdir(parents=True)
    names = CgroupNames(tmp_path)
    assert names.path(os.stat(tmp_path / "a.slice" / "b.service").st_ino) == "/a.slice/b.service"
    assert names.path(os.stat(tmp_path).st_ino) == "/"
    (tmp_path / "late").mkdir()  # created after the first scan: a new id scans again
    assert names.path(os.stat(tmp_path / "late").st_ino) == "/late"
    assert names.path(2**62) is None


def test_columns_from_raw_events(tmp_path: Path) -> None:
    (tmp_path / "app.service").mkdir()
    cg = os.stat(tmp_path / "app.service").st_ino
    ev = np.zeros(6, event_dtype(context=True))
    ev["cgroup_id"] = cg
    ev["context"] = 1
    ev["family"] = [2, 10, 2, 1, 2, 2]
    ev["sock_type"] = [1, 1, 2, 1, 1, 1]
    ev["state"] = [1, 1, 7, 1, 10, 0]
    ev["local_addr"][0, :4] = list(socket.inet_aton("10.0.0.5"))
    ev["peer_addr"][0, :4] = list(socket.inet_aton("10.0.3.17"))
    ev["local_addr"][1] = list(socket.inet_pton(socket.AF_INET6, "2001:db8::5"))
    ev["peer_addr"][1] = list(socket.inet_pton(socket.AF_INET6, "2001:db8::99"))
    ev["local_port"] = [8080, 443, 5353, 0, 80, 0]
    ev["peer_port"] = np.array([51234, 40000, 0, 0, 0, 0], np.uint16).byteswap()
    ev["context"][5] = 0  # the fd was not read as a socket
    ev["optlen_out"] = [4, 8, 4, 232, 100, 4]
    ev["ret"] = [0, 0, 0, 0, 0, -9]
    ev["level"] = [1, 1, 1, 6, 6, 1]
    ev["optname"] = [4, 7, 8, 11, 11, 4]
    ev["value"] = [111 | 0xDEAD << 32, 2**64 - 5, 212992, 0, 0, 0]
    ev["context"][:3] |= 2
    ev["context"][3:5] |= 8
    ev["tcpi_rtt"] = [0, 0, 0, 250, 99, 0]
    ev["tcpi_delivery_rate"] = [0, 0, 0, 12345, 7, 0]
    ev["tcpi_total_retrans"] = [0, 0, 0, 3, 4, 0]
    cols = {k: v.to_pylist() for k, v in ContextDecoder(CgroupNames(tmp_path))(ev).items()}
    assert cols["cgroup"] == ["/app.service"] * 6 and cols["unit"] == ["app.service"] * 6
    assert cols["family"] == [2, 10, 2, 1, 2, None]
    assert cols["local_addr"] == ["10.0.0.5", "2001:db8::5", "0.0.0.0", None, "0.0.0.0", None]
    assert cols["local_port"] == [8080, 443, 5353, None, 80, None]
    assert cols["peer_addr"] == ["10.0.3.17", "2001:db8::99", None, None, None, None]
    assert cols["peer_port"] == [51234, 40000, None, None, None, None]
    # 4 bytes returned: the int in them; 8: all 8; TCP_INFO: its fields, not a value
    assert cols["value"] == [111, -5, 212992, None, None, None]
    assert cols["tcpi_rtt_us"] == [None, None, None, 250, 99, None]
    assert cols["tcpi_total_retrans"] == [None, None, None, 3, None, None]
    assert cols["tcpi_delivery_rate"] == [None, None, None, 12345, None, None]
    assert cols["tcpi_lost"] == [None, None, None, 0, 0, None]  # within the 100 bytes returned
