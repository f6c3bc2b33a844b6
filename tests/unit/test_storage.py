"""Recordings in a bucket: a real S3-compatible server (moto in server mode, on 127.0.0.1, a
process of its own) and the real command line; objects are put there with boto3, not through
the code under test. Answers equal the same files' read locally; fleet directories are pruned
before any file in them is opened; bad objects are named in one line; secrets never printed."""

from __future__ import annotations

import os
import random
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockopt_trace.analyzer import storage
from sockopt_trace.analyzer.storage import (
    BlockCache,
    PositionalFile,
    Prune,
    hosts_in_where,
    parse_url,
    s3_options,
)
from tests.synth import bad_file, write_recording

SECRET = "s3cr3t-never-printed"
BUCKET = "fleet-bucket"
README_BUCKET = "sockopt-fleet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def fleet(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """host=NAME/date=YYYY-MM-DD/ locally and in the bucket, plus bad objects in a host and a
    date directory that the pruning tests must never open."""
    import boto3

    root = tmp_path_factory.mktemp("fleet")
    for host, seed in (("host-a", 1), ("host-b", 2)):
        write_recording(root / f"host={host}" / "date=2023-11-14", 3000, seed=seed, host=host)
    for where, kind in (
        ("host=zzz/date=2023-11-14", "text"),
        ("host=host-a/date=2020-01-01", "truncated"),
    ):
        (root / where).mkdir(parents=True)
        bad_file(root / where, kind)
    client = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket=README_BUCKET)
    for path in root.rglob("*.parquet"):
        key = str(path.relative_to(root))
        client.upload_file(str(path), BUCKET, f"fleet/{key}")
        if "host=host-" in key and "2023-11-14" in key:  # README's bucket: good files only
            client.upload_file(str(path), README_BUCKET, f"recordings/{key}")
    return root


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockopt_trace", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_reports_over_the_bucket_equal_local_ones(s3_env: dict[str, str], fleet: Path) -> None:
    url = f"s3://{BUCKET}/fleet/"
    keep = ["--where", "host IN ('host-a', 'host-b')", "--since", "2023-11-14T00:00:00"]
    for args in (["report", "latency"], ["report", "callsites"], ["report", "summary"]):
        remote = cli(s3_env, args[0], url, *args[1:], *keep, "-f", "csv")
        local = cli(s3_env, args[0], str(fleet), *args[1:], *keep, "-f", "csv")
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout and remote.stdout.count("\n") > 1
        assert SECRET not in remote.stdout + remote.stderr
    sql = "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY host"
    remote = cli(s3_env, "query", f"s3://{BUCKET}/fleet/host=host-b/", sql, "-f", "csv")
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == "host,n\nhost-b,3000\n"
    info = cli(s3_env, "info", f"s3://{BUCKET}/fleet/host=host-a/date=2023-11-14/", "-f", "json")
    assert info.returncode == 0, info.stderr
    first = sorted((fleet / "host=host-a" / "date=2023-11-14").glob("*-000001.parquet"))[0]
    assert f"s3://{BUCKET}/fleet/host=host-a/date=2023-11-14/{first.name}" in info.stdout


def test_a_large_object_reads_whole(s3_env: dict[str, str], tmp_path: Path) -> None:
    """A file of tens of MB (several row groups, DuckDB's ranged reads through the fsspec
    wrapper of pyarrow's S3 filesystem): every report's answer equals the local file's. A
    100M-event bench once saw such reads fail as "damaged data" (docs/benchmarks.md)."""
    import boto3

    [path] = write_recording(tmp_path / "big", 2_500_000, files=1, row_group_rows=1 << 18)
    assert path.stat().st_size > 30 * 2**20
    client = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="big-bucket")
    client.upload_file(str(path), "big-bucket", f"big/{path.name}")
    for name in ("callsites", "latency", "summary"):
        remote = cli(s3_env, "report", "s3://big-bucket/big/", name, "-f", "csv")
        local = cli(s3_env, "report", str(path.parent), name, "-f", "csv")
        assert remote.returncode == 0, remote.stderr
        assert remote.stdout == local.stdout and remote.stdout.count("\n") > 1, name


def test_a_bad_object_is_named_in_one_line(s3_env: dict[str, str], fleet: Path) -> None:
    out = cli(s3_env, "report", f"s3://{BUCKET}/fleet/", "latency")
    assert out.returncode == 2
    line = out.stderr.strip()
    assert "\n" not in line and f"s3://{BUCKET}/fleet/host=" in line and "--skip-bad" in line
    assert SECRET not in out.stdout + out.stderr
    on_spark = cli(
        s3_env,
        *("report", f"s3://{BUCKET}/fleet/host=host-b/", "latency"),
        *("--engine", "spark", "--spark-master", "local[2]"),
    )  # PySpark's own Hadoop has no s3a filesystem: one line, bad input, not an internal error
    lines = [x for x in on_spark.stderr.splitlines() if x.startswith("sockopt-trace:")]
    assert on_spark.returncode == 2 and len(lines) == 1 and "s3a" in lines[0], on_spark.stderr
    assert "Traceback" not in on_spark.stderr and SECRET not in on_spark.stderr
    missing = cli(s3_env, "report", "s3://no-such-bucket/x/", "latency")
    assert missing.returncode != 0 and "\n" not in missing.stderr.strip()
    assert "Traceback" not in missing.stderr and SECRET not in missing.stderr


def test_host_and_date_directories_are_pruned_unopened(s3_env: dict[str, str], fleet: Path) -> None:
    """The bad objects sit in host=zzz/ and date=2020-01-01/: a filter that rules those
    directories out must not open them (else the command would fail on them)."""
    url = f"s3://{BUCKET}/fleet/"
    only_a = cli(
        s3_env,
        "report",
        url,
        "latency",
        "--where",
        "host = 'host-a'",
        "--since",
        "2023-11-14T00:00:00",
        "-f",
        "csv",
    )
    assert only_a.returncode == 0, only_a.stderr
    local = cli(
        s3_env, "report", str(fleet / "host=host-a" / "date=2023-11-14"), "latency", "-f", "csv"
    )
    assert only_a.stdout == local.stdout
    # host-a's bad file is in date=2020-01-01: without --since it is opened, and named
    no_since = cli(s3_env, "report", url, "latency", "--where", "host = 'host-a'")
    assert no_since.returncode == 2 and "date=2020-01-01" in no_since.stderr


def test_prune_rules() -> None:
    assert hosts_in_where("host = 'a' AND comm = 'nginx'") == {"a"}
    assert hosts_in_where("(host IN ('a', 'b'))") == {"a", "b"}
    assert hosts_in_where("host = 'a' OR comm = 'x'") is None
    assert hosts_in_where("hostx = 'a'") is None and hosts_in_where(None) is None
    day = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
    prune = Prune(frozenset({"a"}), since_ns=day, until_ns=day + 10**9)
    assert prune.keeps("s3://b/f/host=a/date=2023-11-14/x.parquet")
    assert not prune.keeps("s3://b/f/host=b/date=2023-11-14/x.parquet")
    assert not prune.keeps("/f/host=a/date=2023-11-13/x.parquet")
    assert not prune.keeps("/f/host=a/date=2023-11-15/x.parquet")
    assert prune.keeps("/f/other/x.parquet") and prune.keeps("/f/host=a/date=bad/x.parquet")


def test_endpoint_and_url_parsing() -> None:
    opts = s3_options({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"})
    assert opts == {"endpoint_override": "127.0.0.1:9000", "scheme": "http", "region": "eu-west-1"}
    assert s3_options({"AWS_ENDPOINT_URL_S3": "minio:9000"})["scheme"] == "https"
    assert str(parse_url("s3://b/p/x.parquet")) == "s3://b/p/x.parquet"
    assert parse_url("gcs://b/p").scheme == "gs"


def test_readme_fleet_commands_run(s3_env: dict[str, str], fleet: Path) -> None:
    """README's s3:// commands, as shown, against the server (its bucket: two hosts)."""
    from tests.unit.test_readme import readme_commands

    shown = [c for c in readme_commands() if "s3://" in c]
    assert len(shown) >= 3
    for command in shown:
        out = cli(s3_env, *shlex.split(command)[1:])
        assert out.returncode == 0, (command, out.stderr)
        assert out.stdout.strip() and "Traceback" not in out.stderr


class Remote:
    """What PositionalFile uses of pyarrow's remote input file, over `data`; counts requests."""

    def __init__(self, data: bytes) -> None:
        self.data, self.requests = data, list[tuple[int, int]]()

    def size(self) -> int:
        return len(self.data)

    def read_at(self, n: int, at: int) -> bytes:
        self.requests.append((at, n))
        time.sleep(0.0002)  # fetching, the GIL released
        return self.data[at : at + n]

    def close(self) -> None:
        pass


def test_a_remote_file_keeps_each_threads_position(monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB's threads share one handle per file and each seeks, then reads: every read gets
    the bytes at its own thread's position however the threads interleave (the remote read
    releases the GIL, as pyarrow's does), reads across block boundaries included."""
    monkeypatch.setattr(storage, "BLOCK", 64 * 1024)
    data = bytes(range(256)) * 4096 + b"tail"  # 16 blocks and 4 bytes
    f = PositionalFile(Remote(data))
    wrong: list[tuple[int, int]] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            at, n = rng.randrange(len(data)), rng.randrange(1, 8192)
            f.seek(at)
            if f.read(n) != data[at : at + n]:
                wrong.append((at, n))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    assert f.seek(-10, 2) == len(data) - 10 and f.read() == data[-10:] and f.read(5) == b""
    assert f.tell() == len(data) and f.seek(3) == 3 and f.read(2) == data[3:5]
    f.close()
    assert f.closed


def test_small_remote_reads_are_served_from_shared_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column-chunk-sized reads cost one request per block, not one each; a read of a block or
    more goes to the server as it is; a block is fetched again only after `keep` others."""
    monkeypatch.setattr(storage, "BLOCK", 1000)
    data = random.Random(7).randbytes(10_500)
    remote = Remote(data)
    f = PositionalFile(remote, BlockCache(keep=4))
    for at in range(0, 3000, 100):  # 30 reads of 100 bytes in blocks 0-2
        f.seek(at)
        assert f.read(100) == data[at : at + 100]
    assert remote.requests == [(0, 1000), (1000, 1000), (2000, 1000)]
    f.seek(2950)  # across blocks 2 and 3: block 3 fetched, block 2 kept
    assert f.read(100) == data[2950:3050]
    assert remote.requests[3:] == [(3000, 1000)]
    f.seek(10_400)  # the last block is short
    assert f.read(200) == data[10_400:]
    assert remote.requests[4:] == [(10_000, 500)]
    f.seek(100)  # a large read goes through whole
    assert f.read(2500) == data[100:2600] and remote.requests[5:] == [(100, 2500)]
    f.seek(0)  # block 0, used least recently, gave way to block 10 (keep = 4)
    assert f.read(10) == data[:10] and remote.requests[6:] == [(0, 1000)]


def test_handles_on_one_file_share_its_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB opens a file again for each part of a scan: a block one handle fetched serves the
    others, and threads missing the same block at once fetch it once."""
    monkeypatch.setattr(storage, "BLOCK", 1000)
    data = random.Random(8).randbytes(4000)
    cache, remote = BlockCache(), Remote(data)
    handles = [PositionalFile(remote, cache, "s3://b/f.parquet") for _ in range(8)]
    got: list[bytes] = []

    def read(f: PositionalFile, at: int) -> None:
        f.seek(at)
        got.append(f.read(50))

    threads = [
        threading.Thread(target=read, args=(f, 1200 + 60 * i)) for i, f in enumerate(handles)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(data[1200 + 60 * i : 1250 + 60 * i] for i in range(8))
    assert remote.requests == [(1000, 1000)]
    other = Remote(data[::-1])  # another object of the same size: not served the first's bytes
    g = PositionalFile(other, cache, "s3://b/g.parquet")
    assert g.read(10) == data[::-1][:10] and other.requests == [(0, 1000)]
