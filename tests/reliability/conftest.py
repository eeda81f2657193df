"""Counters for the reliability suites, printed in pytest's terminal summary.

Tests call ``tally(kind, n)``; the summary shows how many flows were generated, faults injected
and bad inputs tried in this session, so a reviewer sees the evidence's size, not just "passed".
"""

from __future__ import annotations

import collections

COUNTS: collections.Counter[str] = collections.Counter()
FIGURES: list[str] = []


def tally(kind: str, amount: int = 1) -> None:
    """Add ``amount`` to the counter ``kind`` shown at the end of the session."""
    COUNTS[kind] += amount


def note(figure: str) -> None:
    """Show ``figure`` (a measurement) in the summary at the end of the session."""
    FIGURES.append(figure)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if COUNTS or FIGURES:
        terminalreporter.write_sep("-", "reliability evidence")
        for kind, amount in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{kind}: {amount}")
        for figure in FIGURES:
            terminalreporter.write_line(figure)
