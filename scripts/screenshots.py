"""Make README's screenshots of the HTML pages (docs/html-report.png, docs/html-diff.png): the
pages of README's `html` commands on the shipped samples, drawn in headless Chromium
(tests/browser.py) at 1200 pixels wide. Run after changing what the pages show:

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sockopt_trace.analyzer.htmlreport import diff_html, report_html  # noqa: E402
from tests.browser import load_page  # noqa: E402

SAMPLES = Path("sample_traces")  # as README names them (run from the repository's root)
PAGES = {
    "html-report.png": lambda: report_html([SAMPLES / "haproxy-nginx-unix"]),
    "html-diff.png": lambda: diff_html([SAMPLES / "nginx-before"], [SAMPLES / "nginx-after"]),
}


def main() -> None:
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in PAGES.items():
            page = Path(tmp) / name.replace(".png", ".html")
            page.write_text(make())
            load = load_page(page, width=1200)
            if load.exceptions or load.console_errors:
                raise SystemExit(f"{name}: the page has errors: {load.exceptions}")
            (ROOT / "docs" / name).write_bytes(load.screenshot)
            print(f"docs/{name}: {load.width}x{load.height}")


if __name__ == "__main__":
    main()
