"""The analyzer commands as a user runs them: a subprocess, exit codes, stdout vs stderr."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sockopt_trace.analyzer.reports import load_reports
from tests.synth import BAD_KINDS, bad_file, write_recording

ROOT = Path(__file__).resolve().parents[2]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def ok(*args: object) -> subprocess.CompletedProcess[str]:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def fails(*args: object) -> str:
    """The one-line error of a command that must fail with exit code 2."""
    done = run(*args)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sockopt-trace: error: "), done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "rec"
    write_recording(root, 4000, files=2, seed=5, lost={"ringbuf_full": 3})
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "rec"
    write_recording(root, 1000, files=1, seed=6)
    return root


def test_report_csv_stays_machine_readable_and_warns_on_stderr(rec: Path) -> None:
    done = ok("report", rec, "latency", "--by", "comm,optname", "--format", "csv", "--top", 100)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert sum(int(r["calls"]) for r in rows) == 4000
    assert list(rows[0]) == [  # raw numbers beside the names: tools need no name table
        "comm",
        "level",
        "optname",
        "optname_name",
        "calls",
        "mean_ns",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "p999_ns",
        "max_ns",
    ]
    warning = done.stderr.splitlines()
    assert len(warning) == 1
    assert "lost 3 events" in warning[0] and "percentiles may be biased" in warning[0]


def test_no_warning_without_lost_events(clean: Path) -> None:
    assert ok("report", clean, "-f", "json").stderr == ""


def test_report_name_after_before_or_as_option(clean: Path) -> None:
    after = json.loads(ok("report", clean, "errors", "-f", "json").stdout)
    before = json.loads(ok("report", "errors", clean, "-f", "json").stdout)
    option = json.loads(ok("report", clean, "-r", "errors", "-f", "json").stdout)
    assert after == before == option and "errno" in after[0]
    (summary,) = json.loads(ok("report", clean, "-f", "json").stdout)
    assert summary["events"] == 1000
    assert "give one report name" in fails("report", clean, "errors", "-r", "latency")


def test_report_options(clean: Path) -> None:
    top = json.loads(ok("report", clean, "slowest", "--top", "3", "-f", "json").stdout)
    assert len(top) == 3 and top[0]["latency_ns"] >= top[1]["latency_ns"] >= top[2]["latency_ns"]
    nginx = json.loads(
        ok("report", clean, "processes", "-w", "comm = 'nginx'", "-f", "json").stdout
    )
    assert [p["comm"] for p in nginx] == ["nginx"]
    timeline = ok(
        "report", clean, "timeline", "-p", "interval=250us", "--since", "200us", "-f", "csv"
    )
    assert len(timeline.stdout.splitlines()) > 2
    markdown = ok("report", clean, "callsites", "-f", "markdown", "-n", "2").stdout.splitlines()
    assert markdown[0].startswith("| callsite | calls |") and len(markdown) == 4


def test_table_output_and_row_limit(clean: Path) -> None:
    done = ok("report", clean, "timeline", "-p", "interval=100us", "--max-rows", "5")
    assert "calls_per_s" in done.stdout
    assert "showing the first 5 rows" in done.stderr


def test_query_and_query_file(clean: Path, tmp_path: Path) -> None:
    sql = "SELECT errno_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1"
    got = json.loads(ok("query", clean, sql, "-f", "json").stdout)
    assert sum(r["n"] for r in got) == 1000 and got[0]["errno_name"] == "OK"
    file = tmp_path / "q.sql"
    file.write_text("-- a comment\nSELECT count(*) AS files FROM files")
    assert json.loads(ok("query", clean, "--file", file, "-f", "json").stdout) == [{"files": 1}]
    assert "give the recording, then the SQL" in fails("query", clean)


def test_queries_lists_every_report() -> None:
    got = json.loads(ok("queries", "--format", "json").stdout)
    assert [r["name"] for r in got] == sorted(load_reports())  # eight: see test_queries_lint
    latency = next(r for r in got if r["name"] == "latency")
    assert latency["default_by"] == "comm, level, optname" and "top=20 (int)" in latency["params"]


def test_info(rec: Path) -> None:
    got = json.loads(ok("info", rec, "-f", "json").stdout)
    (recording,) = got["recordings"]  # one recording: no total row
    assert recording["events"] == 4000 and recording["lost_ringbuf_full"] == 3
    assert len(got["files"]) == 2
    table = list(csv.DictReader(io.StringIO(ok("info", rec, "-f", "csv").stdout)))
    assert [r["events"] for r in table] == ["4000"]  # one csv table: the recordings
    files = list(
        csv.DictReader(io.StringIO(ok("info", rec, "--what", "files", "-f", "csv").stdout))
    )
    assert [int(r["events"]) for r in files] and sum(int(r["events"]) for r in files) == 4000


def test_help_on_every_command() -> None:
    for command in ("info", "report", "query", "queries"):
        assert "Usage" in ok(command, "--help").stdout


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_is_one_line_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = bad_file(tmp_path, kind)
    for command in (["info"], ["report"], ["query", "SELECT 1"]):
        line = fails(*command[:1], path, *command[1:])
        assert str(path) in line


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    assert "no such file or directory" in fails("report", tmp_path / "missing")
    assert "no recording files" in fails("info", tmp_path)


def test_mixed_directory_with_and_without_skip_bad(tmp_path: Path) -> None:
    write_recording(tmp_path, 500, files=2, seed=8)
    bad = bad_file(tmp_path, "truncated")
    line = fails("report", tmp_path, "latency")
    assert str(bad) in line and "--skip-bad" in line
    done = ok("report", tmp_path, "latency", "--skip-bad", "-f", "csv", "-n", 100)
    assert sum(int(r["calls"]) for r in csv.DictReader(io.StringIO(done.stdout))) == 500
    (warning,) = done.stderr.splitlines()
    assert "skipped 1 bad file" in warning and str(bad) in warning


def test_bad_sql_by_and_params_are_one_line_errors(clean: Path) -> None:
    assert "query failed: Parser Error" in fails("query", clean, "SELEC 1")
    assert "Referenced column" in fails("query", clean, "SELECT nope FROM events")
    assert "bad --where" in fails("report", clean, "--where", "comm = ")
    line = fails("report", clean, "latency", "--by", "comm,color")
    assert "color" in line and "host, comm, pid, tid" in line
    assert "has no parameter 'top'" in fails("report", clean, "timeline", "--top", "5")
    assert "bad --param" in fails("report", clean, "latency", "-p", "top")
    assert "bad --since" in fails("report", clean, "--since", "yesterday")


def test_closed_pipe_stops_quietly(rec: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sockopt_trace", "query", rec, "SELECT * FROM events", "-f", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"ts_ns,")
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141)
    assert "Traceback" not in stderr
