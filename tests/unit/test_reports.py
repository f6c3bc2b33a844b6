"""Canned reports against answers computed independently with numpy over the same rows."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from sockopt_trace import schema
from sockopt_trace.analyzer import names
from sockopt_trace.analyzer.database import Loaded
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import run_report
from sockopt_trace.errors import UserError
from tests.synth import metadata_json, read_rows, synth_events, write_recording, write_with_metadata

PCTS = [50, 90, 99, 99.9]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two hosts: host-a in 3 files, host-b in 2, overlapping in time."""
    root = tmp_path_factory.mktemp("fleet")
    paths = write_recording(root / "a", 30_000, files=3, seed=10, host="host-a")
    paths += write_recording(
        root / "b", 20_000, files=2, seed=20, host="host-b", lost={"ringbuf_full": 5}
    )
    return paths


@pytest.fixture(scope="module")
def rows(fleet: list[Path]) -> dict[str, np.ndarray]:
    """The rows of the fleet read back with pyarrow, as numpy columns, plus decoded names."""
    table = read_rows(fleet)
    cols = {
        name: np.asarray(table.column(name).to_numpy(zero_copy_only=False))
        for name in table.column_names
    }
    cols["level_name"] = np.array([names.level_name(v) for v in cols["level"]])
    cols["optname_name"] = np.array(
        [names.optname_name(lv, o) for lv, o in zip(cols["level"], cols["optname"], strict=True)]
    )
    cols["errno_name"] = np.array([names.errno_name(-r if r < 0 else 0) for r in cols["ret"]])
    return cols


@pytest.fixture(scope="module")
def loaded(fleet: list[Path]) -> Loaded:
    return load([p.parent for p in fleet[:1]] + [fleet[-1].parent])


def host_spans(fleet: list[Path]) -> dict[str, tuple[int, int, float]]:
    """Each host's recording (one per host here): first file's start, last file's end, and the
    seconds its files cover (the synthetic files leave gaps between them, as missing files would;
    real ones follow each other)."""
    metas = [schema.read_file_metadata(str(p)) for p in fleet]
    assert len({m.recording_id for m in metas}) == len({m.host for m in metas})
    spans = {}
    for host in {m.host for m in metas}:
        mine = sorted((m.start_ns, m.end_ns) for m in metas if m.host == host)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(mine))  # no overlap
        spans[host] = (mine[0][0], mine[-1][1], sum(e - s for s, e in mine) / 1e9)
    return spans


def report(loaded: Loaded, name: str, **kwargs: Any) -> list[dict[str, Any]]:
    res = run_report(loaded.con, name, **kwargs)
    return [dict(zip(res.columns, row, strict=True)) for row in res.rows]


def groups(
    cols: dict[str, np.ndarray], keys: list[str], mask: np.ndarray | None = None
) -> dict[tuple, np.ndarray]:
    """Row indices per distinct tuple of `keys` columns."""
    out: dict[tuple, list[int]] = defaultdict(list)
    selected = np.flatnonzero(mask) if mask is not None else range(len(cols[keys[0]]))
    for i in selected:
        out[
            tuple(cols[k][i].item() if hasattr(cols[k][i], "item") else cols[k][i] for k in keys)
        ].append(i)
    return {k: np.array(v) for k, v in out.items()}


def ranked(
    items: Iterable[tuple[tuple, Any]], score: Callable[[Any], float], top: int
) -> list[tuple]:
    """Keys ordered by score descending, then by key (the reports' tie-break)."""
    return [k for k, _ in sorted(items, key=lambda kv: (-score(kv[1]), kv[0]))][:top]


def test_latency_exact_percentiles_per_group_across_files_and_hosts(
    loaded: Loaded, rows: dict[str, np.ndarray]
) -> None:
    got = report(loaded, "latency")
    expected = groups(rows, ["comm", "level_name", "optname_name"])
    order = ranked(expected.items(), len, 20)
    assert [(r["comm"], r["level"], r["optname"]) for r in got] == order
    for r in got:
        lat = rows["latency_ns"][expected[(r["comm"], r["level"], r["optname"])]]
        p50, p90, p99, p999 = np.percentile(lat, PCTS, method="linear")
        assert r["calls"] == len(lat)
        assert r["mean_ns"] == pytest.approx(lat.mean(), rel=1e-12)
        assert (r["p50_ns"], r["p90_ns"], r["p99_ns"], r["p999_ns"]) == pytest.approx(
            (p50, p90, p99, p999), rel=1e-12
        )
        assert r["max_ns"] == lat.max()


def test_latency_by_host_and_optname_with_top(loaded: Loaded, rows: dict[str, np.ndarray]) -> None:
    got = report(loaded, "latency", by=["host", "optname"], params={"top": "3"})
    expected = groups(rows, ["host", "optname_name"])
    assert [(r["host"], r["optname"]) for r in got] == ranked(expected.items(), len, 3)
    assert {r["host"] for r in report(loaded, "latency", by=["host"])} == {"host-a", "host-b"}
    assert sum(r["calls"] for r in report(loaded, "latency", by=["host"])) == 50_000


def test_callsites_by_count_and_by_time(loaded: Loaded, rows: dict[str, np.ndarray]) -> None:
    expected = groups(rows, ["callsite"])
    lat = rows["latency_ns"]
    total = sum(lat[i].sum() for i in expected.values())
    by_calls = report(loaded, "callsites")
    assert [(r["callsite"],) for r in by_calls] == ranked(expected.items(), len, 20)
    for r in by_calls:
        idx = expected[(r["callsite"],)]
        assert r["calls"] == len(idx)
        assert r["total_ns"] == lat[idx].sum()
        assert r["time_pct"] == pytest.approx(100 * lat[idx].sum() / total)
        assert r["p99_ns"] == pytest.approx(np.percentile(lat[idx], 99, method="linear"))
        assert r["processes"] == len({(rows["host"][i], rows["pid"][i]) for i in idx})
    by_time = report(loaded, "callsites", params={"sort": "time", "top": 5})
    assert [(r["callsite"],) for r in by_time] == ranked(
        expected.items(), lambda i: lat[i].sum(), 5
    )


def test_sampled_stacks_are_scaled_by_the_period(tmp_path: Path) -> None:
    paths = write_recording(tmp_path, 8000, files=2, seed=3, stacks="full", stack_sample_period=4)
    cols = read_rows(paths)
    stack = np.array(cols.column("stack").to_pylist(), dtype=object)
    lat = cols.column("latency_ns").to_numpy()
    got = report(load([tmp_path]), "callsites", by=["stack"])
    sampled = {s for s in stack if s is not None}
    assert {r["stack"] for r in got} == sampled
    for r in got:
        mask = stack == r["stack"]
        assert r["calls"] == 4 * mask.sum()
        assert r["total_ns"] == 4 * lat[mask].sum()
    assert sum(r["calls"] for r in got) == pytest.approx(8000, rel=0.01)
    # call sites are on every row: counted as they are
    assert sum(r["calls"] for r in report(load([tmp_path]), "callsites")) == 8000


def test_errors_by_errno_option_process_and_by_process(
    loaded: Loaded, rows: dict[str, np.ndarray]
) -> None:
    failed = rows["ret"] < 0
    expected = groups(rows, ["errno_name", "level_name", "optname_name", "comm"], failed)
    got = report(loaded, "errors", params={"top": 1000})
    assert [(r["errno"], r["level"], r["optname"], r["comm"]) for r in got] == ranked(
        expected.items(), len, 1000
    )
    assert sum(r["errors"] for r in got) == failed.sum()
    assert "4000" in {r["errno"] for r in got} and "ENOPROTOOPT" in {r["errno"] for r in got}
    per_comm = report(loaded, "errors", by=["comm"])
    all_calls = groups(rows, ["comm"])
    for r in per_comm:
        idx = all_calls[(r["comm"],)]
        assert r["calls"] == len(idx)
        assert r["errors"] == failed[idx].sum()
        assert r["error_pct"] == pytest.approx(100 * failed[idx].mean())
        assert r["errors_share_pct"] == pytest.approx(100 * failed[idx].sum() / failed.sum())


def test_processes_rates_and_latency(
    loaded: Loaded, rows: dict[str, np.ndarray], fleet: list[Path]
) -> None:
    """Rates are over each process's own recording's span (from file metadata): the two hosts'
    recordings, read together, do not share one span."""
    expected = groups(rows, ["host", "pid", "comm"])
    span_s = {host: seconds for host, (_, _, seconds) in host_spans(fleet).items()}
    got = report(loaded, "processes")
    assert [(r["host"], r["pid"], r["comm"]) for r in got] == ranked(expected.items(), len, 20)
    for r in got:
        idx = expected[(r["host"], r["pid"], r["comm"])]
        assert r["calls_per_s"] == pytest.approx(len(idx) / span_s[r["host"]])
        assert r["errors"] == (rows["ret"][idx] < 0).sum()
        assert r["options"] == len(set(zip(rows["level"][idx], rows["optname"][idx], strict=True)))
        assert r["p99_ns"] == pytest.approx(
            np.percentile(rows["latency_ns"][idx], 99, method="linear")
        )
    threads = report(loaded, "processes", by=["tid", "comm"], params={"top": 1000})
    assert len(threads) == len(groups(rows, ["tid", "comm"]))


def test_timeline_buckets(loaded: Loaded, rows: dict[str, np.ndarray], fleet: list[Path]) -> None:
    """Rates per bucket are each host's calls over the part of the bucket its recording span
    covers (the edges of a recording fill a bucket partly), summed over the hosts."""
    spans = host_spans(fleet)
    interval = 5_000_000  # 5 ms
    got = report(loaded, "timeline", params={"interval": "5ms"})
    bucket = rows["ts_ns"] - rows["ts_ns"] % interval
    starts = np.unique(bucket)
    assert len(got) == len(starts)
    for r, start in zip(got, starts, strict=True):
        idx = bucket == start
        assert r["time"] == dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(start) // 1000)
        assert r["calls"] == idx.sum()
        rate = 0.0
        for host, (first, last, _) in spans.items():
            covered = min(start + interval, last) - max(start, first)
            rate += (idx & (rows["host"] == host)).sum() / (covered / 1e9)
        assert r["calls_per_s"] == pytest.approx(rate)
        assert r["p99_ns"] == pytest.approx(
            np.percentile(rows["latency_ns"][idx], 99, method="linear")
        )
        assert r["max_ns"] == rows["latency_ns"][idx].max()


def test_slowest_calls_in_order(loaded: Loaded, rows: dict[str, np.ndarray]) -> None:
    got = report(loaded, "slowest", params={"top": 15})
    order = np.lexsort((rows["tid"], rows["ts_ns"], -rows["latency_ns"]))[:15]
    assert [r["latency_ns"] for r in got] == rows["latency_ns"][order].tolist()
    assert [r["comm"] for r in got] == rows["comm"][order].tolist()
    assert [r["optname_name"] for r in got] == rows["optname_name"][order].tolist()
    assert [r["optname"] for r in got] == rows["optname"][order].tolist()


def test_summary(loaded: Loaded, rows: dict[str, np.ndarray], fleet: list[Path]) -> None:
    (got,) = report(loaded, "summary")
    n = len(rows["ts_ns"])
    assert got["events"] == n == 50_000
    assert got["hosts"] == 2
    assert got["processes"] == len(set(zip(rows["host"], rows["pid"], strict=True)))
    assert got["threads"] == len(set(zip(rows["host"], rows["tid"], strict=True)))
    assert got["errors"] == (rows["ret"] < 0).sum()
    assert got["lost"] == 5
    assert got["lost_pct"] == pytest.approx(100 * 5 / (n + 5))
    options = groups(rows, ["level_name", "optname_name"])
    (top_option,) = ranked(options.items(), len, 1)
    assert got["top_option"] == "/".join(top_option)
    assert got["top_option_pct"] == pytest.approx(100 * len(options[top_option]) / n)
    assert got["options"] == len(options)
    spans = host_spans(fleet)
    assert got["recordings"] == 2
    assert got["recording_span_s"] == pytest.approx(sum(s for _, _, s in spans.values()))
    assert got["calls_span_s"] == pytest.approx((rows["ts_ns"].max() - rows["ts_ns"].min()) / 1e9)
    rates = [(rows["host"] == h).sum() / seconds for h, (_, _, seconds) in spans.items()]
    assert got["calls_per_s"] == pytest.approx(sum(rates))


def test_where_since_and_until_filter_events(
    fleet: list[Path], rows: dict[str, np.ndarray]
) -> None:
    dirs = sorted({p.parent for p in fleet})
    nginx = load(dirs, Filters(where="comm = 'nginx' AND errno_name = 'OK'"))
    (got,) = report(nginx, "summary")
    assert got["events"] == ((rows["comm"] == "nginx") & (rows["ret"] >= 0)).sum()
    window = load(dirs, Filters(since="10ms", until="20ms"))
    start = window.recording.start_ns
    inside = (rows["ts_ns"] >= start + 10_000_000) & (rows["ts_ns"] < start + 20_000_000)
    assert 0 < inside.sum() < len(inside)
    assert report(window, "summary")[0]["events"] == inside.sum()
    iso = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(start + 10_000_000) // 1000)
    absolute = load(dirs, Filters(since=iso.isoformat(), until="20ms"))
    assert report(absolute, "summary")[0]["events"] == pytest.approx(inside.sum(), abs=2)


def test_report_arguments_are_checked(loaded: Loaded) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "nope"}, "unknown report 'nope'"),
        ({"name": "latency", "params": {"bogus": 1}}, "has no parameter 'bogus'"),
        ({"name": "latency", "params": {"top": "many"}}, "expected int"),
        ({"name": "timeline", "params": {"interval": "fast"}}, "bad interval duration"),
        ({"name": "timeline", "by": ["comm"]}, "does not take --by"),
        ({"name": "latency", "by": ["comm; DROP TABLE files"]}, "choose from host, comm"),
    ]
    for kwargs, words in cases:
        name = kwargs.pop("name")
        with pytest.raises(UserError, match=words.replace("(", r"\(")):
            run_report(loaded.con, name, **kwargs)


def test_bad_where_is_one_line_error(fleet: list[Path]) -> None:
    for where in ("no_such_column = 1", "comm = ", "comm = 'x'); DROP TABLE files; SELECT (1"):
        with pytest.raises(UserError) as info:
            load([fleet[0].parent], Filters(where=where))
        assert "\n" not in str(info.value) and "--where" in str(info.value)


def test_where_comment_cannot_swallow_the_rest(fleet: list[Path]) -> None:
    got = load([fleet[0].parent], Filters(where="pid = 1200 -- only nginx", until="5ms"))
    (summary,) = report(got, "summary")
    assert summary["events"] > 0 and summary["processes"] == 1


def test_events_view_decodes_names(loaded: Loaded) -> None:
    con: duckdb.DuckDBPyConnection = loaded.con
    got = con.execute(
        "SELECT DISTINCT level, optname, level_name, optname_name FROM events ORDER BY ALL"
    ).fetchall()
    assert (6, 11, "IPPROTO_TCP", "TCP_INFO") in got
    assert (0, 80, "IPPROTO_IP", "SO_ORIGINAL_DST") in got
    assert (6, 999, "IPPROTO_TCP", "999") in got
    errs = dict(con.execute("SELECT DISTINCT ret, errno_name FROM events").fetchall())
    assert errs == {
        0: "OK",
        -9: "EBADF",
        -88: "ENOTSOCK",
        -92: "ENOPROTOOPT",
        -22: "EINVAL",
        -4000: "4000",
    }
    assert con.execute("SELECT min(errno), max(errno) FROM events").fetchone() == (0, 4000)
    ts, time = con.execute("SELECT ts_ns, time FROM events LIMIT 1").fetchone()
    assert time == dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts // 1000)
    files = con.execute(
        "SELECT host, sequence, events, lost FROM files ORDER BY host, sequence"
    ).fetchall()
    assert [f[:2] for f in files] == [
        ("host-a", 1),
        ("host-a", 2),
        ("host-a", 3),
        ("host-b", 1),
        ("host-b", 2),
    ]
    assert sum(f[2] for f in files) == 50_000 and sum(f[3] for f in files) == 5


def test_files_with_different_sampling_and_columns_read_together(tmp_path: Path) -> None:
    sampled = write_recording(
        tmp_path / "s", 4000, files=1, seed=11, stacks="full", stack_sample_period=4
    )
    every = write_recording(tmp_path / "e", 1000, files=1, seed=12, host="h2", stacks="full")
    table = read_rows(every)
    extra = tmp_path / "x" / "extra.parquet"
    extra.parent.mkdir()
    newer = synth_events(10, seed=13, host="h3")
    newer = newer.append_column("future_column", pa.array(range(10), pa.int64()))
    write_with_metadata(extra, metadata_json(host="h3", events=10), newer)
    got = load([tmp_path / "s", tmp_path / "e", extra])
    con = got.con
    assert con.execute("SELECT count(*), count(future_column) FROM events").fetchone() == (5010, 10)
    sql = "SELECT host, max(stack_weight) FROM events GROUP BY host"
    weights = dict(con.execute(sql).fetchall())
    assert weights == {"host-a": 4, "h2": 1, "h3": None}
    stacks = report(got, "callsites", by=["stack"], params={"top": 1000})
    sampled_rows = read_rows(sampled).column("stack").drop_null()
    assert sum(r["calls"] for r in stacks) == 4 * len(sampled_rows) + table.num_rows
