"""Shared fixtures: a flow factory per executor, and a recorder of step calls."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import sequent as seq


class Journal:
    """Thread-safe list of (event, name, time) entries written by steps."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, str, float]] = []

    def add(self, event: str, name: str) -> None:
        with self.lock:
            self.entries.append((event, name, time.monotonic()))

    def names(self, event: str = "start") -> list[str]:
        return [name for kind, name, _ in self.entries if kind == event]


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def make_flow(tmp_path):
    """Create flows on an in-memory store, logging under tmp_path; closes them at the end."""
    flows: list[seq.Sequent] = []

    def make(executor: str = "thread", **config):
        config.setdefault("logdir", str(tmp_path / "logs"))
        flow = seq.Sequent(
            name=config.pop("name", "test"),
            store=config.pop("store", ":memory:"),
            executor=executor,
            logging_level=logging.DEBUG,
            config=config,
        )
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.close()
