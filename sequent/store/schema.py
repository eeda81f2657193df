"""The store's schema and its migrations (sqlite-utils), and the check that a file is a store.

Mutates nothing but the database handed to ``migrate``. A file is a sequent store when its
``PRAGMA application_id`` is ``APPLICATION_ID`` and it holds the ``sequent_migrations`` table;
the table lists every migration applied, so the schema version is its highest ``version``.

Status changes are the record: ``events`` is append-only, one row per change, and the views
derive one row per step instance from it, so recording a change appends one row.

    version 1:  runs ─< attempts ─< events       (append-only status changes, with outcomes)
                     └────────────< expansions   (nodes created at run time)
                nodes        (view: one row per step instance and attempt, from its events)
                latest_nodes (view: one row per step instance, from its latest attempt)
    version 2:  events.worker, events.marked_by, events.reason   (Dask worker; manual marks)
                attempts.logdir, attempts.heartbeat               (where its logs are; liveness)
                leases       (one row per run being run: which orchestrator holds it)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..status import TERMINAL as status_TERMINAL

if TYPE_CHECKING:
    import sqlite_utils

#: ``PRAGMA application_id`` of a sequent store: the bytes ``SQNT``.
APPLICATION_ID = 0x53514E54

#: The table that lists applied migrations; its presence marks a sequent store.
MIGRATIONS_TABLE = "sequent_migrations"

#: Columns of ``events``, in order; (run_id, attempt, seq) is the key.
EVENT_COLUMNS = (
    "run_id",
    "attempt",
    "seq",
    "path",
    "sequence",
    "kind",
    "status",
    "time",
    "retry",
    "error",
    "replayed",
    "started",
    "ended",
    "pid",
    "host",
    "traceback",
    "value",
    "value_format",
)

#: Columns of ``expansions``, in the order the recorder writes them.
EXPANSION_COLUMNS = (
    "run_id",
    "attempt",
    "path",
    "sequence",
    "parent_path",
    "parent_sequence",
    "ordinal",
    "item",
    "step_order",
)

#: Statuses after which nothing more happens to a step instance.
TERMINAL = tuple(status.value for status in status_TERMINAL)  # ("success", ..., "interrupted")

_NODES_VIEW = f"""
SELECT run_id, attempt, path, sequence, kind, status, ready, started, ended,
       ended - started AS duration, pid, host, executor, retry, error, traceback, replayed,
       value, value_format
FROM (
    SELECT e.run_id, e.attempt, e.path, e.sequence, e.kind, e.status, g.ready,
           COALESCE(e.started, g.activated) AS started,
           COALESCE(e.ended, CASE WHEN e.status IN {TERMINAL} THEN e.time END) AS ended,
           e.pid, e.host, a.executor, e.retry, e.error, e.traceback, e.replayed, e.value,
           e.value_format
    FROM (
        SELECT run_id, attempt, path, sequence, MAX(seq) AS last,
               MIN(CASE WHEN status = 'ready' THEN time END) AS ready,
               MAX(CASE WHEN status = 'active' THEN time END) AS activated
        FROM events GROUP BY run_id, attempt, path, sequence
    ) AS g
    JOIN events AS e ON e.run_id = g.run_id AND e.attempt = g.attempt AND e.seq = g.last
    LEFT JOIN attempts AS a ON a.run_id = e.run_id AND a.attempt = e.attempt
)
"""

_LATEST_NODES_VIEW = """
SELECT n.* FROM nodes AS n
JOIN (
    SELECT run_id, path, sequence, MAX(attempt) AS attempt
    FROM events GROUP BY run_id, path, sequence
) AS l USING (run_id, path, sequence, attempt)
"""


def _version_1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "run_id": str,
            "flow_name": str,
            "mode": str,
            "started": float,
            "ended": float,
            "result": int,
            "executor": str,
            "host": str,
            "pid": int,
            "user": str,
            "python": str,
            "sequent_version": str,
            "structure": str,
        },
        pk="run_id",
        not_null={"flow_name", "mode", "started"},
    )
    db.table("runs").create_index(["flow_name", "started"], index_name="runs_by_flow")
    db.table("attempts").create(
        {
            "run_id": str,
            "attempt": int,
            "mode": str,
            "started": float,
            "ended": float,
            "result": int,
            "executor": str,
            "host": str,
            "pid": int,
            "structure": str,
        },
        pk=("run_id", "attempt"),
        not_null={"mode", "started"},
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    # WITHOUT ROWID, keyed (run_id, attempt, seq): a run's events are stored together, in
    # order, so reading a run needs no other index, and recording a round appends to one page.
    events = db.create_table_sql(
        "events",
        {
            "run_id": str,
            "attempt": int,
            "seq": int,
            "path": str,
            "sequence": str,
            "kind": str,
            "status": str,
            "time": float,
            "retry": int,
            "error": str,
            "replayed": int,
            "started": float,
            "ended": float,
            "pid": int,
            "host": str,
            "traceback": str,
            "value": str,
            "value_format": str,
        },
        pk=("run_id", "attempt", "seq"),
        not_null={"path", "sequence", "status", "time"},
        defaults={"retry": 0, "replayed": 0},
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.execute(events.strip().rstrip(";") + " WITHOUT ROWID")
    db.table("expansions").create(
        {
            "run_id": str,
            "attempt": int,
            "path": str,
            "sequence": str,
            "parent_path": str,
            "parent_sequence": str,
            "ordinal": int,
            "item": str,
            "step_order": int,
        },
        pk=("run_id", "attempt", "path", "sequence"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.create_view("nodes", _NODES_VIEW)
    db.create_view("latest_nodes", _LATEST_NODES_VIEW)


def _version_2(db: sqlite_utils.Database) -> None:
    # Nullable columns, so rows written before them read as NULL: ``worker`` names the Dask
    # worker (name or address) that ran a try; ``marked_by``/``reason`` are set on an event that
    # an operator recorded by hand (``sequent mark``); ``logdir`` is the folder of an attempt's
    # logs; ``heartbeat`` is the last time the attempt's orchestrator said it was alive.
    db.execute("ALTER TABLE events ADD COLUMN worker TEXT")
    db.execute("ALTER TABLE events ADD COLUMN marked_by TEXT")
    db.execute("ALTER TABLE events ADD COLUMN reason TEXT")
    db.execute("ALTER TABLE attempts ADD COLUMN logdir TEXT")
    db.execute("ALTER TABLE attempts ADD COLUMN heartbeat REAL")
    db.table("leases").create(
        {
            "run_id": str,
            "attempt": int,
            "host": str,
            "pid": int,
            "user": str,
            "started": float,
            "heartbeat": float,
        },
        pk="run_id",
        not_null={"attempt", "host", "pid", "started", "heartbeat"},
        foreign_keys=[("run_id", "runs", "run_id")],
    )


#: Every migration in order: (version, what it does, how). Append only; never edit one.
MIGRATIONS: tuple[tuple[int, str, Callable[[sqlite_utils.Database], None]], ...] = (
    (1, "runs, attempts, events, expansions; views nodes, latest_nodes", _version_1),
    (2, "events.worker/marked_by/reason, attempts.logdir/heartbeat, leases", _version_2),
)

#: The schema version this sequent writes.
VERSION = MIGRATIONS[-1][0]


def applied_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to the database on ``conn`` (0 for an empty database)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute(f"SELECT MAX(version) FROM {MIGRATIONS_TABLE}").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the migrations the database on ``conn`` lacks, inside the caller's transaction.

    Returns the versions applied (none when the schema is current). sqlite-utils is imported
    only when there is something to apply: a store at the current version opens without it.
    """
    current = applied_version(conn)
    if current >= VERSION:
        return []
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    if current == 0:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.table(MIGRATIONS_TABLE).create(
            {"version": int, "name": str, "applied": float}, pk="version", not_null={"name"}
        )
    applied = []
    for version, name, apply in MIGRATIONS:
        if version > current:
            apply(db)
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied) VALUES (?, ?, ?)",
                (version, name, time.time()),
            )
            applied.append(version)
    return applied
