"""Fixtures for the executor tests: warm backends lent to one test module at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from corerun import WORKERS, SharedBackend

from sequent.executors import create_backend


@pytest.fixture(scope="module")
def warm_backends():
    """Backends kept warm for one test module and shut down at its end."""
    made: dict[str, Any] = {}
    yield made
    for backend in made.values():
        backend.shutdown()


@pytest.fixture
def lend(warm_backends, request) -> Callable[[str], SharedBackend]:
    """``lend(name)``: the module's warm backend ``name`` (dask: on the session's cluster)."""

    def lend(name: str) -> SharedBackend:
        if name not in warm_backends:
            if name == "dask":
                from sequent.executors.dask import DaskBackend

                warm_backends[name] = DaskBackend(client=request.getfixturevalue("dask_client"))
            else:
                warm_backends[name] = create_backend(name, max_workers=WORKERS)
        return SharedBackend(warm_backends[name])

    return lend
