"""Placing Dask steps on the workers their ``hosts=`` name, as the workers come and go.

Part of the Dask backend (``dask.DaskExecutor`` takes these methods): a step's hosts are
resolved when it is submitted, against the roster of connected workers (``dask_hosts.Roster``),
which the scheduler's worker events refresh; a step whose hosts match no connected worker waits
for one in a thread of its own, at most its ``hosts_wait`` seconds, then fails. A task that
reached the scheduler restricted to workers that are gone (it never ran) is placed again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from . import dask_hosts
from .dask_results import Entry, Placement, failure
from .worker import Outcome, Task


class Placing:
    """Mutates the backend it is part of: its running entries; sends through its ``_send``."""

    _roster: dask_hosts.Roster
    _lock: threading.RLock
    _running: dict[str, Entry]

    #: The backend's own: send ``task`` to ``workers`` (``dask.DaskExecutor._send``).
    _send: Callable[
        [Task, Future[Outcome], tuple[str, ...] | None, list[str] | None, Placement], None
    ]

    def _place(
        self,
        task: Task,
        hosts: tuple[str, ...] | None,
        placement: Placement,
        future: Future[Outcome],
    ) -> None:
        """Send ``task`` to the workers ``hosts`` name now, or wait for one in a thread."""
        workers = None
        if hosts:
            try:
                workers = self._roster.resolve(hosts)
            except Exception as exc:  # noqa: BLE001 - the connection went: the step fails
                missed = dask_hosts.no_match(task.context.name, hosts)
                future.set_result(failure(f"ClusterError: {missed} ({exc})"))
                return
        if hosts and not workers:
            if not placement.hosts_wait:
                missed = dask_hosts.no_match(task.context.name, hosts)
                future.set_result(failure(f"UnknownHostError: {missed}"))
                return
            threading.Thread(
                target=self._await_hosts, args=(task, hosts, placement, future), daemon=True
            ).start()
            return
        self._send(task, future, hosts, workers, placement)

    def _await_hosts(
        self, task: Task, hosts: tuple[str, ...], placement: Placement, future: Future[Outcome]
    ) -> None:
        """Wait up to ``hosts_wait`` seconds for a worker that ``hosts`` names, then send.

        Woken by every change of the workers (``Roster.changed``), not by polling.
        """
        deadline = time.monotonic() + placement.hosts_wait
        while not future.done():
            try:
                found = self._roster.resolve(hosts)
            except Exception:  # noqa: BLE001 - the connection went; the step fails below
                break
            if found:
                self._send(task, future, hosts, found, placement)
                return
            if time.monotonic() >= deadline:
                break
            self._roster.wait_change(deadline)
        if not future.done():
            try:
                workers: list[Any] | None = self._roster.workers()
            except Exception:  # noqa: BLE001 - the message lists the workers if it can
                workers = None
            name, waited = task.context.name, placement.hosts_wait
            error = dask_hosts.no_match(name, hosts, workers, waited=waited)
            future.set_result(failure(f"UnknownHostError: {error}"))

    def _workers_event(self, event: Any) -> None:
        """A worker joined or left, or a task came restricted to workers that are gone (on
        Dask's loop): resolve hosts again; send such a task (it never ran) to today's workers."""
        _, info = event
        action = info.get("action") if isinstance(info, dict) else None
        if action in ("add-worker", "remove-worker", "stranded"):
            self._roster.changed()
        if action != "stranded":
            return
        with self._lock:
            stranded = [self._running.pop(key, None) for key in info.get("keys", ())]
            entries = [entry for entry in stranded if entry is not None]
            for entry in entries:
                entry.cancelled = True  # one the sender has not sent yet is never sent
        if entries:
            threading.Thread(target=self._resend, args=(entries,), daemon=True).start()

    def _resend(self, entries: list[Entry]) -> None:
        for entry in entries:
            with self._lock:
                task_future = entry.dask
            if task_future is not None:
                task_future.cancel()
            if not entry.future.done():
                self._place(entry.task, entry.hosts, entry.placement, entry.future)
