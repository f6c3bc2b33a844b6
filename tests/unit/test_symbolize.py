"""Naming call sites after recording, without a kernel: the sidecar, the views that prefer it,
finding debug files, and the real llvm-symbolizer on real (small) binaries."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sockopt_trace.analyzer import sidecar
from sockopt_trace.analyzer.debuginfo import DebugInfo, read_build_id
from sockopt_trace.analyzer.export import export
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import run_report
from sockopt_trace.analyzer.symbolize import Location, _frame, symbolize_locations
from tests.synth import SYNTH_BUILD_ID, frame_address, write_recording

ROOT = Path(__file__).resolve().parents[2]
needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "objcopy", "strip", "xz", "llvm-symbolizer")),
    reason="needs gcc, binutils, xz and llvm-symbolizer (scripts/setup.sh --system)",
)


def synth_symbols(directory: Path) -> None:
    """A sidecar naming two of the synthetic call sites and one stack frame."""
    side = sidecar.Sidecar(directory / sidecar.NAME)
    rows = [
        {"key": sidecar.location_key(SYNTH_BUILD_ID, None, 0x1003), "callsite":
         "serve+0x3 (server.c:10)", "frames": "serve", "source": "/src/server.c:10", "origin": "t",
         "recorded": "fn_0+0x3"},
        {"key": sidecar.location_key(SYNTH_BUILD_ID, None, 0x1013), "callsite":
         "poll+0x9 (io.c:4) > wait (io.h:2)", "frames": "poll;wait", "source": "/src/io.h:2",
         "origin": "t", "recorded": "fn_1+0x13"},
        {"key": sidecar.location_key(SYNTH_BUILD_ID, None, frame_address("fn_0")), "callsite":
         "x", "frames": "real_fn;inlined_fn", "source": "", "origin": "t", "recorded": None},
    ]  # fmt: skip
    side.merge(rows, ["some-file.parquet"])
    side.write()


def test_sidecar_round_trip_and_damage(tmp_path: Path) -> None:
    synth_symbols(tmp_path)
    again = sidecar.Sidecar.read(tmp_path)
    assert again.problem is None and len(again.rows) == 3
    assert again.files == {"some-file.parquet"}
    (tmp_path / sidecar.NAME).write_bytes(b"not parquet")
    broken = sidecar.Sidecar.read(tmp_path)
    assert broken.rows == {} and broken.problem and "unreadable symbols sidecar" in broken.problem


def test_reports_prefer_the_sidecar_and_keep_what_was_recorded(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    paths = write_recording(rec, 6000, files=2, stacks="full")
    before = {p: hashlib.sha256(p.read_bytes()).digest() for p in paths}
    plain = run_report(load([rec]).con, "callsites", params={"top": 50}).rows
    synth_symbols(rec)
    loaded = load([rec])
    named = {r[0]: r[1] for r in run_report(loaded.con, "callsites", params={"top": 50}).rows}
    recorded = {r[0]: r[1] for r in plain}
    # fn_0 and fn_1 renamed, the counts unchanged, the others as they were
    assert named["serve+0x3 (server.c:10)"] == recorded["fn_0+0x3"]
    assert named["poll+0x9 (io.c:4) > wait (io.h:2)"] == recorded["fn_1+0x13"]
    assert "fn_0+0x3" not in named and named["fn_2+0x23"] == recorded["fn_2+0x23"]
    rows = loaded.con.execute(
        "SELECT DISTINCT callsite, callsite_recorded FROM events WHERE callsite LIKE 'serve%'"
    ).fetchall()
    assert rows == [("serve+0x3 (server.c:10)", "fn_0+0x3")]
    # stacks: the named frame is expanded into its inlined frames
    stacks = dict(loaded.con.execute("SELECT stack_recorded, stack FROM events").fetchall())
    assert stacks["main;loop_0;handler_0;fn_0"] == "main;loop_0;handler_0;real_fn;inlined_fn"
    assert stacks["main;loop_1;handler_1;fn_1"] == "main;loop_1;handler_1;fn_1"
    out = io.BytesIO()
    export(load([rec]), "folded", out)
    assert any(";real_fn;inlined_fn;" in line for line in out.getvalue().decode().splitlines())
    assert before == {p: hashlib.sha256(p.read_bytes()).digest() for p in paths}


def test_stack_location_frames_parse() -> None:
    assert _frame(f"{'ab' * 20}:0x10:0x1010") == Location("ab" * 20, None, 0x1010)
    assert _frame("/opt/a%3Bb/lib.so:0x10:0x2010") == Location(None, "/opt/a;b/lib.so", 0x2010)
    assert _frame(f"{'ab' * 20}:0x10:") is None and _frame("[unknown]") is None


def _build(tmp_path: Path) -> tuple[Path, Path, str]:
    """(stripped program, its debug file, build-id) of tests/workloads/layers.c."""
    full, stripped = tmp_path / "full", tmp_path / "layers"
    src = ROOT / "tests/workloads/layers.c"
    subprocess.run(["gcc", "-O2", "-g", "-o", str(full), str(src)], check=True)
    subprocess.run(["strip", "--strip-all", "-o", str(stripped), str(full)], check=True)
    build_id = read_build_id(stripped)
    assert build_id
    return stripped, full, build_id


def _function_addresses(binary: Path) -> dict[str, int]:
    nm = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    return {p[2]: int(p[0], 16) for line in nm.splitlines() if len(p := line.split()) == 3}


@needs_tools
def test_debug_dir_build_id_layout_gives_lines(tmp_path: Path) -> None:
    stripped, full, build_id = _build(tmp_path)
    debug = tmp_path / "debug" / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    debug.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(full), str(debug)], check=True)
    address = _function_addresses(full)["check_connected"] + 0x10
    found = DebugInfo([tmp_path / "debug"], system=False, urls=[]).find(build_id, str(stripped))
    assert found and found.source == f"debug-dir {tmp_path / 'debug'}" and found.debug
    rows, results = symbolize_locations(
        [Location(build_id, str(stripped), address)],
        DebugInfo([tmp_path / "debug"], system=False, urls=[]),
        tmp_path / "cache",
    )
    assert results[0].named == results[0].lines == 1
    assert rows[0]["callsite"].startswith("check_connected+0x10 (layers.c:")


@needs_tools
def test_minidebuginfo_names_a_stripped_binary(tmp_path: Path) -> None:
    """Fedora's MiniDebugInfo: the function symbols, xz'ed in .gnu_debugdata, which
    llvm-symbolizer does not read itself."""
    stripped, full, build_id = _build(tmp_path)
    mini = tmp_path / "mini"
    subprocess.run(["objcopy", "--only-keep-debug", "--strip-debug", str(full), str(mini)])
    subprocess.run(["xz", str(mini)], check=True)
    subprocess.run(["objcopy", "--add-section", f".gnu_debugdata={mini}.xz", str(stripped)])
    address = _function_addresses(full)["buffer_size"] + 4
    debug = DebugInfo(system=False, urls=[], cache=tmp_path / "cache")
    rows, results = symbolize_locations(
        [Location(build_id, str(stripped), address)], debug, tmp_path / "cache"
    )
    assert results[0].origin == "binary" and results[0].named == 1 and results[0].lines == 0
    assert rows[0]["callsite"] == "buffer_size+0x4"


def test_nothing_found_is_said(tmp_path: Path) -> None:
    debug = DebugInfo(system=False, urls=[], cache=tmp_path / "cache")
    rows, results = symbolize_locations(
        [Location("cd" * 20, "/nonexistent/bin", 0x1000)], debug, tmp_path
    )
    assert rows == [] and results[0].origin == "no debug information found"


def test_locations_are_read_from_call_sites_and_stack_frames(tmp_path: Path) -> None:
    from sockopt_trace.analyzer.recording import open_recording
    from sockopt_trace.analyzer.symbolize import locations

    write_recording(tmp_path / "rec", 3000, files=2, stacks="full")
    found = locations(open_recording([tmp_path / "rec"]).files)
    sites = {loc.address: loc.recorded for loc in found if loc.recorded}
    assert sites[0x1003] == "fn_0+0x3" and len(sites) == 12
    frames = {loc.address for loc in found}
    assert {frame_address("main"), frame_address("handler_11")} <= frames
    assert all(loc.build_id == SYNTH_BUILD_ID for loc in found)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_symbolize_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    write_recording(tmp_path / "rec", 100, files=1)
    missing = _cli("symbolize", str(tmp_path / "rec"), "--debug-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "--debug-dir" in missing.stderr and "Traceback" not in missing.stderr
    nothing = _cli("symbolize", str(tmp_path / "none"))
    assert nothing.returncode == 2 and "no such file" in nothing.stderr


def test_symbolize_reads_recordings_made_before_locations_were_kept(tmp_path: Path) -> None:
    """The shipped samples predate the location columns: nothing to name, nothing broken."""
    shutil.copytree(ROOT / "sample_traces" / "curl", tmp_path / "curl")
    done = _cli("symbolize", str(tmp_path / "curl"), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
