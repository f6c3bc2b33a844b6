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


HEAVY = ("duckdb", "plotly", "sockopt_trace.analyzer")


def modules_after_cli(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded by the time `sockopt-trace ARGS` exits, whatever it exits with."""
    code = (
        "import atexit, sys\n"
        "out = sys.__stderr__\n"
        "atexit.register(lambda: out.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
        f"sys.argv = ['sockopt-trace', *{list(args)!r}]\n"
        "from sockopt_trace.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("MODULES ")]
    assert line, done.stderr
    return set(line[-1].split()[1:])


def heavy(loaded: set[str]) -> set[str]:
    return {m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_doctor_and_record_help_load_neither_duckdb_nor_the_analyzer() -> None:
    """The command that runs as root on a production host loads only the recorder's half."""
    for args in (("doctor",), ("record", "--help"), ("record", "--duration", "0s")):
        loaded = modules_after_cli(*args)
        assert not heavy(loaded), (args, heavy(loaded))


def test_help_loads_no_library() -> None:
    """`--help` lists every command without importing either half's libraries (only the
    analyzer's constant tables that help texts quote, and the label names they use)."""
    loaded = modules_after_cli("--help")
    assert "sockopt_trace.cli.diff" in loaded and "sockopt_trace.cli.record" in loaded
    light = {
        "sockopt_trace.analyzer.dimensions",
        "sockopt_trace.analyzer.diffsettings",
        "sockopt_trace.analyzer.symbolviews",
    }
    assert heavy(loaded) - light == {"sockopt_trace.analyzer"}
    assert not {"bcc", "numpy", "pyarrow", "rich"} & loaded
    assert not {m for m in loaded if m.startswith("sockopt_trace.recorder")}


def test_an_analysis_command_loads_no_recorder() -> None:
    loaded = modules_after_cli("report", "sample_traces/curl", "latency")
    assert "duckdb" in loaded
    assert not {m for m in loaded if m.startswith("sockopt_trace.recorder")} and "bcc" not in loaded


def test_a_report_over_a_local_recording_loads_neither_pyarrow_nor_numpy() -> None:
    """Their import was a third of a small report's start-up (bench/startup_bench.py): the
    footers are read by analyzer/footer.py, the small tables go to DuckDB as lists."""
    for args in (
        ("report", "sample_traces/curl", "latency"),
        ("report", "sample_traces/nginx-after", "callsites"),
        ("query", "sample_traces/curl", "SELECT count(*) FROM events JOIN files USING (host)"),
    ):
        loaded = modules_after_cli(*args)
        assert "duckdb" in loaded, args
        assert not {m.split(".")[0] for m in loaded} & {"pyarrow", "numpy", "fsspec"}, args
