"""Opening a store file for reading only, wherever it is: read-only folders, media, old schemas.

Reads only; the file is never written, not even its ``-shm`` or ``-wal`` beside it:

    mode=ro ──────────────── works where SQLite can use (or make) the WAL's -shm file
      └─ cannot (the folder is read-only) ── no -wal holding changes ──> immutable=1
                                          └─ a -wal holding changes ──> StoreError
    older schema ──> the database copied into memory and migrated there (the file unchanged)

``immutable=1`` tells SQLite the file cannot change, so it takes no locks and ignores any
write-ahead log: it is used only when the file alone holds everything (no ``-wal``, or an
empty one), which is the state a store is left in when its last run closes it.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from ..errors import StoreError
from .schema import migrate


def connect_readonly(path: str, timeout: float) -> sqlite3.Connection:
    """A connection that reads the store file at ``path`` and cannot write it.

    Raises ``StoreError`` when SQLite cannot open it, or when its folder is read-only and a
    write-ahead log beside it holds changes that a read of the file alone would miss.
    """
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    try:
        conn = _connect(uri, timeout)
    except sqlite3.OperationalError as exc:
        if not _shm_refused(exc):
            raise StoreError(f"cannot open the store {path!r} read-only ({exc})") from exc
    else:
        return conn
    wal = f"{path}-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise StoreError(
            f"cannot read the store {path!r}: its write-ahead log {wal!r} holds changes not yet "
            f"in the file, and SQLite cannot read them from a folder it cannot write (it needs "
            f"to make {path + '-shm'!r}); copy the store with its -wal file to a writable folder, "
            f"or open it once where it is writable"
        )
    try:
        return _connect(uri + "&immutable=1", timeout)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path!r} read-only ({exc})") from exc


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    """An ``uri`` connection, made to read the schema now (so opening errors show here)."""
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def _shm_refused(exc: sqlite3.OperationalError) -> bool:
    """True for the errors SQLite gives when it cannot make a WAL store's -shm file."""
    text = str(exc).lower()
    return "readonly database" in text or "unable to open" in text


def migrated_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of the database on ``conn``, migrated to the current schema.

    For reading a store an older sequent wrote without writing it; ``conn`` is closed.
    """
    copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.backup(copy)
        copy.execute("BEGIN IMMEDIATE")
        migrate(copy)
        copy.execute("COMMIT")
    except BaseException:
        copy.close()
        raise
    finally:
        conn.close()
    return copy
