"""How long the report of a 10,000-instance run takes to build, and to open in Chromium.

    python benchmarks/bench_report.py [--repeat N]

Targets (issue 17): building under 2 s, opening in Chromium under 3 s. Opening is measured two
ways, side by side with a blank page in the same run: the moment the page's script finished
(``performance.now()``, written into the page as ``data-ready-ms``), and the wall time of
``chromium --dump-dom`` for the report minus the same for a blank page (the browser's start).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "tests")]

import report_runs as runs  # noqa: E402

from sequent.plan import read_store  # noqa: E402
from sequent.report import build_report  # noqa: E402


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="bench-report-") as temp:
        folder = Path(temp)
        store, run_id = runs.big(folder)
        with read_store(store) as opened:
            instances = len(opened.nodes(run_id))
            builds = []
            for _ in range(repeat):
                began = time.perf_counter()
                html = build_report(opened, run_id)
                builds.append(time.perf_counter() - began)
        page = folder / "big.html"
        page.write_text(html, encoding="utf-8")
        blank = folder / "blank.html"
        blank.write_text("<!DOCTYPE html><p>blank</p>", encoding="utf-8")
        print(f"{instances:,} step instances; page {len(html) / 1e6:.1f} MB")
        print(
            f"build: median {statistics.median(builds):.2f} s, best {min(builds):.2f} s "
            f"(target 2 s)"
        )
        program, why = runs.find_chromium()
        if program is None:
            print(f"chromium: not measured ({why})")
            return
        ready, walls, bases = [], [], []
        for number in range(repeat):
            began = time.perf_counter()
            runs.dump_dom(program, folder / f"b{number}", blank)
            bases.append(time.perf_counter() - began)
            began = time.perf_counter()
            dom = runs.dump_dom(program, folder / f"p{number}", page)
            walls.append(time.perf_counter() - began)
            ready.append(int(re.search(r'data-ready-ms="(\d+)"', dom).group(1)))
        extra = [wall - base for wall, base in zip(walls, bases, strict=True)]
        print(
            f"open: script done at median {statistics.median(ready)} ms "
            f"(best {min(ready)} ms); dump-dom wall time beyond a blank page: median "
            f"{statistics.median(extra):.2f} s (best {min(extra):.2f} s) (target 3 s)"
        )


if __name__ == "__main__":
    main()
