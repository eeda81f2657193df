"""The recorder interface the scheduling core reports to, and an in-memory recorder.

Mutates only its own list of records. The SQLite store implements the same calls durably.
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


class MemorySession(MemoryRecorder):
    """One run recorded in memory (no recovery across processes)."""

    def __init__(self, run_id: str, attempt: int, previous: Mapping[NodeKey, StepStatus]) -> None:
        super().__init__(previous)
        self.run_id = run_id
        self.attempt = attempt
        self.result: bool | None = None

    def finish(self, result: bool) -> None:
        """Note the run's result."""
        self.result = result


class MemoryStore:
    """Runs kept in this process only; recover works within one process."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self.runs: dict[str, list[MemorySession]] = {}
        self.names: dict[str, str] = {}

    def begin(
        self,
        plan: Any,
        *,
        flow_name: str,
        mode: Any,
        recovery_run: str | None = None,
        executor: str = "",
    ) -> MemorySession:
        """Start a run (or an attempt of one being recovered)."""
        from ..errors import RecoveryError
        from ..status import RunMode

        if mode is RunMode.recover:
            candidates = [rid for rid, name in self.names.items() if name == flow_name]
            run_id = recovery_run or (candidates[-1] if candidates else None)
            if run_id is None or run_id not in self.runs:
                which = f"with id {recovery_run!r}" if recovery_run else f"of flow {flow_name!r}"
                raise RecoveryError(
                    f"nothing to recover: the store {self.path!r} holds no run {which}"
                )
            previous: dict[NodeKey, StepStatus] = {}
            for session in self.runs[run_id]:
                previous.update(session.statuses())
            session = MemorySession(run_id, len(self.runs[run_id]), previous)
            self.runs[run_id].append(session)
            return session
        import uuid

        run_id = uuid.uuid4().hex[:12]
        session = MemorySession(run_id, 0, {})
        self.runs[run_id] = [session]
        self.names[run_id] = flow_name
        return session

    def close(self) -> None:
        """Nothing to release."""
