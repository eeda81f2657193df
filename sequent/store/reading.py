"""The store's read queries: runs, attempts, node rows, events, structures, recovery lookups.

Reads only. A node's row (one per step instance and attempt) is defined once, by the schema's
``nodes`` view over the append-only ``events``; ``latest_nodes`` picks each instance's row from
the latest attempt that recorded it, which is what a recover starts from.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from ..compiler import NodeKey
from ..compiler.structure import read_structure
from ..errors import RecoveryError, StoreError
from ..status import StepStatus
from . import lease
from .checks import check_rows, load_structure
from .connection import Database
from .schema import EVENT_COLUMNS

#: The status of a step instance that ``Reader.nodes(..., unrecorded=True)`` adds: known to the
#: run's recorded structure, with no event yet (waiting, or the run stopped before it).
NOT_STARTED = "not started"

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
    "r.user, r.python, r.sequent_version, (SELECT COUNT(*) FROM attempts AS a "
    "WHERE a.run_id = r.run_id) AS attempts, l.attempt AS _l_attempt, l.host AS _l_host, "
    "l.pid AS _l_pid, l.user AS _l_user, l.started AS _l_started, l.heartbeat AS _l_heartbeat"
)
_RUNS = f"SELECT {_RUN_FIELDS} FROM runs AS r LEFT JOIN leases AS l ON l.run_id = r.run_id"


@attrs.frozen
class Recovery:
    """What a recover run of ``run_id`` would start from: its next attempt and latest statuses.

    ``logdir`` is the log folder of the run's latest attempt that recorded one (None: none did).
    """

    run_id: str
    attempt: int
    previous: Mapping[NodeKey, StepStatus]
    flow_name: str
    structure: Mapping[str, Any] | None
    logdir: str | None = None


class Reader(Database):
    """The read queries of a store; every one reads only (see ``Database`` for opening)."""

    def runs(self, flow_name: str | None = None) -> list[dict[str, Any]]:
        """Every run (of ``flow_name`` if given), newest first, as dicts with an attempt count.

        ``result`` is True/False for a finished latest attempt, None while one runs or after
        a crash; ``state`` is ``running``, ``success``, ``failure`` or ``abandoned`` (unfinished
        and held by no live orchestrator: it was killed, or its machine stopped).
        """
        if self._conn is None:
            return []
        where, params = ("WHERE r.flow_name = ?", (flow_name,)) if flow_name else ("", ())
        return self._rows(
            f"{_RUNS} {where} ORDER BY r.started DESC, r.rowid DESC", params, self._run_row
        )

    def _run_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A run row, checked, with ``result`` a bool and its ``state`` from its lease."""
        held = {key[3:]: row.pop(key) for key in list(row) if key.startswith("_l_")}
        check_rows("runs", [row], self.path)
        judged = None
        if held["pid"] is not None:
            held["run_id"] = row["run_id"]
            check_rows("leases", [held], self.path)
            judged = lease.judge(held, self.path)
        row = _run_row(row)
        row["state"] = lease.state(row["result"], judged)
        return row

    def lease(self, run_id: str) -> dict[str, Any] | None:
        """Who holds run ``run_id`` now: its lease, judged; None when no orchestrator holds it.

        The dict has the ``leases`` columns (``run_id, attempt, host, pid, user, started,
        heartbeat``) and ``age`` (seconds since the last heartbeat), ``alive`` (True while the
        holder runs), ``gone`` (why a holder that did not let go is gone, else None; see
        ``lease.STALE_AFTER``) and ``stalled`` (why a live holder on this host does not beat:
        stopped, or a step holds the GIL; else None). Raises ``RecoveryError`` for an unknown
        run.
        """
        self.run(run_id)

        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            found = lease.read(conn, run_id, self.path)
            if found is not None:
                check_rows("leases", [{k: found[k] for k in lease.COLUMNS}], self.path)
            return found

        return self._read(read)

    def state(self, run_id: str) -> str:
        """``"running"``, ``"success"``, ``"failure"`` or ``"abandoned"``, as ``runs()`` says.

        Raises ``RecoveryError`` for an unknown run.
        """
        return str(self.run(run_id)["state"])

    def run(self, run_id: str) -> dict[str, Any]:
        """The row of run ``run_id`` (as ``runs()`` gives it); ``RecoveryError`` if unknown."""
        rows = (
            self._rows(f"{_RUNS} WHERE r.run_id = ?", (run_id,), self._run_row)
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
        """The attempts of run ``run_id`` in order (0 is the first execution).

        Each has ``logdir`` (the folder of its logs) and ``heartbeat`` (the last time its
        orchestrator said it was alive) besides the ``runs``-like columns.
        """
        self.run(run_id)
        rows = self._rows(
            "SELECT run_id, attempt, mode, started, ended, result, executor, host, pid, logdir, "
            "heartbeat FROM attempts WHERE run_id = ? ORDER BY attempt",
            (run_id,),
            lambda row: row,
        )
        check_rows("attempts", rows, self.path)
        return [_run_row(row) for row in rows]

    def nodes(
        self, run_id: str, attempt: int | None = None, unrecorded: bool = False
    ) -> list[dict[str, Any]]:
        """The step instances of run ``run_id`` in definition then sequence order.

        With ``attempt`` None, each node's row from the latest attempt that recorded it (what a
        recover starts from: the ``latest_nodes`` view); otherwise the rows of that attempt
        (the ``nodes`` view). Both views are described in docs/store.md. With ``unrecorded``
        (and ``attempt`` None), also the instances the recorded structure knows that have no
        event yet (the run stopped, or has not reached them), as rows with ``status``
        ``NOT_STARTED`` and ``attempt`` None.
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
            rows = [dict(zip(NODE_COLUMNS, row, strict=True)) for row in conn.execute(sql, params)]
            check_rows("nodes", rows, self.path)
            return [_node_row(row) for row in rows], _step_orders(conn, run_id, self.path)

        rows, orders = self._read(read)
        if unrecorded and attempt is None:
            rows += self._unrecorded(run_id, {(row["path"], row["sequence"]) for row in rows})
        rows.sort(key=lambda row: _node_order(row, orders))
        return rows

    def _unrecorded(self, run_id: str, recorded: set[tuple[str, str]]) -> list[dict[str, Any]]:
        """Rows for the instances of run ``run_id``'s recorded structure missing in ``recorded``."""
        structure = self.structure(run_id)
        kinds = {step["path"]: step.get("kind", "step") for step in structure["steps"]}
        return [
            {
                **dict.fromkeys(NODE_COLUMNS),
                "run_id": run_id,
                "path": node["path"],
                "sequence": node["sequence"],
                "kind": kinds.get(node["path"], "step"),
                "status": NOT_STARTED,
                "replayed": False,
            }
            for node in structure["nodes"]
            if (node["path"], node["sequence"]) not in recorded
        ]

    def events(self, run_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """Every recorded status change of run ``run_id`` (of one attempt if given), in order."""
        self.run(run_id)
        where, params = ("AND attempt = ?", (run_id, attempt)) if attempt is not None else (
            "",
            (run_id,),
        )
        rows = self._rows(
            f"SELECT {', '.join(EVENT_COLUMNS)}, worker, marked_by, reason FROM events "
            f"WHERE run_id = ? {where} "
            f"ORDER BY attempt, seq",
            params,
            lambda row: row,
        )
        check_rows("events", rows, self.path)
        return [_node_row(row) for row in rows]

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
            number: int | None = attempt
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
            cursor = conn.execute(
                f"SELECT {', '.join(_EXPANSION_FIELDS)} FROM expansions WHERE run_id = ? AND "
                f"attempt = ? ORDER BY step_order, rowid",
                (run_id, number),
            )
            expansions = [dict(zip(_EXPANSION_FIELDS, row, strict=True)) for row in cursor]
            check_rows("expansions", expansions, self.path, run_id)
            rows = [tuple(row[name] for name in _EXPANSION_FIELDS[:6]) for row in expansions]
            return _structure(conn, run_id, number, self.path), rows

        structure, expansions = self._read(read)
        return read_structure(structure, expansions)

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
        events = [
            dict(zip(("attempt", "seq", "path", "sequence", "status"), row, strict=True))
            for row in conn.execute(
                "SELECT attempt, seq, path, sequence, status FROM events WHERE run_id = ? "
                "ORDER BY attempt, seq",
                (run_id,),
            )
        ]
        check_rows("events", events, self.path, run_id)
        for event in events:
            previous[NodeKey(event["path"], event["sequence"])] = StepStatus(event["status"])
        last = conn.execute(
            "SELECT MAX(attempt) FROM attempts WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        attempt = 1 if last is None else last + 1
        structure = _structure(conn, run_id, None, self.path)
        logged = conn.execute(
            "SELECT attempt, logdir FROM attempts WHERE run_id = ? AND logdir IS NOT NULL "
            "ORDER BY attempt DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        if logged is not None:  # where a recover given no logdir continues
            check_rows("attempts", [{"attempt": logged[0], "logdir": logged[1]}], self.path, run_id)
        logdir = None if logged is None else logged[1]
        return Recovery(run_id, attempt, previous, recorded_name, structure, logdir)

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


_EXPANSION_FIELDS = ("path", "sequence", "parent_path", "parent_sequence", "ordinal", "item")
_FIRST = "runs.structure, as its first attempt ran it"


def _structure(
    conn: sqlite3.Connection, run_id: str, attempt: int | None, path: str
) -> dict[str, Any] | None:
    """The structure attempt ``attempt`` ran (default: the latest attempt), decoded and checked.

    An attempt that ran the same structure as the one before records NULL. Raises
    ``StoreError`` naming the run and the attempt when the structure is damaged.
    """
    where = "" if attempt is None else " AND attempt <= ?"
    params = (run_id,) if attempt is None else (run_id, attempt)
    row = conn.execute(
        f"SELECT attempt, structure FROM attempts WHERE run_id = ?{where} AND structure IS NOT "
        f"NULL ORDER BY attempt DESC LIMIT 1",
        params,
    ).fetchone()
    if row is not None:
        return load_structure(row[1], path, run_id, f"attempts.structure of attempt {row[0]}")
    row = conn.execute("SELECT structure FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else load_structure(row[0], path, run_id, _FIRST)


def _step_orders(conn: sqlite3.Connection, run_id: str, path: str) -> dict[str, int]:
    """Each step path's definition order, from the run's structures and expansions."""
    orders: dict[str, int] = {}
    found = [
        (_FIRST, row[0])
        for row in conn.execute("SELECT structure FROM runs WHERE run_id = ?", (run_id,))
    ]
    found += [
        (f"attempts.structure of attempt {row[0]}", row[1])
        for row in conn.execute(
            "SELECT attempt, structure FROM attempts WHERE run_id = ? AND structure IS NOT NULL "
            "ORDER BY attempt",
            (run_id,),
        )
    ]
    for part, text in found:
        structure = load_structure(text, path, run_id, part)
        for step in structure["steps"] if structure else ():
            orders[step["path"]] = step["order"]
    return orders
