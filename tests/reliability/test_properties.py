"""Property tests over generated flows: runs end, executors agree, recovery converges.

Flows come from ``flowgen`` (random nesting up to 3 levels, static repeats of 0..3 items,
requires on earlier siblings with every status under or_/and_/tuples, failing leaves, random
stop_on_exception at flow and step level, random max_concurrent). Every run is compared with
``flowgen.expected``, a reference model written from SPEC section 2 without sequent's state
machine, so the executors cannot agree on a shared mistake.

Where statuses legitimately differ (docs/decisions.md, "Property tests"): when a failure stops
the run (stop_on_exception), which steps had already started depends on timing; such runs are
checked against the model's weaker promise instead of node for node.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from pathlib import Path
from typing import Any

import pytest
from corerun import lend_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequent.executors import RunOptions, Scheduler, create_backend
from sequent.runner import _inherited, _own_config
from sequent.status import StepStatus
from sequent.store import MemoryRecorder

from . import flowgen
from .conftest import tally

S = StepStatus
RUN_LIMIT = 30.0  # seconds; a generated flow runs in milliseconds, so this only catches hangs

pytestmark = pytest.mark.timeout(300)


class Observed:
    """What one run did: the ordered records, the final status per node, the result."""

    def __init__(self, recorder: MemoryRecorder, result: bool, stopping: bool) -> None:
        self.records = recorder.records
        self.status = {(r.key.path, r.key.sequence): r.status for r in recorder.records}
        self.result = result
        self.stopping = stopping


def run(spec: flowgen.FlowSpec, executor: str, logdir: str, backend: Any = None) -> Observed:
    """Run ``spec`` through the scheduling core in a thread; fail if it does not end in time.

    ``backend``: a warm backend to use (and leave running); default a fresh one.
    """
    flow = flowgen.build(spec, executor, logdir=logdir)
    plan = flow.compile()
    own = backend is None
    if own:
        backend = create_backend(executor, max_workers=None)
    recorder = MemoryRecorder()
    options = RunOptions(
        run_id="property",
        flow_name="prop",
        max_concurrent=spec.max_concurrent,
        stop_on_exception=_inherited(plan, "stop_on_exception", spec.stop),
        step_config=_own_config,
        handle_signals=False,
    )
    scheduler = Scheduler(plan, backend, recorder, options)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = scheduler.run()
        except BaseException as exc:  # reported below with the flow
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"property-{executor}")
    thread.start()
    thread.join(RUN_LIMIT)
    try:
        assert not thread.is_alive(), f"{executor}: the run did not end within {RUN_LIMIT} s"
        if "error" in box:
            raise AssertionError(f"{executor}: run() raised {box['error']!r}") from box["error"]
    finally:
        if own:
            backend.shutdown()
    return Observed(recorder, bool(box["result"]), scheduler.state.stopping)


def check_against_model(observed: Observed, model: flowgen.Expected, executor: str) -> None:
    """Property (a) and the model half of (b)."""
    assert observed.result == model.result, f"{executor}: run() returned {observed.result}"
    if not model.stoppers:
        # Nothing can stop the run: every node the model reaches ends as the model says,
        # and no other node gets a status.
        assert observed.status == model.status, executor
        assert not observed.stopping
        return
    # A failure may have stopped the run. Steps that started end as the model says; a
    # container cut short ends failure; a node of a begun iteration that never started ends
    # skipped, saying why; nodes of iterations never begun stay unmarked. No node is left
    # ready or active.
    errors = {(r.key.path, r.key.sequence): r.error for r in observed.records}
    for key, status in observed.status.items():
        assert key in model.status, f"{executor}: {key} ran, but the model never reaches it"
        want = model.status[key]
        if status is S.skipped and want is not S.skipped:
            assert want in (S.success, S.failure), (executor, key, status, want)
            assert observed.stopping, f"{executor}: {key} was ready but never started"
            assert "not started" in (errors[key] or ""), (executor, key, errors[key])
        elif status.is_terminal():
            allowed = {want, S.failure} if model.kind[key] == "box" else {want}
            assert status in allowed, (executor, key, status, want)
        else:
            pytest.fail(f"{executor}: {key} ended {status.value}, not a terminal status")
    unreached = set(model.status) - set(observed.status)
    if unreached:
        assert observed.stopping, f"{executor}: {sorted(unreached)} never reached"
    if observed.stopping:
        _no_start_after_stop(observed, model, executor)


def _no_start_after_stop(observed: Observed, model: flowgen.Expected, executor: str) -> None:
    """SPEC 2.5: once a failure that stops the run is recorded, no step starts.

    A step's final failure is its last failure record (earlier ones are attempts it retried).
    """
    last_failure: dict[tuple[str, str], int] = {}
    for index, record in enumerate(observed.records):
        key = (record.key.path, record.key.sequence)
        if record.status is S.failure and key in model.stoppers:
            last_failure[key] = index
    assert last_failure, f"{executor}: the run stopped, but no stopping failure shows"
    stopped_at = min(last_failure.values())
    for record in observed.records[stopped_at:]:
        if record.status is S.active:
            pytest.fail(
                f"{executor}: {record.key} started after {observed.records[stopped_at].key} "
                f"failed with stop_on_exception"
            )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=flowgen.flows())
@pytest.mark.slow
def test_every_executor_ends_as_the_model_says(spec: flowgen.FlowSpec, tmp_path_factory) -> None:
    """(a) runs end, every reached node terminal; (b) serial and thread agree with the model."""
    tally("flows generated (serial+thread vs model)")
    logdir = str(tmp_path_factory.getbasetemp() / "logs")
    model = flowgen.expected(spec)
    serial = run(spec, "serial", logdir)
    check_against_model(serial, model, "serial")
    thread = run(spec, "thread", logdir)
    check_against_model(thread, model, "thread")
    if not model.stoppers:
        assert thread.status == serial.status


# -- (c) process-based executors agree, also when workers die ------------------------------

REMOTE = {"process": "sequent.executors.process", "loky": "sequent.executors.loky"}


QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
DYING_FLOWS = flowgen.flows(leaf_kinds=("ok", "ok", "boom", "die"), max_siblings=3)


@pytest.mark.slow  # 40 flows whose workers die
@settings(max_examples=40, deadline=None, suppress_health_check=QUIET)
@given(spec=DYING_FLOWS)
def test_process_executor_ends_as_the_model_says(
    spec: flowgen.FlowSpec, warm_backends, tmp_path_factory
) -> None:
    """(c) the process executor ends every node as the model does; a leaf that kills its
    worker (``os._exit``) is a failure like a raising one, and fails nothing else."""
    _check_remote("process", spec, warm_backends, tmp_path_factory)


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=QUIET)
@given(spec=DYING_FLOWS)
def test_loky_executor_ends_as_the_model_says(
    spec: flowgen.FlowSpec, warm_backends, tmp_path_factory
) -> None:
    """(c) the same on loky. A dying worker breaks loky's pool and fails every step in flight
    (documented in sequent/executors/loky.py), so flows with deaths run one step at a time
    there; each death costs a new pool (about a second), hence fewer examples."""
    if "die" in flowgen.kinds(spec):
        spec = dataclasses.replace(spec, max_concurrent=1)
    _check_remote("loky", spec, warm_backends, tmp_path_factory)


def _check_remote(executor: str, spec: flowgen.FlowSpec, warm: dict[str, Any], tmp: Any) -> None:
    try:
        importlib.import_module(REMOTE[executor])
    except ImportError as exc:
        pytest.skip(f"executor {executor!r} unavailable: {exc}")
    backend = lend_backend(executor, warm)  # the session's warm pool (conftest.warm_backends)
    tally(f"flows generated ({executor} vs model)")
    tally("faults injected (worker deaths in generated flows)", _deaths(spec))
    model = flowgen.expected(spec)
    observed = run(spec, executor, str(tmp.getbasetemp() / "logs"), backend=backend)
    check_against_model(observed, model, executor)


def _deaths(spec: flowgen.FlowSpec) -> int:
    """How many worker deaths a run of ``spec`` without stopping injects."""
    model = flowgen.expected(spec)
    return sum(1 for key, status in model.status.items() if model.kind[key] == "die")


# -- (d) recovery converges ---------------------------------------------------------------


def _executions(log_file: Path) -> list[tuple[str, int, str]]:
    if not log_file.exists():
        return []
    rows = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        node, recovery, result = line.split()
        rows.append((node, int(recovery), result))
    return rows


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    spec=flowgen.flows(leaf_kinds=("logged", "flaky"), max_siblings=3),
    executor=st.sampled_from(("serial", "thread")),
)
@pytest.mark.slow
def test_recover_runs_converge_without_rerunning_successes(
    spec: flowgen.FlowSpec, executor: str, tmp_path_factory
) -> None:
    """(d) Recover after random first-attempt failures until nothing fails: every reachable
    step ends success, and no node whose latest recorded status was success runs again."""
    from sequent.status import RunMode
    from sequent.store import open_store

    tally("flows generated (recover until converged)")
    work = tmp_path_factory.mktemp("converge")
    store_path = str(work / "flow.run.db")
    markers = work / "markers"
    markers.mkdir()
    log_file = work / "calls.log"
    side = (str(markers), str(log_file))
    model = flowgen.expected(spec, succeeds=lambda step: True)
    bound = spec.size() + 2  # each failed attempt consumes at least one flaky node's marker
    latest: dict[tuple[str, str], StepStatus] = {}
    run_id = None
    seen = 0
    for attempt in range(bound):
        mode = RunMode.restart if attempt == 0 else RunMode.recover
        flow = flowgen.build(
            spec,
            executor,
            store=store_path,
            logdir=str(work / "logs"),
            side_files=side,
            run_mode=mode,
        )
        result = _run_public(flow)
        run_id = run_id or flow.run_id
        assert flow.run_id == run_id, "a recover run must keep the run id"
        flow.close()
        calls = _executions(log_file)
        new_calls, seen = calls[seen:], len(calls)
        for node, recovery, _ in new_calls:
            assert recovery == attempt, f"{node} saw get_step_recovery() {recovery} in {attempt}"
            path, sequence = node.split("@")
            before = latest.get((path, sequence))
            assert before is not S.success, (
                f"attempt {attempt}: {node} ran again although its latest recorded status was "
                f"success"
            )
            if any(n == node and r < attempt and ok == "ok" for n, r, ok in calls):
                tally("legitimate reruns of an earlier success (skipped in between)")
                assert before is S.skipped, (node, before)
        store = open_store(store_path)
        try:
            rows = store.nodes(run_id)  # each node's latest row: what the next recover uses
            this = store.nodes(run_id, attempt=attempt)
            assert store.attempts(run_id)[-1]["attempt"] == attempt
            assert store.run(run_id)["result"] is result
        finally:
            store.close()
        latest = {(row["path"], row["sequence"]): StepStatus(row["status"]) for row in rows}
        reached = {(row["path"], row["sequence"]): StepStatus(row["status"]) for row in this}
        if result and not any(status is S.failure for status in reached.values()):
            break
    else:
        pytest.fail(f"recover did not converge in {bound} attempts: {reached}")
    tally("recover attempts made", attempt + 1)
    # The converged attempt reached exactly what a run with no failure reaches, and ended
    # each node as that run would (nodes an earlier attempt reached but this one did not keep
    # their old rows in ``latest``; they are not reachable any more).
    assert reached == model.status


def _run_public(flow) -> bool:
    """``flow.run()`` with a limit on its duration (the main thread handles no signals here)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = flow.run()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="property-public")
    thread.start()
    thread.join(RUN_LIMIT)
    assert not thread.is_alive(), f"the run did not end within {RUN_LIMIT} s"
    if "error" in box:
        raise AssertionError(f"run() raised {box['error']!r}") from box["error"]
    return bool(box["result"])


def test_a_success_overwritten_by_skipped_reruns_when_reached_again(tmp_path) -> None:
    """The one way a node that once succeeded runs again under the default policy.

    A recover decides per node from its *latest* status (SPEC 4.2). ``c`` succeeds in attempt
    0 because ``a`` failed; in attempt 1 ``a`` succeeds, so ``c``'s requirement is false and
    ``c`` is recorded ``skipped``; in attempt 2 ``b`` finally succeeds, ``c``'s requirement
    holds again and, its latest status being skipped, ``c`` runs again. (docs/decisions.md)
    """
    from sequent.status import RunMode
    from sequent.store import open_store

    A = flowgen.Atom
    spec = flowgen.FlowSpec(
        steps=(
            flowgen.StepSpec("flaky"),  # a
            flowgen.StepSpec("flaky", requires=A(0, S.success)),  # b: a succeeded
            flowgen.StepSpec(  # c: a failed, or b succeeded
                "logged", requires=flowgen.Op("or", (A(0, S.failure), A(1, S.success)))
            ),
        ),
        stop=True,
    )
    markers = tmp_path / "markers"
    markers.mkdir()
    side = (str(markers), str(tmp_path / "calls.log"))
    store_path = str(tmp_path / "flow.run.db")
    results = []
    for attempt in range(3):
        mode = RunMode.restart if attempt == 0 else RunMode.recover
        flow = flowgen.build(
            spec,
            "serial",
            store=store_path,
            logdir=str(tmp_path / "logs"),
            side_files=side,
            run_mode=mode,
        )
        results.append(_run_public(flow))
        run_id = flow.run_id
        flow.close()
    assert results == [True, False, True]
    assert _executions(tmp_path / "calls.log") == [
        ("a@1", 0, "fail"),
        ("c@1", 0, "ok"),
        ("a@1", 1, "ok"),
        ("b@1", 1, "fail"),
        ("b@1", 2, "ok"),
        ("c@1", 2, "ok"),  # c succeeded in attempt 0, was skipped in attempt 1, runs again
    ]
    store = open_store(store_path)
    try:
        per_attempt = [
            {row["path"]: row["status"] for row in store.nodes(run_id, attempt=n)} for n in range(3)
        ]
    finally:
        store.close()
    assert per_attempt == [
        {"a": "failure", "b": "skipped", "c": "success"},
        {"a": "success", "b": "failure", "c": "skipped"},
        {"a": "success", "b": "success", "c": "success"},
    ]
