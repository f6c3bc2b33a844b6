"""diff on real recordings of one fixed workload (tests/workloads/steady.c), made with
`record --repeat`: identical runs must not be reported as changes more often than the stated
rate (alpha, 1% of diffs), single pairs and 3-vs-3 replicates alike, and real changes made by
the workload (an extra call site, a rate change, a 2x latency change) must be found with 3
replicates a side.

Identical runs differ (CPU frequency, caches, placement, the other helpers' load on this
machine): that is the point. With 15 pairs and 10 splits, a true false-alarm rate of 1% gives
two or more flagged diffs with probability about 1% (binomial), so at most one is allowed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sockopt_trace import schema
from sockopt_trace.analyzer.diff import DiffResult, diff, inconclusive, parse_fail_on
from sockopt_trace.errors import ExitCode
from tests.kernel.conftest import WORKLOADS
from tests.kernel.support import cli

pytestmark = pytest.mark.kernel

RUNS, CHANGED = 6, 3
ROUNDS, THREADS = 1500, 3
OPTIONS = ("SO_ERROR", "SO_RCVBUF", "TCP_INFO", "SO_TYPE", "SO_PEERGROUPS")
ALLOWED_FALSE_ALARMS = 1  # of 15 pairs, of 10 splits: more is evidence of a rate above 1%


@pytest.fixture(scope="module")
def steady_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bin") / "steady"
    source = str(WORKLOADS / "steady.c")
    subprocess.run(["gcc", "-O2", "-g", "-o", str(out), source, "-lpthread"], check=True)
    return out


def repeat(out: Path, steady: Path, runs: int, *changes: str) -> list[dict]:
    """`record --repeat` of the workload: each run's own report of what it did."""
    args = [str(steady), str(ROUNDS), str(THREADS), *changes]
    result = cli("record", "-q", "--repeat", str(runs), "-o", str(out), "--", *args, timeout=900)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory, steady_bin: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("noise")
    reports = repeat(root / "same", steady_bin, RUNS)
    assert len(reports) == RUNS
    assert len(repeat(root / "changed", steady_bin, CHANGED, "xrS")) == CHANGED
    assert len(repeat(root / "slower", steady_bin, CHANGED, "s")) == CHANGED
    return {
        "same": root / "same",
        "changed": root / "changed",
        "slower": root / "slower",
        "pids": reports,
    }


def runs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir())


def flagged(result: DiffResult) -> list[tuple]:
    groups = [(g.key, g.significant) for g in result.groups if g.significant]
    return groups + [(g.key, "new call site") for g in result.callsites if g.significant]


def test_repeat_records_each_run_exactly(recordings: dict) -> None:
    """One recording per numbered subdirectory, each with the exact calls of its own run."""
    import duckdb

    dirs = runs(recordings["same"])
    assert [d.name for d in dirs] == [str(i) for i in range(1, RUNS + 1)]
    ids: set[tuple[str, ...]] = set()
    for d, report in zip(dirs, recordings["pids"], strict=True):
        rows = duckdb.sql(
            f"SELECT pid, level, optname, ret < 0 AS failed, count(*) AS n "
            f"FROM read_parquet('{d}/*.parquet') GROUP BY ALL"
        ).fetchall()
        assert {r[0] for r in rows} == {report["pid"]}
        counts = {(r[1], r[2], r[3]): r[4] for r in rows}
        calls = ROUNDS * THREADS
        assert counts[(1, 4, False)] == calls  # SO_ERROR
        assert counts[(1, 8, False)] == calls  # SO_RCVBUF
        assert counts[(6, 11, False)] == calls  # TCP_INFO
        assert counts[(1, 59, False)] == calls  # SO_PEERGROUPS
        assert counts[(1, 3, True)] == THREADS * ROUNDS // 10  # SO_TYPE on fd -1: EBADF
        assert counts[(1, 3, False)] == calls - THREADS * ROUNDS // 10
        assert sum(counts.values()) == 5 * calls
        ids.add(
            tuple({schema.read_file_metadata(str(f)).recording_id for f in d.glob("*.parquet")})
        )
    assert len(ids) == RUNS and all(len(i) == 1 for i in ids)  # one recording id per run


def test_single_pairs_of_identical_runs(recordings: dict) -> None:
    """All 15 pairs of the 6 identical runs: at most one flags anything, or the pairs that do
    all share one run (a run the machine disturbed differs from every other run for real: CI
    once saw one run flagged against 2 of the 5 others, p50 of one group); the run-to-run
    differences show as ? (within noise), never as a regression for --fail-on."""
    dirs = runs(recordings["same"])
    pairs = list(itertools.combinations(dirs, 2))
    results = {(a, b): diff([a], [b]) for a, b in pairs}
    alarms = {pair: flagged(r) for pair, r in results.items() if flagged(r)}
    one_run = set.intersection(*(set(p) for p in alarms)) if alarms else set()
    assert len(alarms) <= ALLOWED_FALSE_ALARMS or one_run, alarms
    assert all(not r.replicated and r.host for r in results.values())
    rules = parse_fail_on("p99:+20%")
    unsure = [pair for pair, r in results.items() if inconclusive(r, rules) and pair not in alarms]
    pair = unsure[0] if unsure else next(p for p in pairs if p not in alarms)
    done = cli("diff", str(pair[0]), str(pair[1]), "--fail-on", "p99:+20%", "-f", "json")
    expected = ExitCode.INCONCLUSIVE if unsure else ExitCode.OK
    assert done.returncode == expected, done.stderr
    warning = [line for line in done.stderr.splitlines() if "--fail-on with one recording" in line]
    assert len(warning) == 1 and "record --repeat" in warning[0]
    if unsure:
        assert "sockopt-trace: inconclusive: p99:+20% tripped by" in done.stderr


def test_replicates_of_identical_runs(recordings: dict) -> None:
    """Every split of the 6 identical runs into 3 and 3: at most one flags anything."""
    dirs = runs(recordings["same"])
    splits = [s for s in itertools.combinations(dirs, 3) if dirs[0] in s]
    assert len(splits) == 10
    alarms = {}
    for base in splits:
        result = diff(list(base), [d for d in dirs if d not in base])
        assert result.replicated and len(result.base.replicates) == 3
        if flagged(result):
            alarms[tuple(d.name for d in base)] = flagged(result)
    assert len(alarms) <= ALLOWED_FALSE_ALARMS, alarms


def test_real_changes_are_found_with_replicates(recordings: dict) -> None:
    """3 runs against 3 runs with an extra call site, SO_RCVBUF called twice as often and
    SO_PEERGROUPS about 6x as slow: each found significant, and nothing else."""
    base = runs(recordings["same"])[:CHANGED]
    args = [a for d in base for a in ("--base", str(d))]
    done = cli("diff", *args, str(recordings["changed"]), "--fail-on", "p50:+50%", "-f", "json")
    assert done.returncode == ExitCode.REGRESSION, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "regression" in x]
    assert "optname=SO_PEERGROUPS" in line

    result = diff(base, [recordings["changed"]])
    assert result.replicated and len(result.new.replicates) == CHANGED
    by_option = {g.key[2]: g for g in result.groups}
    slow = by_option["SO_PEERGROUPS"]  # 56 groups against 1
    assert {"p50", "p90"} & set(slow.significant), slow
    assert 2.5 < 1 + (slow.percentiles["p50"].rel or 0) < 15
    rate = by_option["SO_RCVBUF"]  # twice the calls per round; the slower rounds (S) make the
    # rate per second less than twice: the exact calls are the ground truth
    assert "rate" in rate.significant and (rate.rate.rel or 0) > 0
    assert rate.calls == (CHANGED * ROUNDS * THREADS, 2 * CHANGED * ROUNDS * THREADS)
    extra = by_option["SO_SNDBUF"]
    assert extra.status == "new" and extra.significant == ["rate"]
    assert [g.key[0].split("+")[0] for g in result.callsites if g.significant] == ["check_sndbuf"]
    # the unchanged groups: no more than the false-alarm rate allows in one diff
    unchanged = [(g.key[2], m) for g in result.groups for m in g.significant]
    unchanged = [u for u in unchanged if u[0] not in ("SO_PEERGROUPS", "SO_RCVBUF", "SO_SNDBUF")]
    assert len(unchanged) <= ALLOWED_FALSE_ALARMS, unchanged


def test_a_2x_latency_change_is_flagged_with_replicates(recordings: dict) -> None:
    """3 runs against 3 runs with SO_PEERGROUPS about twice as slow (14 groups to copy out
    instead of 1): never missed. Significant after the correction over all the diff's tests in
    about half the diffs, and otherwise marked ? (past chance for its own test): --fail-on then
    exits 5, inconclusive, never 0 (docs/diff.md: 150 of 150 3-vs-3 diffs flagged, the largest
    of their smallest raw p-values 0.004 against alpha 0.01)."""
    base = runs(recordings["same"])[:CHANGED]
    result = diff(base, [recordings["slower"]])
    by_option = {g.key[2]: g for g in result.groups}
    slow = by_option["SO_PEERGROUPS"]
    latency = {"p50", "p90", "p99"}
    assert latency & {*slow.significant, *slow.noise}, slow
    assert 1.4 < 1 + (slow.percentiles["p50"].rel or 0) < 3.5, slow.percentiles["p50"]
    others = [(k, m) for k, g in by_option.items() if k != "SO_PEERGROUPS" for m in g.significant]
    assert len(others) <= ALLOWED_FALSE_ALARMS, others

    args = [a for d in base for a in ("--base", str(d))]
    gate = "p50:+30%,p90:+30%,p99:+30%"
    done = cli("diff", *args, str(recordings["slower"]), "--fail-on", gate, "-f", "json")
    assert done.returncode in (ExitCode.REGRESSION, ExitCode.INCONCLUSIVE), done.stderr
    lines = [x for x in done.stderr.splitlines() if "regression" in x or "inconclusive" in x]
    assert any("optname=SO_PEERGROUPS" in x for x in lines), done.stderr
