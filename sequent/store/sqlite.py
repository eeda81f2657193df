"""The SQLite store: every run, attempt and step instance, recorded durably; recovery lookups.

``SqliteStore`` is the store one process holds per file: ``begin`` records the start of a run
or of a recover attempt and returns its recorder (``writer.SqliteSession``). The rooms:

    connection.py  opening (read-write or read-only), transactions, checkpoints
    files.py       is this file a sequent store? (before anything reads or writes it)
    schema.py      tables, views and migrations
    reading.py     read queries: runs, attempts, node rows, events, structures, recovery
    writer.py      the recorder of one attempt, and how values are stored
    sqlite.py      SqliteStore: all of the above, and starting a run

A file that is not a sequent store, or is damaged, raises ``StoreError`` before anything is
written; a recover with nothing to recover raises ``RecoveryError`` before anything is written.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import sqlite3
import sys
import time
from typing import Any

from ..compiler import Plan
from ..compiler.structure import describe_changes, structure_of
from ..errors import RecoveryError
from ..status import RunMode
from ..version import __version__
from .reading import Reader, Recovery
from .writer import SqliteSession, encode_value

HOST = socket.gethostname()


class SqliteStore(Reader):
    """Mutates one store file (or an in-memory database for ``":memory:"``).

    A path that does not exist is created by the first run, never by reading or recovering.
    ``readonly=True`` opens the file read-only: the queries work, ``begin`` raises
    ``StoreError``. Raises ``StoreError`` when the file exists but is not a sequent store or
    is damaged.
    """

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

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"


def new_run_id() -> str:
    """A short random run id: 8 hexadecimal digits."""
    return secrets.token_hex(4)



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


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _sequent_version() -> str:
    return __version__


__all__ = ["Recovery", "SqliteSession", "SqliteStore", "encode_value", "structure_of"]
