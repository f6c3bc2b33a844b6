"""Ad hoc SQL cannot touch the host: every way out of the recording fails with one line.

`query`, `--where` (as a subquery) and report parameters all reach DuckDB; after the views are
registered the connection is sealed (no file, network or extension access but the recording's
own files, configuration locked). Each escape is tried through the command line, in-process
(`cli.main`, as the console script runs it), and must exit 2 with one line on stderr, print
nothing, and leave nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import refused, run
from tests.synth import write_recording

ROOT = Path(__file__).resolve().parents[2]
OTHER = ROOT / "sample_traces" / "curl"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sandbox") / "rec"
    write_recording(root, 300, files=2, seed=3)
    return root


def escapes(tmp: Path) -> dict[str, str]:
    """SQL that would read, write or reach beyond the recording, by what it tries."""
    secret = tmp / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    return {
        "COPY TO": f"COPY (SELECT * FROM events) TO '{tmp / 'copy.csv'}'",
        "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
        "read_csv of ours": f"SELECT * FROM read_csv('{secret}')",
        "csv by name": f"SELECT * FROM '{secret}'",
        "read_text": "SELECT * FROM read_text('/etc/hostname')",
        "read_blob": "SELECT * FROM read_blob('/etc/hostname')",
        "read_json": "SELECT * FROM read_json('/etc/hostname')",
        "read_parquet elsewhere": f"SELECT count(*) FROM read_parquet('{OTHER}/*.parquet')",
        "parquet_metadata": f"SELECT * FROM parquet_metadata('{next(OTHER.glob('*.parquet'))}')",
        "glob": "SELECT * FROM glob('/*')",
        "ATTACH": f"ATTACH '{tmp / 'attached.db'}' AS other",
        "INSTALL": "INSTALL httpfs",
        "LOAD": "LOAD httpfs",
        "http": "SELECT * FROM read_csv('https://example.com/x.csv')",
        "EXPORT DATABASE": f"EXPORT DATABASE '{tmp / 'exported'}'",
        "IMPORT DATABASE": f"IMPORT DATABASE '{tmp}'",
        "CREATE SECRET": "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
        "getenv": "SELECT getenv('HOME')",
        "PRAGMA": "PRAGMA threads = 1",
        "SET": "SET enable_external_access = true",
        "SET allowed_paths": "SET allowed_paths = ['/etc/passwd']",
        "RESET": "RESET enable_external_access",
        "SET GLOBAL": "SET GLOBAL lock_configuration = false",
    }


def test_query_cannot_escape(rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tries = escapes(tmp_path)
    before = set(tmp_path.rglob("*"))
    for what, sql in tries.items():
        line = refused(capsys, "query", rec, sql)
        assert "query failed" in line, (what, line)
    assert set(tmp_path.rglob("*")) - before == set(), "an escape left a file"


def test_where_cannot_escape_through_a_subquery(
    rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reads = {k: v for k, v in escapes(tmp_path).items() if v.startswith("SELECT")}
    for what, sql in reads.items():
        where = f"EXISTS ({sql})"
        line = refused(capsys, "report", rec, "summary", "--where", where)
        assert "bad --where" in line, (what, line)
    # one command of each kind that takes --where
    where = "EXISTS (SELECT * FROM read_csv('/etc/passwd'))"
    refused(capsys, "diff", rec, rec, "--where", where)
    refused(capsys, "export", rec, "-f", "csv", "--where", where)
    refused(capsys, "html", rec, "-o", tmp_path / "x.html", "--where", where)
    assert not (tmp_path / "x.html").exists()


def test_parameters_are_values_not_sql(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "report", rec, "callsites", "-p", "sort=calls' OR 1=1 --")
    assert "sort" in line
    line = refused(capsys, "report", rec, "latency", "-p", "top=1; COPY events TO '/tmp/x'")
    assert "expected int" in line


def test_the_sandbox_hint_names_the_way_out(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "query", rec, "SELECT * FROM read_csv('/etc/passwd')")
    assert "--allow-external-sql" in line


def test_allow_external_sql_opts_out(
    rec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "owners.csv"
    extra.write_text("pid,owner\n1200,web\n")
    sql = f"SELECT e.pid, o.owner, count(*) FROM events e JOIN '{extra}' o USING (pid) GROUP BY ALL"
    code, out, err = run(capsys, "query", rec, sql, "--allow-external-sql", "-f", "csv")
    assert code == 0, err
    assert "web" in out


def test_the_recording_itself_stays_readable(rec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Everything the views read is allowed, by any of its names: the files, by path too."""
    first = sorted(rec.glob("*.parquet"))[0]
    sql = (
        f"SELECT (SELECT count(*) FROM events) AS events, "
        f"(SELECT count(*) FROM files) AS files, "
        f"(SELECT count(*) FROM read_parquet('{first}')) AS first_file"
    )
    code, out, err = run(capsys, "query", rec, sql, "-f", "csv")
    assert code == 0, err
    events, files, first_file = map(int, out.splitlines()[1].split(","))
    assert events == 300 and files == 2 and 0 < first_file < 300
