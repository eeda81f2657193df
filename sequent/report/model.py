"""A recorded run read once from the store into what the report draws (reads only).

store ──> RunView: run, attempts, structure, steps by path,
          history   (path, sequence) -> {attempt: node row}
          tries     (attempt, path, sequence) -> [Try]   every try's own start and end
          marks     (path, sequence) -> Mark             (see ``marks``)
          problems  unhandled, then handled failures, then interrupted instances
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..logs import step_log_path
from .marks import PROBLEMS, Mark, marks_of_history, read_history


@attrs.frozen
class Try:
    """One try of a step instance in one attempt, as its own events recorded it."""

    retry: int
    start: float | None
    end: float | None
    status: str
    error: str | None


@attrs.frozen
class Problem:
    """A step instance the header lists: its mark, error's first line and log."""

    key: tuple[str, str]
    mark: Mark
    attempt: int
    error: str
    log: str | None

    @property
    def name(self) -> str:
        """``path/sequence``."""
        return f"{self.key[0]}/{self.key[1]}"


@attrs.frozen
class RunView:
    """Everything the report shows about one run."""

    run: Mapping[str, Any]
    attempts: list[dict[str, Any]]
    structure: Mapping[str, Any]
    steps: Mapping[str, Mapping[str, Any]]
    latest: list[dict[str, Any]]
    history: Mapping[tuple[str, str], Mapping[int, Mapping[str, Any]]]
    tries: Mapping[tuple[int, str, str], list[Try]]
    marks: Mapping[tuple[str, str], Mark]
    problems: list[Problem]
    rerun: list[tuple[str, str]]
    events: Mapping[int, list[Mapping[str, Any]]]  # by attempt

    def nodes(self, attempt: int) -> list[Mapping[str, Any]]:
        """The node rows of one attempt, in the latest rows' (definition) order."""
        rows = []
        for node in self.latest:
            row = self.history[(node["path"], node["sequence"])].get(attempt)
            if row is not None:
                rows.append(row)
        return rows


def load_run(store: Any, run_id: str) -> RunView:
    """Read run ``run_id``; raises ``RecoveryError`` when the store holds no such run."""
    run = store.run(run_id)
    attempts = store.attempts(run_id)
    structure = store.structure(run_id)
    events = store.events(run_id)
    history = read_history(store, run_id, events)
    steps = {step["path"]: step for step in structure.get("steps", ())}
    latest = [rows[max(rows)] for rows in history.values()]  # with manual marks
    latest.sort(key=lambda row: _rank(row, steps))
    marks = marks_of_history(history, structure)
    tries = tries_of(events)
    logdirs = {a["attempt"]: a.get("logdir") for a in attempts}
    problems = []
    for node in latest:
        key = (node["path"], node["sequence"])
        if node.get("kind") == "container" or not marks[key].is_problem:
            continue
        error = (node.get("error") or "").strip().splitlines()
        log = _log_of(logdirs.get(node["attempt"]), key)
        problems.append(Problem(key, marks[key], node["attempt"], error[0] if error else "", log))
    problems.sort(key=lambda p: PROBLEMS.index(p.mark))
    rerun = [
        (n["path"], n["sequence"])
        for n in latest
        if n.get("kind") != "container" and marks[(n["path"], n["sequence"])] is Mark.rerun
    ]
    return RunView(
        run,
        attempts,
        structure,
        steps,
        latest,
        history,
        tries,
        marks,
        problems,
        rerun,
        {number: [e for e in events if e["attempt"] == number] for number in logdirs},
    )


def _rank(row: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...]:
    """Definition order, then sequence order (as ``Store.nodes`` orders its rows)."""
    step = steps.get(row["path"])
    parts = tuple(int(p) if p.isdigit() else 0 for p in row["sequence"].split("."))
    return (step["order"] if step is not None else 1 << 30, parts, row["path"])


def tries_of(events: Iterable[Mapping[str, Any]]) -> dict[tuple[int, str, str], list[Try]]:
    """Every try of every instance by (attempt, path, sequence), from its recorded events.

    A try is an event carrying an outcome (its own ``started``/``ended``); a try cut short
    (interrupted) ends at the event that recorded the interruption.
    """
    found: dict[tuple[int, str, str], list[Try]] = {}
    activated: dict[tuple[int, str, str], float] = {}
    for event in events:
        key = (event["attempt"], event["path"], event["sequence"])
        status = event["status"]
        if status == "active":
            activated[key] = event["time"]
        elif event.get("started") is not None:
            found.setdefault(key, []).append(
                Try(
                    event.get("retry") or 0,
                    event["started"],
                    event.get("ended") or event["time"],
                    status,
                    event.get("error"),
                )
            )
        elif status == "interrupted" and key in activated and event.get("kind") != "container":
            before = found.get(key, [])
            begin = before[-1].end if before else activated[key]
            found.setdefault(key, []).append(
                Try(event.get("retry") or 0, begin, event["time"], status, event.get("error"))
            )
    return found


def _log_of(logdir: str | None, key: tuple[str, str]) -> str | None:
    """The step log of ``key`` in an attempt's log folder, else that folder's run log."""
    if not logdir:
        return None
    folder = Path(logdir)
    for candidate in (step_log_path(folder, *key), folder / "run.log"):
        if os.path.isfile(candidate):  # False, not PermissionError, for another user's logs
            return candidate.resolve().as_uri()
    return None
