"""`record` really recording loads only the recorder's half: no DuckDB, plotly or analyzer in the
root process on a production host."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_boundaries import heavy, modules_after_cli


def test_a_real_recording_loads_no_analyzer(tmp_path: Path) -> None:
    loaded = modules_after_cli("record", "-q", "-o", str(tmp_path / "rec"), "--duration", "1s")
    assert "sockopt_trace.recorder.session" in loaded and "pyarrow.parquet" in loaded
    assert not heavy(loaded), heavy(loaded)
    assert list((tmp_path / "rec").glob("*.parquet"))
