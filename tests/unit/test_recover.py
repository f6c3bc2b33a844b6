"""`recover`: whole partial files are salvaged, broken ones quarantined with their time window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.recover import recover
from tests.synth import write_recording


def _killed_recording(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three sealed files, the third left under its partial name with its footer (salvageable),
    and a fourth partial without any footer (what SIGKILL leaves)."""
    rec = tmp_path / "rec"
    paths = write_recording(rec, 3000, files=3)
    whole = paths[2].with_name(paths[2].name + ".partial")
    paths[2].rename(whole)
    broken = rec / "host-a-000004.parquet.partial"
    broken.write_bytes(b"PAR1" + b"\0" * 5000)  # row groups written, no footer
    return rec, whole, broken


def test_recover_salvages_and_quarantines(tmp_path: Path) -> None:
    rec, whole, broken = _killed_recording(tmp_path)
    before = open_recording([rec])
    assert len(before.files) == 2 and len(before.partial) == 2
    third_end = schema.read_file_metadata(str(whole)).end_ns

    outcomes = {o.path.name: o for o in recover(rec)}
    salvaged, quarantined = outcomes[whole.name], outcomes[broken.name]
    assert salvaged.action == "salvaged" and salvaged.events == 1000
    assert (rec / "host-a-000003.parquet").exists() and not whole.exists()
    assert quarantined.action == "quarantined"
    assert (rec / "host-a-000004.parquet.quarantined").exists() and not broken.exists()
    assert quarantined.lost_from_ns == third_end
    assert quarantined.lost_to_ns >= third_end

    after = open_recording([rec])
    assert len(after.files) == 3 and not after.partial
    assert after.events == 3000


def test_recover_dry_run_and_cli(tmp_path: Path) -> None:
    rec, whole, broken = _killed_recording(tmp_path)
    assert {o.action for o in recover(rec, dry_run=True)} == {"salvaged", "quarantined"}
    assert whole.exists() and broken.exists()
    dry = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "recover", str(rec), "--dry-run", "-f", "csv"],
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    header, *rows = dry.stdout.splitlines()
    assert "would_rename_to" in header and "renamed_to," not in header
    assert {r.split(",")[1] for r in rows} == {"would salvage", "would quarantine"}
    assert whole.exists() and broken.exists()
    run = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "recover", str(rec), "--format", "csv"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "salvaged" in run.stdout and "quarantined" in run.stdout
    again = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "recover", str(rec)], capture_output=True, text=True
    )
    assert again.returncode == 0 and "nothing to do" in again.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "recover", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
