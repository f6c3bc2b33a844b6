"""record --upload, without a kernel: sealed files (synthetic, in the format) shipped to a real
S3-compatible server on 127.0.0.1 (moto) and to a directory, through outages and restarts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sockopt_trace import schema
from sockopt_trace.errors import UserError
from sockopt_trace.recorder.upload import UPLOADED_NAME, UploadConfig, Uploader, destination
from tests.s3server import S3Server, s3_server  # noqa: F401 (fixture)
from tests.synth import START_NS, write_recording


def sealed(directory: Path, n: int, seed: int = 0) -> list[Path]:
    return write_recording(directory, 300 * n, files=n, seed=seed, host="web-1")


def wait_for(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def add_all(up: Uploader, files: list[Path]) -> None:
    for f in files:
        up.add(f, schema.read_file_metadata(str(f)))


def expected_keys(files: list[Path], prefix: str = "") -> dict[str, bytes]:
    day = time.strftime("%Y-%m-%d", time.gmtime(START_NS // 10**9))
    return {f"{prefix}host=web-1/date={day}/{f.name}": f.read_bytes() for f in files}


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:  # noqa: F811
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return s3_server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new bucket for each test (moto keeps every bucket for the life of the process)."""
    name = f"fleet-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def test_every_file_arrives_once_in_the_fleet_layout_through_an_outage(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    rec = tmp_path / "rec"
    first, later = sealed(rec, 2), []
    lines: list[str] = []
    cfg = UploadConfig(f"s3://{bucket}/hosts", backoff_max=0.5)
    up = Uploader(cfg, rec, lines.append)
    assert up.unfinished == 2  # already sealed when it started: queued first
    up.start()
    wait_for(lambda: up.pending == 0)
    s3.stop()  # the server goes away while files keep being sealed
    later = write_recording(rec, 900, files=3, seed=10, host="web-1", recording_id="b" * 32)
    add_all(up, later)
    wait_for(lambda: up.failures >= 3)
    assert up.pending == 3  # nothing is lost meanwhile, nothing counted as done
    s3.start()
    wait_for(lambda: up.pending == 0)
    up.finish()
    assert s3.objects(bucket) == expected_keys(first + later, "hosts/")
    assert all(f.exists() for f in first + later)  # no --upload-delete: local copies stay
    failed = [line for line in lines if "failed" in line and "retrying" in line]
    assert len(failed) == 1, lines  # one line per outage, not one per attempt
    assert sum("uploaded web-1" in line for line in lines) == 5
    assert any("after" in line and "failed attempts" in line for line in lines)


def test_uploads_left_at_a_stop_are_done_by_the_next_start_and_then_deleted(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    rec = tmp_path / "rec"
    files = sealed(rec, 3)
    s3.stop()
    lines: list[str] = []
    cfg = UploadConfig(f"s3://{bucket}", delete=True, backoff_max=0.2, drain_seconds=0.5)
    up = Uploader(cfg, rec, lines.append)
    up.start()
    t0 = time.monotonic()
    up.finish()  # the server is down: give up within the drain time, keep the files
    assert time.monotonic() - t0 < 5
    assert up.pending == 3 and all(f.exists() for f in files)
    assert "3 sealed files not uploaded yet" in lines[-1]
    contents = expected_keys(files)

    s3.start()
    again = Uploader(cfg, rec, lines.append)
    assert again.unfinished == 3
    again.start()
    again.finish()
    assert s3.objects(bucket) == contents
    assert not any(f.exists() for f in files)  # deleted once confirmed
    # a third start finds nothing left to do; the ledger forgot what is gone from the disk
    assert Uploader(cfg, rec, lines.append).unfinished == 0
    assert (rec / UPLOADED_NAME).read_text() == ""


def test_a_directory_destination_and_a_restart_without_anything_pending(tmp_path: Path) -> None:
    rec, dest = tmp_path / "rec", tmp_path / "shipped"
    files = sealed(rec, 2)
    up = Uploader(UploadConfig(str(dest)), rec, lambda _line: None)
    up.start()
    up.finish()
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == expected_keys(files)
    assert Uploader(UploadConfig(str(dest)), rec, lambda _line: None).unfinished == 0
    # another destination has not had them yet
    assert Uploader(UploadConfig(str(tmp_path / "other")), rec, lambda _l: None).unfinished == 2


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3://", "http://example.invalid/x"])
def test_bad_destinations_are_refused_in_one_line(url: str) -> None:
    with pytest.raises(UserError, match="--upload"):
        destination(url)
