"""The type checker over the package as it installs: sockopt_trace with its recorder/ and
analyzer/ halves mapped in (mypy cannot follow the editable install's import hook)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"recorder": "recorder", "analyzer": "analyzer", "queries": "queries"}


def test_mypy_is_clean(tmp_path: Path) -> None:
    package = tmp_path / "sockopt_trace"
    package.mkdir()
    for entry in (ROOT / "sockopt_trace").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(ROOT / folder)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "-p",
            "sockopt_trace",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
