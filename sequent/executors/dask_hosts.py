"""Which Dask workers a step's ``hosts=[...]`` means, decided against the connected workers.

An entry matches a worker by its name, its address (with or without ``tcp://``), its host (the
IP in its address) or the host name of its machine; an entry that is a host name or IP also
matches every worker whose IP it resolves to (``localhost`` matches workers on 127.0.0.1).
The result is a list of worker addresses, handed to Dask as ``workers=`` with no fallback.

Addresses change when a worker restarts (a nanny brings it back on a new port under the same
name), so a step's hosts are resolved when the step is submitted, against a ``Roster``: the
connected workers, cached, and dropped when the scheduler says a worker joined or left.

    scheduler event (a worker joined/left) ──> Roster.changed(): cache dropped, waiters woken
    submit(step) ──> Roster.resolve(hosts): cached addresses, or one fetch after a change

Mutates nothing but a ``Roster``'s own cache.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class WorkerInfo:
    """One connected worker, as ``hosts=`` may name it."""

    address: str
    name: str
    host: str
    hostname: str

    @property
    def label(self) -> str:
        return self.address if self.name == self.address else f"{self.name} ({self.address})"


def connected_workers(client: Any) -> list[WorkerInfo]:
    """The workers connected to ``client``'s scheduler now, with their machines' host names."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    try:
        names = client.run(socket.gethostname, on_error="return") if workers else {}
    except Exception:  # noqa: BLE001 - a host name is a convenience; names and IPs still match
        names = {}
    return [
        WorkerInfo(
            address=address,
            name=str(info.get("name", address)),
            host=str(info.get("host", "")),
            hostname=str(names.get(address)) if isinstance(names.get(address), str) else "",
        )
        for address, info in sorted(workers.items())
    ]


def _addresses_of(entry: str) -> set[str]:
    try:
        return set(socket.gethostbyname_ex(entry)[2])
    except (OSError, UnicodeError):
        return set()


def matching(entries: Iterable[str], workers: Iterable[WorkerInfo]) -> list[str]:
    """The addresses of the workers any of ``entries`` names, in the workers' order."""
    workers = list(workers)
    found: list[str] = []
    for entry in entries:
        text = str(entry).strip()
        bare = text.split("://", 1)[-1]
        ips: set[str] | None = None
        for worker in workers:
            hit = text in (worker.name, worker.address) or bare == worker.address.split("://")[-1]
            hit = hit or bare == worker.host
            hit = hit or bool(worker.hostname) and bare.lower() == worker.hostname.lower()
            if not hit and ":" not in bare:
                ips = _addresses_of(bare) if ips is None else ips
                hit = worker.host in ips
            if hit and worker.address not in found:
                found.append(worker.address)
    return found


def describe(workers: Iterable[WorkerInfo]) -> str:
    """The connected workers, for an error message."""
    shown = [
        f"{w.label} on {w.hostname or w.host}" if (w.hostname or w.host) else w.label
        for w in workers
    ]
    return ", ".join(shown) if shown else "no workers"


def unmatched(
    steps: Mapping[str, tuple[str, ...]], workers: list[WorkerInfo]
) -> dict[str, list[str]]:
    """For each step path whose hosts hold an entry that names no worker: those entries."""
    found: dict[str, list[str]] = {}
    for path, hosts in steps.items():
        missing = [entry for entry in hosts if not matching([entry], workers)]
        if missing:
            found[path] = missing
    return found


def entries(hosts: tuple[str, ...], missing: list[str]) -> str:
    """Which entries of ``hosts`` match no worker, in words (for an error or a warning)."""
    if len(missing) == len(hosts):
        return f"hosts={list(hosts)} match no worker"
    named = ", ".join(repr(entry) for entry in missing)
    verb = "matches" if len(missing) == 1 else "match"
    return f"hosts={list(hosts)}: {named} {verb} no worker"


def no_match(
    step: str, hosts: tuple[str, ...], workers: list[WorkerInfo] | None = None, waited: float = 0
) -> str:
    """Why ``step`` was not sent: no connected worker (within ``waited`` seconds) matches."""
    within = f" joined within {waited:g} s" if waited else " is connected"
    shown = f" (workers: {describe(workers)})" if workers is not None else ""
    return f"step {step!r}: no worker matching hosts={list(hosts)}{within}{shown}"


class Roster:
    """Mutates only itself: the connected workers and the addresses each ``hosts`` means, cached
    until ``changed()`` (a worker joined or left) drops them.

    ``fetch`` asks the scheduler for the workers (a round trip): it runs at the first use and
    at the first use after a change, never under the lock (``changed`` is called on Dask's
    event loop, which ``fetch`` needs).
    """

    def __init__(self, fetch: Callable[[], list[WorkerInfo]]) -> None:
        self._fetch = fetch
        self._changed = threading.Condition()
        self._generation = 0
        self._workers: list[WorkerInfo] | None = None
        self._resolved: dict[tuple[str, ...], list[str]] = {}

    def changed(self) -> None:
        """A worker joined or left: forget what was known and wake the steps that wait."""
        with self._changed:
            self._generation += 1
            self._workers = None
            self._resolved.clear()
            self._changed.notify_all()

    def workers(self) -> list[WorkerInfo]:
        """The connected workers (fetched once per change). Raises what ``fetch`` raises."""
        with self._changed:
            workers, generation = self._workers, self._generation
        if workers is not None:
            return workers
        workers = self._fetch()
        with self._changed:
            if self._generation == generation:  # else a change came meanwhile: keep nothing
                self._workers = workers
        return workers

    def resolve(self, hosts: tuple[str, ...]) -> list[str]:
        """The addresses of the connected workers ``hosts`` names (empty: none is connected)."""
        with self._changed:
            found = self._resolved.get(hosts)
            generation = self._generation
        if found is not None:
            return found
        found = matching(hosts, self.workers())
        with self._changed:
            if self._generation == generation:
                self._resolved[hosts] = found
        return found

    def wait_change(self, deadline: float) -> None:
        """Block until the next ``changed()`` or ``deadline`` (``time.monotonic()``)."""
        with self._changed:
            generation = self._generation
            self._changed.wait_for(
                lambda: self._generation != generation, max(0.0, deadline - time.monotonic())
            )
