"""The plotly charts of the pages, as plain figure dicts (data + layout) that plotly.js draws.

Latency distributions are step histograms (share of the group's calls per logarithmic bin) and
CDFs on a logarithmic latency axis, with the exact percentiles (from the latency report) marked
on both; errors are stacked bars per option and errno (the timeline charts: `timeline`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sockopt_trace.analyzer.htmlreport.data import (
    BINS_PER_DECADE,
    Distribution,
    SideData,
)
from sockopt_trace.analyzer.htmlreport.fmt import duration, percent

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
BASE_COLOR, NEW_COLOR = "#4c78a8", "#e45756"
ALL_COLOR = "#222222"
SYMBOLS = {0.5: "circle", 0.9: "square", 0.99: "diamond", 0.999: "x"}
MIN_PLOT_CALLS = 10  # groups with fewer calls have no distribution worth drawing
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}


def label_text(label: Sequence[str], limit: int = 70) -> str:
    text = " · ".join(label)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def pct_name(p: float) -> str:
    return f"p{p * 100:g}"


# -- latency distributions -------------------------------------------------------------------


SHOWN_BINS = 5  # histogram bins merged into one drawn step (BINS_PER_DECADE / 20)


def _coarse(d: Distribution) -> dict[int, int]:
    merged: dict[int, int] = {}
    for b, n in d.bins.items():
        merged[b // SHOWN_BINS] = merged.get(b // SHOWN_BINS, 0) + n
    return merged


def _edge(b: int, per_decade: int = BINS_PER_DECADE) -> float:
    return 10 ** (b / per_decade)


def histogram_xy(d: Distribution) -> tuple[list[float], list[float]]:
    """A closed step outline (plotly line shape "hv") of the share of calls per bin, in %,
    with BINS_PER_DECADE / SHOWN_BINS bins per factor of ten."""
    bins = _coarse(d)
    if not bins:
        return [], []
    per_decade, total = BINS_PER_DECADE // SHOWN_BINS, d.calls or 1
    lo, hi = min(bins), max(bins)
    xs, ys = [_edge(lo, per_decade)], [0.0]
    for b in range(lo, hi + 1):
        xs.append(_edge(b, per_decade))
        ys.append(100 * bins.get(b, 0) / total)
    xs += [_edge(hi + 1, per_decade)] * 2
    ys += [ys[-1], 0.0]
    return xs, ys


def cdf_xy(d: Distribution) -> tuple[list[float], list[float]]:
    """Share of calls (%) at or below each fine bin's upper edge."""
    if not d.bins:
        return [], []
    total, running = d.calls or 1, 0
    lo, hi = min(d.bins), max(d.bins)
    xs, ys = [_edge(lo)], [0.0]
    for b in range(lo, hi + 1):
        if b in d.bins:
            running += d.bins[b]
            xs.append(_edge(b + 1))
            ys.append(100 * running / total)
    return xs, ys


def _height_at(d: Distribution, value: float) -> float:
    b = math.floor(math.log10(max(value, 1)) * BINS_PER_DECADE) // SHOWN_BINS
    return 100 * _coarse(d).get(b, 0) / (d.calls or 1)


def distribution_traces(
    d: Distribution,
    name: str,
    color: str,
    *,
    dash: str = "solid",
    fill: bool = False,
) -> list[dict]:
    """The histogram (axes x, y), the CDF (x2, y2), and the percentiles marked on both."""
    (hx, hy), (cx, cy) = histogram_xy(d), cdf_xy(d)
    hist_axes, cdf_axes = {"xaxis": "x", "yaxis": "y"}, {"xaxis": "x2", "yaxis": "y2"}
    line = {"color": color, "width": 1.6, "dash": dash}
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "x": hx,
            "y": hy,
            "name": name,
            "legendgroup": name,
            "mode": "lines",
            "line": {**line, "shape": "hv"},
            "showlegend": True,
            "fill": "tozeroy" if fill else "none",
            "hoverinfo": "skip",
            **hist_axes,
        },
        {
            "type": "scatter",
            "x": cx,
            "y": cy,
            "name": name,
            "legendgroup": name,
            "mode": "lines",
            "line": line,
            "showlegend": False,
            "hovertemplate": "%{y:.2f}% of calls ≤ %{x:.4s}ns<extra>" + _esc(name) + "</extra>",
            **cdf_axes,
        },
    ]
    marks = [(p, v) for p, v in d.percentiles.items() if v is not None]
    if marks:
        texts = [f"{pct_name(p)} {duration(v)}" for p, v in marks]
        common = {
            "type": "scatter",
            "mode": "markers",
            "legendgroup": name,
            "showlegend": False,
            "marker": {
                "symbol": [SYMBOLS[p] for p, _ in marks],
                "size": 9,
                "color": color,
                "line": {"width": 1, "color": "white"},
            },
            "text": texts,
            "hovertemplate": "%{text}<extra>" + _esc(name) + "</extra>",
        }
        traces.append(
            {
                **common,
                "x": [v for _, v in marks],
                "y": [_height_at(d, v) for _, v in marks],
                **hist_axes,
            }
        )
        traces.append(
            {**common, "x": [v for _, v in marks], "y": [100 * p for p, _ in marks], **cdf_axes}
        )
    return traces


def _esc(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def latency_ticks(distributions: Sequence[Distribution]) -> dict:
    """Tick labels at powers of ten, in ns/µs/ms/s, over the range of the bins."""
    bins = [b for d in distributions for b in d.bins]
    if not bins:
        return {}
    lo = math.floor(min(bins) / BINS_PER_DECADE)
    hi = math.ceil((max(bins) + 1) / BINS_PER_DECADE)
    values = [m * 10**k for k in range(lo, hi + 1) for m in (1, 2, 5)]
    text = [duration(v) if str(v)[0] == "1" or hi - lo <= 3 else "" for v in values]
    return {"tickvals": values, "ticktext": text}


def _symbol_legend() -> str:
    names = {"circle": "●", "square": "■", "diamond": "◆", "x": "✕"}
    return "   ".join(f"{names[s]} {pct_name(p)}" for p, s in SYMBOLS.items())


def latency_figure(side: SideData) -> dict:
    """All calls (black, dotted) and each of the busiest groups, overlaid."""
    traces = distribution_traces(side.overall, "all calls", ALL_COLOR, dash="dot")
    groups = [g for g in side.groups if g.calls >= MIN_PLOT_CALLS]
    for i, g in enumerate(groups):
        color = PALETTE[i % len(PALETTE)]
        traces += distribution_traces(g, label_text(g.label), color)
    legend_rows = math.ceil((len(groups) + 1) / 3)
    layout = _pair_layout([side.overall, *groups], legend_rows=legend_rows)
    return {"data": traces, "layout": layout}


def _pair_layout(
    distributions: Sequence[Distribution], *, title: str | None = None, legend_rows: int = 1
) -> dict:
    """A histogram (axes x, y) beside a CDF (x2, y2), with the legend below them."""
    ticks = latency_ticks(distributions)
    grid = {
        "showgrid": True,
        "gridcolor": "#e5e5e5",
        "zeroline": False,
        "linecolor": "#999",
        "mirror": True,
        "showline": True,
    }
    top = 80 if title else 56
    bottom = 70 + 22 * legend_rows
    layout: dict = {
        "height": 400 + top + bottom,
        "margin": {"l": 60, "r": 20, "t": top, "b": bottom},
        "font": FONT,
        "hovermode": "closest",
        "plot_bgcolor": "white",
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 0,
            "yref": "container",
            "yanchor": "bottom",
            "font": {"size": 11},
        },
        "annotations": [
            _title("Histogram", 0.235),
            _title("Cumulative distribution", 0.765),
            axis_note(_symbol_legend(), 0, "left", 28),
        ],
    }
    if title:
        layout["title"] = {
            "text": f"<b>{_esc(title)}</b>",
            "x": 0,
            "xanchor": "left",
            "xref": "paper",
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 10},
            "font": {"size": 14},
        }
    for c, suffix in enumerate(("", "2")):
        layout[f"xaxis{suffix}"] = {
            "type": "log",
            "domain": [0, 0.47] if c == 0 else [0.53, 1],
            "anchor": f"y{suffix}",
            "title": {"text": "latency"},
            **ticks,
            **grid,
        }
        layout[f"yaxis{suffix}"] = {
            "anchor": f"x{suffix}",
            "ticksuffix": "%",
            "rangemode": "tozero",
            "title": {"text": "share of calls per bin" if c == 0 else "calls at or below"},
            **({"range": [0, 100.5]} if c == 1 else {}),
            **grid,
        }
    return layout


def _title(text: str, x: float) -> dict:
    return {
        "text": f"<b>{_esc(text)}</b>",
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": x,
        "y": 1,
        "xanchor": "center",
        "yanchor": "bottom",
        "yshift": 4,
        "font": {"size": 13},
    }


def axis_note(text: str, x: float, anchor: str, shift: int) -> dict:
    """Small grey text above the plot area."""
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": x,
        "y": 1,
        "xanchor": anchor,
        "yanchor": "bottom",
        "yshift": shift,
        "font": {"size": 11, "color": "#555"},
    }


def overlay_figure(title: str, base: Distribution, new: Distribution) -> dict:
    """Base (filled) and new distributions of one group, overlaid."""
    traces = distribution_traces(base, "base", BASE_COLOR, fill=True)
    traces += distribution_traces(new, "new", NEW_COLOR)
    traces[0]["fillcolor"] = "rgba(76,120,168,0.15)"
    return {"data": traces, "layout": _pair_layout([base, new], title=title)}


# -- over time ---------------------------------------------------------------------------------


def errors_figure(side: SideData) -> dict | None:
    """Errors per option, stacked by errno; None when no call failed."""
    res = side.error_matrix
    rows = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
    if not rows:
        return None
    options = list(dict.fromkeys(f"{r['level']}/{r['optname']}" for r in rows))
    errnos = list(dict.fromkeys(str(r["errno"]) for r in rows))
    traces = []
    for i, errno in enumerate(errnos):
        counts = {f"{r['level']}/{r['optname']}": r for r in rows if str(r["errno"]) == errno}
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": errno,
                "y": options,
                "x": [int(counts[o]["errors"]) if o in counts else 0 for o in options],
                "customdata": [
                    percent(counts[o]["error_pct"]) if o in counts else "" for o in options
                ],
                "marker": {"color": PALETTE[(i + 3) % len(PALETTE)]},
                "hovertemplate": f"%{{y}}: %{{x:,}} {errno} (%{{customdata}} of its calls)"
                "<extra></extra>",
            }
        )
    return {
        "data": traces,
        "layout": {
            "barmode": "stack",
            "font": FONT,
            "plot_bgcolor": "white",
            "height": 140 + 28 * len(options),
            "margin": {"l": 10, "r": 20, "t": 30, "b": 40},
            "xaxis": {"title": {"text": "failed calls"}, "gridcolor": "#e5e5e5"},
            "yaxis": {"autorange": "reversed", "automargin": True},
            "legend": {"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
        },
    }
