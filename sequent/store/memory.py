"""An in-memory recorder: the calls the scheduling core reports to, kept in a list, for tests.

Mutates only its own list of records. ``writer.SqliteSession`` implements the same calls durably.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs

from ..compiler import NodeKey, NodeSpec
from ..status import StepStatus


@attrs.define
class Record:
    """One reported status change of a step instance."""

    key: NodeKey
    status: StepStatus
    time: float
    error: str | None = None
    replayed: bool = False
    retry: int = 0
    outcome: Any = None


class MemoryRecorder:
    """Keeps every reported change in ``records``, in order; ``flush`` counts commits."""

    def __init__(self, previous: Mapping[NodeKey, StepStatus] | None = None) -> None:
        self.records: list[Record] = []
        self.flushes = 0
        self.expansions: list[NodeSpec] = []
        self.previous = dict(previous or {})

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
        """Append one change."""
        self.records.append(Record(key, status, time.time(), error, replayed, retry, outcome))

    def expanded(self, specs: list[NodeSpec]) -> None:
        """Note nodes expanded at run time."""
        self.expansions.extend(specs)

    def flush(self) -> None:
        """Nothing to commit in memory; counted for tests."""
        self.flushes += 1

    def statuses(self) -> dict[NodeKey, StepStatus]:
        """The latest status of every reported node."""
        return {record.key: record.status for record in self.records}
