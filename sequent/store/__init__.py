"""Persistence: where runs, attempts and step instances are recorded (SQLite via sqlite-utils).

``open_store(path)`` is the entry the runner calls; ``open_store(path, readonly=True)`` (or the
``read_store`` context manager) opens a file for the command line and the report without ever
writing to it. ``SqliteStore`` answers the read queries (``runs``, ``run``, ``attempts``,
``nodes``, ``events``, ``structure``). ``MemoryRecorder`` keeps a run's changes in a list, for
tests of the scheduling core. The modules, one job each, are listed in ``sqlite.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..compiler.structure import structure_of
from ..errors import StoreError
from .memory import MemoryRecorder, Record
from .reading import Recovery
from .schema import APPLICATION_ID, VERSION
from .sqlite import SqliteStore
from .writer import SqliteSession, encode_value


def open_store(path: str | os.PathLike[str], readonly: bool = False) -> SqliteStore:
    """Open the store at ``path`` (``":memory:"`` for one that lives as long as this object).

    A file that does not exist yet is created by the first run (read-only: the store holds no
    run). With ``readonly`` nothing is ever written to the file, not even a migration. Raises
    ``StoreError`` when the file exists but is not a sequent store, or is damaged (read-only:
    also when an older sequent wrote it and a run must migrate it first); the file is left
    unchanged.
    """
    return SqliteStore(os.fspath(path), readonly=readonly)


@contextlib.contextmanager
def read_store(path: str | os.PathLike[str], missing_ok: bool = False) -> Iterator[SqliteStore]:
    """Open the store file at ``path`` read-only for the ``with`` block; close it after.

    Raises ``StoreError`` as ``open_store(path, readonly=True)`` does, and when ``path`` does
    not exist (unless ``missing_ok``: then yields a store that holds no run).
    """
    with open_store(path, readonly=True) as store:
        if not store.exists and not missing_ok:
            raise StoreError(
                f"no store at {os.fspath(path)!r}; pass the path of a flow's .run.db file (a "
                f"flow named by its script records into <script>.run.db next to it)"
            )
        yield store


__all__ = [
    "APPLICATION_ID",
    "VERSION",
    "MemoryRecorder",
    "Record",
    "Recovery",
    "SqliteSession",
    "SqliteStore",
    "encode_value",
    "open_store",
    "read_store",
    "structure_of",
]
