"""Flame graphs as plotly icicle charts: the root at the bottom, callers below callees, each
frame as wide as the calls (or time) under it; click a frame to zoom in, the path bar to zoom out.

`build_tree` turns folded stacks into the ids/parents/values arrays that icicle charts take,
with several value columns per node (calls and time; for a diff, both recordings' rates), so
buttons can switch between them without rebuilding the tree. Frames below `MIN_SHARE` of every
column are pruned: their width would be less than a pixel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sockopt_trace.analyzer.htmlreport.fmt import duration, number, percent

ROOT_ID = "all"
MIN_SHARE = 0.0005
MAX_NODES = 3000  # frames drawn at most (the page stays small whatever the stacks)
TIMES = "\u00d7"  # multiplication sign
# Blue (less in new) through white (same) to red (more), ColorBrewer's RdBu.
DIVERGING = [
    [0.0, "#2166ac"],
    [0.25, "#92c5de"],
    [0.5, "#f7f7f7"],
    [0.75, "#f4a582"],
    [1.0, "#b2182b"],
]


@dataclass
class Tree:
    paths: list[str]  # each node's frames from the root, `all;comm;...`
    labels: list[str]
    parents: list[int]  # index of the parent node (-1 for the root)
    values: list[list[float]]  # values[column][node]
    depth: int
    leaves: set[int]  # the nodes that end a stack (the options asked)

    def column(self, i: int) -> list[float]:
        return self.values[i]

    @property
    def ids(self) -> list[str]:
        """Short ids for plotly (paths can be long: the page holds ids once per node)."""
        return [str(i) for i in range(len(self.paths))]

    @property
    def parent_ids(self) -> list[str]:
        return ["" if p < 0 else str(p) for p in self.parents]


def build_tree(
    stacks: Iterable[tuple[str, Sequence[float]]], columns: int, root_label: str
) -> Tree:
    """A tree of frames from (folded stack, values) rows; every node's value in each column is
    the sum over the stacks that pass through it (plotly's branchvalues="total").

    Kept: the MAX_NODES widest nodes (width: the largest share of its column's total), and
    none below MIN_SHARE. A child is never wider than its parent, so what is kept is a tree.
    """
    sums: dict[str, list[float]] = {ROOT_ID: [0.0] * columns}
    ends = set()
    for folded, values in stacks:
        path = ROOT_ID
        for j, v in enumerate(values):
            sums[ROOT_ID][j] += v
        for frame in folded.split(";"):
            path = f"{path};{frame}"
            node = sums.setdefault(path, [0.0] * columns)
            for j, v in enumerate(values):
                node[j] += v
        ends.add(path)
    totals = sums[ROOT_ID]

    def width(path: str) -> float:
        return max((v / t if t > 0 else 0.0) for v, t in zip(sums[path], totals, strict=True))

    widths = sorted((width(p) for p in sums), reverse=True)
    least = max(MIN_SHARE, widths[MAX_NODES - 1] if len(widths) > MAX_NODES else 0.0)
    index = {ROOT_ID: 0}
    paths, labels, parents = [ROOT_ID], [root_label], [-1]
    # Parents come before children: by depth, then keep a node whose parent was kept.
    for path in sorted(sums, key=lambda p: p.count(";")):
        parent, _, label = path.rpartition(";")
        if path == ROOT_ID or parent not in index or width(path) < least:
            continue
        index[path] = len(paths)
        paths.append(path)
        labels.append(label)
        parents.append(index[parent])
    by_column = [[sums[p][j] for p in paths] for j in range(columns)]
    depth = max(p.count(";") for p in paths) + 1
    return Tree(paths, labels, parents, by_column, depth, {index[p] for p in ends if p in index})


def frame_colors(tree: Tree) -> list[str]:
    """Classic flame graph colours: warm hues from a hash of the frame name (the same frame
    keeps its colour in every chart), the option frames (leaves) in blue, the root grey."""
    colors = ["rgb(200,200,200)"]
    for i, label in enumerate(tree.labels[1:], start=1):
        a, b, c = hashlib.md5(label.encode()).digest()[:3]
        if i in tree.leaves:
            colors.append(f"rgb({80 + a % 40},{150 + b % 50},{210 + c % 40})")
        else:
            colors.append(f"rgb({205 + a % 50},{90 + b % 110},{30 + c % 40})")
    return colors


def flame_figure(stacks: list[tuple[str, int, int]]) -> dict:
    """The flame graph of one recording, switchable between calls and time spent."""
    tree = build_tree(((f, (c, t)) for f, c, t in stacks), 2, "all calls")
    calls, times = tree.column(0), tree.column(1)
    total_calls, total_time = calls[0] or 1, times[0] or 1
    custom = [
        [
            number(c),
            percent(100 * c / total_calls),
            duration(t),
            percent(100 * t / total_time),
            duration(t / c) if c else "",
        ]
        for c, t in zip(calls, times, strict=True)
    ]
    hover = (
        "<b>%{label}</b><br>%{customdata[0]} calls (%{customdata[1]})<br>"
        "%{customdata[2]} in getsockopt (%{customdata[3]}), %{customdata[4]} per call"
        "<extra></extra>"
    )
    trace = _icicle(tree, calls, frame_colors(tree), custom, hover)
    buttons = [
        _button("Call counts", calls, None),
        _button("Time in getsockopt", times, None),
    ]
    return _layout(trace, tree.depth, buttons)


def diff_flame_figure(
    base: list[tuple[str, int, int]],
    new: list[tuple[str, int, int]],
    base_seconds: float,
    new_seconds: float,
) -> dict:
    """A differential flame graph: frames sized by one recording, coloured by how the rate of
    calls (or time) through them changed from base to new, red for more, blue for less."""
    rows: dict[str, list[float]] = {}
    for side, (stacks, seconds) in enumerate(((base, base_seconds), (new, new_seconds))):
        for folded, calls, time_ns in stacks:
            values = rows.setdefault(folded, [0.0] * 4)
            values[side] += calls / seconds
            values[2 + side] += time_ns / seconds
    tree = build_tree(rows.items(), 4, "all calls")
    b_calls, n_calls, b_time, n_time = tree.values
    change_calls = [_change(b, n) for b, n in zip(b_calls, n_calls, strict=True)]
    change_time = [_change(b, n) for b, n in zip(b_time, n_time, strict=True)]
    custom = [
        [
            number(bc, 1),
            number(nc, 1),
            _ratio(bc, nc),
            duration(bt),
            duration(nt),
            _ratio(bt, nt),
        ]
        for bc, nc, bt, nt in zip(b_calls, n_calls, b_time, n_time, strict=True)
    ]
    hover = (
        "<b>%{label}</b><br>calls/s: %{customdata[0]} → %{customdata[1]} (%{customdata[2]})"
        "<br>time in getsockopt per second: %{customdata[3]} → %{customdata[4]} "
        "(%{customdata[5]})<extra></extra>"
    )
    marker_colors = {"colorscale": DIVERGING, "cmin": -1, "cmax": 1}
    colorbar = {
        "title": {"text": "new vs base"},
        "tickvals": [-1, -0.6, -1 / 3, 0, 1 / 3, 0.6, 1],
        "ticktext": ["gone", "÷4", "÷2", "same", TIMES + "2", TIMES + "4", "new"],
        "len": 0.8,
    }
    trace = _icicle(tree, n_calls, change_calls, custom, hover)
    trace["marker"].update(marker_colors, showscale=True, colorbar=colorbar)
    del trace["insidetextfont"]  # plotly picks black or white for each frame's colour
    buttons = [
        _button("Calls, sized by new", n_calls, change_calls),
        _button("Calls, sized by base", b_calls, change_calls),
        _button("Time, sized by new", n_time, change_time),
        _button("Time, sized by base", b_time, change_time),
    ]
    return _layout(trace, tree.depth, buttons)


def _change(base: float, new: float) -> float:
    """(new - base) / (new + base): -1 gone, 0 same, 1/3 doubled, 1 only in new."""
    return 0.0 if base + new == 0 else (new - base) / (new + base)


def _ratio(base: float, new: float) -> str:
    if base == 0:
        return "new" if new else "none"
    if new == 0:
        return "gone"
    return f"{TIMES}{new / base:.3g}"


def _icicle(tree: Tree, values: list[float], colors: list, custom: list, hover: str) -> dict:
    return {
        "type": "icicle",
        "ids": tree.ids,
        "labels": tree.labels,
        "parents": tree.parent_ids,
        "values": values,
        "branchvalues": "total",
        "sort": False,
        "tiling": {"orientation": "v", "flip": "y", "pad": 0},
        "marker": {"colors": colors, "line": {"width": 0.5, "color": "white"}},
        "customdata": custom,
        "hovertemplate": hover,
        "texttemplate": "%{label}",
        "textfont": {"size": 11},
        "insidetextfont": {"color": "black"},
        "pathbar": {"visible": True, "side": "top", "thickness": 22},
        "maxdepth": -1,
    }


def _button(label: str, values: list[float], colors: list[float] | None) -> dict:
    change: dict = {"values": [values]}
    if colors is not None:
        change["marker.colors"] = [colors]
    return {"label": label, "method": "restyle", "args": [change]}


def _layout(trace: dict, depth: int, buttons: list[dict]) -> dict:
    height = min(1400, max(360, 26 * depth + 120))
    return {
        "data": [trace],
        "layout": {
            "height": height,
            "margin": {"l": 10, "r": 10, "t": 70, "b": 10},
            "updatemenus": [
                {
                    "type": "buttons",
                    "direction": "right",
                    "buttons": buttons,
                    "x": 0,
                    "xanchor": "left",
                    "y": 1.0,
                    "yanchor": "bottom",
                    "pad": {"b": 34},
                    "showactive": True,
                }
            ],
        },
    }
