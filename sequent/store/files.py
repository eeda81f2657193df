"""Checks that a file is a sequent store before anything reads or writes it; reads only.

``check_file`` looks at the file's first bytes (a folder, or a file that is not SQLite, is
refused before SQLite opens it); ``inspect`` reads the open database's application id, tables
and schema version. Both raise ``StoreError`` naming the file and what to do; neither writes.
"""

from __future__ import annotations

import os
import sqlite3

from ..errors import StoreError
from .schema import APPLICATION_ID, EVENT_COLUMNS, MIGRATIONS_TABLE, VERSION, applied_version

SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: str) -> None:
    """Raise ``StoreError`` unless ``path`` is missing, empty or starts like an SQLite database."""
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


def inspect(conn: sqlite3.Connection, path: str) -> int:
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
        _check_foreign(path, application, tables)
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


def _check_foreign(path: str, application: int, tables: list[str]) -> None:
    """Raise ``StoreError`` for a database without the migrations table that is not empty."""
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
