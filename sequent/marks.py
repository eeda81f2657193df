"""Manual status changes (``sequent mark``): recorded as an event of a new attempt, run nothing.

Mutates the store: ``record_mark`` appends one attempt (mode ``mark``, started and ended at
once) holding one event, the step instance's new status with ``events.marked_by`` (the user)
and ``events.reason``, and sets the run's result to what the latest statuses, the mark
included, say (``result_after_mark``), so ``sequent status`` and ``runs`` follow the mark.
A later recover reads statuses attempt by attempt, so it starts from the mark: a step marked
``success`` is skipped, one marked ``failure`` runs again. Nothing earlier is changed or removed.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from .compiler import NodeKey, requirements
from .errors import SelectionError
from .status import StepStatus

#: ``attempts.mode`` of an attempt that records a manual mark.
MARK_MODE = "mark"
#: The statuses an operator may record by hand.
MARKABLE = (StepStatus.success, StepStatus.failure)


def parse_node(text: str) -> NodeKey:
    """``STEP@SEQUENCE`` (``C2@1``, ``s1_s11@1.2``) as a node key; ``SelectionError`` if not."""
    path, sign, sequence = text.rpartition("@")
    if not sign or not path or not sequence:
        raise SelectionError(
            f"{text!r} is not STEP@SEQUENCE; name the step instance as path@sequence, for "
            f"example C2@1 or s1_s11@1.2 (`sequent show RUN` lists them)"
        )
    return NodeKey(path, sequence)


def check_markable(store: Any, run_id: str, key: NodeKey) -> dict[str, Any]:
    """The latest row of ``key`` in run ``run_id``; ``SelectionError`` unless it can be marked."""
    rows = {(row["path"], row["sequence"]): row for row in store.nodes(run_id)}
    row: dict[str, Any] | None = rows.get((key.path, key.sequence))
    if row is None:
        known = [f"{path}@{sequence}" for path, sequence in rows][:12]
        raise SelectionError(
            f"run {run_id} has no step instance {key.path}@{key.sequence}; mark one of "
            f"{', '.join(known) or 'its step instances'} (`sequent show {run_id}` lists them)"
        )
    if row.get("kind") == "container":
        raise SelectionError(
            f"{key.path}@{key.sequence} is a container, whose status follows from its steps; "
            f"mark the steps inside it instead"
        )
    return row


def record_mark(
    store: Any, run_id: str, key: NodeKey, status: StepStatus, reason: str, user: str | None = None
) -> int:
    """Record ``status`` for ``key`` by hand as a new attempt of run ``run_id``; its number.

    Raises ``SelectionError`` for a status other than success or failure.
    """
    if status not in MARKABLE:
        raise SelectionError(
            f"a step can be marked success or failure, not {status.value!r}; choose one of those"
        )
    who = user or _user()
    now = time.time()
    after = result_after_mark(store, run_id, key, status)

    def write(conn: sqlite3.Connection) -> int:
        last = conn.execute(
            "SELECT MAX(attempt) FROM attempts WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        attempt = 0 if last is None else last + 1
        before = conn.execute("SELECT result FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        # an unfinished (abandoned) run stays unfinished: a mark does not end it
        result = None if before[0] is None or after is None else int(after)
        conn.execute(
            "INSERT INTO attempts (run_id, attempt, mode, started, ended, result, executor, "
            "host, pid) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)",
            (run_id, attempt, MARK_MODE, now, now, result, socket.gethostname(), os.getpid()),
        )
        conn.execute("UPDATE runs SET result = ? WHERE run_id = ?", (result, run_id))
        conn.execute(
            "INSERT INTO events (run_id, attempt, seq, path, sequence, kind, status, time, "
            "retry, replayed, started, ended, marked_by, reason) "
            "VALUES (?, ?, 1, ?, ?, 'step', ?, ?, 0, 0, ?, ?, ?, ?)",
            (run_id, attempt, key.path, key.sequence, status.value, now, now, now, who, reason),
        )
        return int(attempt)

    return int(store._write(write))


def handled_paths(structure: Mapping[str, Any]) -> frozenset[str]:
    """Paths of the steps whose failure some sibling waits for (``failure`` or ``complete``).

    ``structure`` is a recorded structure (``Store.structure``).
    """
    found: set[str] = set()
    for step in structure.get("steps", ()):
        for path, status, _ in requirements.data_edges(step.get("requires")):
            if status in ("failure", "complete"):
                found.add(path)
    return frozenset(found)


def result_after_mark(store: Any, run_id: str, key: NodeKey, status: StepStatus) -> bool | None:
    """The run's result once ``key`` is marked ``status``: what its latest statuses say.

    False when a step instance that runs code is, mark included, an unhandled failure (no
    sibling requires its failure or completion), interrupted, or unfinished (ready, active, or
    known to the recorded structure with no status yet); else True. None when the run holds
    no such instance (nothing to judge). Reads only.
    """
    handled = handled_paths(store.structure(run_id))
    latest = {
        (row["path"], row["sequence"]): row["status"]
        for row in store.nodes(run_id, unrecorded=True)
        if row.get("kind") != "container"
    }
    if (key.path, key.sequence) not in latest:
        return None
    latest[(key.path, key.sequence)] = status.value
    for (path, _), value in latest.items():
        if value == "failure" and path not in handled:
            return False
        if value not in ("success", "failure", "skipped"):
            return False
    return True


def latest_marks(store: Any, run_id: str) -> dict[NodeKey, dict[str, Any]]:
    """The nodes of run ``run_id`` whose latest event is a manual mark: status, who, why, when."""

    def read(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute(
            "SELECT e.path, e.sequence, e.status, e.marked_by, e.reason, e.time, e.attempt "
            "FROM events AS e WHERE e.run_id = ? AND e.marked_by IS NOT NULL AND e.attempt = "
            "(SELECT MAX(attempt) FROM events AS l WHERE l.run_id = e.run_id "
            "AND l.path = e.path AND l.sequence = e.sequence)",
            (run_id,),
        ).fetchall()

    if getattr(store, "_conn", None) is None:
        return {}
    return {
        NodeKey(path, sequence): {
            "status": status,
            "marked_by": who,
            "reason": reason,
            "time": at,
            "attempt": attempt,
        }
        for path, sequence, status, who, reason, at, attempt in store._read(read)
    }


def describe_mark(mark: dict[str, Any]) -> str:
    """``marked success by alice: fixed by hand`` for one of ``latest_marks``' values."""
    text = f"marked {mark['status']} by {mark['marked_by']}"
    return f"{text}: {mark['reason']}" if mark.get("reason") else text


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (no passwd entry, no LOGNAME)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


__all__ = [
    "MARKABLE",
    "MARK_MODE",
    "check_markable",
    "describe_mark",
    "handled_paths",
    "latest_marks",
    "parse_node",
    "record_mark",
    "result_after_mark",
]
