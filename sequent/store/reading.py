"""The store's read queries: runs, attempts, node rows, events, structures, recovery lookups.

Reads only. A node's row (one per step instance and attempt) is defined once, by the schema's
``nodes`` view over the append-only ``events``; ``latest_nodes`` picks each instance's row from
the latest attempt that recorded it, which is what a recover starts from.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from ..compiler import NodeKey
from ..compiler.structure import read_structure
from ..errors import RecoveryError, StoreError
from ..status import StepStatus
from .connection import Database
from .schema import EVENT_COLUMNS

#: Columns of the ``nodes`` and ``latest_nodes`` views, in order (see docs/store.md).
NODE_COLUMNS = (
    "run_id",
    "attempt",
    "path",
    "sequence",
    "kind",
    "status",
    "ready",
    "started",
    "ended",
    "duration",
    "pid",
    "host",
    "executor",
    "retry",
    "error",
    "traceback",
    "replayed",
    "value",
    "value_format",
)

_RUN_FIELDS = (
    "r.run_id, r.flow_name, r.mode, r.started, r.ended, r.result, r.executor, r.host, r.pid, "
    "r.user, r.python, r.sequent_version"
)


@attrs.frozen
class Recovery:
    """What a recover run of ``run_id`` would start from: its next attempt and latest statuses."""

    run_id: str
    attempt: int
    previous: Mapping[NodeKey, StepStatus]
    flow_name: str
    structure: Mapping[str, Any] | None


class Reader(Database):
    """The read queries of a store; every one reads only (see ``Database`` for opening)."""

    def runs(self, flow_name: str | None = None) -> list[dict[str, Any]]:
        """Every run (of ``flow_name`` if given), newest first, as dicts with an attempt count.

        ``result`` is True/False for a finished latest attempt, None while one runs or after
        a crash.
        """
        if self._conn is None:
            return []
        where, params = ("WHERE r.flow_name = ?", (flow_name,)) if flow_name else ("", ())
        return self._rows(
            f"SELECT {_RUN_FIELDS}, (SELECT COUNT(*) FROM attempts AS a "
            f"WHERE a.run_id = r.run_id) AS attempts FROM runs AS r {where} "
            f"ORDER BY r.started DESC, r.rowid DESC",
            params,
            _run_row,
        )

    def run(self, run_id: str) -> dict[str, Any]:
        """The row of run ``run_id`` (as ``runs()`` gives it); ``RecoveryError`` if unknown."""
        rows = (
            self._rows(
                f"SELECT {_RUN_FIELDS}, (SELECT COUNT(*) FROM attempts AS a "
                f"WHERE a.run_id = r.run_id) AS attempts FROM runs AS r WHERE r.run_id = ?",
                (run_id,),
                _run_row,
            )
            if self._conn is not None
            else []
        )
        if not rows:
            raise RecoveryError(
                f"the store {self.path!r} holds no run with id {run_id!r}; list the runs with "
                f"`sequent runs` (or Store.runs()) and pass one of their ids"
            )
        return rows[0]

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        """The attempts of run ``run_id`` in order (0 is the first execution)."""
        self.run(run_id)
        return self._rows(
            "SELECT run_id, attempt, mode, started, ended, result, executor, host, pid, logdir "
            "FROM attempts WHERE run_id = ? ORDER BY attempt",
            (run_id,),
            _run_row,
        )

    def nodes(self, run_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """The step instances of run ``run_id`` in definition then sequence order.

        With ``attempt`` None, each node's row from the latest attempt that recorded it (what a
        recover starts from: the ``latest_nodes`` view); otherwise the rows of that attempt
        (the ``nodes`` view). Both views are described in docs/store.md.
        """
        self.run(run_id)
        columns = ", ".join(NODE_COLUMNS)
        params: tuple[Any, ...]
        if attempt is None:
            sql, params = f"SELECT {columns} FROM latest_nodes WHERE run_id = ?", (run_id,)
        else:
            sql = f"SELECT {columns} FROM nodes WHERE run_id = ? AND attempt = ?"
            params = (run_id, attempt)

        def read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], dict[str, int]]:
            rows = [
                _node_row(dict(zip(NODE_COLUMNS, row, strict=True)))
                for row in conn.execute(sql, params)
            ]
            return rows, _step_orders(conn, run_id)

        rows, orders = self._read(read)
        rows.sort(key=lambda row: _node_order(row, orders))
        return rows

    def events(self, run_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """Every recorded status change of run ``run_id`` (of one attempt if given), in order."""
        self.run(run_id)
        where, params = ("AND attempt = ?", (run_id, attempt)) if attempt is not None else (
            "",
            (run_id,),
        )
        return self._rows(
            f"SELECT {', '.join(EVENT_COLUMNS)}, worker, marked_by, reason FROM events "
            f"WHERE run_id = ? {where} "
            f"ORDER BY attempt, seq",
            params,
            _node_row,
        )

    def workers(self, run_id: str) -> dict[tuple[int, str, str], str]:
        """The Dask worker (``name address``) that ran each ``(attempt, path, sequence)`` of run
        ``run_id`` last, for the step instances that ran on one."""
        self.run(run_id)
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT attempt, path, sequence, worker FROM events "
                "WHERE run_id = ? AND worker IS NOT NULL ORDER BY attempt, seq",
                (run_id,),
            ).fetchall()
        )
        return {(attempt, path, sequence): worker for attempt, path, sequence, worker in rows}

    def structure(self, run_id: str, attempt: int | None = None) -> dict[str, Any]:
        """The compiled flow an attempt ran (default: the latest), with run-time expansions.

        A dict with ``flow``, ``steps`` (one per definition) and ``nodes`` (one per step
        instance; those created at run time by callable repeats have ``"expanded": true``).
        Raises ``RecoveryError`` for an unknown run or attempt.
        """
        self.run(run_id)

        def read(conn: sqlite3.Connection) -> tuple[Any, list[Any]]:
            number = attempt
            if number is None:
                number = conn.execute(
                    "SELECT MAX(attempt) FROM attempts WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
            elif not conn.execute(
                "SELECT 1 FROM attempts WHERE run_id = ? AND attempt = ?", (run_id, number)
            ).fetchone():
                raise RecoveryError(
                    f"run {run_id!r} in {self.path!r} has no attempt {attempt!r}; its attempts "
                    f"are listed by Store.attempts({run_id!r})"
                )
            expansions = conn.execute(
                "SELECT path, sequence, parent_path, parent_sequence, ordinal, item "
                "FROM expansions WHERE run_id = ? AND attempt = ? ORDER BY step_order, rowid",
                (run_id, number),
            ).fetchall()
            return _structure_text(conn, run_id, number), expansions

        text, expansions = self._read(read)
        return read_structure(json.loads(text) if text else None, expansions)

    # -- recovery ---------------------------------------------------------------------------

    def recovery(self, flow_name: str, recovery_run: str | None = None) -> Recovery:
        """Where a recover of ``recovery_run`` (default: the latest of ``flow_name``) starts.

        Reads only; raises ``RecoveryError`` when there is no such run.
        """
        if self._conn is None:
            raise RecoveryError(
                f"nothing to recover: the store {self.path!r} does not exist; run the flow with "
                f"RunMode.restart first"
            )
        return self._read(lambda conn: self._find_recovery(conn, flow_name, recovery_run))

    def _check_integrity(self) -> None:
        rows = self._read(lambda conn: conn.execute("PRAGMA quick_check").fetchall())
        problems = [row[0] for row in rows if row[0] != "ok"]
        if problems:
            raise StoreError(
                f"the store {self.path!r} is damaged ({'; '.join(problems[:3])}); nothing was "
                f"recovered or written. Restore the file from a copy, or start afresh with "
                f"another store path"
            )

    def _find_recovery(
        self, conn: sqlite3.Connection, flow_name: str, recovery_run: str | None
    ) -> Recovery:
        if recovery_run is not None:
            row = self._named_run(conn, flow_name, recovery_run)
        else:
            row = self._latest_run(conn, flow_name)
        run_id, recorded_name = row
        previous: dict[NodeKey, StepStatus] = {}
        for path, sequence, status in conn.execute(
            "SELECT path, sequence, status FROM events WHERE run_id = ? ORDER BY attempt, seq",
            (run_id,),
        ):
            previous[NodeKey(path, sequence)] = StepStatus(status)
        last = conn.execute(
            "SELECT MAX(attempt) FROM attempts WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        attempt = 1 if last is None else last + 1
        text = _structure_text(conn, run_id, None)
        structure = json.loads(text) if text else None
        return Recovery(run_id, attempt, previous, recorded_name, structure)

    def _named_run(self, conn: sqlite3.Connection, flow_name: str, run_id: str) -> Any:
        row = conn.execute(
            "SELECT run_id, flow_name FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is not None:
            return row
        known = [
            r[0]
            for r in conn.execute(
                "SELECT run_id FROM runs WHERE flow_name = ? "
                "ORDER BY started DESC, rowid DESC LIMIT 5",
                (flow_name,),
            )
        ]
        hint = (
            f"the latest runs of flow {flow_name!r} are {', '.join(known)}"
            if known
            else f"it holds no run of flow {flow_name!r}"
        )
        raise RecoveryError(
            f"nothing to recover: the store {self.path!r} holds no run with id "
            f"{run_id!r} ({hint}); pass one of those as recovery_run, or None for "
            f"the latest"
        )

    def _latest_run(self, conn: sqlite3.Connection, flow_name: str) -> Any:
        row = conn.execute(
            "SELECT run_id, flow_name FROM runs WHERE flow_name = ? "
            "ORDER BY started DESC, rowid DESC LIMIT 1",
            (flow_name,),
        ).fetchone()
        if row is not None:
            return row
        names = [r[0] for r in conn.execute("SELECT DISTINCT flow_name FROM runs")]
        hint = f"it holds runs of {', '.join(map(repr, names))}" if names else "it is empty"
        memory = (
            "; an in-memory store lasts only as long as its Sequent object, so use a "
            "file store to recover"
            if self.memory
            else ""
        )
        raise RecoveryError(
            f"nothing to recover: the store {self.path!r} holds no run of flow "
            f"{flow_name!r} ({hint}); run the flow with RunMode.restart first, or check "
            f"the flow name{memory}"
        )


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("result") is not None:
        row["result"] = bool(row["result"])
    return row


def _node_row(row: dict[str, Any]) -> dict[str, Any]:
    if "replayed" in row:
        row["replayed"] = bool(row["replayed"])
    return row


def _node_order(row: Mapping[str, Any], orders: Mapping[str, int]) -> tuple[Any, ...]:
    return (
        orders.get(row["path"], sys.maxsize),
        tuple(int(part) for part in row["sequence"].split(".") if part.isdigit()),
        row["path"],
    )


def _structure_text(conn: sqlite3.Connection, run_id: str, attempt: int | None) -> str | None:
    """The structure JSON attempt ``attempt`` ran (default: the latest attempt).

    An attempt that ran the same structure as the one before records NULL.
    """
    where = "" if attempt is None else " AND attempt <= ?"
    params = (run_id,) if attempt is None else (run_id, attempt)
    row = conn.execute(
        f"SELECT structure FROM attempts WHERE run_id = ?{where} AND structure IS NOT NULL "
        f"ORDER BY attempt DESC LIMIT 1",
        params,
    ).fetchone()
    if row is not None:
        return str(row[0])
    row = conn.execute("SELECT structure FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def _step_orders(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """Each step path's definition order, from the run's structures and expansions."""
    orders: dict[str, int] = {}
    texts = [
        row[0] for row in conn.execute("SELECT structure FROM runs WHERE run_id = ?", (run_id,))
    ]
    texts += [
        row[0]
        for row in conn.execute(
            "SELECT structure FROM attempts WHERE run_id = ? AND structure IS NOT NULL "
            "ORDER BY attempt",
            (run_id,),
        )
    ]
    for text in texts:
        if text:
            for step in json.loads(text).get("steps", ()):
                orders[step["path"]] = step["order"]
    return orders
