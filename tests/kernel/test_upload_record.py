"""record --upload against a real S3-compatible server on 127.0.0.1 (moto in server mode):
the server goes down while files are being sealed, the recorder is killed during the outage,
the server comes back, the recorder is started again in the same directory. Every sealed file
must arrive exactly once, whole, with every call the workload made before the kill."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.s3server import S3Server, s3_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.kernel


def start(out: Path, url: str, env: dict[str, str], journal: Path) -> subprocess.Popen:
    """A recorder whose stderr (the journal) goes to a file; returned once it records."""
    args = ["record", "-o", str(out), "--force", "--comm", "calls", "--rotate-interval", "1s"]
    args += ["--log", "--upload", url, "--upload-delete"]
    size = journal.stat().st_size if journal.exists() else 0
    with open(journal, "a") as f:
        proc = subprocess.Popen([sys.executable, "-m", "sockopt_trace", *args], stderr=f, env=env)
    deadline = time.monotonic() + 120
    while "recording getsockopt" not in journal.read_text()[size:]:
        assert proc.poll() is None, journal.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return proc


def workload(workload_bin: Path) -> int:
    out = subprocess.run([str(workload_bin), "40", "2"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["pid"]


def wait_for(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_every_sealed_file_arrives_once_through_an_outage_and_a_kill(
    tmp_path: Path,
    workload_bin: Path,
    s3_server: S3Server,  # noqa: F811
) -> None:
    bucket = f"fleet-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    env = {**os.environ, **s3_server.env()}
    out, journal = tmp_path / "rec", tmp_path / "journal.log"
    url = f"s3://{bucket}/recordings"

    rec = start(out, url, env, journal)
    pids = [workload(workload_bin)]
    wait_for(lambda: "uploaded " in journal.read_text())
    s3_server.stop()  # outage: files go on being sealed, uploads fail and back off
    pids.append(workload(workload_bin))
    time.sleep(3)  # sealed (1 s rotation), not uploaded
    rec.kill()  # and the recorder dies during the outage
    rec.wait(10)
    log = journal.read_text()
    assert "failed" in log and "retrying with back-off" in log
    pending = [p.name for p in out.glob("*.parquet")]
    assert pending, "every file was uploaded in spite of the outage"

    s3_server.start()  # back; the recorder restarts in the same directory
    rec = start(out, url, env, journal)
    pids.append(workload(workload_bin))
    wait_for(lambda: not list(out.glob("*.parquet")))  # all uploaded, then deleted
    rec.terminate()
    assert rec.wait(60) == 0

    log = journal.read_text()
    sealed = dict(re.findall(r"sealed (\S+\.parquet): ([\d,]+) events", log))
    objects = s3_server.objects(bucket)
    # exactly the sealed files, each once, in the fleet layout
    assert sorted(k.rsplit("/", 1)[1] for k in objects) == sorted(sealed)
    assert set(pending) <= set(sealed)
    calls: Counter[int] = Counter()
    for key, body in objects.items():
        footer = pq.ParquetFile(io.BytesIO(body)).metadata.metadata
        meta = schema.RecordingMetadata.from_bytes(footer[schema.METADATA_KEY])
        assert (
            key
            == f"recordings/{schema.fleet_prefix(meta.host, meta.start_ns)}/"
            + (key.rsplit("/", 1)[1])
        )
        rows = pq.read_table(io.BytesIO(body), columns=["pid"])
        assert rows.num_rows == meta.events == int(sealed[key.rsplit("/", 1)[1]].replace(",", ""))
        calls.update(rows.column("pid").to_pylist())
    for pid in pids:  # everything made before the kill was sealed, and so arrived
        assert calls[pid] == 6 * 40 * 2
    assert len(re.findall(r"uploaded (\S+\.parquet) to", log)) == len(sealed)
