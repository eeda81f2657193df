"""The SQLite store: every run, attempt and step instance, recorded durably; recovery lookups.

Mutates the store file and nothing else. One ``SqliteStore`` per file and process; each run
(or recover attempt) gets a ``SqliteSession``, the recorder the scheduling core reports to:

    Scheduler ──node()/expanded()──> session buffers (one event row per status change)
              ──flush()────────────> one multi-row INSERT of the round's events (a round
                                     of more than 8: BEGIN IMMEDIATE; executemany; COMMIT)
              ──finish(result)─────> attempt and run rows closed

Recording appends to ``events`` only; a node's row (the ``nodes`` view, ``Store.nodes``) is
derived from its events, and a recover starts from each node's latest recorded status.

The file is in WAL mode with ``synchronous=NORMAL``: a commit survives the orchestrator being
killed (even ``kill -9``); the last commits may be lost only if the machine itself goes down.
Writers take the write lock (``BEGIN IMMEDIATE``, or a single statement) and wait for it (busy
timeout, then retries with back-off), so several processes can record into one file at once.
Values are stored as JSON or as their ``repr``, never pickled: reading a store never runs code.

A file that is not a sequent store, or is damaged, raises ``StoreError`` before anything is
written; a recover with nothing to recover raises ``RecoveryError`` before anything is written.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
import os
import random
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from ..compiler import AllOf, AnyOf, Atom, Expr, NodeKey, NodeSpec, Plan, StepDef
from ..compiler.definitions import DEFAULT_RECOVERY
from ..errors import RecoveryError, StoreError
from ..status import RunMode, StepStatus
from .schema import (
    APPLICATION_ID,
    EVENT_COLUMNS,
    EXPANSION_COLUMNS,
    MIGRATIONS_TABLE,
    TERMINAL,
    VERSION,
    applied_version,
    migrate,
)

T = TypeVar("T")

log = logging.getLogger("sequent")

#: How long one statement waits for another process's write lock (SQLite's busy handler).
BUSY_TIMEOUT = 10.0
#: How long a write keeps retrying while the file stays locked, in all.
WRITE_DEADLINE = 120.0
#: Commits between two checkpoints of the write-ahead log (each commit adds a few pages).
CHECKPOINT_EVERY = 1000
#: Size the write-ahead log is truncated to after a checkpoint, in bytes.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
#: Longest value text kept; longer values are kept as a truncated ``repr``.
MAX_VALUE_CHARS = 1_000_000
#: Longest repeat-item text kept in the structure.
MAX_ITEM_CHARS = 200

HOST = socket.gethostname()
SQLITE_HEADER = b"SQLite format 3\x00"

_SUCCESS = StepStatus.success

_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
#: Up to this many events, a flush is one multi-row INSERT (its own transaction).
_ONE_STATEMENT_ROWS = 8
# Every bound parameter costs time on the hot path, so an event is buffered as the shortest
# tuple that holds it, and the INSERT writes the rest (run id, attempt, zeros, NULLs) as
# literals. Each shape: the SQL of one row after run_id, attempt and seq, and how to widen
# the tuple to all of EVENT_COLUMNS[3:] for executemany.
_NULLS7 = (None,) * 7
_SHAPES: dict[int, tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]] = {
    # path, sequence, kind, status, time
    5: ("?, ?, ?, ?, ?, 0, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
        lambda event: event + (0, None, 0) + _NULLS7),
    # ... retry, error, replayed
    8: ("?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
        lambda event: event + _NULLS7),
    # path, sequence, kind, status, time, retry, started, ended, pid, host, value, value_format
    12: ("?, ?, ?, ?, ?, ?, NULL, 0, ?, ?, ?, ?, NULL, ?, ?",
         lambda event: event[:6] + (None, 0) + event[6:10] + (None,) + event[10:]),
    # every column
    15: (", ".join("?" * 15), lambda event: event),
}  # fmt: skip
_VALUES = {status: status.value for status in StepStatus}


@functools.lru_cache(maxsize=1024)
def _insert_events_sql(run_id: str, attempt: int, shapes: tuple[int, ...]) -> str:
    """One INSERT of events buffered as tuples of lengths ``shapes``.

    Each row's parameters are its ``seq`` then the event's values, all plain ``?``
    placeholders (numbered ones with a sequence of values are refused from Python 3.14).
    """
    prefix = f"'{run_id.replace(chr(39), chr(39) * 2)}', {int(attempt)}"
    rows = [f"({prefix}, ?, {_SHAPES[shape][0]})" for shape in shapes]
    return f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {', '.join(rows)}"


_INSERT_EXPANSION = (
    f"INSERT OR REPLACE INTO expansions ({', '.join(EXPANSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EXPANSION_COLUMNS))})"
)


@attrs.frozen
class Recovery:
    """What a recover run of ``run_id`` would start from: its next attempt and latest statuses."""

    run_id: str
    attempt: int
    previous: Mapping[NodeKey, StepStatus]
    flow_name: str
    structure: Mapping[str, Any] | None


class SqliteStore:
    """Mutates one store file (or an in-memory database for ``":memory:"``).

    A path that does not exist is created by the first run, never by reading or recovering.
    Raises ``StoreError`` when the file exists but is not a sequent store or is damaged.
    """

    def __init__(self, path: str = ":memory:") -> None:
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._commits = 0
        self._checkpointer: _Checkpointer | None = None
        if self.memory or os.path.exists(self.path):
            self._open()

    # -- opening ----------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """True when the store holds a database (a file store is created by its first run)."""
        return self._conn is not None

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        path = self.path
        if not self.memory:
            _check_file(path)
        try:
            conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=1024,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store {path!r} ({exc}); check that its folder exists and is "
                f"writable, or pass store=':memory:' for a run that needs no recovery"
            ) from exc
        try:
            version = _inspect(conn, path)
            if not self.memory:
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if not self.memory:
                # Checkpoints (copying the WAL into the file, with an fsync) run in a thread of
                # their own, off the path between a step ending and its dependents starting.
                conn.execute("PRAGMA wal_autocheckpoint = 0")
                conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            self._conn = conn
            if version < VERSION:
                self._write(migrate)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        return conn

    # -- transactions -----------------------------------------------------------------------

    def _retry(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying with back-off while the file is locked by another writer."""
        delay = 0.002
        deadline = time.monotonic() + WRITE_DEADLINE
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise _store_error(self.path, exc) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body(conn)`` in one ``BEGIN IMMEDIATE`` transaction; commit it or roll it back.

        Retries the whole transaction while another process holds the write lock. Raises
        ``StoreError`` for a database error; whatever ``body`` raises otherwise propagates
        after the rollback, so nothing is written.
        """
        conn = self._conn
        assert conn is not None

        def attempt() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        with self._lock:
            try:
                result = self._retry(attempt)
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc
            self._committed()
            return result

    def _statement(self, sql: str, values: list[Any]) -> None:
        """Run one write statement as its own transaction, retrying while the file is locked."""
        conn = self._conn
        assert conn is not None
        with self._lock:
            try:
                conn.execute(sql, values)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise _store_error(self.path, exc) from exc
                self._retry(lambda: conn.execute(sql, values))
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc
            self._committed()

    def _committed(self) -> None:
        """Count a commit; every ``CHECKPOINT_EVERY`` commits, wake the checkpoint thread."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and not self.memory:
            self._commits = 0
            self.checkpoint()

    def checkpoint(self) -> None:
        """Ask for the write-ahead log to be copied into the file, in the background."""
        if self.memory or self._conn is None:
            return
        if self._checkpointer is None or not self._checkpointer.is_alive():
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()
        self._checkpointer.wake.set()

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None
        with self._lock:
            try:
                return self._retry(lambda: body(conn))
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

    # -- starting a run ---------------------------------------------------------------------

    def begin(
        self,
        plan: Plan,
        *,
        flow_name: str,
        mode: RunMode,
        recovery_run: str | None = None,
        executor: str = "",
    ) -> SqliteSession:
        """Record the start of a run (attempt 0) or of a recover attempt; return its recorder.

        Raises ``RecoveryError`` in recover mode when there is no run to recover, and
        ``StoreError`` when the store cannot be read or written; in both cases nothing is
        written.
        """
        structure = structure_of(plan)
        if mode is RunMode.recover:
            return self._begin_recover(plan, structure, flow_name, recovery_run, executor)
        self._open()
        now = time.time()
        text = json.dumps(structure, separators=(",", ":"))

        def write(conn: sqlite3.Connection) -> str:
            run_id = new_run_id()
            while conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                run_id = new_run_id()
            conn.execute(
                "INSERT INTO runs (run_id, flow_name, mode, started, executor, host, pid, user, "
                "python, sequent_version, structure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    flow_name,
                    RunMode.restart.value,
                    now,
                    executor,
                    HOST,
                    os.getpid(),
                    _user(),
                    sys.version.split()[0],
                    _sequent_version(),
                    text,
                ),
            )
            _insert_attempt(conn, run_id, 0, RunMode.restart, now, executor, None)
            return run_id

        run_id = self._write(write)
        return SqliteSession(self, run_id, 0, {}, plan, executor, [])

    def _begin_recover(
        self,
        plan: Plan,
        structure: dict[str, Any],
        flow_name: str,
        recovery_run: str | None,
        executor: str,
    ) -> SqliteSession:
        if self._conn is None:
            raise RecoveryError(
                f"nothing to recover: the store {self.path!r} does not exist, so it holds no run "
                f"of flow {flow_name!r}; run the flow with RunMode.restart first, or pass the "
                f"store= path the failed run used"
            )
        self._check_integrity()
        now = time.time()
        text = json.dumps(structure, separators=(",", ":"))

        def write(conn: sqlite3.Connection) -> tuple[Recovery, list[str]]:
            found = self._find_recovery(conn, flow_name, recovery_run)
            notes = []
            if found.flow_name != flow_name:
                notes.append(
                    f"Run {found.run_id} was recorded for flow {found.flow_name!r}; recovering "
                    f"it with flow {flow_name!r}"
                )
            if found.structure is not None:
                notes += describe_changes(found.structure, structure, found.run_id)
            # NULL: the same structure as the attempt before (see _structure_text).
            own = None if json.loads(text) == found.structure else text
            _insert_attempt(conn, found.run_id, found.attempt, RunMode.recover, now, executor, own)
            conn.execute(
                "UPDATE runs SET ended = NULL, result = NULL WHERE run_id = ?", (found.run_id,)
            )
            return found, notes

        found, notes = self._write(write)
        return SqliteSession(
            self, found.run_id, found.attempt, found.previous, plan, executor, notes
        )

    def _check_integrity(self) -> None:
        rows = self._read(lambda conn: conn.execute("PRAGMA quick_check").fetchall())
        problems = [row[0] for row in rows if row[0] != "ok"]
        if problems:
            raise StoreError(
                f"the store {self.path!r} is damaged ({'; '.join(problems[:3])}); nothing was "
                f"recovered or written. Restore the file from a copy, or start afresh with "
                f"another store path"
            )

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

    def _find_recovery(
        self, conn: sqlite3.Connection, flow_name: str, recovery_run: str | None
    ) -> Recovery:
        if recovery_run is not None:
            row = conn.execute(
                "SELECT run_id, flow_name FROM runs WHERE run_id = ?", (recovery_run,)
            ).fetchone()
            if row is None:
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
                    f"{recovery_run!r} ({hint}); pass one of those as recovery_run, or None for "
                    f"the latest"
                )
        else:
            row = conn.execute(
                "SELECT run_id, flow_name FROM runs WHERE flow_name = ? "
                "ORDER BY started DESC, rowid DESC LIMIT 1",
                (flow_name,),
            ).fetchone()
            if row is None:
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

    # -- reading ----------------------------------------------------------------------------

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
            "SELECT run_id, attempt, mode, started, ended, result, executor, host, pid "
            "FROM attempts WHERE run_id = ? ORDER BY attempt",
            (run_id,),
            _run_row,
        )

    def nodes(self, run_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """The step instances of run ``run_id`` in definition then sequence order.

        With ``attempt`` None, each node's row from the latest attempt that recorded it (what a
        recover starts from); otherwise the rows of that attempt. The rows are those of the
        ``nodes`` view (see docs/store.md).
        """
        self.run(run_id)

        def read(conn: sqlite3.Connection) -> tuple[list[Any], dict[int, str], dict[str, int]]:
            where = "" if attempt is None else " AND attempt = ?"
            params = (run_id,) if attempt is None else (run_id, attempt)
            cursor = conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE run_id = ?{where} "
                f"ORDER BY attempt, seq",
                params,
            )
            executors = dict(
                conn.execute("SELECT attempt, executor FROM attempts WHERE run_id = ?", (run_id,))
            )
            return cursor.fetchall(), executors, _step_orders(conn, run_id)

        events, executors, orders = self._read(read)
        rows = fold_events(events, executors)
        if attempt is None:
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for row in rows:
                key = (row["path"], row["sequence"])
                if key not in latest or row["attempt"] >= latest[key]["attempt"]:
                    latest[key] = row
            rows = list(latest.values())
        rows.sort(key=lambda row: _node_order(row, orders))
        return rows

    def events(self, run_id: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """Every recorded status change of run ``run_id`` (of one attempt if given), in order."""
        self.run(run_id)
        where, params = (
            ("AND attempt = ?", (run_id, attempt))
            if attempt is not None
            else (
                "",
                (run_id,),
            )
        )
        return self._rows(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE run_id = ? {where} "
            f"ORDER BY attempt, seq",
            params,
            _node_row,
        )

    def structure(self, run_id: str, attempt: int | None = None) -> dict[str, Any]:
        """The compiled flow an attempt ran (default: the latest), with run-time expansions.

        A dict with ``flow``, ``steps`` (one per definition) and ``nodes`` (one per step
        instance; those created at run time by callable repeats have ``"expanded": true``).
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
        structure = json.loads(text) if text else {"flow": None, "steps": [], "nodes": []}
        for step in structure["steps"]:
            parent = step.setdefault("parent", None)
            step.setdefault("kind", "step")
            step["name"] = step["path"][len(parent) + 1 :] if parent else step["path"]
        parents = {step["path"]: step["parent"] or "" for step in structure["steps"]}
        nodes = []
        for path, sequence, item in structure["nodes"]:
            parent_sequence, _, ordinal = sequence.rpartition(".")
            parent = parents.get(path, "")
            nodes.append(
                {
                    "path": path,
                    "sequence": sequence,
                    "parent": [parent, parent_sequence if parent else ""],
                    "ordinal": int(ordinal),
                    "item": item,
                    "expanded": False,
                }
            )
        for path, sequence, parent_path, parent_sequence, ordinal, item in expansions:
            nodes.append(
                {
                    "path": path,
                    "sequence": sequence,
                    "parent": [parent_path, parent_sequence],
                    "ordinal": ordinal,
                    "item": item,
                    "expanded": True,
                }
            )
        structure["nodes"] = nodes
        return structure

    def _rows(
        self,
        sql: str,
        params: Iterable[Any],
        convert: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, tuple(params))
            names = [column[0] for column in cursor.description]
            return [convert(dict(zip(names, row, strict=True))) for row in cursor]

        return self._read(read)

    def close(self) -> None:
        """Close the database (a session still recording must not be used afterwards)."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"


class _Checkpointer(threading.Thread):
    """Copies the write-ahead log into the store file when woken, on its own connection."""

    def __init__(self, path: str) -> None:
        super().__init__(name="sequent-store-checkpoint", daemon=True)
        self.path = path
        self.wake = threading.Event()
        self.stopping = False

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                if self.stopping:
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next checkpoint copies what this one left
                    log.debug("store checkpoint of %s postponed: %s", self.path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        """End the thread after the checkpoint in progress, if any."""
        self.stopping = True
        self.wake.set()
        self.join(timeout=WRITE_DEADLINE)


class SqliteSession:
    """Mutates the records of one attempt of one run: buffers status changes, commits on flush.

    ``previous`` maps each node of the run being recovered to its latest recorded status
    (empty for a fresh run); ``differences`` are messages about structure changes since the
    attempt being recovered, for the run log.
    """

    def __init__(
        self,
        store: SqliteStore,
        run_id: str,
        attempt: int,
        previous: Mapping[NodeKey, StepStatus],
        plan: Plan,
        executor: str,
        differences: list[str],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.attempt = attempt
        self.previous = dict(previous)
        self.differences = differences
        self.executor = executor
        self.result: bool | None = None
        self._kinds = {
            path: "container" if step.children else "step"
            for path, step in plan.index.steps.items()
        }
        self._events: list[tuple[Any, ...]] = []
        self._expansions: list[tuple[Any, ...]] = []
        self._seq = 0  # the seq of the next event to commit

    def node(
        self,
        key: NodeKey,
        status: StepStatus,
        *,
        error: str | None = None,
        replayed: bool = False,
        outcome: Any = None,
        retry: int = 0,
    ) -> None:
        """Buffer one status change of ``key`` (committed by the next ``flush``)."""
        path, sequence = key
        kind = self._kinds.get(path, "step")
        if outcome is None:
            if retry or error is not None or replayed:
                self._events.append(
                    (path, sequence, kind, _VALUES[status], time.time(), retry, error,
                     1 if replayed else 0)
                )  # fmt: skip
            else:
                self._events.append((path, sequence, kind, _VALUES[status], time.time()))
            return
        value, value_format = (
            encode_value(outcome.value) if outcome.status is _SUCCESS else (None, None)
        )
        if error is None and outcome.error is None and not outcome.traceback and not replayed:
            self._events.append(
                (path, sequence, kind, _VALUES[status], time.time(), retry,
                 outcome.started or None, outcome.ended or None, outcome.pid or None,
                 outcome.host, value, value_format)
            )  # fmt: skip
            return
        self._events.append(
            (path, sequence, kind, _VALUES[status], time.time(), retry,
             error if error is not None else outcome.error, 1 if replayed else 0,
             outcome.started or None, outcome.ended or None, outcome.pid or None, outcome.host,
             outcome.traceback, value, value_format)
        )  # fmt: skip

    def expanded(self, specs: list[NodeSpec]) -> None:
        """Buffer nodes created at run time (a container's callable ``repeats``)."""
        for spec in specs:
            self._expansions.append(
                (
                    self.run_id,
                    self.attempt,
                    spec.key.path,
                    spec.key.sequence,
                    spec.parent.path,
                    spec.parent.sequence,
                    spec.ordinal,
                    _item_text(spec.item),
                    spec.step.order,
                )
            )

    def flush(self) -> None:
        """Commit everything buffered since the last flush in one transaction."""
        events = self._events
        if not events and not self._expansions:
            return
        if self._expansions or len(events) > _ONE_STATEMENT_ROWS:
            self.store._write(self._write_buffers)
        else:
            # The common round: one INSERT of a few rows, its own transaction, so committing
            # is a single call into SQLite.
            shapes = tuple(len(event) for event in events)
            sql = _insert_events_sql(self.run_id, self.attempt, shapes)
            values: list[Any] = []
            for offset, event in enumerate(events):
                values.append(self._seq + offset)
                values += event
            self.store._statement(sql, values)
        self._clear()

    def _write_buffers(self, conn: sqlite3.Connection) -> None:
        if self._expansions:
            conn.executemany(_INSERT_EXPANSION, self._expansions)
        conn.executemany(
            _INSERT_EVENT,
            [
                (self.run_id, self.attempt, self._seq + offset) + _SHAPES[len(event)][1](event)
                for offset, event in enumerate(self._events)
            ],
        )

    def _clear(self) -> None:
        # Only after the commit: a transaction retried (another writer held the lock) or
        # failed keeps everything buffered.
        self._seq += len(self._events)
        self._events.clear()
        self._expansions.clear()

    def finish(self, result: bool) -> None:
        """Commit what is buffered and close the attempt and the run with ``result``."""
        self.result = result
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            self._write_buffers(conn)
            conn.execute(
                "UPDATE attempts SET ended = ?, result = ? WHERE run_id = ? AND attempt = ?",
                (now, int(result), self.run_id, self.attempt),
            )
            conn.execute(
                "UPDATE runs SET ended = ?, result = ? WHERE run_id = ?",
                (now, int(result), self.run_id),
            )

        self.store._write(write)
        self._clear()
        self.store.checkpoint()

    def __repr__(self) -> str:
        return f"SqliteSession({self.run_id!r}, attempt={self.attempt})"


def fold_events(
    events: Iterable[tuple[Any, ...]], executors: Mapping[int, str] | None = None
) -> list[dict[str, Any]]:
    """One row per (attempt, path, sequence) from event tuples in ``EVENT_COLUMNS`` order.

    Mirrors the ``nodes`` view: the last event gives the status and outcome; ``ready`` is the
    first time the node became ready, ``started`` the outcome's start or the time it became
    active, ``ended`` the outcome's end or the time of a terminal status.
    """
    executors = executors or {}
    rows: dict[tuple[int, str, str], dict[str, Any]] = {}
    for event in events:
        (run_id, attempt, _, path, sequence, kind, status, at, retry, error, replayed, started,
         ended, pid, host, traceback, value, value_format) = event  # fmt: skip
        row = rows.get((attempt, path, sequence))
        if row is None:
            row = rows[(attempt, path, sequence)] = {
                "run_id": run_id,
                "attempt": attempt,
                "path": path,
                "sequence": sequence,
                "kind": kind,
                "ready": None,
                "_activated": None,
            }
        if status == "ready" and row["ready"] is None:
            row["ready"] = at
        elif status == "active":
            row["_activated"] = at
        if ended is None and status in TERMINAL:
            ended = at
        row.update(
            status=status,
            started=started if started is not None else row["_activated"],
            ended=ended,
            pid=pid,
            host=host,
            executor=executors.get(attempt),
            retry=retry,
            error=error,
            traceback=traceback,
            replayed=bool(replayed),
            value=value,
            value_format=value_format,
        )
        row["duration"] = (
            row["ended"] - row["started"]
            if row["ended"] is not None and row["started"] is not None
            else None
        )
    result = []
    for row in rows.values():
        del row["_activated"]
        result.append(row)
    return result


# -- values and structure -------------------------------------------------------------------


def encode_value(value: Any) -> tuple[str, str]:
    """A step's return value as stored: ``(text, "json")`` when it is JSON, else its repr."""
    if value is None:
        return "null", "json"
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        if len(text) <= MAX_VALUE_CHARS:
            return text, "json"
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the run
        text = f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "... (truncated)"
    return text, "repr"


def structure_of(plan: Plan) -> dict[str, Any]:
    """The compiled flow as JSON-able data: its steps and its statically known nodes.

    ``steps`` holds one dict per definition, in definition order: ``path``, ``order``, and
    only the options not left at their defaults (``parent`` for a child step, ``kind`` for a
    container, ``func``, ``requires``, ``repeats``, ``delay``, ``retries``, ...);
    ``nodes`` holds ``[path, sequence, item]`` per step instance in definition order, ``item``
    being the repr of the container iteration's value (None without repeats).
    """
    steps: list[dict[str, Any]] = []

    def visit(step: StepDef, parent: str | None) -> None:
        entry: dict[str, Any] = {"path": step.path_name, "order": step.order}
        if parent is not None:
            entry["parent"] = parent
        if step.children:
            entry["kind"] = "container"
        if step.func is not None:
            entry["func"] = _callable_name(step.func)
        requires = _expression(step.requires)
        if requires is not None:
            entry["requires"] = requires
        if step.repeats is not None:
            entry["repeats"] = _repeats(step.repeats)
        for name in ("delay", "retries", "retry_delay", "timeout"):
            value = getattr(step, name)
            if value:
                entry[name] = value
        if step.hosts:
            entry["hosts"] = list(step.hosts)
        if step.acquires:
            entry["acquires"] = [[pool.name, amount] for pool, amount in step.acquires]
        if step.releases is not None:
            entry["releases"] = [[pool.name, amount] for pool, amount in step.releases]
        recovery = {
            status.value: replay.value
            for status, replay in step.recovery.items()
            if DEFAULT_RECOVERY.get(status) is not replay
        }
        if recovery:
            entry["recovery"] = recovery
        if step.config:
            entry["config"] = dict(step.config)
        steps.append(entry)
        for child in step.children:
            visit(child, step.path_name)

    for step in plan.flow.steps:
        visit(step, None)
    steps.sort(key=lambda entry: entry["order"])
    nodes = [
        [key.path, key.sequence, _item_text(spec.item)]
        for key, spec in sorted(plan.nodes.items(), key=lambda item: item[1].rank)
    ]
    return {"format": 1, "flow": plan.flow.name, "steps": steps, "nodes": nodes}


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], run_id: str) -> list[str]:
    """Messages naming the steps and nodes added, removed or changed between two structures."""
    notes: list[str] = []
    old_steps = {step["path"]: step for step in old.get("steps", ())}
    new_steps = {step["path"]: step for step in new.get("steps", ())}
    added = [path for path in new_steps if path not in old_steps]
    removed = [path for path in old_steps if path not in new_steps]
    compared = ("kind", "requires", "repeats")
    changed = [
        path
        for path in new_steps
        if path in old_steps
        and any(new_steps[path].get(field) != old_steps[path].get(field) for field in compared)
    ]
    old_nodes = [(node[0], node[1]) for node in old.get("nodes", ())]
    new_nodes = [(node[0], node[1]) for node in new.get("nodes", ())]
    old_set, new_set = set(old_nodes), set(new_nodes)
    nodes_added = [key for key in new_nodes if key not in old_set]
    nodes_removed = [key for key in old_nodes if key not in new_set]
    if not (added or removed or changed or nodes_added or nodes_removed):
        return notes
    notes.append(
        f"The flow's structure changed since run {run_id} was last recorded; nodes are matched "
        f"by (path, sequence)"
    )
    for label, paths in (("added", added), ("removed", removed), ("changed", changed)):
        if paths:
            notes.append(f"Steps {label}: {_listed(paths)}")
    for label, keys in (("added (will run)", nodes_added), ("removed (ignored)", nodes_removed)):
        if keys:
            notes.append(f"Nodes {label}: {_listed([f'{p}/{s}' for p, s in keys])}")
    return notes


def new_run_id() -> str:
    """A short random run id: 8 hexadecimal digits."""
    return secrets.token_hex(4)


# -- helpers ---------------------------------------------------------------------------------


def _check_file(path: str) -> None:
    """Raise ``StoreError`` unless ``path`` is empty or starts like an SQLite database."""
    if os.path.isdir(path):
        raise StoreError(
            f"the store {path!r} is a directory; pass the path of a store file, for example "
            f"{os.path.join(path, 'flow.run.db')!r}"
        )
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new store, created by the connection
    except OSError as exc:
        raise StoreError(f"cannot read the store {path!r} ({exc}); check its permissions") from exc
    if header and header != SQLITE_HEADER:
        raise StoreError(
            f"{path!r} is not a sequent store (it is not an SQLite database); nothing was "
            f"written to it. Pass the path of a sequent store, or of a new file"
        )


def _inspect(conn: sqlite3.Connection, path: str) -> int:
    """The schema version of the store on ``conn`` (0: empty, to be created); reads only.

    Raises ``StoreError`` for a damaged database, another application's database, or a store
    written by a newer sequent.
    """
    try:
        application = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        ]
        version = applied_version(conn) if MIGRATIONS_TABLE in tables else 0
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the store {path!r} is damaged or not a sequent store ({exc}); nothing was written "
            f"to it. Restore it from a copy, or pass another store path"
        ) from exc
    if MIGRATIONS_TABLE not in tables:
        if application == APPLICATION_ID:
            raise StoreError(
                f"the store {path!r} is damaged: it is marked as a sequent store but has no "
                f"{MIGRATIONS_TABLE} table; restore it from a copy, or pass another store path"
            )
        if tables or application:
            shown = ", ".join(tables[:8]) + (" ..." if len(tables) > 8 else "")
            raise StoreError(
                f"{path!r} is an SQLite database but not a sequent store (it holds tables "
                f"{shown or 'of another application'}); nothing was written to it. Pass the "
                f"path of a sequent store, or of a new file"
            )
        return 0
    if version > VERSION:
        raise StoreError(
            f"the store {path!r} has schema version {version}, newer than this sequent's "
            f"{VERSION}; upgrade sequent to use it"
        )
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"the store {path!r} is damaged ({exc}); restore it from a copy") from exc
    if version == VERSION and not set(EVENT_COLUMNS) <= columns:
        raise StoreError(
            f"the store {path!r} has the tables of a sequent store but not their columns (its "
            f"events table lacks {sorted(set(EVENT_COLUMNS) - columns)}); it was written by a "
            f"development version of sequent or altered by hand. Move it aside, or pass "
            f"another store path"
        )
    return version


def _insert_attempt(
    conn: sqlite3.Connection,
    run_id: str,
    attempt: int,
    mode: RunMode,
    started: float,
    executor: str,
    structure: str | None,
) -> None:
    conn.execute(
        "INSERT INTO attempts (run_id, attempt, mode, started, executor, host, pid, structure) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, attempt, mode.value, started, executor, HOST, os.getpid(), structure),
    )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _store_error(path: str, exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return StoreError(
            f"the store {path!r} stayed locked by another process for {WRITE_DEADLINE:.0f} s "
            f"({exc}); let the other run finish, or use another store path"
        )
    return StoreError(
        f"the store {path!r} could not be read or written ({type(exc).__name__}: {exc}); check "
        f"the disk and the file's permissions, or restore the file from a copy"
    )


_RUN_FIELDS = (
    "r.run_id, r.flow_name, r.mode, r.started, r.ended, r.result, r.executor, r.host, r.pid, "
    "r.user, r.python, r.sequent_version"
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
    """The structure JSON attempt ``attempt`` ran (default: the latest attempt)."""
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


def _expression(expr: Expr) -> Any:
    if isinstance(expr, Atom):
        return {"step": "_".join(expr.path), "status": expr.status.value}
    if isinstance(expr, AllOf):
        if not expr.items:
            return None
        if len(expr.items) == 1:
            return _expression(expr.items[0])
        return {"all": [_expression(item) for item in expr.items]}
    assert isinstance(expr, AnyOf)
    return {"any": [_expression(item) for item in expr.items]}


def _repeats(repeats: Any) -> Any:
    if repeats is None:
        return None
    if callable(repeats):
        return {"callable": _callable_name(repeats)}
    return {"count": len(repeats)}


def _callable_name(func: Any) -> str | None:
    if func is None:
        return None
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return f"{getattr(func, '__module__', None) or '?'}.{name}"
    return _item_text(func)


def _item_text(item: Any) -> str | None:
    if item is None:
        return None
    try:
        text = repr(item)
    except Exception as exc:
        text = f"<{type(item).__name__} whose repr raised {type(exc).__name__}>"
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 3] + "..."


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _sequent_version() -> str:
    from .. import __version__

    return __version__
