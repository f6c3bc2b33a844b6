"""What the command line says when there is nothing to show or the input is off: one line each,
on stderr, naming the cause; and the options that mean one thing everywhere (-n 0 is all)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli import refused, run
from tests.synth import write_recording

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calls from many threads, a few of them failing, without stacks."""
    root = tmp_path_factory.mktemp("messages") / "rec"
    write_recording(root, 2000, files=2, seed=31, stacks="callsite")
    return root


def note(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """The one stderr line of a command that succeeds with an empty result."""
    code, _, err = run(capsys, *args)
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockopt-trace: note: "), err
    return lines[0]


def test_empty_results_explain_themselves(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = note(capsys, "report", rec, "latency", "--since", "1h")
    assert "no calls from" in line and "the recording covers" in line and "2,000 calls" in line
    line = note(capsys, "report", rec, "latency", "--where", "pid = -5")
    assert "--where matched none of the 2,000 calls" in line
    line = note(capsys, "report", rec, "callsites", "--by", "stack")
    assert "no stacks were recorded" in line and "--by callsite" in line
    line = note(capsys, "report", rec, "summary", "--where", "pid = -5")
    assert "--where matched none" in line
    clean = SAMPLES / "curl"  # curl's SO_ERROR calls all succeed
    assert "no call failed: all 200 calls returned 0" in note(capsys, "report", clean, "errors")
    code, _, err = run(capsys, "diff", rec, rec, "--where", "pid = -5", "-f", "json")
    assert code == 0 and "the base side has no calls that pass --where" in err


def test_top_zero_is_all_and_negative_is_refused(
    rec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "report", rec, "slowest", "-n", "0", "-f", "csv")
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 2000  # every call
    code, out, _ = run(capsys, "report", rec, "slowest", "-f", "csv")
    assert len(list(csv.DictReader(io.StringIO(out)))) == 20  # the default
    assert "bad --top -1: 0 (all) or more" in refused(capsys, "report", rec, "latency", "-n", "-1")
    assert "bad --top" in refused(capsys, "report", rec, "latency", "-p", "top=-3")
    assert "bad --top" in refused(capsys, "diff", rec, rec, "-n", "-1")


def test_usage_errors_are_one_line(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "report", rec, "--format", "nonsense")
    assert "'nonsense' is not one of 'table', 'csv', 'json', 'markdown'" in line
    assert "No such option: --bogus" in refused(capsys, "info", rec, "--bogus")
    assert "did you mean latency?" in refused(capsys, "report", rec, "latncy")
    assert "did you mean latency?" in refused(capsys, "report", rec, "-r", "latncy")
    assert "no SQL to run" in refused(capsys, "query", rec, "")
    assert "no SQL to run" in refused(capsys, "query", rec, "   ")


def test_a_glob_skips_what_is_not_a_recording(
    rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(rec, tmp_path / "rec")
    (tmp_path / "rec" / "README.md").write_text("# notes\n")
    code, out, err = run(capsys, "report", f"{tmp_path}/rec/*", "summary", "-f", "json")
    assert code == 0 and json.loads(out)[0]["events"] == 2000
    (line,) = err.splitlines()
    assert "ignored 1 file that the pattern matched but that is not *.parquet" in line
    assert "README.md" in line
    assert "README.md" in refused(capsys, "report", tmp_path / "rec" / "README.md")  # named


def test_a_glob_over_directories_skips_one_without_a_recording(
    rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`'sample_traces/*/'` also matches sample_traces/stripped-debug (debug files only)."""
    shutil.copytree(rec, tmp_path / "rec")
    (tmp_path / "debug").mkdir()
    (tmp_path / "debug" / "x.debug").write_bytes(b"\x7fELF")
    code, out, err = run(capsys, "report", f"{tmp_path}/*/", "summary", "-f", "json")
    assert code == 0 and json.loads(out)[0]["events"] == 2000
    (line,) = err.splitlines()
    assert "ignored 1 directory that the pattern matched but that holds no recording" in line
    assert "debug" in line
    assert "no recording files" in refused(capsys, "report", tmp_path / "debug")  # named


def test_damaged_data_names_the_file(
    rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The footer is whole (it passes the checks made up front), a data page is not."""
    damaged = tmp_path / "damaged.parquet"
    source = sorted(rec.glob("*.parquet"))[0]
    data = bytearray(source.read_bytes())
    column = pq.ParquetFile(source).metadata.row_group(0).column(1)  # latency_ns
    start = column.data_page_offset + 16
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    damaged.write_bytes(bytes(data))
    line = refused(capsys, "report", damaged, "slowest")
    assert f"{damaged}: damaged data in this recording file" in line


def test_html_of_two_recordings_says_it_compares(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = SAMPLES / "curl", SAMPLES / "python-asyncio"
    page = tmp_path / "page.html"
    code, _, err = run(capsys, "html", a, b, "-o", page, "--plotly-js", tmp_path)
    assert code == 0, err
    assert f"comparing {b} (new) with {a} (base)" in err and page.stat().st_size < 500_000


def test_export_gz_is_gzipped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "trace.json.gz"
    code, _, err = run(capsys, "export", SAMPLES / "curl", "-f", "chrome", "-o", out)
    assert code == 0, err
    trace = json.loads(gzip.decompress(out.read_bytes()))
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == 200
