"""Retention over a directory of sealed files (synthetic, in the format): oldest first, every
limit, what was removed accounted for before it goes, a round cut short finished later."""

from __future__ import annotations

from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.recorder.retention import Retention, RetentionConfig
from sockopt_trace.retention import RETENTION_NAME, Removed
from tests.synth import write_recording


def recording(directory: Path, files: int = 6) -> list[Path]:
    return write_recording(directory, 600 * files, files=files, seed=3)


def summary(directory: Path) -> Removed:
    return Removed.from_bytes((directory / RETENTION_NAME).read_bytes())


def test_no_limit_never_deletes(tmp_path: Path) -> None:
    paths = recording(tmp_path)
    r = Retention(tmp_path, RetentionConfig(), print)
    assert r.enforce() == [] and all(p.exists() for p in paths)
    assert not (tmp_path / RETENTION_NAME).exists()


def test_max_files_and_max_size_remove_the_oldest_and_say_so(tmp_path: Path) -> None:
    paths = recording(tmp_path)
    metas = [schema.read_file_metadata(str(p)) for p in paths]
    first_two = paths[0].stat().st_size + paths[1].stat().st_size
    lines: list[str] = []
    r = Retention(tmp_path, RetentionConfig(max_files=4), lines.append)
    assert r.enforce() == [paths[0].name, paths[1].name]
    assert [p.exists() for p in paths] == [False, False, True, True, True, True]
    s = summary(tmp_path)
    assert (s.files, s.events, s.by_limit) == (
        2,
        metas[0].events + metas[1].events,
        {"max-files": 2},
    )
    assert (s.from_ns, s.to_ns) == (metas[0].start_ns, metas[1].end_ns)
    assert s.size == first_two and s.last_round == [paths[0].name, paths[1].name]
    assert "retention removed 2 files" in lines[-1] and "max-files" in lines[-1]

    sizes = [p.stat().st_size for p in paths[2:]]
    r = Retention(tmp_path, RetentionConfig(max_bytes=sum(sizes[-2:])), lines.append)
    assert r.enforce() == [paths[2].name, paths[3].name]
    s = summary(tmp_path)
    assert s.files == 4 and s.by_limit == {"max-files": 2, "max-size": 2}  # totals carry on
    assert s.to_ns == metas[3].end_ns
    assert sum(p.stat().st_size for p in tmp_path.glob("*.parquet")) <= sum(sizes[-2:])


def test_max_age_and_the_files_of_other_runs(tmp_path: Path) -> None:
    paths = recording(tmp_path, 3)
    metas = [schema.read_file_metadata(str(p)) for p in paths]
    (tmp_path / "notes.parquet").write_text("not a recording: never ours to delete")
    age_ns = (metas[1].end_ns - metas[0].end_ns) // 2
    r = Retention(tmp_path, RetentionConfig(max_age_s=age_ns / 1e9), print)
    assert r.enforce(metas[1].end_ns) == [paths[0].name]  # only file 1 ended before now - age
    assert (tmp_path / "notes.parquet").exists()


def test_a_round_cut_short_is_finished_at_the_next_start(tmp_path: Path) -> None:
    paths = recording(tmp_path, 3)
    Retention(tmp_path, RetentionConfig(max_files=2), print).enforce()
    assert not paths[0].exists()
    # as if the recorder died after writing the summary, before unlinking
    s = summary(tmp_path)
    s.last_round = [paths[1].name]
    (tmp_path / RETENTION_NAME).write_bytes(s.to_bytes())
    r = Retention(tmp_path, RetentionConfig(), print)
    assert not paths[1].exists() and paths[1].name not in r.files
