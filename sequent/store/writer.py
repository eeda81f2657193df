"""The store's writer: one recorder per attempt, buffering status changes until ``flush``.

Mutates the ``events``, ``expansions``, ``attempts`` and ``runs`` rows of one attempt, and
nothing else. The scheduling core reports to a ``SqliteSession``:

    Scheduler ──node()/expanded()──> session buffers (one event row per status change)
              ──flush()────────────> one multi-row INSERT of the events buffered since the
                                     last flush (more than 8: BEGIN IMMEDIATE; executemany;
                                     COMMIT); the core flushes when something depends on
                                     them (executors/commits.py), at most 1 s after a change
              ──finish(result)─────> attempt and run rows closed

Recording appends to ``events`` only. Values are stored as JSON or as their ``repr``, never
pickled: reading a store never runs code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..compiler import NodeKey, NodeSpec, Plan
from ..compiler.structure import item_text
from ..errors import StoreError
from ..status import StepStatus
from . import lease
from .connection import Database
from .schema import EVENT_COLUMNS, EXPANSION_COLUMNS

#: Longest value text kept; longer values are kept as a truncated ``repr``.
MAX_VALUE_CHARS = 1_000_000

log = logging.getLogger("sequent")

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


class SqliteSession:
    """Mutates the records of one attempt of one run: buffers status changes, commits on flush.

    ``previous`` maps each node of the run being recovered to its latest recorded status
    (empty for a fresh run); ``differences`` are messages about structure changes since the
    attempt being recovered, for the run log.
    """

    def __init__(
        self,
        store: Database,
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
        self._workers: list[tuple[int, str]] = []  # (index in _events, Dask worker)
        self._seq = 0  # the seq of the next event to commit
        # The run's lease (taken by begin): held while this attempt records, kept alive by a
        # heartbeat thread on a connection of its own (an in-memory store needs none: no other
        # process can see it).
        self._heartbeat: lease.Heartbeat | None = None
        lease.hold(store.path, run_id)
        if not store.memory:
            self._heartbeat = lease.Heartbeat(store.connect_beside, run_id, attempt)
            self._heartbeat.start()
        #: What tells the scheduler that another orchestrator took the run over (None for an
        #: in-memory store, which no other process can see).
        self.lease_watch = self._heartbeat

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
        worker = getattr(outcome, "worker", None)
        if worker:  # the Dask worker that ran it, set by the UPDATE that follows the INSERT
            self._workers.append((len(self._events), worker))
        elif error is None and outcome.error is None and not outcome.traceback and not replayed:
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
                    item_text(spec.item),
                    spec.step.order,
                )
            )

    def flush(self) -> None:
        """Commit everything buffered since the last flush in one transaction."""
        events = self._events
        if not events and not self._expansions:
            return
        if self._expansions or self._workers or len(events) > _ONE_STATEMENT_ROWS:
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
        if self._workers:
            conn.executemany(
                "UPDATE events SET worker = ? WHERE run_id = ? AND attempt = ? AND seq = ?",
                [
                    (worker, self.run_id, self.attempt, self._seq + offset)
                    for offset, worker in self._workers
                ],
            )

    def _clear(self) -> None:
        # Only after the commit: a transaction retried (another writer held the lock) or
        # failed keeps everything buffered.
        self._seq += len(self._events)
        self._events.clear()
        self._expansions.clear()
        self._workers.clear()

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
            conn.execute(  # the run's end is its latest attempt's: not one taken over from
                "UPDATE runs SET ended = ?, result = ? WHERE run_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM attempts WHERE run_id = ? AND attempt > ?)",
                (now, int(result), self.run_id, self.run_id, self.attempt),
            )
            lease.release(conn, self.run_id, self.attempt)

        try:
            self.store._write(write)
        finally:
            self._let_go()
        self._clear()
        self.store.checkpoint()

    def _let_go(self) -> None:
        """Stop the heartbeat: this process no longer holds the run (a row left goes stale)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        lease.drop(self.store.path, self.run_id)

    @contextlib.contextmanager
    def releasing(self) -> Iterator[SqliteSession]:
        """Release the run's lease when the block ends, however it ends (if ``finish`` did not)."""
        try:
            yield self
        finally:
            if self.result is None:
                self._let_go()
                try:
                    self.store._write(lambda conn: lease.release(conn, self.run_id, self.attempt))
                except StoreError as exc:
                    log.warning("The lease of run %s was not released: %s", self.run_id, exc)

    def __repr__(self) -> str:
        return f"SqliteSession({self.run_id!r}, attempt={self.attempt})"


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
