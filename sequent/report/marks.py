"""How a step instance's outcome is marked: one vocabulary for ``sequent show`` and the report.

A recorded status says what happened; a mark says what it means for the run:

    failure  -> unhandled  (no sibling requires its failure or completion: it failed the run)
             -> handled    (a sibling requires ``failure`` or ``complete`` of it: the flow goes on)
    success  -> success    (it ran and succeeded in this attempt)
             -> rerun      (it failed or was interrupted in an earlier attempt, then succeeded)
             -> recovered  (skipped by a recover because an earlier attempt succeeded)
    any      -> marked     (its latest status was recorded by hand, ``sequent mark``)
    skipped, interrupted, active, ready: as recorded

Reads only; nothing here touches the store except ``read_marks``, which reads it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

from ..marks import handled_paths


class Mark(enum.Enum):
    """What a step instance's latest status means for its run, with its symbol and words."""

    unhandled = "unhandled"
    handled = "handled"
    interrupted = "interrupted"
    active = "active"
    ready = "ready"
    marked = "marked"
    skipped = "skipped"
    rerun = "rerun"
    recovered = "recovered"
    success = "success"

    @property
    def symbol(self) -> str:
        """One character that tells the mark apart in a table or a graph node."""
        return _SYMBOLS[self]

    @property
    def label(self) -> str:
        """The mark in words (``failure (unhandled)``)."""
        return _LABELS[self]

    @property
    def is_problem(self) -> bool:
        """True for the marks a reader of a run must look at first."""
        return self in PROBLEMS


_SYMBOLS = {
    Mark.unhandled: "\u2716",  # heavy multiplication x
    Mark.handled: "\u2717",  # ballot x
    Mark.interrupted: "\u2016",  # double vertical line
    Mark.active: "\u25b6",
    Mark.ready: "\u2026",
    Mark.marked: "\u270e",  # pencil
    Mark.skipped: "\u2298",  # circled slash
    Mark.rerun: "\u21ba",  # anticlockwise arrow: done again
    Mark.recovered: "\u21b7",  # clockwise arrow: carried over
    Mark.success: "\u2714",
}

_LABELS = {
    Mark.unhandled: "failure (unhandled)",
    Mark.handled: "failure (handled)",
    Mark.interrupted: "interrupted",
    Mark.active: "active",
    Mark.ready: "ready",
    Mark.marked: "marked by hand",
    Mark.skipped: "skipped",
    Mark.rerun: "success (rerun: it failed in an earlier attempt)",
    Mark.recovered: "success (recovered)",
    Mark.success: "success",
}

#: Marks listed first in a report's header, in this order.
PROBLEMS = (Mark.unhandled, Mark.handled, Mark.interrupted)

#: Every mark from the most to the least telling: a step of many instances shows the first.
BY_WEIGHT = tuple(Mark)


def mark_of(
    node: Mapping[str, Any],
    handled: frozenset[str] | set[str],
    failed_before: bool = False,
) -> Mark:
    """The mark of one node row (``Store.nodes``), given the handled paths of its flow.

    ``failed_before`` says whether an earlier attempt ended this instance in failure or
    interruption; a ``marked_by`` key in the row says it was marked by hand.
    """
    status = node["status"]
    if node.get("marked_by"):
        return Mark.marked
    if status == "failure":
        return Mark.handled if node["path"] in handled else Mark.unhandled
    if status == "success":
        if node.get("replayed"):
            return Mark.recovered
        return Mark.rerun if failed_before else Mark.success
    return Mark(status) if status in Mark._value2member_map_ else Mark.ready


def marks_of_history(
    history: Mapping[tuple[str, str], Mapping[int, Mapping[str, Any]]],
    structure: Mapping[str, Any],
) -> dict[tuple[str, str], Mark]:
    """The mark of every instance's latest row; ``history`` maps (path, sequence) to its rows
    by attempt number."""
    handled = handled_paths(structure)
    marks = {}
    for key, rows in history.items():
        numbers = sorted(rows)
        failed_before = any(rows[n]["status"] in ("failure", "interrupted") for n in numbers[:-1])
        marks[key] = mark_of(rows[numbers[-1]], handled, failed_before)
    return marks


def read_history(
    store: Any, run_id: str, events: Iterable[Mapping[str, Any]] | None = None
) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """Every node row of run ``run_id`` by (path, sequence) then attempt, with manual marks.

    A row whose latest event was recorded by hand gets that event's ``marked_by`` and
    ``reason`` (``events``: the run's events, when the caller has read them already).
    Raises ``RecoveryError`` for an unknown run.
    """
    history: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for attempt in store.attempts(run_id):
        number = attempt["attempt"]
        for row in store.nodes(run_id, attempt=number):
            history.setdefault((row["path"], row["sequence"]), {})[number] = row
    last: dict[tuple[int, str, str], Mapping[str, Any]] = {}
    for event in store.events(run_id) if events is None else events:
        last[(event["attempt"], event["path"], event["sequence"])] = event
    for (number, path, sequence), event in last.items():
        row = history.get((path, sequence), {}).get(number)
        if row is not None and event.get("marked_by"):
            row["marked_by"] = event["marked_by"]
            row["reason"] = event.get("reason")
    return history


def read_marks(store: Any, run_id: str) -> dict[tuple[str, str], Mark]:
    """The mark of every step instance of run ``run_id`` (as ``sequent show`` prints them)."""
    return marks_of_history(read_history(store, run_id), store.structure(run_id))


def marked_nodes(store: Any, run_id: str) -> list[tuple[dict[str, Any], Mark]]:
    """Each step instance's latest row (``Store.nodes``, with ``marked_by``/``reason`` where it
    was marked by hand) and its mark, in definition order."""
    history = read_history(store, run_id)
    marks = marks_of_history(history, store.structure(run_id))
    found = []
    for node in store.nodes(run_id):
        key = (node["path"], node["sequence"])
        found.append((history[key][node["attempt"]], marks[key]))
    return found


def describe(mark: Mark, node: Mapping[str, Any]) -> str:
    """A node's status as a terminal table shows it: ``✖ failure (unhandled)``."""
    if mark is Mark.marked:
        who = node.get("marked_by") or "?"
        reason = f": {node['reason']}" if node.get("reason") else ""
        return f"{mark.symbol} {node['status']} (marked by {who}{reason})"
    return f"{mark.symbol} {mark.label}"
