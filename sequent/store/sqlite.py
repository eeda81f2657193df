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
from collections.abc import Callable
from typing import Any

from ..compiler import Plan
from ..compiler.structure import decoded, describe_changes, structure_of
from ..errors import RecoveryError
from ..status import RunMode, StepStatus
from ..version import __version__
from . import lease
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
        logs: Callable[[str, str | None], str] | None = None,
        force: bool = False,
    ) -> SqliteSession:
        """Record the start of a run (attempt 0) or of a recover attempt; return its recorder.

        The attempt takes the run's lease (``force``: even from a holder that looks alive);
        its recorder keeps it alive (see ``lease``). ``logs(run_id, recorded)``, called inside
        the transaction, makes the log folder and returns it for ``attempts.logdir``;
        ``recorded`` is the folder the run's latest attempt recorded (a recover), else None.

        Raises ``RecoveryError`` in recover mode when there is no run to recover,
        ``LeaseError`` when another orchestrator holds the run, ``StoreError`` when the store
        cannot be read or written, and whatever ``logs`` raises; nothing is written then.
        """
        structure = structure_of(plan)
        if mode is RunMode.recover:
            return self._begin_recover(
                plan, structure, flow_name, recovery_run, executor, logs, force
            )
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
            lease.claim(conn, run_id, 0, store=self.path, started=now)
            if logs is not None:
                _record_logdir(conn, run_id, 0, logs(run_id, None))
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
        logs: Callable[[str, str | None], str] | None,
        force: bool,
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
            mine = decoded(json.loads(text))  # the per-node view, as found.structure is
            if found.structure is not None:
                notes += describe_changes(found.structure, mine, found.run_id)
            # NULL: the same structure as the attempt before (see reading._structure).
            own = None if mine == found.structure else text
            _insert_attempt(conn, found.run_id, found.attempt, RunMode.recover, now, executor, own)
            took_over = lease.claim(
                conn, found.run_id, found.attempt, store=self.path, started=now, force=force
            )
            if took_over:
                notes.insert(0, took_over)
            if executor != "dask" and not force:
                _check_no_orphans_on_a_cluster(conn, found)
            if logs is not None:
                _record_logdir(conn, found.run_id, found.attempt, logs(found.run_id, found.logdir))
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


def _check_no_orphans_on_a_cluster(conn: sqlite3.Connection, found: Recovery) -> None:
    """Refuse (``RecoveryError``) a recover off Dask of a run whose last attempt ran on a Dask
    cluster and may have left step bodies running there: its orchestrator died (the attempt
    never ended; what it started may not be recorded yet) or it left steps ``ready``,
    ``active`` or ``interrupted`` (an interrupted Dask task runs on). Only a recover on that
    cluster waits for them or cancels them: never run twice at once (SPEC 3.2)."""
    last = conn.execute(
        "SELECT attempt, executor, ended FROM attempts WHERE run_id = ? AND mode != 'mark' "
        "AND attempt < ? ORDER BY attempt DESC LIMIT 1",  # (a mark's attempt runs nothing)
        (found.run_id, found.attempt),
    ).fetchone()
    if last is None or last[1] != "dask":
        return
    left = sorted(f"{key.path}/{key.sequence}" for key, status in found.previous.items()
                  if status in _MAY_RUN_ON)  # fmt: skip
    if last[2] is not None and not left:
        return
    shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
    what = f"{shown} may still run there" if left else "steps it started may still run there"
    why = "its orchestrator stopped" if last[2] is None else "it ended"
    raise RecoveryError(
        f"run {found.run_id}'s attempt {last[0]} ran on a Dask cluster and {why} with steps "
        f"unfinished: {what}. Recover on that cluster (sequent recover ... --address "
        f"tcp://HOST:PORT, or executor=DaskExecutor(address=...)) so they are waited for or "
        f"cancelled, or recover with --force (force=True) to run them again now"
    )


#: Statuses of a step whose Dask task may still run after its attempt (an interrupted task runs on).
_MAY_RUN_ON = (StepStatus.ready, StepStatus.active, StepStatus.interrupted)


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


def _record_logdir(conn: sqlite3.Connection, run_id: str, attempt: int, logdir: str) -> None:
    conn.execute(
        "UPDATE attempts SET logdir = ? WHERE run_id = ? AND attempt = ?", (logdir, run_id, attempt)
    )


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _sequent_version() -> str:
    return __version__


__all__ = ["Recovery", "SqliteSession", "SqliteStore", "encode_value", "structure_of"]
