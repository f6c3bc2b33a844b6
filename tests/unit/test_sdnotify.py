"""sd_notify as a supervisor receives it: datagrams on the socket NOTIFY_SOCKET names."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sockopt_trace.recorder.sdnotify import Notifier


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_and_stopping_reach_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sup:
        sup.bind(path)
        env = {"NOTIFY_SOCKET": path, "OTHER": "x"}
        n = Notifier(env)
        assert n.enabled and "NOTIFY_SOCKET" not in env and env["OTHER"] == "x"
        n.ready("recording\ninto rec/")
        assert receive(sup) == {
            "READY": "1",
            "STATUS": "recording into rec/",  # one line whatever it was given
            "MAINPID": str(os.getpid()),
        }
        n.status("12 files")
        assert receive(sup) == {"STATUS": "12 files"}
        n.stopping("sealing")
        assert receive(sup) == {"STOPPING": "1", "STATUS": "sealing"}
        n.close()


def test_abstract_socket_and_no_socket() -> None:
    name = f"sockopt-trace-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sup:
        sup.bind("\0" + name)
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready("ok")
        assert receive(sup)["READY"] == "1"
    quiet = Notifier({})
    assert not quiet.enabled
    quiet.ready("nobody listens")  # nothing to do, nothing raised
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    gone.ready("the supervisor went away")  # not ours to report
