"""`recover`: whole partial files are salvaged, broken ones quarantined with their time window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockopt_trace import schema
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.recover import recover
from sockopt_trace.errors import UserError
from sockopt_trace.ledger import LEDGER_SUFFIX, Ledger
from tests.synth import write_recording, write_with_metadata


def _killed_recording(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three sealed files, the third left under its partial name with its footer (salvageable),
    and a fourth partial without any footer (what SIGKILL leaves)."""
    rec = tmp_path / "rec"
    paths = write_recording(rec, 3000, files=3)
    whole = paths[2].with_name(paths[2].name + ".partial")
    paths[2].rename(whole)
    prefix = schema.FileName.parse(paths[0].name).prefix
    broken = rec / schema.FileName(prefix, 4).partial
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
    name = schema.FileName.parse(whole.name)
    assert (rec / name.final).exists() and not whole.exists()
    assert quarantined.action == "quarantined"
    assert (rec / schema.FileName(name.prefix, 4).quarantined).exists() and not broken.exists()
    assert quarantined.lost_from_ns == third_end
    assert quarantined.lost_to_ns >= third_end

    after = open_recording([rec])
    assert len(after.files) == 3 and not after.partial
    assert after.events == 3000
    # the quarantined span is written down as time with no data, and info shows it
    (ledger,) = after.ledgers
    assert ledger.ledger.state == "killed"
    (window,) = ledger.ledger.no_data
    assert (window.from_ns, window.to_ns) == (third_end, quarantined.lost_to_ns)
    assert any(n.startswith("no data from") for n in after.notices())


def test_recover_keeps_what_the_ledger_counted(tmp_path: Path) -> None:
    """The recorder was killed after counting losses that no sealed file carries: they stay,
    and the span of its unreadable file is added, from the ledger's last sign of life."""
    rec, whole, broken = _killed_recording(tmp_path)
    whole.unlink()  # the third file never got its footer either
    second = schema.read_file_metadata(str(sorted(rec.glob("*.parquet"))[-1]))
    prefix = schema.FileName.parse(broken.name).prefix
    alive = second.end_ns + 5 * 10**9
    broken.rename(rec / schema.FileName(prefix, 3).partial)
    ledger = Ledger(second.host, second.recording_id, "recording", 2, second.end_ns, alive)
    ledger.lost = {"ringbuf_full": 9}
    path = rec / f"{prefix}{LEDGER_SUFFIX}"
    path.write_bytes(ledger.to_bytes())
    os.utime(rec / schema.FileName(prefix, 3).partial, ns=(second.end_ns, second.end_ns))
    (outcome,) = recover(rec)
    assert (outcome.lost_from_ns, outcome.lost_to_ns) == (second.end_ns, alive)
    after = Ledger.from_bytes(path.read_bytes())
    assert after.state == "killed" and after.lost == {"ringbuf_full": 9}
    assert [(w.from_ns, w.to_ns) for w in after.no_data] == [(second.end_ns, alive)]
    assert open_recording([rec]).lost["ringbuf_full"] == 9


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


def test_recover_applies_the_format_version_policy(tmp_path: Path) -> None:
    """A whole partial file of a newer format is neither salvaged nor quarantined blindly."""
    rec = tmp_path / "rec"
    (path,) = write_recording(rec, 10, files=1)
    raw = json.loads(schema.read_file_metadata(str(path)).to_bytes())
    partial = path.with_name(path.name + ".partial")
    write_with_metadata(partial, json.dumps({**raw, "format_version": 99}).encode())
    path.unlink()
    with pytest.raises(UserError, match="upgrade sockopt-trace"):
        recover(rec)
    assert partial.exists()


def test_recover_refuses_a_directory_a_recorder_still_holds(tmp_path: Path) -> None:
    import fcntl

    rec, _, broken = _killed_recording(tmp_path)
    fd = os.open(rec / schema.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(UserError, match=r"a recorder \(pid 4242\) is still writing"):
            recover(rec)
        assert broken.exists()
    finally:
        os.close(fd)
    assert {o.action for o in recover(rec)} >= {"quarantined"}  # released: a dead recorder's


def test_a_recorder_killed_between_files_gets_its_span_too(tmp_path: Path) -> None:
    """Killed after a seal, before the next file was opened: no partial file, but the ledger
    says the recorder was alive until T: that span has no data."""
    rec = tmp_path / "rec"
    (path,) = write_recording(rec, 100, files=1)
    meta = schema.read_file_metadata(str(path))
    prefix = schema.FileName.parse(path.name).prefix
    alive = meta.end_ns + 3 * 10**9
    ledger = Ledger(meta.host, meta.recording_id, "recording", 1, meta.end_ns, alive)
    (rec / f"{prefix}{LEDGER_SUFFIX}").write_bytes(ledger.to_bytes())
    (outcome,) = recover(rec)
    assert outcome.action == "marked killed"
    assert (outcome.lost_from_ns, outcome.lost_to_ns) == (meta.end_ns, alive)
    after = Ledger.from_bytes((rec / f"{prefix}{LEDGER_SUFFIX}").read_bytes())
    assert after.state == "killed" and len(after.no_data) == 1
    assert recover(rec) == []  # done once
