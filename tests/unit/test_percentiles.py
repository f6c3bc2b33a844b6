"""Exact percentiles from counts per (group, value): the shared template (queries/lib) against
quantile_cont and against the interpolation computed here in Python, on data with ties,
single-row groups, huge and tiny values, and through every canned report that shows them."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from sockopt_trace.analyzer.dimensions import DIMENSIONS
from sockopt_trace.analyzer.load import Loaded, load
from sockopt_trace.analyzer.render import Result, render
from sockopt_trace.analyzer.reports import run_report
from sockopt_trace.analyzer.templates import expand, load_templates, parse_templates
from tests.synth import write_recording

FRACTIONS = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"


def formula(values: Sequence[int], fraction: float) -> float:
    """quantile_cont's definition, in Python doubles: lo * (1 - d) + hi * d at RN = (N-1) * f."""
    v = sorted(values)
    rn = float(len(v) - 1) * fraction
    lo, hi = float(v[math.floor(rn)]), float(v[math.ceil(rn)])
    d = rn - math.floor(rn)
    return lo * (1.0 - d) + hi * d


def template_sql(fractions: Sequence[float]) -> str:
    columns = ", ".join(f"{{percentile(v, {f})}} AS q{i}" for i, f in enumerate(fractions))
    return expand(
        "WITH counts AS (SELECT g, v, count(*) AS n FROM t GROUP BY g, v), "
        "ranked AS (SELECT *, {ranks(n, v, g)} FROM counts) "
        f"SELECT g, {columns} FROM ranked GROUP BY g ORDER BY g"
    )


def table_with_ties(seed: int) -> pa.Table:
    """Groups of 1 to 3,000 rows: few distinct values (ties), log-normal, huge, constant."""
    rng = np.random.default_rng(seed)
    groups, values = [], []
    for g in range(40):
        n = int(rng.choice([1, 1, 2, 3, 7, 100, 3000]))
        kind = g % 4
        if kind == 0:
            v = rng.integers(0, 4, n) * 7 + 100
        elif kind == 1:
            v = (rng.lognormal(6, 1.5, n)).astype(np.int64)
        elif kind == 2:
            v = rng.integers(10**12, 10**12 + 10**6, n) * 1000
        else:
            v = np.full(n, 554)
        groups.append(np.full(n, g))
        values.append(v.astype(np.int64))
    return pa.table({"g": np.concatenate(groups), "v": np.concatenate(values)})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_template_is_the_interpolation_and_within_an_ulp_of_quantile_cont(seed: int) -> None:
    table = table_with_ties(seed)
    con = duckdb.connect()
    con.register("t", table)
    got = con.execute(template_sql(FRACTIONS)).fetchall()
    listed = ", ".join(map(str, FRACTIONS))
    reference = con.execute(
        f"SELECT g, quantile_cont(v, [{listed}]) FROM t GROUP BY g ORDER BY g"
    ).fetchall()
    groups = table.group_by("g").aggregate([("v", "list")]).sort_by("g").to_pylist()
    assert len(got) == len(reference) == len(groups) == 40
    same = 0
    for row, (_, ref), group in zip(got, reference, groups, strict=True):
        for fraction, value, expected in zip(FRACTIONS, row[1:], ref, strict=True):
            # Bit for bit the definition; DuckDB's own build may fuse a multiply-add and
            # round the last bit differently, never more.
            assert value == formula(group["v_list"], fraction)
            assert abs(value - expected) <= math.ulp(expected)
            same += value == expected
    assert same > 0.9 * len(got) * len(FRACTIONS)


def test_single_row_and_constant_groups_are_their_value() -> None:
    con = duckdb.connect()
    con.register("t", pa.table({"g": [1, 2, 2, 2], "v": [123456789, 554, 554, 554]}))
    rows = con.execute(template_sql(FRACTIONS)).fetchall()
    assert rows == [(1, *[123456789.0] * len(FRACTIONS)), (2, *[554.0] * len(FRACTIONS))]


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """Two hosts, full stacks sampled 1 in 3 (rows without a stack have no weight)."""
    root = tmp_path_factory.mktemp("pct")
    write_recording(root / "a", 20_000, files=2, seed=5, stacks="full", stack_sample_period=3)
    write_recording(root / "b", 3_000, seed=6, host="host-b")
    return load([root])


def old_latency(loaded: Loaded, dims: Sequence[str]) -> list[tuple]:
    """The latency report as it was before the shared template: quantile_cont, avg; over the
    rows each repeated as many times as the calls it stands for (sampled stacks: 3)."""
    keys = ", ".join(dict.fromkeys(k for d in dims for k in DIMENSIONS[d].keys))
    labels = ", ".join(f"{DIMENSIONS[d].label} AS {d}" for d in dims)
    weight = "stack_weight" if "stack" in dims else "1"
    expanded = (
        f"(SELECT *, unnest(range(CAST({weight} AS BIGINT))) AS copy FROM events "
        f"WHERE {weight} IS NOT NULL) AS e"
    )
    return loaded.con.execute(
        f"SELECT {labels}, count(*) AS calls, avg(latency_ns), "
        "quantile_cont(latency_ns, [0.5, 0.9, 0.99, 0.999]), max(latency_ns) "
        f"FROM {expanded} GROUP BY {keys} "
        f"ORDER BY calls DESC, {', '.join(dims)}"
    ).fetchall()


def assert_close(got: Sequence[float], expected: Sequence[float]) -> None:
    for g, e in zip(got, expected, strict=True):
        assert abs(g - e) <= math.ulp(e), (got, expected)


@pytest.mark.parametrize(
    "dims", [["comm", "level", "optname"], ["callsite"], ["stack"], ["fd"], ["host", "errno"]]
)
def test_latency_report_is_what_it_was(weighted: Loaded, dims: list[str]) -> None:
    expected = old_latency(weighted, dims)
    result = run_report(weighted.con, "latency", by=dims, params={"top": 10**6})
    rows = list(result.rows)
    assert len(rows) == len(expected) > 1
    n = len(dims)
    for row, old in zip(rows, expected, strict=True):
        assert row[: n + 2] == old[: n + 2] and row[-1] == old[-1]  # labels, calls, mean, max
        assert_close(row[n + 2 : n + 6], old[n + 2])


@pytest.mark.parametrize("report", ["callsites", "processes"])
def test_p99_of_other_reports_is_quantile_conts(weighted: Loaded, report: str) -> None:
    dims = ["callsite"] if report == "callsites" else ["host", "pid", "comm"]
    expected = {
        tuple(r[:-1]): r[-1]
        for r in weighted.con.execute(
            f"SELECT {', '.join(dims)}, quantile_cont(latency_ns, 0.99) FROM events GROUP BY ALL"
        ).fetchall()
    }
    result = run_report(weighted.con, report, by=dims, params={"top": 10**6})
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert len(rows) == len(expected) > 1
    for row in rows:
        assert_close([row["p99_ns"]], [expected[tuple(row[d] for d in dims)]])


def test_values_percentiles_are_quantile_conts(weighted: Loaded) -> None:
    """The values report's four measured columns, each with its NULLs left out."""
    measured = {
        "value_p50": "quantile_cont(value, 0.5)",
        "value_p99": "quantile_cont(value, 0.99)",
        "rtt_p50_us": "quantile_cont(tcpi_rtt_us, 0.5)",
        "rtt_p90_us": "quantile_cont(tcpi_rtt_us, 0.9)",
        "rtt_p99_us": "quantile_cont(tcpi_rtt_us, 0.99)",
        "rttvar_p50_us": "quantile_cont(tcpi_rttvar_us, 0.5)",
        "delivery_rate_p50": "quantile_cont(tcpi_delivery_rate, 0.5)",
    }
    expected = {
        tuple(r[:2]): r[2:]
        for r in weighted.con.execute(
            f"SELECT comm, optname_label(level, optname), {', '.join(measured.values())} "
            "FROM events WHERE ret = 0 GROUP BY comm, level, optname"
        ).fetchall()
    }
    result = run_report(weighted.con, "values", by=["comm", "optname"], params={"top": 10**6})
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert len(rows) == len(expected) > 5
    assert any(r["rtt_p99_us"] is not None for r in rows) and any(r["value_p50"] for r in rows)
    for row in rows:
        want = expected[(row["comm"], row["optname"])]
        for column, e in zip(measured, want, strict=True):
            g = row[column]
            assert (g is None and e is None) or abs(g - e) <= math.ulp(e), (column, row, e)


def test_timeline_p99_is_quantile_conts(weighted: Loaded) -> None:
    result = run_report(weighted.con, "timeline", params={"interval": "1ms"})
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    expected = weighted.con.execute(
        "SELECT quantile_cont(latency_ns, 0.99), count(*), avg(latency_ns) FROM events "
        "GROUP BY ts_ns - ts_ns % 1000000 ORDER BY ts_ns - ts_ns % 1000000"
    ).fetchall()
    assert len(rows) == len(expected) > 10
    for row, (p99, calls, mean) in zip(rows, expected, strict=True):
        assert row["calls"] == calls and row["mean_ns"] == mean
        assert_close([row["p99_ns"]], [p99])


def test_samples_latency_report_reads_as_it_did() -> None:
    """On the shipped samples, the table people read is the same text as before."""
    loaded = load([SAMPLES])
    dims = ["comm", "level", "optname"]
    expected = old_latency(loaded, dims)
    new = run_report(loaded.con, "latency", params={"top": 10**6})
    old = Result(
        new.columns,
        [(*r[:5], *r[5], r[6]) for r in expected],
    )
    assert table_text(new) == table_text(old)


def table_text(result: Result) -> str:
    out = io.StringIO()
    render(result, "table", out)
    return out.getvalue()


def test_template_files_parse_and_templates_check_their_arguments() -> None:
    templates = load_templates()
    assert set(templates) >= {"ranks", "percentile"}
    assert "{partition}" in templates["ranks"].sql
    with pytest.raises(ValueError, match="takes"):
        expand("{percentile(latency_ns)}")
    with pytest.raises(ValueError, match="unknown SQL template"):
        expand("{nothing(1)}")
    parsed = parse_templates("-- define: t(a, rest...)\nf({a}) OVER ({rest})", "x")
    assert parsed["t"].expand(["x", "b", "c"]) == "f(x) OVER (b, c)"
    with pytest.raises(ValueError, match="no '-- define"):
        parse_templates("SELECT 1", "x")
