"""Sampled recordings (--max-rate): every count, rate and time in the reports, exports and
summaries is a sum of weights, so that a recording sampled the way the kernel samples (each
successful call kept with probability 1/period and weighing `period`; failed calls kept, weight
1) estimates the whole, within what sampling allows; files without the column weigh 1."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sockopt_trace import schema
from sockopt_trace.analyzer import names
from sockopt_trace.analyzer.export import export
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import get_report, prepare, run_report, unweighted_events
from tests.synth import make_metadata, synth_events, write_file

PERIOD = 10


def sampled(table: pa.Table, seed: int = 5) -> pa.Table:
    """What the kernel keeps of `table` at 1 in PERIOD: failed calls all, with weight 1."""
    rng = np.random.default_rng(seed)
    ok = table.column("ret").to_numpy() == 0
    keep = ~ok | (rng.random(table.num_rows) < 1 / PERIOD)
    weight = np.where(ok, PERIOD, 1).astype(np.int32)
    table = table.set_column(table.schema.get_field_index("weight"), "weight", pa.array(weight))
    return table.filter(pa.array(keep))


def write(directory: Path, table: pa.Table, **meta: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_file(directory / "host-a-000001.parquet", table, make_metadata(table, **meta))


def report(rec: Path, name: str, **kwargs: Any) -> list[dict[str, Any]]:
    res = run_report(load([rec]).con, name, **kwargs)
    return [dict(zip(res.columns, row, strict=True)) for row in res.rows]


def test_reports_estimate_the_whole_from_a_sampled_recording(tmp_path: Path) -> None:
    truth = synth_events(200_000, seed=8)
    kept = sampled(truth)
    write(tmp_path / "s", kept, max_rate=1000, sampled_out=truth.num_rows - kept.num_rows)
    rec = load([tmp_path / "s"]).recording
    assert any("sampled (--max-rate 1,000" in line for line in rec.notices())

    by = ["comm", "optname"]
    got = {(r["comm"], r["optname"]): r for r in report(tmp_path / "s", "errors", by=by)}
    ok = pc.equal(truth.column("ret"), 0)
    for r in report(tmp_path / "s", "latency", by=by):
        mask = pc.and_(
            pc.equal(truth.column("comm"), r["comm"]),
            pc.equal(pc.cast(truth.column("optname"), pa.int64()), _optnum(r["optname"])),
        )
        n_ok = pc.sum(pc.and_(mask, ok)).as_py() or 0
        n = pc.sum(mask).as_py()
        sd = math.sqrt(n_ok * (PERIOD - 1))  # Bernoulli sampling of the successful calls
        assert abs(r["calls"] - n) <= 6 * sd + 1, (r, n)
        if (r["comm"], r["optname"]) in got:  # failed calls are all there, as themselves
            errs = pc.sum(pc.and_(mask, pc.invert(ok))).as_py()
            assert got[(r["comm"], r["optname"])]["errors"] == errs
    (s,) = report(tmp_path / "s", "summary")
    assert abs(s["events"] - truth.num_rows) <= 6 * math.sqrt(truth.num_rows * PERIOD)
    assert s["errors"] == pc.sum(pc.invert(ok)).as_py()


def test_exports_and_stacks_count_weights(tmp_path: Path) -> None:
    table = synth_events(5_000, seed=2)
    weights = pa.array(np.full(table.num_rows, 7, dtype=np.int32))
    table = table.set_column(table.schema.get_field_index("weight"), "weight", weights)
    write(tmp_path / "w", table, max_rate=1000)  # weights other than 1 come from --max-rate
    out = io.BytesIO()
    export(load([tmp_path / "w"]), "folded", out)
    counts = [int(line.rsplit(b" ", 1)[1]) for line in out.getvalue().splitlines()]
    assert sum(counts) == 7 * table.num_rows
    sites = report(tmp_path / "w", "callsites", params={"top": 1000})
    assert sum(r["calls"] for r in sites) == 7 * table.num_rows


def test_files_without_the_column_weigh_one(tmp_path: Path) -> None:
    table = synth_events(3_000, seed=4).drop_columns(["weight"])
    directory = tmp_path / "old"
    directory.mkdir()
    with pq.ParquetWriter(directory / "h-000001.parquet", table.schema) as w:
        w.write_table(table)
        w.add_key_value_metadata({schema.METADATA_KEY: make_metadata(table).to_bytes()})
    (s,) = report(directory, "summary")
    assert s["events"] == 3_000


def _optnum(name: str) -> int:
    for opts in names.OPTNAMES.values():
        for num, label in opts.items():
            if label == name:
                return num
    return int(name)


def test_pages_and_diff_say_they_estimate(tmp_path: Path) -> None:
    from sockopt_trace.analyzer.htmlreport import diff_html, report_html

    truth = synth_events(20_000, seed=9)
    kept = sampled(truth)
    write(tmp_path / "s", kept, max_rate=500, sampled_out=truth.num_rows - kept.num_rows)
    write(tmp_path / "t", truth)
    assert "sampled (--max-rate 500 calls/s)" in report_html([tmp_path / "s"])
    page = diff_html([tmp_path / "t"], [tmp_path / "s"])
    assert "new: sampled (--max-rate 500 calls/s)" in page


# Every query that takes percentiles (through queries/lib/percentiles.sql), with its options.
PERCENTILE_REPORTS: list[tuple[str, list[str] | None, dict[str, Any]]] = [
    ("latency", None, {"top": 0}),
    ("latency", ["host", "pid", "tid"], {"top": 0}),  # many small groups, single-row ones
    ("callsites", None, {"top": 0}),
    ("processes", ["tid", "comm"], {"top": 0}),
    ("timeline", None, {"interval": "1ms"}),
    ("values", None, {"top": 0}),
    ("values", ["peer", "state"], {"top": 0}),
]


def weighted_and_expanded(directory: Path, n: int = 30_000, seed: int = 21) -> list[Path]:
    """The same calls twice: rows with random weights 1..12 (latencies coarsened so that they
    tie), and each of those rows repeated `weight` times with weight 1; and the rows alone
    (weight 1), which must not give the same percentiles."""
    table = synth_events(n, seed=seed)
    rng = np.random.default_rng(seed)
    coarse = pc.multiply(pc.divide(table.column("latency_ns"), 40), 40)
    table = table.set_column(table.schema.get_field_index("latency_ns"), "latency_ns", coarse)
    weights = rng.integers(1, 13, table.num_rows).astype(np.int32)
    column = table.schema.get_field_index("weight")
    weighted = table.set_column(column, "weight", pa.array(weights))
    expanded = table.take(pa.array(np.repeat(np.arange(table.num_rows), weights)))
    plain = table.set_column(column, "weight", pa.array(np.ones(n, dtype=np.int32)))
    tables = {"weighted": weighted, "expanded": expanded, "plain": plain}
    rate = {"weighted": 1000}  # a recorder writes weights other than 1 only with --max-rate
    return [
        write(directory / name, t, max_rate=rate.get(name, 0)).parent for name, t in tables.items()
    ]


def test_weighted_percentiles_equal_those_of_the_calls_expanded(tmp_path: Path) -> None:
    """Each row counted as `weight` calls: every percentile (and count, mean, rate) of every
    report, of the HTML page and of diff equals, to the last digit, the report over the data
    with each row repeated `weight` times."""
    from sockopt_trace.analyzer.diff import diff
    from sockopt_trace.analyzer.htmlreport.data import overall_distribution

    weighted, expanded, plain = weighted_and_expanded(tmp_path)
    for name, by, params in PERCENTILE_REPORTS:
        got = report(weighted, name, by=by, params=params)
        want = report(expanded, name, by=by, params=params)
        assert got == want and len(got) > 1, (name, by)
        if name == "latency" and by is None:  # the rows alone give other percentiles
            rows = report(plain, name, by=by, params=params)
            assert [r["p50_ns"] for r in rows] != [r["p50_ns"] for r in got]
    pages = [overall_distribution(load([rec]), []).percentiles for rec in (weighted, expanded)]
    assert pages[0] == pages[1] and len(pages[0]) == 4
    base = tmp_path / "base"
    write(base, synth_events(20_000, seed=22))
    sides = [diff([base], [rec], by=["comm", "optname"]) for rec in (weighted, expanded)]
    groups = [
        [
            (g.key, g.calls, g.rate.new, {m: c.new for m, c in g.percentiles.items()})
            for g in s.groups
        ]
        for s in sides
    ]
    assert groups[0] == groups[1] and any(g[3]["p99"] for g in groups[0])


def test_recordings_made_without_max_rate_skip_the_column(tmp_path: Path) -> None:
    """Without --max-rate every row weighs 1 (the format says so, and the kernel program is
    built without sampling): `weight` is then a constant to DuckDB and the column is not read
    (docs/benchmarks.md: 14% of a 100M-event latency report); with --max-rate it is read."""
    table = synth_events(2_000, seed=9)
    write(tmp_path / "plain", table)
    write(tmp_path / "sampled", table, max_rate=1000)

    def scanned(rec: Path) -> str:
        plan = load([rec]).con.execute("EXPLAIN SELECT sum(weight) FROM events").fetchall()
        lines = plan[0][1].splitlines()
        start = next(i for i, line in enumerate(lines) if "READ_PARQUET" in line)
        return "\n".join(lines[start : start + 8])

    assert "weight" not in scanned(tmp_path / "plain")
    assert "weight" in scanned(tmp_path / "sampled")
    counts = {r: report(tmp_path / r, "summary")[0]["events"] for r in ("plain", "sampled")}
    assert counts == {"plain": table.num_rows, "sampled": table.num_rows}


def test_counts_of_unweighted_rows_equal_the_sums(tmp_path: Path) -> None:
    """Where no file was sampled, `{count}` is DuckDB's count(*) (cheaper than its sum): every
    column of latency and callsites equals the sum of weights, to the last digit and type; a
    sampled recording read beside an unsampled one is summed."""
    write(tmp_path / "plain", synth_events(20_000, seed=31))
    table = synth_events(5_000, seed=32)
    weights = pa.array(np.full(table.num_rows, 3, dtype=np.int32))
    weighted = table.set_column(table.schema.get_field_index("weight"), "weight", weights)
    write(tmp_path / "sampled", weighted, max_rate=100, recording_id="sampled-1")
    for name, by in (("latency", None), ("latency", ["optname"]), ("callsites", None)):
        con = load([tmp_path / "plain"]).con
        assert unweighted_events(con)
        report_ = get_report(name)
        runs = []
        for unweighted in (True, False):
            sql, values = prepare(report_, by=by, unweighted=unweighted)
            assert ("CAST(count(*) AS HUGEINT)" in sql) == unweighted
            cursor = con.execute(sql, values)
            runs.append((cursor.fetchall(), [d[1] for d in cursor.description]))
        assert runs[0] == runs[1] and len(runs[0][0]) > 1, name
        assert run_report(con, name, by=by).rows == runs[0][0]
    both = load([tmp_path / "plain", tmp_path / "sampled"]).con
    assert not unweighted_events(both)
    calls = sum(r[0] for r in both.execute("SELECT sum(weight) FROM events").fetchall())
    assert calls == 20_000 + 3 * 5_000
    assert (
        sum(r["calls"] for r in report(tmp_path / "plain", "latency", params={"top": 0})) == 20_000
    )
    result = run_report(both, "latency", params={"top": 0})
    assert sum(r[result.columns.index("calls")] for r in result.rows) == calls
