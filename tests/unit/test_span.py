"""One definition of recording span and rate (analyzer/span.py), the same in every output.

The recording span comes from the files' metadata (recorder attached to stopped); a rate is
each recording's calls over its own span, summed over the recordings read together. summary,
processes, timeline, diff, the HTML page and info must give the same numbers for it, on the
shipped samples one by one and read all together (six recordings of different workloads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sockopt_trace.analyzer import span
from sockopt_trace.analyzer.diff import diff
from sockopt_trace.analyzer.htmlreport.data import gather
from sockopt_trace.analyzer.info import describe
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.render_diff import machine_sections
from sockopt_trace.analyzer.reports import run_report

SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"
CASES = {
    "nginx-after": [SAMPLES / "nginx-after"],
    "haproxy-nginx-unix": [SAMPLES / "haproxy-nginx-unix"],
    "all samples": sorted({p.parent for p in SAMPLES.rglob("*.parquet")}),
}


def rows(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


@pytest.mark.parametrize("name", CASES)
def test_every_output_agrees_on_span_and_rate(name: str) -> None:
    specs = CASES[name]
    rec = open_recording(specs)
    spans = span.recording_spans(rec.files)
    seconds = sum(s.seconds for s in spans.values())
    per_recording: dict[str, int] = {}
    for f in rec.files:
        per_recording[f.meta.recording_id] = per_recording.get(f.meta.recording_id, 0) + f.rows
    rate = span.rate(per_recording, spans)
    assert rate and (len(spans) > 6 if name == "all samples" else len(spans) == 1)

    loaded = load(specs)
    (summary,) = rows(run_report(loaded.con, "summary"))
    assert summary["recording_span_s"] == pytest.approx(seconds)
    assert summary["calls_per_s"] == pytest.approx(rate)
    if len(spans) == 1:  # the calls happen while the recorder runs
        assert summary["calls_span_s"] < summary["recording_span_s"]

    processes = rows(run_report(loaded.con, "processes", params={"top": 10**6}))
    assert sum(p["calls_per_s"] for p in processes) == pytest.approx(rate)

    timeline = rows(run_report(loaded.con, "timeline", params={"interval": "1s"}))
    assert sum(t["calls"] for t in timeline) == summary["events"]
    assert all(t["calls_per_s"] >= t["calls"] * (1 - 1e-9) for t in timeline)  # <= 1 s each
    if len(spans) == 1:  # whole seconds inside one recording: calls_per_s is the calls
        assert all(t["calls_per_s"] == pytest.approx(t["calls"]) for t in timeline[1:-1])

    info = {s.title: s for s in describe(rec)}
    total = rows(info["recordings"])[-1]  # the total row, or the only recording's
    assert total["recording"] == ("total" if len(spans) > 1 else rec.files[0].meta.recording_id[:8])
    assert total["recording_span_s"] == pytest.approx(seconds)
    assert total["calls_per_s"] == pytest.approx(rate)

    side = gather(name, loaded)
    assert side.seconds == pytest.approx(seconds)
    assert side.summary["calls_per_s"] == pytest.approx(rate)
    loaded.con.close()

    result = diff(specs, specs, replicates=False)  # several recordings a side: one fleet
    recordings = rows(machine_sections(result)[0])
    for r in recordings:
        assert r["recording_span_s"] == pytest.approx(seconds)
        assert r["calls_per_s"] == pytest.approx(rate)
