"""The timeline charts of the pages: calls per second (over the part of each bucket the
recording covers, from the timeline report) and errors per second as bars or steps, with the
p99 and mean latency below, on one page's time axis or, for a diff, on seconds since each
recording's start."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sockopt_trace.analyzer.htmlreport.data import SideData, Timeline
from sockopt_trace.analyzer.htmlreport.figures import BASE_COLOR, FONT, NEW_COLOR, axis_note
from sockopt_trace.analyzer.htmlreport.fmt import duration
from sockopt_trace.analyzer.timespec import to_datetime


def _bucket_times(t: Timeline) -> list[str]:
    return [
        to_datetime(t.start_ns + i * t.interval_ns).isoformat(sep=" ") for i in range(len(t.calls))
    ]


def _timeline_layout(x_title: str, x_type: str, interval_ns: int) -> dict:
    grid = {
        "showgrid": True,
        "gridcolor": "#e5e5e5",
        "showline": True,
        "linecolor": "#999",
        "mirror": True,
        "zeroline": False,
    }
    return {
        "height": 460,
        "font": FONT,
        "plot_bgcolor": "white",
        "margin": {"l": 70, "r": 20, "t": 40, "b": 50},
        "hovermode": "x unified",
        "bargap": 0,
        "legend": {"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
        "xaxis": {"type": x_type, "anchor": "y2", "title": {"text": x_title}, **grid},
        "yaxis": {"domain": [0.52, 1], "title": {"text": "calls/s"}, "rangemode": "tozero", **grid},
        "yaxis2": {
            "domain": [0, 0.44],
            "type": "log",
            "title": {"text": "latency"},
            "matches": None,
            **grid,
        },
        "annotations": [axis_note(f"buckets of {duration(interval_ns)}", 1, "right", 4)],
    }


def _rate_traces(t: Timeline, x: list, name: str, color: str, *, bars: bool) -> list[dict]:
    rate = t.calls_per_s
    errors = [e * r / c if c else 0.0 for e, r, c in zip(t.errors, rate, t.calls, strict=True)]
    main: dict[str, Any] = {
        "x": x,
        "y": rate,
        "name": f"{name}calls/s",
        "hovertemplate": "%{y:,.4s} calls/s",
    }
    if bars:
        main.update(type="bar", marker={"color": color})
    else:
        line = {"color": color, "width": 1.4, "shape": "hv"}
        main.update(type="scatter", mode="lines", line=line)
    traces: list[dict[str, Any]] = [main]
    if any(t.errors):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": errors,
                "name": f"{name}errors/s",
                "line": {
                    "color": "#d62728" if bars else color,
                    "width": 1.2,
                    "dash": "dot",
                    "shape": "hv",
                },
                "hovertemplate": "%{y:,.4s} errors/s",
            }
        )
    return traces


def _latency_traces(t: Timeline, x: list, name: str, color: str) -> list[dict]:
    def trace(values: list, what: str, dash: str) -> dict:
        return {
            "type": "scatter",
            "mode": "lines+markers" if len(x) < 40 else "lines",
            "x": x,
            "y": values,
            "yaxis": "y2",
            "name": f"{name}{what}",
            "connectgaps": False,
            "line": {"color": color, "width": 1.4, "dash": dash},
            "marker": {"size": 4},
            "text": [duration(v) for v in values],
            "hovertemplate": "%{text}",
        }

    return [trace(t.p99_ns, "p99", "solid"), trace(t.mean_ns, "mean", "dot")]


def timeline_figure(side: SideData) -> dict:
    t = side.timeline
    x = _bucket_times(t)
    traces = _rate_traces(t, x, "", "#4c78a8", bars=True)
    traces += _latency_traces(t, x, "", "#f58518")
    layout = _timeline_layout("time (UTC)", "date", t.interval_ns)
    _latency_axis_ticks(layout, [t])
    return {"data": traces, "layout": layout}


def diff_timeline_figure(base: SideData, new: SideData) -> dict:
    """Both recordings on one axis of seconds since each one's start."""
    traces = []
    for name, side, color in (("base ", base, BASE_COLOR), ("new ", new, NEW_COLOR)):
        t = side.timeline
        offset = (t.start_ns - side.start_ns) / 1e9
        x = [offset + i * t.interval_ns / 1e9 for i in range(len(t.calls))]
        traces += _rate_traces(t, x, name, color, bars=False)
        traces += _latency_traces(t, x, name, color)
    intervals = {base.timeline.interval_ns, new.timeline.interval_ns}
    layout = _timeline_layout("seconds since the recording's start", "linear", min(intervals))
    _latency_axis_ticks(layout, [base.timeline, new.timeline])
    return {"data": traces, "layout": layout}


def _latency_axis_ticks(layout: dict, timelines: Sequence[Timeline]) -> None:
    values = [v for t in timelines for v in (*t.p99_ns, *t.mean_ns) if v]
    if values:
        lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        ticks = [10**k for k in range(lo, max(hi, lo + 1) + 1)]
        layout["yaxis2"].update(tickvals=ticks, ticktext=[duration(v) for v in ticks])
