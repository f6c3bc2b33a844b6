"""diff with replicates (several recordings a side) and a single pair's run-to-run noise, on
synthetic recordings whose runs differ as real ones do: each recording of one workload is
faster or slower as a whole (its latencies scaled, its calls spread over a longer or shorter
span). The real-kernel calibration is tests/kernel/test_diff_noise.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sockopt_trace.analyzer import render_diff
from sockopt_trace.analyzer.diff import DiffResult, diff, inconclusive, parse_fail_on
from sockopt_trace.analyzer.diff import replicates as rep
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.errors import ExitCode
from tests.synth import START_NS, synth_events, write_events
from tests.unit.test_cli import fails, run

N = 20_000
HOST_SD = 0.3  # ln: whole runs differ by about 30%


def run_of(seed: int, *, speed: float, pace: float) -> pa.Table:
    """One recording of the synthetic workload, `speed` times slower per call and `pace`
    times longer a span than the reference run."""
    table = synth_events(N, seed=seed)
    latency = np.round(table.column("latency_ns").to_numpy() * speed).astype(np.int64)
    ts = table.column("ts_ns").to_numpy()
    ts = START_NS + ((ts - START_NS) * pace).astype(np.int64)
    table = table.set_column(
        table.schema.get_field_index("latency_ns"), "latency_ns", pa.array(latency)
    )
    return table.set_column(table.schema.get_field_index("ts_ns"), "ts_ns", pa.array(ts))


def side(root: Path, seeds: range, change=None) -> Path:
    """A directory of runs (one subdirectory each, as `record --repeat` writes)."""
    rng = np.random.default_rng(seeds.start + 7)
    for seed in seeds:
        speed, pace = np.exp(rng.normal(0, HOST_SD, 2))
        table = run_of(seed, speed=speed, pace=pace)
        write_events(root / str(seed), change(table, seed) if change else table)
    return root


def flagged(result: DiffResult) -> list[tuple]:
    return [(g.key, g.significant) for g in [*result.groups, *result.callsites] if g.significant]


@pytest.mark.parametrize("seeds", [(0, 10), (20, 30), (40, 50)])
def test_identical_workloads_in_three_runs_a_side_report_nothing(
    tmp_path: Path, seeds: tuple[int, int]
) -> None:
    base = side(tmp_path / "base", range(seeds[0], seeds[0] + 3))
    new = side(tmp_path / "new", range(seeds[1], seeds[1] + 3))
    result = diff([base], [new])
    assert result.replicated and len(result.base.replicates) == 3
    assert flagged(result) == []
    assert set(result.host) == {"rate", "p50", "p90", "p99"}
    assert result.tests > 4 * len(result.groups)


def slower_nginx_info_more_curl(table: pa.Table, seed: int) -> pa.Table:
    """nginx's TCP_INFO calls twice as slow; curl's SO_ERROR 3x as often."""
    c = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    info = (c["comm"] == "nginx") & (c["optname"] == 11)
    latency = np.where(info, c["latency_ns"] * 2, c["latency_ns"])
    table = table.set_column(
        table.schema.get_field_index("latency_ns"), "latency_ns", pa.array(latency)
    )
    curl = table.filter(pa.array((c["comm"] == "curl") & (c["optname"] == 4)))
    rng = np.random.default_rng(seed)
    extra = []
    for _ in range(2):
        ts = rng.integers(int(c["ts_ns"].min()), int(c["ts_ns"].max()), curl.num_rows)
        extra.append(curl.set_column(0, "ts_ns", pa.array(ts)))
    return pa.concat_tables([table, *extra])


def test_real_changes_are_found_beyond_the_runs_spread(tmp_path: Path) -> None:
    base = side(tmp_path / "base", range(0, 3))
    new = side(tmp_path / "new", range(10, 13), slower_nginx_info_more_curl)
    result = diff([base], [new])
    found = {g.key: g.significant for g in result.groups if g.significant}
    assert found == {
        ("nginx", "IPPROTO_TCP", "TCP_INFO"): ["p50", "p90", "p99"],
        ("curl", "SOL_SOCKET", "SO_ERROR"): ["rate"],
    }, found
    info = next(g for g in result.groups if g.key == ("nginx", "IPPROTO_TCP", "TCP_INFO"))
    p50 = info.percentiles["p50"]
    assert p50.beyond_host is not None and 0.7 < p50.beyond_host < 1.3  # 2x beyond the host's
    (lo_b, hi_b), (lo_n, hi_n) = p50.spread or ((0, 0), (0, 0))
    assert lo_b <= p50.base <= hi_b and lo_n <= p50.new <= hi_n  # the runs' range around it


def test_replicates_by_explicit_lists_and_pooling(tmp_path: Path) -> None:
    base = side(tmp_path / "base", range(0, 3))
    new = side(tmp_path / "new", range(10, 12))
    runs = sorted(p for p in base.iterdir())
    listed = diff(runs, [new])
    assert len(listed.base.replicates) == 3 and len(listed.new.replicates) == 2
    pooled = diff([base], [new], replicates=False)  # e.g. hosts recorded at once
    assert not pooled.replicated and len(pooled.base.replicates) == 3
    reps = listed.base.replicates
    union = (max(r.end_ns for r in reps) - min(r.start_ns for r in reps)) / 1e9
    assert pooled.base.wall_seconds == pytest.approx(union, rel=1e-9)  # they overlap in time
    assert pooled.base.seconds == pytest.approx(sum(r.seconds for r in reps), rel=1e-9)
    # rates: each recording's calls over its own span, added up when pooled (a fleet's rate),
    # their mean for replicates (runs of one workload)
    per_run = {g.key: g.rate.base or 0.0 for g in listed.both}
    assert len(per_run) == len(pooled.both) > 20
    for g in pooled.both:
        assert g.rate.base == pytest.approx(3 * per_run[g.key], rel=1e-9)
    with pytest.raises(Exception, match="replicates need 3 recordings"):
        diff([runs[0]], [new / "10"], replicates=True)


def test_since_counts_from_each_runs_own_start(tmp_path: Path) -> None:
    base = side(tmp_path / "base", range(0, 3))
    new = side(tmp_path / "new", range(10, 13))
    whole = diff([base], [new])
    later = diff([base], [new], filters=Filters(since="5ms"))
    for full, cut in zip(whole.base.replicates, later.base.replicates, strict=True):
        assert cut.seconds == pytest.approx(full.seconds - 0.005, abs=1e-6)


def test_single_pair_shared_shift_is_noise_not_regression(tmp_path: Path) -> None:
    """Every group 60% slower in the new run (a slower host): within a single pair that is
    ? (within run-to-run noise), and --fail-on exits inconclusive, naming record --repeat."""
    write_events(tmp_path / "a", run_of(1, speed=1.0, pace=1.0))
    write_events(tmp_path / "b", run_of(2, speed=1.6, pace=1.0))
    result = diff([tmp_path / "a"], [tmp_path / "b"])
    assert not result.replicated and flagged(result) == []
    assert 0.5 < result.host["p50"].shift < 0.7 and result.host["p50"].p is None
    noisy = [g for g in result.groups if "p50" in g.noise]
    assert len(noisy) > 10
    assert inconclusive(result, parse_fail_on("p50:+20%"))
    lines = render_diff.limits(result)
    assert "cannot see run-to-run noise" in lines[0] and "record --repeat" in lines[0]

    done = run("diff", tmp_path / "a", tmp_path / "b", "--fail-on", "p50:+20%", "-f", "csv")
    assert done.returncode == ExitCode.INCONCLUSIVE, done.stderr
    assert done.stdout.startswith("comm,level,optname,status,")
    stderr = done.stderr.splitlines()
    assert sum("--fail-on with one recording per side" in x for x in stderr) == 1
    assert any(x.startswith("sockopt-trace: inconclusive: p50:+20% tripped by") for x in stderr)
    assert not any("regression:" in x for x in stderr)


def test_single_pair_group_change_beyond_the_floor_is_significant(tmp_path: Path) -> None:
    write_events(tmp_path / "a", run_of(1, speed=1.0, pace=1.0))
    changed = slower_nginx_info_more_curl(run_of(2, speed=1.3, pace=1.0), 2)
    write_events(tmp_path / "b", changed)
    result = diff([tmp_path / "a"], [tmp_path / "b"])
    info = next(g for g in result.groups if g.key == ("nginx", "IPPROTO_TCP", "TCP_INFO"))
    assert "p50" in info.significant and info.percentiles["p50"].beyond_host > 0.7
    others = [g for g in result.groups if g.status == "both" and g.key[0] not in ("nginx", "curl")]
    assert all("p50" not in g.significant for g in others)
    done = run("diff", tmp_path / "a", tmp_path / "b", "--fail-on", "p50:+50%")
    assert done.returncode == ExitCode.REGRESSION
    assert "regression: p50:+50% tripped by comm=nginx" in done.stderr


def test_machine_output_has_the_judgement_and_spread(tmp_path: Path) -> None:
    base = side(tmp_path / "base", range(0, 3))
    new = side(tmp_path / "new", range(10, 13))
    done = run("diff", base, new, "-f", "json", "-n", "0")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"recordings", "host", "groups", "callsites", "method"}
    row = data["groups"][0]
    for key in ("p50_beyond_host", "base_p50_min", "new_p50_max", "calls_per_s_noise"):
        assert key in row
    assert [r["recordings"] for r in data["recordings"]] == [3, 3]


def test_bad_replicate_inputs_are_one_line_errors(tmp_path: Path) -> None:
    base = side(tmp_path / "base", range(0, 3))
    assert "give the recordings to compare" in fails("diff", base)
    assert "give the recordings to compare" in fails("diff", "--base", base)
    assert "bad --repeat 0" in fails("record", "--repeat", "0", "-o", tmp_path / "r", "--", "true")
    assert "--repeat needs -- COMMAND" in fails("record", "--repeat", "3", "-o", tmp_path / "r")


# -- the between-recording test itself, by simulation ------------------------------------------


def simulate(rng: np.random.Generator, groups: int, runs: int, change: float = 0.0):
    """ln values of `groups` groups in `runs` recordings a side: a recording effect shared by
    its groups (sd HOST_SD), each group's own noise (sd 0.05 to 0.15), group 0 changed."""
    new = np.arange(2 * runs) >= runs
    host = rng.normal(0, HOST_SD, 2 * runs)
    noise = rng.uniform(0.05, 0.15, groups)[:, None] * rng.standard_normal((groups, 2 * runs))
    y = rng.normal(6, 1, groups)[:, None] + host + noise
    y[0, new] += change
    return y, new


@pytest.mark.parametrize("runs", [2, 3, 5])
def test_between_recording_test_is_calibrated(runs: int) -> None:
    """Under no change, p-values below 1% and 5% at about those rates (or fewer)."""
    rng = np.random.default_rng(runs)
    p = []
    for _ in range(400):
        y, new = simulate(rng, 8, runs)
        p += list(rep.compare(y, new, np.zeros(8), blocks=True).p)
    p = np.array(p)
    assert np.mean(p < 0.05) < 0.07 and np.mean(p < 0.01) < 0.02


def test_between_recording_test_finds_a_group_twice_as_slow() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(100):
        y, new = simulate(rng, 8, 3, change=np.log(2))
        compared = rep.compare(y, new, np.zeros(8), blocks=True)
        hits += compared.p[0] * 8 * 5 < 0.01  # Bonferroni over 8 groups and 5 metrics
    assert hits >= 80  # 84 measured: some groups' own noise (up to 15%) hides a 2x change


def test_without_recording_effects_the_runs_spread_decides() -> None:
    """Two groups only: no recording effect can be estimated, so each group's change is
    tested against its own runs' spread (a 2x change among runs varying by 30% is no proof
    with 3 runs a side, honestly)."""
    rng = np.random.default_rng(9)
    y, new = simulate(rng, 2, 3, change=np.log(2))
    compared = rep.compare(y, new, np.zeros(2), blocks=True)
    assert compared.host is None and compared.beyond[0] == pytest.approx(
        y[0, new].mean() - y[0, ~new].mean()
    )


def test_html_page_shows_the_runs_spread_next_to_each_change(tmp_path: Path) -> None:
    from sockopt_trace.analyzer.htmlreport import diff_html

    base = side(tmp_path / "base", range(0, 3))
    new = side(tmp_path / "new", range(10, 13), slower_nginx_info_more_curl)
    page = diff_html([base], [new])
    table = page[page.index('<table class="sortable diff">') :]
    table = table[: table.index("</table>")]
    assert table.count('<small class="spread">runs: ') >= 5 * 30  # every metric of every group
    assert "beyond the host" in table and "host: all groups together" in page
    assert "the variation between recordings (3 base, 3 new)" in page
