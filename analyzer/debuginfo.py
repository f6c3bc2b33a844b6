"""Find the debug information of an object on the analysis machine, by its GNU build-id.

Where perf and gdb look, in the same order: directories in the `.build-id/xx/rest.debug`
layout (`--debug-dir`, then /usr/lib/debug), the object itself if it is here with the same
build-id (symbols, `.gnu_debugdata`, `.dynsym`, or a `.gnu_debuglink` next to it), and the
debuginfod servers of DEBUGINFOD_URLS (`GET /buildid/HEX/debuginfo`), whose answers are kept
in a local cache (misses too, for a while) so that a report never asks twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from sockopt_trace.analyzer.usercache import cache_root

SYSTEM_DEBUG_DIR = Path("/usr/lib/debug")
MISS_SECONDS = 600  # how long a server's "not found" is believed (elfutils' default too)
BUILD_ID = re.compile(r"[0-9a-f]{8,80}")


@dataclass(frozen=True)
class Found:
    """A file to symbolize an object with, and where it came from (said in reports)."""

    path: Path
    source: str  # e.g. "debug-dir /srv/debug", "/usr/lib/debug", "debuginfod URL", "binary"
    debug: bool  # full debug information (DWARF), not only symbols


def read_build_id(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            for section in elf.iter_sections():
                if isinstance(section, NoteSection):
                    for note in section.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            return str(note["n_desc"])
    except (OSError, ELFError, ValueError):
        return None
    return None


def has_dwarf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            section = ELFFile(f).get_section_by_name(".debug_info")
            return section is not None and section["sh_type"] != "SHT_NOBITS"
    except (OSError, ELFError, ValueError):
        return False


def cache_dir() -> Path:
    return cache_root() / "debuginfod"


class DebugInfo:
    """The places to look, in order; `find` answers for one object."""

    def __init__(
        self,
        debug_dirs: Sequence[Path] = (),
        *,
        system: bool = True,
        urls: Sequence[str] | None = None,
        cache: Path | None = None,
        timeout: float | None = None,
    ) -> None:
        self.dirs = [(Path(d), f"debug-dir {d}") for d in debug_dirs]
        if system:
            self.dirs.append((SYSTEM_DEBUG_DIR, str(SYSTEM_DEBUG_DIR)))
        env = os.environ.get("DEBUGINFOD_URLS", "")
        self.urls = list(urls) if urls is not None else env.split()
        self.cache = cache or cache_dir()
        self.timeout = timeout or float(os.environ.get("DEBUGINFOD_TIMEOUT", "30"))
        self.errors: list[str] = []  # one line per server that failed (not "not found")
        self._down: set[str] = set()  # servers that failed once: not asked again this run

    def find(self, build_id: str | None, path: str | None) -> Found | None:
        """The best file for this object: full debug information before bare symbols."""
        if build_id and BUILD_ID.fullmatch(build_id):
            for root, source in self.dirs:
                candidate = root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
                if candidate.is_file():
                    return Found(candidate, source, True)
        local = self._local(build_id, path)
        if local is not None and local.debug:
            return local
        if build_id and BUILD_ID.fullmatch(build_id):
            fetched = self.fetch(build_id)
            if fetched is not None:
                return fetched
        return local

    def _local(self, build_id: str | None, path: str | None) -> Found | None:
        """The object itself, if this machine has it, unchanged (same build-id)."""
        if not path or not path.startswith("/"):
            return None
        candidate = Path(path)
        if not candidate.is_file() or (build_id and read_build_id(candidate) != build_id):
            return None
        return Found(candidate, "binary", has_dwarf(candidate))

    def fetch(self, build_id: str) -> Found | None:
        """From the debuginfod servers, through the cache."""
        entry = self.cache / build_id
        debuginfo, miss = entry / "debuginfo", entry / "miss"
        if debuginfo.is_file():
            return Found(debuginfo, f"debuginfod cache {self.cache}", True)
        if not self.urls:
            return None
        with contextlib.suppress(OSError):
            if time.time() - miss.stat().st_mtime < MISS_SECONDS:
                return None
        for url in [u for u in self.urls if u not in self._down]:
            if self._get(url, build_id, debuginfo):
                return Found(debuginfo, f"debuginfod {url}", True)
        with contextlib.suppress(OSError):
            entry.mkdir(parents=True, exist_ok=True)
            miss.touch()
        return None

    def _get(self, url: str, build_id: str, target: Path) -> bool:
        request = urllib.request.Request(
            f"{url.rstrip('/')}/buildid/{build_id}/debuginfo",
            headers={"User-Agent": "sockopt-trace"},
        )
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with (
                urllib.request.urlopen(request, timeout=self.timeout) as answer,
                partial.open("wb") as out,
            ):
                while chunk := answer.read(1 << 20):
                    out.write(chunk)
            if read_build_id(partial) != build_id:  # never keep what is not what we asked
                self.errors.append(f"{url}: answered {build_id} with another file")
                return False
            partial.rename(target)
            return True
        except urllib.error.HTTPError as err:
            if err.code != 404:
                self.errors.append(f"{url}: HTTP {err.code}")
                self._down.add(url)
            return False
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            self.errors.append(f"{url}: {getattr(err, 'reason', err)}")
            self._down.add(url)
            return False
        finally:
            with contextlib.suppress(OSError):
                partial.unlink()
