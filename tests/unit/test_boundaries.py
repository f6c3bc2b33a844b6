"""The two halves share only the recording format: the recorder never imports duckdb, the
analyzer never imports bcc (nor the recorder). Checked in fresh interpreters."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import sockopt_trace.analyzer
import sockopt_trace.recorder


def modules(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def imported_after(names: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_recorder_never_imports_duckdb() -> None:
    names = modules(sockopt_trace.recorder)
    assert "sockopt_trace.recorder.session" in names
    loaded = imported_after(names)
    assert not {m for m in loaded if m == "duckdb" or m.startswith("duckdb.")}
    assert not {m for m in loaded if m.startswith("sockopt_trace.analyzer")}


def test_analyzer_never_imports_bcc_or_the_recorder() -> None:
    names = modules(sockopt_trace.analyzer)
    assert "sockopt_trace.analyzer.diff" in names
    loaded = imported_after(names)
    assert "bcc" not in loaded
    assert not {m for m in loaded if m.startswith("sockopt_trace.recorder")}
