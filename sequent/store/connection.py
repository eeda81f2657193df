"""The store's connection: opening a file (read-write or read-only), transactions, checkpoints.

Mutates the store file only through ``_write`` (one ``BEGIN IMMEDIATE`` transaction) and
``_statement`` (one statement, its own transaction). The file is in WAL mode with
``synchronous=NORMAL``: a commit survives the orchestrator being killed (even ``kill -9``); the
last commits may be lost only if the machine itself goes down. Writers wait for the write lock
(busy timeout, then retries with back-off), so several processes can record into one file.
A read-only connection (SQLite ``mode=ro``) refuses every write with ``StoreError``.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..errors import StoreError
from .checks import check_tables
from .files import check_file, inspect
from .readonly import connect_readonly, migrated_copy
from .schema import VERSION, migrate

T = TypeVar("T")
D = TypeVar("D", bound="Database")

log = logging.getLogger("sequent")

#: How long one statement waits for another process's write lock (SQLite's busy handler).
BUSY_TIMEOUT = 10.0
#: How long a write keeps retrying while the file stays locked, in all.
WRITE_DEADLINE = 120.0
#: Commits between two checkpoints of the write-ahead log (each commit adds a few pages).
CHECKPOINT_EVERY = 1000
#: Size the write-ahead log is truncated to after a checkpoint, in bytes.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class Database:
    """Mutates one store file (or an in-memory database for ``":memory:"``) through its writes.

    A path that does not exist is created by the first write, never by reading. With
    ``readonly`` the file is opened with SQLite's ``mode=ro`` and every write raises
    ``StoreError``. Raises ``StoreError`` when the file exists but is not a sequent store or
    is damaged (read-only: also when it was written by an older sequent, not yet migrated).
    """

    def __init__(self, path: str = ":memory:", readonly: bool = False) -> None:
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._commits = 0
        self._checkpointer: _Checkpointer | None = None
        if self.memory or os.path.exists(self.path):
            self._open()

    @property
    def exists(self) -> bool:
        """True when the store holds a database (a file store is created by its first run)."""
        return self._conn is not None

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self.readonly:
            self._conn = _open_readonly(self.path, self.memory)
            return self._conn
        path = self.path
        if not self.memory:
            check_file(path)
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
            version = inspect(conn, path)
            self._configure(conn)
            self._conn = conn
            if version < VERSION:
                self._write(migrate)
            else:
                check_tables(conn, path)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        if not self.memory:
            self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        if not self.memory:
            # Checkpoints (copying the WAL into the file, with an fsync) run in a thread of
            # their own, off the path between a step ending and its dependents starting.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")

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
        ``StoreError`` for a database error or a read-only store; whatever ``body`` raises
        otherwise propagates after the rollback, so nothing is written.
        """
        self._check_writable()
        conn = self._conn
        assert conn is not None

        def transaction() -> T:
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
                result = self._retry(transaction)
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc
            self._committed()
            return result

    def _statement(self, sql: str, values: list[Any]) -> None:
        """Run one write statement as its own transaction, retrying while the file is locked."""
        self._check_writable()
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

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"the store {self.path!r} is open read-only; nothing was written")

    def _committed(self) -> None:
        """Count a commit; every ``CHECKPOINT_EVERY`` commits, wake the checkpoint thread."""
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and not self.memory:
            self._commits = 0
            self.checkpoint()

    def checkpoint(self) -> None:
        """Ask for the write-ahead log to be copied into the file, in the background."""
        if self.memory or self.readonly or self._conn is None:
            return
        if self._checkpointer is None or not self._checkpointer.is_alive():
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()
        self._checkpointer.wake.set()

    def connect_beside(self) -> sqlite3.Connection:
        """A connection of its own to the store file, for a thread writing beside the recorder."""
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        return conn

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        assert conn is not None
        with self._lock:
            try:
                return self._retry(lambda: body(conn))
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

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

    def __enter__(self: D) -> D:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_readonly(path: str, memory: bool) -> sqlite3.Connection:
    """A connection that reads the store file at ``path``, checked, at the current schema.

    Works in read-only folders and on read-only media (see ``readonly``); a store an older
    sequent wrote is read from a copy migrated in memory, so the file is never written.
    """
    if memory:
        raise StoreError("an in-memory store cannot be opened read-only")
    check_file(path)
    conn = connect_readonly(path, BUSY_TIMEOUT)
    try:
        version = inspect(conn, path)
        if 0 < version < VERSION:
            conn = migrated_copy(conn)
        check_tables(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise _store_error(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


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
