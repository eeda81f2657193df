"""The Dask executor: ``hosts=`` places steps on named workers; sequent's own local cluster is
bound to 127.0.0.1 and closed by ``shutdown``; a cluster it was given is left running."""

from __future__ import annotations

import os
import re

import pytest
from corerun import new_flow, run_core, wait_for

from sequent.errors import ExecutorError
from sequent.status import StepStatus

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow  # every test here starts or joins a Dask cluster

from sequent.executors.dask import DaskExecutor  # noqa: E402
from sequent.executors.dask_plugin import PREFIX  # noqa: E402

S = StepStatus


def where() -> tuple[str, int]:
    """The name of the Dask worker running this step, and its process id."""
    return distributed.get_worker().name, os.getpid()


@pytest.fixture(scope="module")
def named_cluster():
    """Two workers named ``alpha`` and ``beta`` (one thread each) on 127.0.0.1."""
    worker = {"cls": distributed.Nanny, "options": {"nthreads": 1, "host": "127.0.0.1"}}
    cluster = distributed.SpecCluster(
        workers={"alpha": worker, "beta": worker},
        scheduler={
            "cls": distributed.Scheduler,
            "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        },
    )
    yield cluster
    cluster.close()
    assert cluster.status.name == "closed"


def test_hosts_place_steps_on_the_named_workers(named_cluster, tmp_path):
    backend = DaskExecutor(address=named_cluster.scheduler_address)
    try:
        flow = new_flow(backend, tmp_path)
        box = flow.add_step("box", repeats=[1, 2, 3])
        box.add_step("on_alpha", func=where, hosts=["alpha"])
        box.add_step("on_beta", func=where, hosts=["beta"])
        flow.add_step("anywhere", func=where)
        run = run_core(flow, backend)
        assert run.result is True
        for sequence in ("1.1", "1.2", "1.3"):
            assert run.value(f"box_on_alpha/{sequence}")[0] == "alpha"
            assert run.value(f"box_on_beta/{sequence}")[0] == "beta"
        assert run.value("anywhere/1")[0] in ("alpha", "beta")
        pids = {run.value(f"box_on_{name}/1.1")[1] for name in ("alpha", "beta")}
        assert len(pids) == 2 and os.getpid() not in pids
    finally:
        backend.shutdown()
    # the backend closed its client only: the cluster it was pointed at still runs
    assert named_cluster.status.name == "running"


def test_own_local_cluster_is_on_localhost_and_closed_by_shutdown(tmp_path):
    backend = DaskExecutor(max_workers=1)
    flow = new_flow(backend, tmp_path)
    flow.add_step("where", func=where)
    run = run_core(flow, backend)
    assert run.status() == {"where/1": "success"}
    cluster = backend._cluster
    assert cluster is not None
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert all(
        info["host"] == "127.0.0.1" for info in backend.client.scheduler_info()["workers"].values()
    )
    backend.shutdown()
    assert cluster.status.name == "closed"
    assert backend._client is None


def test_a_dying_dask_worker_fails_its_step(dask_client, tmp_path):
    backend = DaskExecutor(client=dask_client)
    flow = new_flow(backend, tmp_path)
    doomed = flow.add_step("doomed", func=os._exit, args=(5,))
    flow.add_step("after", func=where, requires=((doomed, S.failure),))
    run = run_core(flow, backend)
    assert run.status() == {"doomed/1": "failure", "after/1": "success"}
    error = run.record("doomed/1", S.failure).error
    assert re.match(r"WorkerDied: worker tcp://127\.0\.0\.1:\d+ \(\d\) died while running step "
                    r"'doomed' \(sequence 1\)", error), error
    backend.shutdown()
    assert dask_client.status == "running"  # a client given to the backend is not closed


def test_address_and_client_together_are_refused(dask_client):
    with pytest.raises(ExecutorError, match="got address and client; drop all but one"):
        DaskExecutor(address="tcp://127.0.0.1:1", client=dask_client)


def square(number: int) -> int:
    return number * number


def let_go(client, start: str) -> None:
    """Wait (10 s at most) until the scheduler holds no task whose key starts with sequent's
    prefix and ``start`` (run id and step name)."""

    def left() -> list[str]:
        keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
        return [str(key) for key in keys if str(key).startswith(f"{PREFIX}{start}")]

    wait_for(lambda: not left(), timeout=10, what="the scheduler to let go of the run's tasks")


def test_a_fan_is_settled_in_batches_and_its_tasks_are_let_go(dask_client, tmp_path):
    """60 steps at once on the session's cluster: every outcome reaches its own step (the
    tracker gathers them in batches on Dask's loop), and once the run is over the scheduler
    lets go of every one of the run's tasks (the held futures are released)."""
    backend = DaskExecutor(client=dask_client)
    flow = new_flow(backend, tmp_path)
    for number in range(60):
        flow.add_step(f"tracked{number}", func=square, args=(number,))
    run = run_core(flow, backend)
    assert backend.tracker is not None  # this Dask has what the tracker needs
    assert run.status() == {f"tracked{number}/1": "success" for number in range(60)}
    assert [run.value(f"tracked{number}/1") for number in range(60)] == [
        number * number for number in range(60)
    ]
    let_go(dask_client, "behaviour-run-tracked")
    backend.shutdown()


def test_a_scheduler_that_refuses_the_plugin_gets_a_warning_and_short_holds(
    dask_client, tmp_path, monkeypatch, caplog
):
    """Without sequent's plugin a held finished task could be recomputed: the run log says
    so, and finished tasks are let go as soon as the next round is sent (or within 50 ms)."""
    def refuse(*args, **kwargs):
        raise RuntimeError("pickled plugins are disabled")

    monkeypatch.setattr(dask_client, "register_plugin", refuse)
    backend = DaskExecutor(client=dask_client)
    flow = new_flow(backend, tmp_path)
    previous = None
    for number in range(5):
        requires = ((previous, S.success),) if previous is not None else ()
        previous = flow.add_step(f"short{number}", func=square, args=(number,), requires=requires)
    with caplog.at_level("WARNING", logger="sequent"):
        run = run_core(flow, backend)
    assert run.status() == {f"short{number}/1": "success" for number in range(5)}
    assert "refused sequent's plugin (RuntimeError: pickled plugins are disabled)" in caplog.text
    assert backend.tracker is not None and backend.tracker.protected is False
    assert backend.tracker.hold == backend.tracker.HOLD_UNPROTECTED
    let_go(dask_client, "behaviour-run-short")
    backend.shutdown()
