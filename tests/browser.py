"""Open a page in real headless Chromium and see what a person would: a screenshot, where each
chart is, what the console said and which network requests the page made.

Chromium is driven through the DevTools protocol over `--remote-debugging-pipe` (fd 3 in, fd 4
out, NUL-terminated JSON), so no WebDriver or websocket library is needed. Name resolution is
disabled (`--host-resolver-rules`) and every request the page makes is recorded, so a page that
needs the network shows it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    screenshot: bytes  # PNG of the whole page
    width: int
    height: int
    boxes: dict[str, dict[str, float]]  # element id -> {x, y, width, height, svgs, rendered}
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    probe: Any = None  # what the `probe` script returned


class DevTools:
    """A Chromium process and its DevTools pipe."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="sockopt-chromium-")
        to_chrome_r, self._out = os.pipe()
        self._in, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # dup2 leaves the new fds inheritable; Python's own are not
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and wait for its reply (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, deadline: float) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from Chromium")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (it crashed or exited)")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._in, self._out):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


# Which elements to measure: every figure placeholder, plus anything matching `selectors`.
_MEASURE = """
(() => {
  const out = {};
  document.querySelectorAll('[data-figure]').forEach(el => {
    const r = el.getBoundingClientRect();
    out[el.id] = {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height,
                  svgs: el.querySelectorAll('svg.main-svg').length,
                  rendered: el.dataset.rendered === 'true'};
  });
  return JSON.stringify(out);
})()
"""
_ALL_RENDERED = """
new Promise(resolve => {
  const done = () => [...document.querySelectorAll('[data-figure]')]
      .every(el => el.dataset.rendered === 'true');
  const start = Date.now();
  const poll = () =>
    (done() || Date.now() - start > 20000) ? resolve(done()) : setTimeout(poll, 50);
  poll();
})
"""


def load_page(
    path: Path, *, width: int = 1400, probe: str | None = None, binary: str | None = None
) -> PageLoad:
    """Open `path` in headless Chromium, wait for every figure to draw, then screenshot the
    whole page and report console errors, exceptions and requests. `probe`: a JavaScript
    expression (a promise is awaited) evaluated after the screenshot, its value returned."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    tools = DevTools(binary)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session=session)
        metrics = {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
        tools.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
        tools.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired", time.monotonic() + 60)
        rendered = tools.send(
            "Runtime.evaluate",
            {"expression": _ALL_RENDERED, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        # Make the viewport as tall as the page, let the charts settle at that size, measure
        # them again and take the screenshot of what is then all on screen.
        size = tools.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = int(size["height"]) + 1
        tools.send(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": height}, session=session
        )
        time.sleep(1.0)
        boxes = json.loads(
            tools.send(
                "Runtime.evaluate", {"expression": _MEASURE, "returnByValue": True}, session=session
            )["result"]["value"]
        )
        shot = tools.send("Page.captureScreenshot", {"format": "png"}, session=session)
        load = PageLoad(base64.b64decode(shot["data"]), width, height, boxes)
        if probe:
            reply = tools.send(
                "Runtime.evaluate",
                {"expression": probe, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            load.probe = reply.get("result", {}).get("value")
        if not rendered.get("result", {}).get("value"):
            load.exceptions.append("not every figure finished drawing within 20 s")
        _collect(tools.events, load)
        return load
    finally:
        tools.close()


def _collect(events: list[dict], load: PageLoad) -> None:
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            load.exceptions.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            load.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            load.console_errors.append(f"{entry.get('source')}: {entry.get('text')}")
        elif method == "Network.requestWillBeSent":
            load.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Network.loadingFailed":
            load.failed_requests.append(params.get("errorText", ""))
