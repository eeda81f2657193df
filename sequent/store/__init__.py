"""Persistence: where runs, attempts and step instances are recorded (SQLite via sqlite-utils)."""

from __future__ import annotations

from typing import Any

from .memory import MemoryRecorder, MemorySession, MemoryStore, Record


def open_store(path: str) -> Any:
    """Open the store at ``path`` (``":memory:"`` for one that lives in this process)."""
    return MemoryStore(path)


__all__ = ["MemoryRecorder", "MemorySession", "MemoryStore", "Record", "open_store"]
