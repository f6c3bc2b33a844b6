"""record --max-rate: sampling in the kernel, checked against what the workload made.

Every failed call and the first call of each call site must be kept with weight 1; the sum of
weights of each kind of successful call must estimate its true count within what Bernoulli
sampling allows (six standard deviations, estimated from the weights themselves); the files'
events + sampled_out must equal the calls made, exactly; and the latency report's percentiles
must be those of the calls the rows stand for: DuckDB's quantile_cont over the rows repeated
`weight` times, to the last digit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sockopt_trace import schema
from tests.kernel.support import cli
from tests.kernel.test_record import CALLS

pytestmark = pytest.mark.kernel


def test_max_rate_keeps_errors_and_first_calls_and_estimates_the_rest(
    tmp_path: Path, workload_bin: Path
) -> None:
    rounds, threads = 100_000, 2  # over a second of calls: the period has time to adapt
    out = tmp_path / "rec"
    args = ["record", "-o", str(out), "--max-rate", "2000", "--rotate-interval", "1s"]
    result = cli(*args, "--", str(workload_bin), str(rounds), str(threads), "50")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout.strip().splitlines()[-1])
    files = sorted(out.glob("*.parquet"))
    metas = [schema.read_file_metadata(str(f)) for f in files]
    table = pq.read_table(files, columns=["ts_ns", "pid", "level", "optname", "ret", "weight"])
    total = len(CALLS) * rounds * threads

    assert all(m.max_rate == 2000 for m in metas)
    lost = sum(m.lost_total for m in metas)  # counted exactly (a loaded machine may lose some)
    assert sum(m.events for m in metas) + sum(m.sampled_out for m in metas) + lost == total
    assert set(table.column("pid").to_pylist()) == {made["pid"]}
    ok = table.filter(pc.equal(table.column("ret"), 0))
    assert ok.num_rows < total / 2 / 4, "sampling kept most successful calls"
    assert pc.max(ok.column("weight")).as_py() > 1

    sites = pq.read_table(files, columns=["ts_ns", "callsite", "weight"])
    for function, level, optname, ret in CALLS:
        kind = table.filter(
            pc.and_(
                pc.and_(
                    pc.equal(table.column("level"), level),
                    pc.equal(table.column("optname"), optname),
                ),
                pc.equal(table.column("ret"), ret),
            )
        )
        weights = kind.column("weight").to_numpy().astype(np.int64)
        if ret < 0:  # every failed call, as itself
            assert kind.num_rows == rounds * threads and set(weights.tolist()) == {1}
        else:
            estimate = int(weights.sum())
            sd = math.sqrt(float((weights * (weights - 1)).sum()))
            assert abs(estimate - rounds * threads) <= 6 * sd + 1, (function, estimate, sd)
        # the first call of each call site is kept as itself
        mine = sites.filter(pc.starts_with(sites.column("callsite"), function))
        first = int(pc.index(mine.column("ts_ns"), pc.min(mine.column("ts_ns"))).as_py())
        assert mine.column("weight")[first].as_py() == 1

    _percentiles_weigh_rows(out, files)


def _percentiles_weigh_rows(out: Path, files: list[Path]) -> None:
    """The latency report over the real sampled recording against quantile_cont over its rows
    each repeated `weight` times (what the sample stands for)."""
    import duckdb
    import pyarrow as pa

    from sockopt_trace.analyzer.load import load
    from sockopt_trace.analyzer.reports import run_report

    rows = pq.read_table(files, columns=["level", "optname", "latency_ns", "weight"])
    weights = rows.column("weight").to_numpy().astype(np.int64)
    expanded = rows.take(pa.array(np.repeat(np.arange(rows.num_rows), weights)))
    fractions = {"p50_ns": 0.5, "p90_ns": 0.9, "p99_ns": 0.99, "p999_ns": 0.999}
    picks = ", ".join(f"quantile_cont(latency_ns, {f}) AS {c}" for c, f in fractions.items())
    con = duckdb.connect()
    con.register("expanded", expanded)
    want = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            f"SELECT level, optname, count(*), {picks} FROM expanded GROUP BY level, optname"
        ).fetchall()
    }
    result = run_report(
        load([out]).con, "latency", by=["level", "optname"], params={"top": 0}, raw=True
    )
    got = {}
    for values in result.rows:
        row = dict(zip(result.columns, values, strict=True))
        got[(row["level"], row["optname"])] = (row["calls"], *(row[c] for c in fractions))
    assert got == want and len(got) == len({(c[1], c[2]) for c in CALLS})
