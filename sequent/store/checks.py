"""Checks of what a reader meets in a store: tables, columns, row values, the structure JSON.

Reads only. A store can be damaged by a disk, a copy cut short, or a hand with an SQL shell;
every piece a reader uses is checked here, and a damaged one raises ``StoreError`` naming the
store, the run and the part (a table and column, an attempt, the structure), on one line,
before the command shows anything. Nothing is ever repaired or written.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from ..compiler.structure import decoded
from ..errors import StoreError
from ..status import StepStatus
from .schema import EVENT_COLUMNS, EXPANSION_COLUMNS

# What each column may hold, by kind: "text", "real" (a number), "int", "flag" (0 or 1),
# "status" (a StepStatus value), "sequence" (dotted numbers, as "1.2.1"); "?" after a kind
# allows NULL.
_KINDS: dict[str, dict[str, str]] = {
    "runs": {
        "run_id": "text", "flow_name": "text", "mode": "text", "started": "real",
        "ended": "real?", "result": "flag?", "executor": "text?", "host": "text?",
        "pid": "int?", "user": "text?", "python": "text?", "sequent_version": "text?",
        "structure": "text?",
    },
    "attempts": {
        "run_id": "text", "attempt": "int", "mode": "text", "started": "real", "ended": "real?",
        "result": "flag?", "executor": "text?", "host": "text?", "pid": "int?",
        "structure": "text?", "logdir": "text?", "heartbeat": "real?",
    },
    "events": {
        "run_id": "text", "attempt": "int", "seq": "int", "path": "text",
        "sequence": "sequence", "kind": "text", "status": "status", "time": "real",
        "retry": "int", "error": "text?", "replayed": "flag", "started": "real?",
        "ended": "real?", "pid": "int?", "host": "text?", "traceback": "text?",
        "value": "text?", "value_format": "text?", "worker": "text?", "marked_by": "text?",
        "reason": "text?",
    },
    "expansions": {
        "run_id": "text", "attempt": "int", "path": "text", "sequence": "sequence",
        "parent_path": "text", "parent_sequence": "text", "ordinal": "int", "item": "text?",
        "step_order": "int",
    },
    "leases": {
        "run_id": "text", "attempt": "int", "host": "text", "pid": "int", "user": "text?",
        "started": "real", "heartbeat": "real",
    },
}  # fmt: skip
# The view rows (nodes, latest_nodes) hold events' columns and these.
_KINDS["nodes"] = {
    **_KINDS["events"], "ready": "real?", "duration": "real?", "executor": "text?",
    "replayed": "flag?", "retry": "int?", "time": "real?",
}  # fmt: skip

#: Tables every store of the current schema holds, with the columns readers use.
TABLES: dict[str, tuple[str, ...]] = {
    "runs": tuple(_KINDS["runs"]),
    "attempts": tuple(_KINDS["attempts"]),
    "events": (*EVENT_COLUMNS, "worker", "marked_by", "reason"),
    "expansions": EXPANSION_COLUMNS,
    "leases": tuple(_KINDS["leases"]),
}
VIEWS = ("nodes", "latest_nodes")

_STATUSES = frozenset(status.value for status in StepStatus)
_SEQUENCE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def check_tables(conn: sqlite3.Connection, path: str) -> None:
    """Raise ``StoreError`` when a table or view of the schema, or a column, is missing."""
    present = {
        row[0]: row[1]
        for row in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
        )
    }
    for table, columns in TABLES.items():
        if present.get(table) != "table":
            raise _damaged(path, f"it has no {table!r} table")
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in columns if column not in have]
        if missing:
            raise _damaged(path, f"its {table!r} table lacks the columns {missing}")
    for view in VIEWS:
        if present.get(view) != "view":
            raise _damaged(path, f"it has no {view!r} view")


def check_rows(
    table: str, rows: Iterable[Mapping[str, Any]], path: str, run_id: str | None = None
) -> None:
    """Raise ``StoreError`` for the first value in ``rows`` (of ``table``) of the wrong kind."""
    kinds = _KINDS[table]
    for row in rows:
        for column, value in row.items():
            kind = kinds.get(column)
            if kind is None or _fits(kind, value):
                continue
            run = row.get("run_id", run_id)
            raise _damaged(
                path,
                f"run {run}'s {_part(table, row)} has {column} = {_shown(value)}, "
                f"{_expected(kind)}",
            )


def load_structure(text: str | None, path: str, run_id: str, part: str) -> dict[str, Any] | None:
    """The structure JSON ``text`` of run ``run_id`` (from ``part``), decoded and checked.

    Returns None for None, else the per-node view (``structure.decoded``) whatever the format
    it was written in. Raises ``StoreError`` when it is not JSON or not of the shape the
    store writes (see docs/store.md).
    """
    if text is None:
        return None
    where = f"run {run_id}'s structure ({part})"
    try:
        structure: dict[str, Any] = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _damaged(path, f"{where} is not valid JSON ({exc})") from exc
    problem = _structure_problem(structure)
    if problem:
        raise _damaged(path, f"{where} {problem}")
    return decoded(structure)


def _structure_problem(structure: Any) -> str | None:
    if not isinstance(structure, dict):
        return f"is a JSON {type(structure).__name__}, not an object"
    version = structure.get("format", 1)
    if version not in (1, 2, 3):
        return f"has format {_shown(version)}, which this version of sequent cannot read"
    steps, nodes = structure.get("steps"), structure.get("nodes")
    if not isinstance(steps, list):
        return "lacks its 'steps' list"
    if version < 3 and not isinstance(nodes, list):
        return "lacks its 'steps' or 'nodes' list"
    if version == 3 and nodes is not None:
        return "holds 'nodes', which format 3 does not record (its steps say how they expand)"
    problem = _steps_problem(steps, version)
    if problem or not isinstance(nodes, list):  # format 3: its steps are checked
        return problem
    for number, node in enumerate(nodes):
        if (
            not isinstance(node, list)
            or len(node) != 3
            or not isinstance(node[0], str)
            or not isinstance(node[1], str)
            or not _SEQUENCE.match(node[1])
            or not (node[2] is None or isinstance(node[2], str))
        ):
            return f"has node {number} that is not [path, sequence, item]: {_shown(node)}"
    return None


def _steps_problem(steps: list[Any], version: int) -> str | None:
    requiring: set[str] = set()
    for number, step in enumerate(steps):
        if not isinstance(step, dict):
            return f"has step {number} that is not an object"
        order = step.get("order", number if version == 3 else None)  # 3: its position
        if not isinstance(step.get("path"), str) or not _is_int(order):
            return f"has step {number} without a text 'path' and a whole 'order'"
        for key in ("parent", "kind", "func"):
            if step.get(key) is not None and not isinstance(step[key], str):
                return f"has step {step['path']!r} whose {key} is not text"
        if "requires" in step and not _is_expression(step["requires"]):
            return f"has step {step['path']!r} whose requires is not a requirement expression"
        if "requires" in step:
            requiring.add(step["path"])
        if "requires_as" in step and step["requires_as"] not in requiring:
            return f"has step {step['path']!r} whose requires_as names no earlier requirement"
        if version == 3 and not _expands(step):
            return (
                f'has step {step["path"]!r} whose repeats is not {{"count": n}} with n '
                f'item texts, or {{"callable": name}}'
            )
    if version == 3:
        paths = {step["path"] for step in steps}
        for step in steps:
            if step.get("parent") is not None and step["parent"] not in paths:
                return f"has step {step['path']!r} whose parent {step['parent']!r} is no step"
    return None


def _expands(step: Mapping[str, Any]) -> bool:
    """Whether a format 3 step's ``repeats`` and ``items`` say how it expands."""
    repeats, items = step.get("repeats"), step.get("items")
    if repeats is None:
        return items is None
    if not isinstance(repeats, dict):
        return False
    if "callable" in repeats:
        return items is None
    count = repeats.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return False
    return items is None or (
        isinstance(items, list)
        and len(items) == count
        and all(item is None or isinstance(item, str) for item in items)
    )


def _is_expression(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if "step" in value:
        return isinstance(value["step"], str) and value.get("status") in _STATUSES
    for key in ("all", "any"):
        if key in value:
            items = value[key]
            return isinstance(items, list) and all(_is_expression(item) for item in items)
    return False


def _fits(kind: str, value: Any) -> bool:
    if value is None:
        return kind.endswith("?")
    base = kind.rstrip("?")
    if base == "text":
        return isinstance(value, str)
    if base == "real":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "int":
        return _is_int(value)
    if base == "flag":
        return value in (0, 1) and not isinstance(value, float)
    if base == "status":
        return value in _STATUSES
    return isinstance(value, str) and bool(_SEQUENCE.match(value))  # sequence


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _part(table: str, row: Mapping[str, Any]) -> str:
    if table == "runs":
        return "row in 'runs'"
    if table == "attempts":
        return f"attempt {_shown(row.get('attempt'))} (table 'attempts')"
    if table in ("events", "nodes"):  # a node row is made of its events
        where = f"{row.get('path')}/{row.get('sequence')}"
        seq = f", seq {row['seq']}" if "seq" in row else ""
        return f"events of {where} (attempt {_shown(row.get('attempt'))}{seq})"
    if table == "expansions":
        return f"expansion row of {row.get('path')}/{row.get('sequence')}"
    return f"row in {table!r}"


def _expected(kind: str) -> str:
    base = kind.rstrip("?")
    return {
        "text": "where text is expected",
        "real": "where a number (a time in Unix seconds) is expected",
        "int": "where a whole number is expected",
        "flag": "where 0 or 1 is expected",
        "status": f"which is not a step status ({', '.join(sorted(_STATUSES))})",
        "sequence": "which is not a sequence of dotted numbers (as 1.2.1)",
    }[base]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _damaged(path: str, what: str) -> StoreError:
    return StoreError(
        f"the store {path!r} is damaged: {what}; nothing was written. Restore the file from a "
        f"copy, or move it aside and pass another store path"
    )
