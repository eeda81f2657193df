"""Make the screenshots of docs/report.md again: real runs, their reports, headless Chromium.

    python docs/screenshots.py            # writes docs/report-*.png

It runs the flows of ``tests/report_runs.py`` (the seed's recovery example, a run with retries,
a run stopped by Ctrl-C, about 10,000 instances with three failures) in a temporary folder,
writes each run's report and photographs it at 1400 pixels wide.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import report_runs as runs  # noqa: E402

from sequent.plan import read_store  # noqa: E402
from sequent.report import build_report  # noqa: E402

#: (file name, which run, address fragment, window size)
SHOTS = (
    ("report-header.png", "big", "", "1400,1900"),
    ("report-filter.png", "big", "#filter=failure", "1400,700"),
    ("report-graph.png", "big-graph", "", "1400,1100"),
    ("report-seed.png", "seed", "", "1400,1500"),
    ("report-retries.png", "retries", "", "1400,900"),
    ("report-interrupted.png", "interrupted", "", "1400,900"),
)

GRAPH_ONLY = "body>header,nav.tools,p.legend,section.attempt,h2,.gridbox{display:none}"

MAKERS = {
    "big": runs.big,
    "seed": runs.seed_recovery,
    "retries": runs.with_retries,
    "interrupted": runs.interrupted,
}


def main() -> None:
    """Write every screenshot of ``SHOTS`` into docs/."""
    program, why = runs.find_chromium()
    if program is None:
        raise SystemExit(f"cannot make screenshots: {why}")
    with tempfile.TemporaryDirectory(prefix="sequent-shots-") as temp:
        folder = Path(temp)
        pages = {}
        for name, make in MAKERS.items():
            (folder / name).mkdir()
            store, run_id = make(folder / name)
            with read_store(store) as opened:
                page = folder / f"{name}.html"
                page.write_text(build_report(opened, run_id), encoding="utf-8")
            pages[name] = page
        # the graph alone: the same page with everything but the graph hidden
        text = pages["big"].read_text(encoding="utf-8")
        pages["big-graph"] = folder / "big-graph.html"
        pages["big-graph"].write_text(text.replace("</style>", GRAPH_ONLY + "</style>", 1))
        for file_name, which, fragment, size in SHOTS:
            target = HERE / file_name
            runs.screenshot(program, folder / "profile", pages[which], target, size, fragment)
            print(f"wrote {target}")


if __name__ == "__main__":
    main()
