"""Step bodies for the SPEC scenarios: each appends ``name start|end time`` to a trace file, so
the order and overlap of step bodies can be read back whatever process ran them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def mark(trace: str, name: str, pause: float = 0.0) -> str:
    """Record the start and end of a step body in ``trace`` (pausing ``pause`` s between)."""
    with open(trace, "a") as out:
        out.write(f"{name} start {time.time():.4f}\n")
    if pause:
        time.sleep(pause)
    with open(trace, "a") as out:
        out.write(f"{name} end {time.time():.4f}\n")
    return name


def fail(trace: str, name: str) -> None:
    """Record the step, then fail it."""
    mark(trace, name)
    raise RuntimeError(f"{name} failed on purpose")


def recovery_gate(flow: Any, trace: str, succeed_at: int) -> int:
    """Record which recovery this is (read through the ``Sequent`` in kwargs); fail before
    recovery ``succeed_at``."""
    number = flow.get_step_recovery()
    mark(trace, f"{flow.get_step_name()}@{flow.get_step_sequence()}#{number}")
    if number < succeed_at:
        raise RuntimeError(f"not yet: recovery {number} of {succeed_at}")
    return number


def read(trace: Path) -> list[tuple[str, str, float]]:
    """The trace as (name, start|end, time) rows in the order written."""
    if not trace.exists():
        return []
    rows = []
    for line in trace.read_text().splitlines():
        name, kind, at = line.split()
        rows.append((name, kind, float(at)))
    return rows


def starts(trace: Path) -> list[str]:
    """The names of the step bodies in the order they started."""
    return [name for name, kind, _ in read(trace) if kind == "start"]


def when(trace: Path, name: str, kind: str) -> float:
    """The time step ``name`` started or ended (its first such row)."""
    return next(at for n, k, at in read(trace) if n == name and k == kind)
