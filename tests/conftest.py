"""Shared fixtures: flows per executor on an in-memory store, and a journal of step calls.

``executor`` is parametrised over every backend; a backend that cannot run here is skipped
with the reason, loudly (``-rs`` shows it), never silently. Every test parametrised with
``"dask"`` or ``"loky"`` (an executor name) is marked ``slow``: a Dask cluster takes seconds to
start and each of its first tasks more, and loky is the second process-based executor (its
workers restart slowly), so ``-m "not slow"`` covers serial, thread and process (the default)
and leaves those two to the full run; so is every test run with a parameter it names in
``@pytest.mark.slow_on(...)``.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
import time

import pytest

import sequent as seq

EXECUTORS = ["serial", "thread", "process", "loky", "dask"]
_MODULES = {
    "process": "sequent.executors.process",
    "loky": "sequent.executors.loky",
    "dask": "sequent.executors.dask",
}


def pytest_collection_modifyitems(items) -> None:  # noqa: ANN001 - pytest hook
    """``slow`` for every test run on ``"dask"`` or ``"loky"``, and for the parameters a test
    names in ``@pytest.mark.slow_on(...)``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        values = list(callspec.params.values()) if callspec is not None else []
        marked = item.get_closest_marker("slow_on")
        slow_on = ("dask", "loky", *(marked.args if marked else ()))
        if any(isinstance(value, str) and value in slow_on for value in values):
            item.add_marker(pytest.mark.slow)


class Journal:
    """Thread-safe list of (event, name, time) entries written by steps in this process."""

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
def empty_cwd(tmp_path_factory, monkeypatch) -> object:
    """An empty current folder, and no ``SEQUENT_STORE``: store discovery finds nothing.

    A command run without ``--store`` must not find a store lying in the checkout (after
    ``python examples/pitch.py``, ``examples/pitch.run.db`` is one folder below its root).
    """
    folder = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(folder)
    monkeypatch.delenv("SEQUENT_STORE", raising=False)
    return folder


def backend_available(name: str) -> str | None:
    """None when the backend can run here, else the reason it cannot."""
    module = _MODULES.get(name)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"executor {name!r} unavailable: {exc}"
    return None


@pytest.fixture(params=EXECUTORS)
def executor(request) -> str:
    """Each executor name in turn; skipped loudly when its backend cannot run here."""
    reason = backend_available(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture(scope="session")
def graphviz() -> str:
    """Graphviz's ``dot`` program; the test is skipped, saying so, where it is not on PATH."""
    program = shutil.which("dot")
    if program is None:
        pytest.skip("Graphviz's dot program is not installed (not on PATH; .ci/run installs it)")
    return program


@pytest.fixture(scope="session")
def dask_client():
    """A client of one local Dask cluster on 127.0.0.1 shared by the session; closed at its end.

    Four worker processes with one thread each (the step context's environment variables are
    per process), and no retries of a task whose worker died, as sequent's own local cluster.
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=4,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"allowed_failures": 0},
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def warm_backends():
    """Backends kept warm across the session (worker pools are slow to start), shut down at
    its end; tests borrow them through ``lend`` or ``backend``."""
    made: dict = {}
    yield made
    for backend in made.values():
        backend.shutdown()


@pytest.fixture
def lend(warm_backends, request):
    """``lend(name)``: the session's warm backend ``name`` (dask: on the session's cluster)."""
    from corerun import lend_backend

    def lend(name: str):
        client = request.getfixturevalue("dask_client") if name == "dask" else None
        return lend_backend(name, warm_backends, client)

    return lend


@pytest.fixture
def backend(executor, lend):
    """The ``executor``'s warm backend, lent to one test (see tests/corerun.py)."""
    return lend(executor)


@pytest.fixture
def make_flow(tmp_path, request):
    """Create flows on an in-memory store, logging under tmp_path; closes them at the end.

    ``make_flow("dask")`` runs on the session's shared cluster (``dask_client``).
    """
    flows: list[seq.Sequent] = []

    def make(executor: str = "thread", **config):
        config.setdefault("logdir", str(tmp_path / "logs"))
        backend = config.pop("backend", None)
        if backend is None and executor == "dask":
            from sequent.executors.dask import DaskExecutor

            backend = DaskExecutor(client=request.getfixturevalue("dask_client"))
        flow = seq.Sequent(
            name=config.pop("name", "test"),
            store=config.pop("store", ":memory:"),
            executor=backend or executor,
            logging_level=config.pop("logging_level", logging.DEBUG),
            config=config,
        )
        flows.append(flow)
        return flow

    yield make
    for flow in flows:
        flow.close()


@pytest.fixture(autouse=True)
def _no_leaked_env():
    """Steps must not leave SEQUENT_* variables in the orchestrator's environment."""
    yield
    leaked = [key for key in os.environ if key.startswith(("SEQUENT_STEP", "EVENTOR_STEP"))]
    assert not leaked, f"step context leaked into os.environ: {leaked}"
