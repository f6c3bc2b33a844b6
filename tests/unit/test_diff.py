"""diff: known changes injected into synthetic recordings are found, flagged and ranked; two
recordings of the same workload report nothing; the CLI's output, exit codes and errors."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sockopt_trace.analyzer import render_diff
from sockopt_trace.analyzer.diff import DiffResult, GroupDiff, diff, parse_fail_on, regressions
from sockopt_trace.analyzer.diff import model as diff_model
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.render import render
from sockopt_trace.errors import UserError
from tests.synth import synth_events, write_events, write_recording
from tests.unit.test_cli import fails, ok, run

N = 200_000
SLOW_SITE = "ngx_http_log_tcpinfo+0x56"  # nginx's TCP_INFO calls; its tail 3x slower after
NEW_SITE = "aio_sock_check+0x1f"  # a new process polling SO_ERROR, only after
EFAULT = 14


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def _with_site(table: pa.Table) -> pa.Table:
    """nginx's TCP_INFO calls come from their own call site (in both recordings)."""
    c = _columns(table)
    mask = (c["comm"] == "nginx") & (c["optname"] == 11)
    sites = pc.if_else(pa.array(mask), SLOW_SITE, table.column("callsite"))
    return table.set_column(table.schema.get_field_index("callsite"), "callsite", sites)


def _rows(table: pa.Table, mask: np.ndarray, **changes: Any) -> pa.Table:
    """The rows of `table` under `mask`, with columns replaced."""
    part = table.filter(pa.array(mask))
    for name, value in changes.items():
        col = (
            value if isinstance(value, pa.Array) else pa.array(value, table.schema.field(name).type)
        )
        part = part.set_column(part.schema.get_field_index(name), name, col)
    return part


def injected(seed_base: int, seed_new: int) -> tuple[pa.Table, pa.Table]:
    """(base, new): the same workload, and after it four known changes:
    1. nginx TCP_INFO (call site SLOW_SITE): its slowest 3% of calls take 3 times as long (p99 3x:
       beyond the single-pair noise floor of p99, 2x);
    2. a new process, gunicorn, polls SO_ERROR from a new call site NEW_SITE;
    3. curl asks SO_ERROR 3x as often;
    4. envoy's SO_SNDBUF calls fail with EFAULT 15% of the time (an errno absent before)."""
    base = _with_site(synth_events(N, seed=seed_base))
    new = _with_site(synth_events(N, seed=seed_new))
    rng = np.random.default_rng(seed_new + 1000)
    c = _columns(new)
    t0, t1 = int(c["ts_ns"].min()), int(c["ts_ns"].max())

    slow = c["callsite"] == SLOW_SITE
    latency = c["latency_ns"].copy()
    tail = slow & (latency > np.quantile(latency[slow], 0.97))
    latency[tail] *= 3

    efault = (c["comm"] == "envoy") & (c["optname"] == 7) & (rng.random(N) < 0.15)
    ret = np.where(efault, -EFAULT, c["ret"]).astype(np.int32)
    new = new.set_column(new.schema.get_field_index("latency_ns"), "latency_ns", pa.array(latency))
    new = new.set_column(new.schema.get_field_index("ret"), "ret", pa.array(ret))

    curl = (c["comm"] == "curl") & (c["optname"] == 4)
    extra = [_rows(new, curl, ts_ns=rng.integers(t0, t1, int(curl.sum()))) for _ in range(2)]
    donors = c["comm"] == "python3"
    count = 3000
    pick = np.zeros(N, dtype=bool)
    pick[rng.choice(np.flatnonzero(donors), count, replace=False)] = True
    gunicorn = _rows(
        new,
        pick,
        ts_ns=rng.integers(t0, t1, count),
        comm=pa.array(["gunicorn"] * count),
        pid=np.full(count, 9100),
        tid=np.full(count, 9100),
        level=np.full(count, 1),
        optname=np.full(count, 4),
        callsite=pa.array([NEW_SITE] * count),
    )
    return base, pa.concat_tables([new, *extra, gunicorn])


def group(result: DiffResult, *key: Any) -> GroupDiff:
    (found,) = [g for g in result.groups if g.key == key]
    return found


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pa.Table, pa.Table]:
    root = tmp_path_factory.mktemp("changed")
    base, new = injected(1, 2)
    write_events(root / "base", base, files=2)
    write_events(root / "new", new, files=3)
    return root / "base", root / "new", base, new


@pytest.fixture(scope="module")
def result(changed: tuple[Path, Path, pa.Table, pa.Table]) -> DiffResult:
    return diff([changed[0]], [changed[1]])


def test_each_injected_change_is_found_and_significant(result: DiffResult) -> None:
    slow = group(result, "nginx", "IPPROTO_TCP", "TCP_INFO")
    assert slow.significant == ["p99"]
    assert 1.6 < slow.percentiles["p99"].rel < 2.4  # the tail tripled
    p99 = slow.percentiles["p99"]
    assert 0 < p99.low < p99.diff < p99.high and p99.p < 1e-6
    assert abs(slow.percentiles["p50"].rel) < 0.05

    curl = group(result, "curl", "SOL_SOCKET", "SO_ERROR")
    assert curl.significant == ["rate"]
    assert 1.7 < curl.rate.rel < 2.3  # 3x

    envoy = group(result, "envoy", "SOL_SOCKET", "SO_SNDBUF")
    assert envoy.significant == ["errors"]
    assert 12 < envoy.errors.diff < 18  # +15 points

    gunicorn = group(result, "gunicorn", "SOL_SOCKET", "SO_ERROR")
    assert gunicorn.status == "new" and gunicorn.significant == ["rate"]
    assert gunicorn.calls == (0, 3000)
    (site,) = [g for g in result.callsites if g.key == (NEW_SITE,)]
    assert site.status == "new" and site.rate.significant

    assert max(curl.rate.p, envoy.errors.p, gunicorn.rate.p, site.rate.p) < 1e-6
    flagged = {g.key for g in result.groups if g.significant}
    assert flagged == {slow.key, curl.key, envoy.key, gunicorn.key}
    assert all(g.status == "new" for g in result.callsites) and len(result.callsites) == 1


def test_ranked_by_impact_computed_independently(
    changed: tuple[Path, Path, pa.Table, pa.Table], result: DiffResult
) -> None:
    """Impact = change in time in getsockopt per second of wall clock, each recording over its
    own span (first file's start to last file's end: the files abut)."""
    _, _, base, new = changed

    def time_per_s(table: pa.Table) -> dict[tuple[str, int, int], float]:
        c = _columns(table)
        span = (c["ts_ns"].max() - c["ts_ns"].min() + 2000) / 1e9  # make_metadata: +-1000 ns
        out: dict[tuple[str, int, int], float] = {}
        for key in set(zip(c["comm"], c["level"], c["optname"], strict=True)):
            mask = (c["comm"] == key[0]) & (c["level"] == key[1]) & (c["optname"] == key[2])
            out[key] = c["latency_ns"][mask].sum() / 1e3 / span
        return out

    before, after = time_per_s(base), time_per_s(new)
    impact = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in before.keys() | after.keys()}
    expected = sorted(impact, key=lambda k: -abs(impact[k]))
    got = [g.impact for g in result.groups]
    assert got == sorted(got, key=lambda v: -abs(v))
    assert len(result.groups) == len(expected)
    top = [(g.key[0], g.key[2]) for g in result.groups[:3]]
    names = {(1, 4): "SO_ERROR", (6, 11): "TCP_INFO"}
    assert top == [(k[0], names[k[1:]]) for k in expected[:3]]
    assert {k[0] for k in expected[:3]} == {"curl", "gunicorn", "nginx"}  # the injected ones
    for g in result.groups[:3]:
        key = next(k for k in expected[:3] if k[0] == g.key[0])
        assert g.impact == pytest.approx(impact[key], rel=1e-3, abs=1e-3)


def test_by_callsite_and_errno(changed: tuple[Path, Path, pa.Table, pa.Table]) -> None:
    base, new = changed[0], changed[1]
    by_site = diff([base], [new], by="callsite")
    slow = group(by_site, SLOW_SITE)
    assert "p99" in slow.significant
    assert group(by_site, NEW_SITE).status == "new"
    assert by_site.callsites == []  # the groups are the call sites already
    by_errno = diff([base], [new], by=["comm", "errno"])
    efault = group(by_errno, "envoy", "EFAULT")
    assert efault.status == "new" and efault.rate.significant


@pytest.mark.parametrize("seeds", [(11, 12), (13, 14), (15, 16), (17, 18)])
def test_same_workload_reports_nothing(tmp_path: Path, seeds: tuple[int, int]) -> None:
    write_recording(tmp_path / "a", 100_000, files=2, seed=seeds[0])
    write_recording(tmp_path / "b", 100_000, files=3, seed=seeds[1])
    for by in (None, "comm,callsite"):
        result = diff([tmp_path / "a"], [tmp_path / "b"], by=by)
        assert [g.key for g in result.groups if g.significant] == []
        assert all(g.status == "both" for g in result.groups)
        assert result.tests > 3 * len(result.groups)  # rate, errors and percentiles tested


def test_min_change_and_alpha_decide_what_is_significant(
    result: DiffResult, changed: tuple[Path, Path, pa.Table, pa.Table]
) -> None:
    strict = diff([changed[0]], [changed[1]], min_change=3.0)  # only changes of 300% or more
    assert {g.key[0] for g in strict.groups if g.significant} == {"envoy", "gunicorn"}
    assert strict.tests == result.tests
    loose = diff([changed[0]], [changed[1]], alpha=0.2)
    assert {g.key for g in loose.groups if g.significant} >= {
        g.key for g in result.groups if g.significant
    }


def test_where_since_until_apply_to_both(changed: tuple[Path, Path, pa.Table, pa.Table]) -> None:
    only = diff([changed[0]], [changed[1]], filters=Filters(where="comm = 'curl'"))
    assert {g.key[0] for g in only.groups} == {"curl"}
    assert group(only, "curl", "SOL_SOCKET", "SO_ERROR").significant == ["rate"]
    half = diff([changed[0]], [changed[1]], filters=Filters(until="100ms"))
    assert half.base.seconds == pytest.approx(0.1, rel=1e-6)
    assert half.new.seconds == pytest.approx(0.1, rel=1e-6)
    assert sum(g.calls[0] for g in half.groups) < N * 0.6


def test_settings_that_differ_are_reported(tmp_path: Path) -> None:
    table = synth_events(20_000, seed=3)
    write_events(tmp_path / "a", table, probe="tracepoint", filters={"comms": ["nginx"]})
    write_events(
        tmp_path / "b",
        synth_events(20_000, seed=4, host="host-b"),
        host="host-b",
        probe="kprobe",
        filters={"comms": ["nginx"], "pids": [42]},
        lost={"ringbuf_full": 7},
        stacks="off",
    )
    result = diff([tmp_path / "a"], [tmp_path / "b"], by="comm,callsite")
    text = "\n".join(result.warnings)
    for expected in (
        "differ in hosts: base host-a; new host-b",
        "differ in probe modes: base tracepoint; new kprobe",
        'differ in filters: base {"comms": ["nginx"]}; new {"comms": ["nginx"], "pids": "some"}',
        "differ in stack settings: base callsite; new off",
        "new recording: the recording lost 7 events",
        "new recording: recorded without call sites",
    ):
        assert expected in text, text
    assert result.callsites == []


def test_fail_on_rules() -> None:
    rules = parse_fail_on(["p99:+20%", "rate:+50%,errors:+1%", "p50:+2us"])
    assert [(r.metric, r.threshold, r.relative) for r in rules] == [
        ("p99", 0.2, True),
        ("rate", 0.5, True),
        ("errors", 1.0, True),
        ("p50", 2000.0, False),
    ]
    for bad, why in (
        ("p99", "give METRIC:+THRESHOLD"),
        ("p99:20", "needs a unit"),
        ("rate:+5us", "needs a threshold in %"),
        ("p99:-20%", "only increases"),
        ("latency:+5%", "give METRIC:+THRESHOLD"),
        ("p99:+0%", "more than zero"),
        ("p99:+5 parsecs", "give METRIC:+THRESHOLD"),
    ):
        with pytest.raises(UserError, match=re.escape(why)):
            parse_fail_on(bad)


def tripped_lines(result: DiffResult, rules: str) -> list[str]:
    return [
        render_diff.trip_line(t, result.dims) for t in regressions(result, parse_fail_on(rules))
    ]


def test_fail_on_trips_only_on_significant_regressions_past_the_threshold(
    result: DiffResult,
) -> None:
    tripped = tripped_lines(result, "p99:+50%,rate:+100%,errors:+10%")
    assert len(tripped) == 4
    assert any("comm=nginx" in t and "p99" in t for t in tripped)
    assert any("comm=gunicorn" in t for t in tripped) and any("comm=curl" in t for t in tripped)
    assert any("comm=envoy" in t and "errors" in t for t in tripped)
    assert tripped_lines(result, "p99:+200%,rate:+1000%,errors:+20%") == [
        t for t in tripped_lines(result, "rate:+1000%") if "gunicorn" in t
    ]
    assert tripped_lines(result, "p50:+1%,p90:+1ns") == []  # not significant


def test_renders_in_every_format(result: DiffResult) -> None:
    out = io.StringIO()
    render(render_diff.sections(result, top=5), "markdown", out)
    text = out.getvalue()
    assert "### changes: 4 of " not in text  # gunicorn is new, not in both
    assert "### changes: 3 of 35 groups in both changed beyond chance (*)" in text
    assert "envoy | SOL_SOCKET | SO_SNDBUF" in text  # significant, shown beyond the top 5
    assert "### new groups: 1, only in the new recording" in text
    assert "### new call sites: 1, only in the new recording" in text
    assert "Mood's quantile test" not in text  # the method: with --explain, and in json
    out = io.StringIO()
    render(render_diff.sections(result, top=5, explain=True), "markdown", out)
    assert "Mood's quantile test" in out.getvalue() and "Poisson rate test" in out.getvalue()
    slow_row = next(line for line in text.splitlines() if "TCP_INFO" in line and "nginx" in line)
    assert slow_row.count(" *") == 1 and "→" in slow_row
    out = io.StringIO()
    render(render_diff.machine_sections(result), "json", out)
    data = json.loads(out.getvalue())
    assert set(data) == {"recordings", "host", "groups", "callsites", "method"}
    assert len(data["groups"]) == len(result.groups)
    first = data["groups"][0]
    assert first["status"] in ("both", "new") and "p99_low_ns" in first


def test_library_bad_inputs(changed: tuple[Path, Path, pa.Table, pa.Table], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        diff([tmp_path / "missing"], [changed[1]])
    with pytest.raises(UserError, match="bad --by"):
        diff([changed[0]], [changed[1]], by="comm,colour")
    with pytest.raises(UserError, match="bad --alpha"):
        diff([changed[0]], [changed[1]], alpha=1.5)
    with pytest.raises(UserError, match="bad --where"):
        diff([changed[0]], [changed[1]], filters=Filters(where="nope = 1"))
    with pytest.raises(UserError, match="covers no time"):
        diff([changed[0]], [changed[1]], filters=Filters(since="1h"))


def test_stack_weights_count_sampled_calls(tmp_path: Path) -> None:
    write_recording(tmp_path / "a", 40_000, seed=5, stacks="full", stack_sample_period=4)
    write_recording(tmp_path / "b", 40_000, seed=6, stacks="full", stack_sample_period=1)
    result = diff([tmp_path / "a"], [tmp_path / "b"], by="stack")
    assert sum(g.calls[0] for g in result.groups) == pytest.approx(40_000, rel=0.01)
    assert sum(g.calls[1] for g in result.groups) == 40_000
    assert [g.key for g in result.groups if g.significant] == []
    assert any("stack settings" in w for w in result.warnings)


# -- the command line ---------------------------------------------------------------------


def test_cli_formats_and_exit_codes(changed: tuple[Path, Path, pa.Table, pa.Table]) -> None:
    base, new = changed[0], changed[1]
    table = ok("diff", base, new)
    assert "changes: 3 of 35 groups" in table.stdout and table.stderr == ""
    assert "one recording per side: changes are tested within the two runs" in table.stdout
    rows = list(csv.DictReader(io.StringIO(ok("diff", base, new, "-f", "csv", "-n", 0).stdout)))
    assert len(rows) == 36 and rows[0]["status"] in ("both", "new")
    assert {r["comm"] for r in rows if r["significant"]} == {"nginx", "curl", "envoy", "gunicorn"}
    data = json.loads(ok("diff", base, new, "-f", "json", "--by", "callsite", "-n", 3).stdout)
    assert len(data["groups"]) == 3
    done = run("diff", base, new, "--fail-on", "p99:+50%", "-f", "json")
    assert done.returncode == 1 and json.loads(done.stdout)["groups"]
    (line,) = [x for x in done.stderr.splitlines() if "regression" in x]
    assert line.startswith("sockopt-trace: regression: p99:+50% tripped by comm=nginx")
    assert run("diff", base, new, "--fail-on", "p99:+300%").returncode == 0
    assert "Usage" in ok("diff", "--help").stdout


def test_cli_warnings_go_to_stderr_for_machine_formats(tmp_path: Path) -> None:
    write_recording(tmp_path / "a", 5000, seed=7)
    write_recording(tmp_path / "b", 5000, seed=8, host="host-b", lost={"queue_full": 2})
    done = ok("diff", tmp_path / "a", tmp_path / "b", "-f", "csv")
    assert done.stdout.startswith("comm,level,optname,status,")
    assert "warning: the recordings differ in hosts" in done.stderr
    assert "warning: new recording: the recording lost 2 events" in done.stderr
    table = ok("diff", tmp_path / "a", tmp_path / "b")
    assert "differ in hosts" in table.stdout and table.stderr == ""


def test_cli_bad_inputs_are_one_line_errors(
    changed: tuple[Path, Path, pa.Table, pa.Table], tmp_path: Path
) -> None:
    base, new = changed[0], changed[1]
    assert "no such file or directory" in fails("diff", base, tmp_path / "missing")
    assert "bad --by dimension colour" in fails("diff", base, new, "--by", "colour")
    assert "bad --fail-on 'p99:fast'" in fails("diff", base, new, "--fail-on", "p99:fast")
    assert "bad --min-change" in fails("diff", base, new, "--min-change", "lots")
    assert "bad --top" in fails("diff", base, new, "--top", "-1")
    assert "bad --where" in fails("diff", base, new, "--where", "comm = ")


def test_diff_module_constants_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "diff.md").read_text()
    for value in (f"{diff_model.SLOTS} time slots", f"{diff_model.MIN_BEYOND} calls", "10%"):
        assert value in doc
