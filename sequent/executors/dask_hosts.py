"""Which Dask workers a step's ``hosts=[...]`` means, decided against the connected workers.

An entry matches a worker by its name, its address (with or without ``tcp://``), its host (the
IP in its address) or the host name of its machine; an entry that is a host name or IP also
matches every worker whose IP it resolves to (``localhost`` matches workers on 127.0.0.1).
The result is a list of worker addresses, handed to Dask as ``workers=`` with no fallback.

Mutates nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
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


def placements(
    steps: Mapping[str, tuple[str, ...]], workers: list[WorkerInfo]
) -> tuple[dict[str, list[str]], dict[str, tuple[str, ...]]]:
    """For each step path: the worker addresses its hosts name; and the steps that name none."""
    resolved: dict[str, list[str]] = {}
    unmatched: dict[str, tuple[str, ...]] = {}
    for path, hosts in steps.items():
        found = matching(hosts, workers)
        if found:
            resolved[path] = found
        else:
            unmatched[path] = hosts
    return resolved, unmatched
