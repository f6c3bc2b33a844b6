"""--flight's buffer and triggers, on synthetic kernel records (no kernel needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sockopt_trace.errors import UserError
from sockopt_trace.recorder.events import event_dtype
from sockopt_trace.recorder.flight import (
    SECOND_NS,
    FlightBuffer,
    LastSecond,
    ask_dump,
    parse_trigger,
)
from sockopt_trace.schema import LOCK_NAME

T0 = 1_000 * SECOND_NS


def batch(
    start_ns: int, n: int, gap_ns: int = 1000, ret: int = 0, latency: int = 500
) -> np.ndarray:
    ev = np.zeros(n, event_dtype())
    ev["ts_ns"] = start_ns + np.arange(n) * gap_ns
    ev["latency_ns"] = latency
    ev["ret"] = ret
    ev["weight"] = 1
    return ev


def test_triggers_parse_and_refuse_in_one_line() -> None:
    assert parse_trigger("errors>100/s").threshold == 100
    assert parse_trigger(" p99 > 2ms ").threshold == pytest.approx(2e6)
    assert parse_trigger("max>1s").metric == "max"
    assert parse_trigger("calls>5e3/s".replace("5e3", "5000")).metric == "calls"
    for bad in ("errors>100", "p99>2ms/s", "p42>1ms", "errors<3/s", "", "p99>fast"):
        with pytest.raises(UserError, match="--trigger"):
            parse_trigger(bad)


def test_percentile_triggers_read_a_histogram_within_its_precision() -> None:
    rng = np.random.default_rng(1)
    ev = batch(T0, 5000)
    ev["latency_ns"] = rng.lognormal(8, 1.5, 5000).astype(np.uint64) + 1
    ev["weight"] = rng.integers(1, 20, 5000)
    last = LastSecond()
    last.add(ev)
    window = last.window(T0 + SECOND_NS // 2)
    expanded = np.repeat(ev["latency_ns"], ev["weight"])
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        exact = np.quantile(expanded, q, method="inverted_cdf")
        got = parse_trigger(f"{name}>1ms").value(window)
        assert abs(got / exact - 1) < 0.023, (name, got, exact)
    assert parse_trigger("max>1ms").value(window) == ev["latency_ns"].max()


def test_triggers_measure_the_last_second_with_weights() -> None:
    last = LastSecond()
    now = T0 + 5 * SECOND_NS
    last.add(batch(T0, 1000, ret=-9))  # four seconds ago: out of the window
    recent = batch(now - SECOND_NS // 2, 150, ret=-9)
    recent["weight"][:50] = 1  # weights count: 50 + 100 x 2 = 250 errors per second
    recent["weight"][50:] = 2
    last.add(recent)
    errors = parse_trigger("errors>200/s")
    assert errors.value(last.window(now)) == 250 and errors.fired(last.window(now))
    assert not parse_trigger("errors>250/s").fired(last.window(now))
    assert parse_trigger("calls>249/s").fired(last.window(now))
    last.add(batch(now - 1000, 1, latency=3_000_000))
    assert parse_trigger("max>2ms").fired(last.window(now))
    assert not parse_trigger("p50>2ms").fired(last.window(now))
    assert not errors.fired(last.window(now + 2 * SECOND_NS))  # a second later: quiet


def test_the_buffer_keeps_the_last_duration_and_stays_under_its_memory() -> None:
    buf = FlightBuffer(2, 1 << 30, T0)
    for s in range(6):
        buf.add(batch(T0 + s * SECOND_NS, 100), T0 + (s + 1) * SECOND_NS)
    batches, since = buf.take(T0 + 6 * SECOND_NS)
    starts = sorted(int(b["ts_ns"][0]) for b in batches)
    assert starts == [T0 + 4 * SECOND_NS, T0 + 5 * SECOND_NS]  # only the last 2 s
    assert since == T0 + 4 * SECOND_NS
    assert buf.rows == 0 and buf.take(T0 + 6 * SECOND_NS)[0] == []

    small = FlightBuffer(60, 3 * batch(T0, 100).nbytes, T0)
    for s in range(5):
        small.add(batch(T0 + s * SECOND_NS, 100), T0 + 5 * SECOND_NS)
    assert small.bytes <= small.max_bytes and small.rows == 300
    assert small.cut_for_memory == 200
    batches, since = small.take(T0 + 5 * SECOND_NS)
    assert since > int(batches[0]["ts_ns"][0]) - SECOND_NS  # the span starts after what was cut


def test_dump_refuses_in_one_line_without_a_recorder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no recorder is writing into"):
        ask_dump(tmp_path, None, 1)
    with pytest.raises(UserError, match="not a sockopt-trace recorder"):
        ask_dump(tmp_path, os.getpid(), 1)  # pytest: never signalled
    (tmp_path / LOCK_NAME).write_text("999999999\n")
    with pytest.raises(UserError, match="no process 999999999"):
        ask_dump(tmp_path, None, 1)
    done = subprocess.run(
        [sys.executable, "-m", "sockopt_trace", "dump", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
