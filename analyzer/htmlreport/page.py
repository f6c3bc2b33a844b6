"""The HTML of the pages: sections of tables (`blocks`) and figure placeholders in
`template.html`, with the figures' JSON and `page.js` inlined and plotly.js inlined or loaded
as `plotlyjs` says.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import importlib.resources
import json
from typing import Any

from sockopt_trace import __version__
from sockopt_trace.analyzer.htmlreport import figures, timeline
from sockopt_trace.analyzer.htmlreport.blocks import (
    cards,
    facts_table,
    lead,
    notices,
    sentence,
    table,
)
from sockopt_trace.analyzer.htmlreport.data import Distribution, SideData
from sockopt_trace.analyzer.htmlreport.flame import diff_flame_figure, flame_figure
from sockopt_trace.analyzer.htmlreport.fmt import duration, number, percent
from sockopt_trace.analyzer.htmlreport.plotlyjs import PlotlyJs
from sockopt_trace.analyzer.render import human


def _resource(name: str) -> str:
    return (importlib.resources.files("sockopt_trace.analyzer.htmlreport") / name).read_text()


class Page:
    """Sections of HTML and the figures they place, assembled into one self-contained file."""

    def __init__(self, title: str, subtitle: str) -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[tuple[str, str, str]] = []  # (id, heading, html)
        self.figures: dict[str, dict] = {}

    def figure(self, name: str, fig: dict | None, empty: str = "Nothing to draw.") -> str:
        """A placeholder that page.js fills with `fig` (or a note when there is none)."""
        if fig is None:
            return f'<p class="empty">{html.escape(empty)}</p>'
        self.figures[name] = fig
        # The div's height is the figure's: plotly's responsive resizing then keeps it (a div
        # sized by its content would collapse when the window is resized).
        height = int(fig["layout"].get("height", 450))
        return (
            f'<div class="figure" id="fig-{name}" data-figure="{name}" '
            f'style="height: {height}px"></div>'
        )

    def section(self, ident: str, heading: str, *parts: str) -> None:
        self.sections.append((ident, heading, "\n".join(parts)))

    def render(self, plotly: PlotlyJs) -> str:
        nav = "".join(f'<a href="#{i}">{html.escape(h)}</a>' for i, h, _ in self.sections)
        body = "\n".join(
            f'<section id="{i}">\n<h2>{html.escape(h)}</h2>\n{content}\n</section>'
            for i, h, content in self.sections
        )
        data = json.dumps(self.figures, separators=(",", ":"), allow_nan=False, default=_plain)
        replacements = {
            "__TITLE__": html.escape(self.title),
            "__SUBTITLE__": self.subtitle,
            "__NAV__": nav,
            "__BODY__": body,
            "__VERSION__": __version__,
            "__GENERATED__": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "__PLOTLY_NOTE__": html.escape(plotly.note()),
            "__STYLE__": _resource("style.css"),
            "__SCRIPT__": _resource("page.js"),
            # "</" cannot appear inside a script element's text.
            "__FIGURES__": data.replace("</", "<\\/"),
        }
        text = _resource("template.html")
        for marker, value in replacements.items():
            text = text.replace(marker, value)
        # Last, and only once: plotly.js is large and may contain anything that looks like a marker.
        head, _, tail = text.partition("__PLOTLY__")
        return head + plotly.script() + tail


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in a figure")


# -- tables ------------------------------------------------------------------------------------


# -- what a recording says about itself ---------------------------------------------------------


def _record_filters(side: SideData) -> str:
    return " | ".join(f for f in side.facts.filters if f) or "none (every process)"


def _time_range(side: SideData) -> str:
    """When the recorder ran: the recording span (analyzer/span.py)."""
    s = side.summary
    if s.get("recording_start") is None:
        return "nothing recorded in the window"
    return f"{human(s['recording_start'])} → {human(s['recording_end'])} UTC"


def _calls_range(side: SideData) -> str:
    """First to last call: the calls span, for information (rates use the recording span)."""
    s = side.summary
    if s.get("first_call") is None:
        return "no calls"
    span = duration((s.get("calls_span_s") or 0) * 1e9)
    return f"{human(s['first_call'])} → {human(s['last_call'])} UTC (calls span {span})"


def side_cards(side: SideData) -> str:
    s, f = side.summary, side.facts
    events = s.get("events") or 0
    errors = s.get("errors") or 0
    lost = f.lost_total
    lost_pct = 100 * lost / (lost + events) if lost + events else 0
    return cards(
        [
            ("calls", number(events), False),
            ("recording span", duration(side.seconds * 1e9), False),
            ("calls per second", number(s.get("calls_per_s") or 0, 1), False),
            ("failed calls", f"{number(errors)} ({percent(s.get('error_pct') or 0)})", False),
            ("lost events", f"{number(lost)} ({percent(lost_pct)})", lost > 0),
            ("processes", number(s.get("processes") or 0), False),
        ]
    )


def side_facts(side: SideData) -> list[tuple[str, str]]:
    s, f = side.summary, side.facts
    lost = ", ".join(f"{k} {v:,}" for k, v in f.lost.items() if v) or "none"
    top_option = s.get("top_option")
    top_comm = s.get("top_comm")
    return [
        ("recording", side.title),
        ("hosts", ", ".join(f.hosts)),
        ("recorded", _time_range(side)),
        ("calls", _calls_range(side)),
        ("probe", ", ".join(f.probes)),
        ("stacks", side.stack_source.describe()),
        ("lost events", lost + (f"; stacks lost {f.stacks_lost:,}" if f.stacks_lost else "")),
        ("recorded with", " | ".join(f.command_lines)),
        ("recording filters", _record_filters(side)),
        ("analysis filters", side.filters.describe()),
        (
            "busiest option",
            f"{top_option} ({percent(s.get('top_option_pct'))})" if top_option else "",
        ),
        ("busiest process", f"{top_comm} ({percent(s.get('top_comm_pct'))})" if top_comm else ""),
        ("kernels", ", ".join(f.kernels)),
        ("recorder", ", ".join(f.recorder_versions) + f"; {f.files:,} files"),
    ]


# -- the single-recording report ----------------------------------------------------------------


def report_page(side: SideData) -> Page:
    hosts = ", ".join(side.facts.hosts)
    page = Page(f"getsockopt on {hosts}", html.escape(f"{side.title} · {_time_range(side)}"))
    page.section(
        "summary",
        "Summary",
        notices(side.notices),
        side_cards(side),
        facts_table(side_facts(side)),
    )
    by = ", ".join(side.by)
    page.section(
        "latency",
        "Latency",
        lead(
            f"How long getsockopt took, for all calls and for the busiest groups by {by} "
            f"(those with {figures.MIN_PLOT_CALLS} calls or more), on a logarithmic scale. The "
            "markers are exact percentiles; click a legend entry to hide or show a group, drag "
            "to zoom, double-click to reset."
        ),
        page.figure("latency", figures.latency_figure(side) if side.overall.bins else None),
        table(side.latency, empty="No calls."),
    )
    page.section(
        "timeline",
        "Over time",
        lead("Calls per second, failed calls per second and the p99 and mean latency per bucket."),
        page.figure("timeline", timeline.timeline_figure(side) if side.timeline.calls else None),
    )
    page.section(
        "flame",
        "Flame graph",
        lead(
            "Who calls getsockopt, from where and for which option: process at the bottom, "
            "then the stack from outer to inner frames, then the option asked. "
            + html.escape(sentence(side.stack_source.describe()))
            + ". Click a frame to zoom in; the bar at the top zooms out."
        ),
        page.figure("flame", flame_figure(side.stacks) if side.stacks else None, "No calls."),
        "<h3>Busiest call sites</h3>",
        table(side.callsites, empty="No call sites recorded."),
    )
    errors_tables = "".join(
        f"<div><h3>Errors {html.escape(title)}</h3>{table(res, empty='No failed calls.')}</div>"
        for title, res in side.errors.items()
    )
    page.section(
        "errors",
        "Errors",
        lead("Failed calls by errno, by option and by call site."),
        page.figure("errors", figures.errors_figure(side), "No call failed."),
        f'<div class="tables">{errors_tables}</div>',
    )
    page.section(
        "processes",
        "Processes",
        lead("The processes that call getsockopt most."),
        table(side.processes, empty="No calls."),
    )
    return page


# -- two recordings ---------------------------------------------------------------------------


def _compare_facts(base: SideData, new: SideData) -> str:
    def row(name: str, b: str, n: str) -> str:
        return (
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(b)}</td>"
            f"<td>{html.escape(n)}</td></tr>"
        )

    def rate(side: SideData) -> str:
        return number(side.summary.get("calls_per_s") or 0, 1)

    def errors(side: SideData) -> str:
        s = side.summary
        return f"{number(s.get('errors') or 0)} ({percent(s.get('error_pct') or 0)})"

    rows = [
        row(
            "calls", number(base.summary.get("events") or 0), number(new.summary.get("events") or 0)
        ),
        row("recording span", duration(base.seconds * 1e9), duration(new.seconds * 1e9)),
        row("calls per second", rate(base), rate(new)),
        row("failed calls", errors(base), errors(new)),
        row("lost events", number(base.facts.lost_total), number(new.facts.lost_total)),
        row(
            "processes",
            number(base.summary.get("processes") or 0),
            number(new.summary.get("processes") or 0),
        ),
    ]
    base_facts, new_facts = dict(side_facts(base)), dict(side_facts(new))
    rows += [row(k, v, new_facts.get(k, "")) for k, v in base_facts.items()]
    return (
        '<table class="facts compare"><thead><tr><th></th><th>base</th><th>new</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def diff_page(base: SideData, new: SideData, diff_table: str, top: int = 6) -> Page:
    """Two recordings: the diff table (made by the diff library, passed in as HTML), overlaid
    distributions, both timelines and the differential flame graph."""
    page = Page(
        "getsockopt: base vs new",
        html.escape(f"base {base.title} · new {new.title}"),
    )
    page.section(
        "summary",
        "Summary",
        notices([f"base: {n}" for n in base.notices]),
        notices([f"new: {n}" for n in new.notices]),
        _compare_facts(base, new),
    )
    page.section("diff", "What changed", diff_table)
    overlays = [
        page.figure(f"latency-{i}", figures.overlay_figure(*pair))
        for i, pair in enumerate(overlay_pairs(base, new, top))
    ]
    page.section(
        "latency",
        "Latency distributions",
        lead(
            "Base (filled blue) and new (red) latency distributions, for all calls and the "
            f"busiest groups by {html.escape(', '.join(base.by))}; markers are exact "
            "percentiles."
        ),
        *overlays,
    )
    page.section(
        "timeline",
        "Over time",
        lead("Calls per second and p99 latency in both recordings, from each one's start."),
        page.figure("timeline", timeline.diff_timeline_figure(base, new)),
    )
    page.section(
        "flame",
        "Differential flame graph",
        lead(
            "Frames of both recordings' stacks; width is the calls (or time) per second "
            "through a frame in the recording chosen with the buttons, colour is how that "
            "rate changed from base to new: red grew, blue shrank. "
            f"Base: {html.escape(base.stack_source.describe())}; new: "
            f"{html.escape(new.stack_source.describe())}."
        ),
        page.figure(
            "flame", diff_flame_figure(base.stacks, new.stacks, base.exposure, new.exposure)
        ),
    )
    return page


def overlay_pairs(
    base: SideData, new: SideData, top: int
) -> list[tuple[str, Distribution, Distribution]]:
    """(title, base, new) distributions: all calls, then the groups busiest in either."""
    b = {g.label: g for g in base.groups if g.calls >= figures.MIN_PLOT_CALLS}
    n = {g.label: g for g in new.groups if g.calls >= figures.MIN_PLOT_CALLS}
    labels = sorted(
        set(b) | set(n),
        key=lambda k: -max(b[k].calls if k in b else 0, n[k].calls if k in n else 0),
    )[:top]

    def get(groups: dict, label: tuple) -> Distribution:
        return groups.get(label) or Distribution(label, 0, {})

    pairs = [("all calls", base.overall, new.overall)]
    pairs += [(figures.label_text(k), get(b, k), get(n, k)) for k in labels]
    return pairs
