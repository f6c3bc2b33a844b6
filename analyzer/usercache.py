"""Where the analyzer keeps what it can find again between runs (debug information fetched from
debuginfod, the footer index): the XDG cache directory, as debuginfod's own client does."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$XDG_CACHE_HOME/sockopt-trace, else ~/.cache/sockopt-trace."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "sockopt-trace"
