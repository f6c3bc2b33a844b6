"""The HTML pages: their numbers, that they are self-contained and small, and that they really
draw, in headless Chromium with no network, without a console error.

The browser tests need Debian's `chromium`. Where it is missing they skip and say why, except
when SOCKOPT_TRACE_REQUIRE_KERNEL=1 (set by CI) or SOCKOPT_TRACE_REQUIRE_BROWSER=1, where a
skip would hide that the pages were never drawn, so they fail instead.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pyarrow.compute as pc
import pytest
from PIL import Image

from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.htmlreport import (
    INSTALL_HINT,
    choose,
    diff_html,
    flame,
    plotly_js,
    report_html,
)
from sockopt_trace.analyzer.htmlreport.data import PERCENTILES, gather
from sockopt_trace.analyzer.htmlreport.figures import cdf_xy
from sockopt_trace.analyzer.load import load
from sockopt_trace.errors import UserError
from tests.browser import find_chromium, load_page
from tests.synth import read_rows, write_recording

ROOT = Path(__file__).resolve().parents[2]
N = 20_000
REQUIRED = "1" in (
    os.environ.get("SOCKOPT_TRACE_REQUIRE_KERNEL"),
    os.environ.get("SOCKOPT_TRACE_REQUIRE_BROWSER"),
)


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("html")
    base, new = root / "base", root / "new"
    write_recording(base, N, files=2, seed=21, stacks="full")
    write_recording(new, N, files=2, seed=22, stacks="full", stack_sample_period=2)
    return base, new


@pytest.fixture(scope="module")
def pages(recs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pages")
    report, diff = out / "report.html", out / "diff.html"
    report.write_text(report_html([recs[0]]))
    diff.write_text(diff_html([recs[0]], [recs[1]]))
    return {"report": report, "diff": diff}


def figures_of(page: Path) -> dict[str, dict]:
    text = page.read_text()
    m = re.search(r'<script type="application/json" id="figure-data">(.*?)</script>', text, re.S)
    assert m
    return json.loads(m.group(1))


# -- numbers -----------------------------------------------------------------------------------


def test_aggregates_account_for_every_call(recs: tuple[Path, Path]) -> None:
    rows = read_rows(sorted(recs[0].glob("*.parquet")))
    side = gather("base", load([recs[0]]))
    assert side.overall.calls == sum(side.overall.bins.values()) == N
    assert sum(side.timeline.calls) == N
    assert sum(side.timeline.errors) == pc.sum(pc.less(rows["ret"], 0)).as_py()
    assert sum(c for _, c, _ in side.stacks) == N
    assert sum(t for _, _, t in side.stacks) == pc.sum(rows["latency_ns"]).as_py()
    assert [g.calls for g in side.groups] == sorted((g.calls for g in side.groups), reverse=True)
    latency = {tuple(map(str, r[:3])): r for r in side.latency.rows}
    for g in side.groups:
        assert sum(g.bins.values()) == g.calls
        row = latency[g.label]  # the page's percentiles are the latency report's
        assert g.percentiles[0.5] == row[5] and g.percentiles[0.99] == row[7]
    latencies = np.array(rows["latency_ns"].to_numpy(), dtype=float)
    for p in PERCENTILES:
        assert side.overall.percentiles[p] == pytest.approx(np.quantile(latencies, p))


def test_the_cdf_passes_through_the_percentiles_it_marks(recs: tuple[Path, Path]) -> None:
    side = gather("base", load([recs[0]]))
    for d in [side.overall, *side.groups]:
        xs, ys = cdf_xy(d)
        for p, v in d.percentiles.items():
            # Where the marker is drawn (v, 100 p), the curve (straight between its points on
            # the log axis) is within a point of it: less than 5 pixels on the chart.
            i = min(max(1, bisect.bisect_left(xs, v)), len(xs) - 1)
            lo, hi = math.log10(xs[i - 1]), math.log10(xs[i])
            t = 0.0 if hi == lo else (math.log10(v) - lo) / (hi - lo)
            y = ys[i - 1] + min(max(t, 0.0), 1.0) * (ys[i] - ys[i - 1])
            assert abs(y - 100 * p) < 1.0, (d.label, p, v, y)


def test_flame_tree_sums_every_column_up_to_the_root() -> None:
    stacks = [("a;b;c", (3, 30)), ("a;b;d", (1, 100)), ("a;e", (2, 5)), ("f", (4, 1))]
    tree = flame.build_tree(stacks, 2, "all")
    nodes = dict(zip(tree.paths, zip(*tree.values, strict=True), strict=True))
    assert nodes["all"] == (10, 136)
    assert nodes["all;a"] == (6, 135) and nodes["all;a;b"] == (4, 130)
    assert nodes["all;a;b;d"] == (1, 100)
    assert {tree.paths[i] for i in tree.leaves} == {"all;a;b;c", "all;a;b;d", "all;a;e", "all;f"}
    assert tree.depth == 4
    for path, parent in zip(tree.paths[1:], tree.parents[1:], strict=True):
        assert path.rpartition(";")[0] == tree.paths[parent]


def test_flame_tree_keeps_the_widest_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flame, "MAX_NODES", 5)
    stacks = [(f"main;f{i}", (100 - i, 1)) for i in range(20)]
    tree = flame.build_tree(stacks, 2, "all")
    assert tree.paths == ["all", "all;main", "all;main;f0", "all;main;f1", "all;main;f2"]
    assert tree.values[0][0] == sum(100 - i for i in range(20))  # the root still counts all


def test_every_figure_is_valid_plotly(pages: dict[str, Path]) -> None:
    for page in pages.values():
        figures = figures_of(page)
        assert figures
        for name, fig in figures.items():
            go.Figure(fig)  # raises on any property plotly does not know
            assert fig["data"], name


def test_pages_are_self_contained_and_small(pages: dict[str, Path], tmp_path: Path) -> None:
    for page in pages.values():
        text = page.read_text()
        # No resource is loaded from anywhere: every script is inline, no stylesheet links.
        assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", text)
        assert text.count("<script") == 3
    # The size does not grow with the events: 20x more calls, about the same page.
    big = tmp_path / "big"
    write_recording(big, 20 * N, files=2, seed=23, stacks="full")
    small, large = len(pages["report"].read_bytes()), len(report_html([big]).encode())
    assert abs(large - small) < 200_000, (small, large)  # more tail bins filled, no more
    assert large < 6_000_000


def test_report_sections_and_tables(pages: dict[str, Path]) -> None:
    text = pages["report"].read_text()
    for section in ("summary", "latency", "timeline", "flame", "errors", "processes"):
        assert f'<section id="{section}">' in text
    assert "full stacks of every call" in text
    assert "ENOPROTOOPT" in text and "TCP_INFO" in text
    assert set(figures_of(pages["report"])) == {"latency", "timeline", "flame", "errors"}


def test_diff_page_has_the_diff_table_and_both_sides(pages: dict[str, Path]) -> None:
    text = pages["diff"].read_text()
    assert '<table class="sortable diff">' in text
    assert "groups in both recordings changed significantly" in text
    assert "1 call in 2 sampled" in text  # the new side's stack sampling is said
    figures = figures_of(pages["diff"])
    assert {"timeline", "flame", "latency-0"} <= set(figures)
    flame = figures["flame"]["data"][0]
    assert len(figures["flame"]["layout"]["updatemenus"][0]["buttons"]) == 4
    assert all(-1 <= c <= 1 for c in flame["marker"]["colors"])


def test_an_empty_selection_still_makes_a_page(recs: tuple[Path, Path]) -> None:
    text = report_html([recs[0]], filters=Filters(where="comm = 'nobody'"))
    assert "--where comm = &#x27;nobody&#x27;" in text
    assert "No calls." in text


def test_without_plotly_one_line_says_how_to_install(
    recs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly.offline", None)
    with pytest.raises(UserError, match=re.escape(INSTALL_HINT)):
        report_html([recs[0]])


def test_cli_writes_the_page_and_refuses_three_recordings(
    recs: tuple[Path, Path], tmp_path: Path
) -> None:
    def run(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sockopt_trace", "html", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    out = tmp_path / "r.html"
    done = run(recs[0], "-o", out, "--by", "comm", "--top", "3")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stderr and out.stat().st_size > 1_000_000
    done = run(recs[0], recs[1], recs[0], "-o", out)
    assert done.returncode == 2 and "give one recording" in done.stderr


# -- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        reason = "no Chromium (apt-get install chromium)"
        if REQUIRED:
            pytest.fail(f"the browser tests are required here but cannot run: {reason}")
        pytest.skip(f"the browser tests need Chromium: {reason}")
    return path


def ink(png: bytes, box: dict[str, float]) -> float:
    """Share of the pixels in `box` that are not (near) white."""
    image = Image.open(io.BytesIO(png)).convert("L")
    x, y = int(box["x"]), int(box["y"])
    region = image.crop((x, y, x + int(box["width"]), y + int(box["height"])))
    histogram = region.histogram()
    return 1 - sum(histogram[236:]) / max(1, sum(histogram))


# Clicks the flame graph's "time" button and reports what the chart then shows.
SWITCH_TO_TIME = """
new Promise(resolve => {
  const gd = document.getElementById('fig-flame');
  const before = gd.data[0].values[0];
  const button = gd.querySelectorAll('.updatemenu-button')[1];
  button.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  setTimeout(() => resolve({before: before, after: gd.data[0].values[0]}), 500);
})
"""


@pytest.mark.parametrize("name", ["report", "diff"])
def test_page_draws_in_chromium_without_errors_or_network(
    chromium: str, pages: dict[str, Path], recs: tuple[Path, Path], name: str, tmp_path: Path
) -> None:
    page = pages[name]
    load = load_page(page, binary=chromium, probe=SWITCH_TO_TIME)
    (tmp_path / f"{name}.png").write_bytes(load.screenshot)
    assert load.exceptions == [] and load.console_errors == []
    assert load.requests == [page.resolve().as_uri()], "the page loaded something else"
    assert set(load.boxes) == {f"fig-{f}" for f in figures_of(page)}
    blank = {"x": 0, "y": load.height - 8, "width": load.width, "height": 8}
    for fig, box in load.boxes.items():
        assert box["rendered"] and box["svgs"] >= 1, fig
        assert box["height"] >= 180 and box["width"] >= 1000, (fig, box)
        assert ink(load.screenshot, box) > 0.04, f"{fig} looks blank in the screenshot"
    assert ink(load.screenshot, blank) < 0.01  # the measure itself sees white as white
    # The flame graph switches from call counts to time spent.
    rows = read_rows(sorted(recs[0].glob("*.parquet")))
    probe = load.probe
    if name == "report":
        assert probe["before"] == len(rows)
        assert probe["after"] == pc.sum(rows["latency_ns"]).as_py()
    else:
        assert probe["before"] != probe["after"]


def test_the_browser_check_sees_errors_and_requests(chromium: str, tmp_path: Path) -> None:
    """The harness itself: a page that throws, logs an error and fetches from the network."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>bad</p>"
        '<img src="http://sockopt-trace.invalid/x.png">'
        "<script>console.error('logged'); null.boom();</script></body></html>"
    )
    load = load_page(page, binary=chromium)
    assert any("boom" in e for e in load.exceptions)
    assert any("logged" in e for e in load.console_errors)
    assert "http://sockopt-trace.invalid/x.png" in load.requests


def test_plotly_js_from_a_file_beside_the_page_or_the_cdn(
    chromium: str, recs: tuple[Path, Path], tmp_path: Path
) -> None:
    """--plotly-js DIR: one copy of plotly.js beside small pages, which draw offline from it;
    cdn: a small page that names the CDN's file and the hash the browser checks it against."""
    page = tmp_path / "pages" / "report.html"
    page.parent.mkdir()
    plotly = choose(str(tmp_path / "js"), page)
    page.write_text(report_html([recs[0]], plotly=plotly))
    source, version = plotly_js()
    beside = tmp_path / "js" / f"plotly-{version}.min.js"
    assert beside.read_text() == source and plotly.src == f"../js/{beside.name}"
    assert len(page.read_bytes()) < 500_000 and f'src="../js/{beside.name}"' in page.read_text()
    load = load_page(page, binary=chromium)
    assert load.exceptions == [] and load.console_errors == []
    assert load.requests == [page.resolve().as_uri(), beside.resolve().as_uri()]
    assert load.boxes and all(b["rendered"] and b["svgs"] >= 1 for b in load.boxes.values())
    cdn = choose("cdn", page)
    text = report_html([recs[0]], plotly=cdn)
    digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
    assert f'src="https://cdn.plot.ly/plotly-{version}.min.js"' in text
    assert f'integrity="sha256-{digest}"' in text and len(text) < 500_000
    with pytest.raises(UserError, match="--plotly-js"):
        choose(str(page), page)  # a file, not a directory
