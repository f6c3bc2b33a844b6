"""How a page gets plotly.js (`--plotly-js`): inlined (the default: the page opens offline,
about 4.8 MB), from plotly's CDN (a small page that needs the network), or from a file beside
the page (small pages that share one copy, offline).

plotly.js is the one the `plotly` Python package ships; the CDN and file names carry its version,
so a page always loads the version it was made with.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from dataclasses import dataclass
from pathlib import Path

from sockopt_trace.errors import ExitCode, UserError

INSTALL_HINT = "pip install 'sockopt-trace[html]'"
CDN = "https://cdn.plot.ly/plotly-{version}.min.js"
CHOICES = "inline, cdn, or a directory to write plotly-VERSION.min.js into"


@dataclass(frozen=True)
class PlotlyJs:
    """plotly.js for one page: its source when inlined, else the URL the page loads it from."""

    version: str
    source: str = ""  # the code, inlined
    src: str = ""  # a URL or a path relative to the page
    integrity: str = ""  # from the CDN: the browser checks it got the same code

    def script(self) -> str:
        """The <script> element that gives the page `Plotly`."""
        if not self.src:
            return f"<script>\n{self.source}\n</script>"
        check = f' integrity="{self.integrity}" crossorigin="anonymous"' if self.integrity else ""
        return f'<script src="{html.escape(self.src)}" charset="utf-8"{check}></script>'

    def note(self) -> str:
        """What the page's footer says about it."""
        licence = f"charts by plotly.js {self.version} (MIT licence)"
        if not self.src:
            return f"Self-contained: {licence}, inlined with the data."
        if self.src.startswith("https://"):
            return f"Needs the network: {licence}, loaded from {self.src}."
        return f"Opens offline: {licence}, loaded from {self.src} beside this page."


def plotly_js() -> tuple[str, str]:
    """(plotly.js source, its version), or a UserError saying how to install it."""
    try:
        from plotly.offline import get_plotlyjs, get_plotlyjs_version
    except ImportError:
        raise UserError(f"the html report needs the plotly package: {INSTALL_HINT}") from None
    return get_plotlyjs(), get_plotlyjs_version()


def choose(choice: str, page: Path) -> PlotlyJs:
    """--plotly-js for a page written to `page`: 'inline', 'cdn', or a directory, where
    plotly-VERSION.min.js is written (unless it is there already) and loaded from."""
    source, version = plotly_js()
    if choice == "inline":
        return PlotlyJs(version, source=source)
    if choice == "cdn":
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        return PlotlyJs(version, src=CDN.format(version=version), integrity=f"sha256-{digest}")
    directory = Path(choice)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"bad --plotly-js {choice!r}: give {CHOICES}")
    target = directory / f"plotly-{version}.min.js"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != source:
            partial = target.with_name(target.name + ".partial")
            partial.write_text(source)
            partial.replace(target)
    except OSError as err:
        raise UserError(f"{target}: cannot write: {err.strerror or err}", ExitCode.OUTPUT) from None
    src = os.path.relpath(target.resolve(), page.resolve().parent)
    return PlotlyJs(version, src=Path(src).as_posix())
