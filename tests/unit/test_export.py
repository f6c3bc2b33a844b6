"""Exports parsed back: folded stacks sum to the calls, speedscope JSON validates against
speedscope's own schema, the Chrome trace has one complete slice per call, CSV has every row.

tests/data/speedscope-file-format-schema.json is `dist/release/file-format-schema.json` of the
npm package speedscope 1.25.0 (MIT licence), the schema https://www.speedscope.app/ publishes.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pyarrow.compute as pc
import pytest

from sockopt_trace.analyzer.export import PID_LIMIT, export
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.names import OPTNAMES
from tests.synth import read_rows, write_recording

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "speedscope-file-format-schema.json").read_text())
N = 3000


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "full"
    write_recording(root, N, files=2, seed=11, stacks="full")
    return root


@pytest.fixture(scope="module")
def callsites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "callsites"
    write_recording(root, N, files=2, seed=12, stacks="callsite")
    return root


def run_export(rec: Path | list[Path], fmt: str, weight: str = "calls", **filters: str) -> bytes:
    out = io.BytesIO()
    loaded = load(rec if isinstance(rec, list) else [rec], Filters(**filters))
    export(loaded, fmt, out, weight=weight)
    return out.getvalue()


def parse_folded(data: bytes) -> dict[str, int]:
    stacks: dict[str, int] = {}
    for line in data.decode().splitlines():
        stack, _, count = line.rpartition(" ")
        assert stack and stack not in stacks, line
        stacks[stack] = int(count)
    return stacks


def test_folded_lines_sum_to_the_calls_and_name_process_stack_and_option(full: Path) -> None:
    rows = read_rows(sorted(full.glob("*.parquet")))
    stacks = parse_folded(run_export(full, "folded"))
    assert sum(stacks.values()) == N
    expected = Counter(
        f"{c};{s};"
        for c, s in zip(rows["comm"].to_pylist(), rows["stack"].to_pylist(), strict=True)
    )
    seen = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        assert frames[1] == "main" and frames[-2].startswith("fn_")  # synth stacks: main;...;fn_i
        level, _, option = frames[-1].partition("/")
        assert level in ("SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6"), frames[-1]
        assert option
        seen[";".join(frames[:-1]) + ";"] += count
    assert seen == expected


def test_folded_time_weight_is_nanoseconds_in_getsockopt(full: Path) -> None:
    rows = read_rows(sorted(full.glob("*.parquet")))
    stacks = parse_folded(run_export(full, "folded", weight="time"))
    assert sum(stacks.values()) == pc.sum(rows["latency_ns"]).as_py()


def test_folded_without_stacks_uses_the_call_site(callsites: Path) -> None:
    rows = read_rows(sorted(callsites.glob("*.parquet")))
    stacks = parse_folded(run_export(callsites, "folded"))
    assert sum(stacks.values()) == N
    sites = set(rows["callsite"].to_pylist())
    for stack in stacks:
        comm, site, option = stack.split(";")
        assert site in sites and comm and option


def test_sampled_stacks_count_for_the_calls_they_stand_for(tmp_path: Path) -> None:
    write_recording(tmp_path, 4000, files=1, seed=3, stacks="full", stack_sample_period=4)
    stacks = parse_folded(run_export(tmp_path, "folded"))
    assert sum(stacks.values()) == 4000  # 1000 sampled rows, each counting for 4 calls


def test_filters_apply_to_exports(full: Path) -> None:
    rows = read_rows(sorted(full.glob("*.parquet")))
    nginx = pc.sum(pc.equal(rows["comm"], "nginx")).as_py()
    stacks = parse_folded(run_export(full, "folded", where="comm = 'nginx'"))
    assert sum(stacks.values()) == nginx
    assert all(s.startswith("nginx;") for s in stacks)


@pytest.mark.parametrize("weight", ["calls", "time"])
def test_speedscope_validates_against_its_schema(full: Path, weight: str) -> None:
    rows = read_rows(sorted(full.glob("*.parquet")))
    doc = json.loads(run_export(full, "speedscope", weight=weight))
    jsonschema.validate(doc, SCHEMA)
    frames = doc["shared"]["frames"]
    calls, time = doc["profiles"]
    assert doc["activeProfileIndex"] == (0 if weight == "calls" else 1)
    assert calls["unit"] == "none" and time["unit"] == "nanoseconds"
    assert sum(calls["weights"]) == calls["endValue"] == N
    assert sum(time["weights"]) == pc.sum(rows["latency_ns"]).as_py()
    for profile in (calls, time):
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < len(frames) for s in profile["samples"] for i in s)
    folded = parse_folded(run_export(full, "folded"))
    assert {";".join(frames[i]["name"] for i in s) for s in calls["samples"]} == set(folded)


def test_chrome_trace_has_one_complete_slice_per_call(full: Path) -> None:
    rows = read_rows(sorted(full.glob("*.parquet")))
    doc = json.loads(run_export(full, "chrome"))
    events = doc["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == N
    start_ns = doc["otherData"]["start_ns"]
    by_time = sorted(slices, key=lambda e: e["ts"])
    ts = sorted(rows["ts_ns"].to_pylist())
    assert [round(e["ts"] * 1000) + start_ns for e in by_time] == ts  # ns precision kept
    assert sum(e["dur"] for e in slices) == pytest.approx(pc.sum(rows["latency_ns"]).as_py() / 1e3)
    for e in slices[:200]:
        assert set(e["args"]) >= {"level", "optname", "ret", "errno", "fd", "callsite", "stack"}
        assert e["name"] == e["args"]["optname"] and e["cat"] == e["args"]["level"]
    tracks = {(e["pid"], e["tid"]) for e in slices}
    names = {(e["pid"], e["tid"]) for e in events if e["name"] == "thread_name"}
    assert tracks == names
    processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert set(processes) == {pid for pid, _ in tracks}
    assert processes[1200].startswith("nginx")


def test_chrome_trace_keeps_hosts_apart(tmp_path: Path) -> None:
    # Two hosts with the same pids: each host's processes get their own tracks.
    a, b = tmp_path / "a", tmp_path / "b"
    write_recording(a, 500, files=1, seed=1, host="host-a")
    write_recording(b, 700, files=1, seed=2, host="host-b")
    doc = json.loads(run_export([a, b], "chrome"))
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == 1200
    pids = Counter(e["pid"] // PID_LIMIT for e in slices)
    assert pids == {0: 500, 1: 700}
    names = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    assert any("(host-a)" in n for n in names) and any("(host-b)" in n for n in names)


def test_csv_has_every_call_with_decoded_names(callsites: Path) -> None:
    rows = read_rows(sorted(callsites.glob("*.parquet")))
    records = list(csv.DictReader(io.StringIO(run_export(callsites, "csv").decode())))
    assert len(records) == N
    assert sorted(int(r["ts_ns"]) for r in records) == sorted(rows["ts_ns"].to_pylist())
    r = next(r for r in records if r["level"] == "6" and r["optname"] == "11")
    assert r["level_name"] == "IPPROTO_TCP" and r["optname_name"] == OPTNAMES[6][11]
    assert r["time"].endswith("Z") and "T" in r["time"]
    failed = [r for r in records if int(r["ret"]) < 0]
    assert failed and all(r["errno_name"] != "OK" for r in failed)


def test_cli_writes_a_file_or_stdout(full: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    done = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "export", str(full), "-f", "chrome", "-o", out],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and f"wrote {N:,} calls to {out}" in done.stderr
    assert len([e for e in json.loads(out.read_text())["traceEvents"] if e["ph"] == "X"]) == N
    assert not list(tmp_path.glob("*.partial"))
    done = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "export", str(full), "--format", "folded"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sum(parse_folded(done.stdout.encode()).values()) == N
