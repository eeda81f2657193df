"""Persistence: where runs, attempts and step instances are recorded (SQLite via sqlite-utils).

``open_store(path)`` is the entry the runner calls; ``SqliteStore`` also answers the read
queries the command line uses (``runs``, ``run``, ``attempts``, ``nodes``, ``events``,
``structure``). ``MemoryRecorder`` is a recorder that keeps changes in a list, for tests of the
scheduling core.
"""

from __future__ import annotations

from .memory import MemoryRecorder, MemorySession, MemoryStore, Record
from .schema import APPLICATION_ID, VERSION
from .sqlite import Recovery, SqliteSession, SqliteStore, encode_value, structure_of


def open_store(path: str) -> SqliteStore:
    """Open the store at ``path`` (``":memory:"`` for one that lives as long as this object).

    A file that does not exist yet is created by the first run. Raises ``StoreError`` when
    the file exists but is not a sequent store, or is damaged; the file is left unchanged.
    """
    return SqliteStore(path)


__all__ = [
    "APPLICATION_ID",
    "VERSION",
    "MemoryRecorder",
    "MemorySession",
    "MemoryStore",
    "Record",
    "Recovery",
    "SqliteSession",
    "SqliteStore",
    "encode_value",
    "open_store",
    "structure_of",
]
