"""Parallel iterations (SPEC 1.2 ``parallel=N``) on every executor, judged from recorded times.

Each iteration's span runs from its first step's recorded start to its last step's recorded
end (stamped by the worker); overlapping spans are iterations running at the same time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from corerun import WORKERS, Run, most_at_once, new_flow, run_core

import sequent as seq
from sequent.status import StepStatus
from sequent.store import open_store

S = StepStatus
pytestmark = pytest.mark.slow  # warm process, loky and Dask pools; 20-iteration flows
HOLD = 0.04


def hold(seconds: float = HOLD) -> str:
    time.sleep(seconds)
    return seq.current().sequence


def slow_fail_at(item: Any, seconds: float) -> None:
    """Fail, after ``seconds``, in the iteration whose repeat value is ``item``; else pause."""
    if seq.current().item == item:
        time.sleep(seconds)
        raise RuntimeError(f"failing at {item!r}")
    time.sleep(HOLD)


def fail_while(flag: str, items: list[Any]) -> None:
    """Fail in the iterations of ``items`` while the file ``flag`` exists."""
    time.sleep(0.2)
    if Path(flag).exists() and seq.current().item in items:
        raise RuntimeError("flagged")


def spans(run: Run, prefix: str) -> dict[str, tuple[float, float]]:
    """``iteration sequence -> (first start, last end)`` of the step calls under ``prefix``."""
    found: dict[str, tuple[float, float]] = {}
    for record in run.records:
        if record.outcome is None or not record.key.path.startswith(prefix):
            continue
        sequence = record.key.sequence
        start, end = found.get(sequence, (record.outcome.started, record.outcome.ended))
        found[sequence] = (min(start, record.outcome.started), max(end, record.outcome.ended))
    return found


def two_step_box(flow: seq.Sequent, count: int, parallel: Any) -> None:
    box = flow.add_step("box", repeats=range(count), parallel=parallel)
    a = box.add_step("a", func=hold)
    box.add_step("b", func=hold, requires=((a, S.success),))


def test_iterations_reach_the_limit_and_never_pass_it(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    two_step_box(flow, 20, 4)
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    found = spans(run, "box_")
    assert len(found) == 20
    assert most_at_once(list(found.values())) == 4
    for k in range(1, 21):  # each iteration's own order is kept
        assert run.outcome(f"box_b/1.{k}").started >= run.outcome(f"box_a/1.{k}").ended
    begun = [r.key.sequence for r in run.records if r.status is S.active and r.key.path == "box_a"]
    assert begun[:4] == ["1.1", "1.2", "1.3", "1.4"]  # ready iterations start by position
    assert sorted(begun, key=lambda s: int(s.split(".")[1])) == [f"1.{k}" for k in range(1, 21)]


def test_max_concurrent_still_caps_the_steps(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    two_step_box(flow, 20, 0)
    run = run_core(flow, backend, max_concurrent=2)
    assert run.result is True
    peak = most_at_once(run.intervals("box_"))
    assert peak == (2 if executor != "serial" else 1)


@pytest.mark.parametrize("stop", [True, False])
def test_a_failure_starts_no_further_iteration(executor, backend, tmp_path, stop):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=range(1, 11), parallel=2)
    a = box.add_step("a", func=slow_fail_at, args=(3, 0.4))
    box.add_step("b", func=hold, requires=((a, S.success),))
    run = run_core(flow, backend, stop_on_exception=stop)
    assert run.result is False
    failed = run.index("box_a/1.3", S.failure)
    before = {r.key.sequence for r in run.records[:failed] if r.key.path.startswith("box_")}
    after = {r.key.sequence for r in run.records[failed:] if r.key.path.startswith("box_")}
    assert after <= before, f"iterations begun after the failure: {sorted(after - before)}"
    status = run.status()
    assert status["box/1"] == "failure"
    assert status["box_b/1.3"] == "skipped"
    assert "box_a/1.10" not in status  # the last iteration never began
    running = sorted(before - {"1.1", "1.2", "1.3"})
    if not stop:  # the iterations under way run to their end
        assert all(status[f"box_b/{s}"] == "success" for s in running)


def test_recover_reruns_only_what_failed_in_parallel_again(executor, backend, tmp_path):
    store = tmp_path / "parallel.run.db"
    flag = tmp_path / "flag"
    flag.touch()
    flow = new_flow(backend, tmp_path, store=str(store), stop_on_exception=False)
    box = flow.add_step("box", repeats=range(1, 7), parallel=0)  # all begin in the first run
    work = box.add_step("work", func=fail_while, args=(str(flag), [2, 3]))
    box.add_step("tail", func=hold, requires=((work, S.success),))
    assert flow.run() is False
    run_id = flow.run_id
    flag.unlink()
    assert flow.run(run_mode=seq.RUN_RECOVER) is True
    flow.close()
    reader = open_store(str(store))
    try:
        rows = reader.nodes(run_id, attempt=1)
    finally:
        reader.close()
    ran = {(r["path"], r["sequence"]): r for r in rows if r["kind"] == "step" and not r["replayed"]}
    assert sorted(ran) == [
        ("box_tail", "1.2"),
        ("box_tail", "1.3"),
        ("box_work", "1.2"),
        ("box_work", "1.3"),
    ]
    assert {r["status"] for r in rows} == {"success"}
    if executor != "serial":  # the two reruns overlap: parallel again
        two, three = ran[("box_work", "1.2")], ran[("box_work", "1.3")]
        assert two["started"] < three["ended"] and three["started"] < two["ended"]


def test_nested_parallel_containers(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    outer = flow.add_step("outer", repeats=range(2), parallel=2)
    inner = outer.add_step("inner", repeats=range(3), parallel=0)
    inner.add_step("leaf", func=hold, args=(0.15,))
    run = run_core(flow, backend)
    assert run.result is True
    sequences = sorted(s for s in run.status() if s.startswith("outer_inner_leaf/"))
    assert sequences == [f"outer_inner_leaf/1.{i}.{k}" for i in (1, 2) for k in (1, 2, 3)]
    if executor != "serial":  # all six leaves at once, as far as the backend's workers allow
        assert most_at_once(run.intervals("outer_inner_leaf")) >= WORKERS


def test_container_resources_are_held_once_child_resources_per_iteration(
    executor, backend, tmp_path
):
    held = seq.ResourcePool(f"held-{executor}", policy={"resource_limit": 1}).load()
    slots = seq.ResourcePool(f"slots-{executor}", policy={"resource_limit": 2}).load()
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=range(6), parallel=0, acquires=[(held, 1)])
    box.add_step("work", func=hold, args=(0.1,), acquires=[(slots, 1)])
    flow.add_step("other", func=hold, acquires=[(held, 1)])  # waits for the whole container
    run = run_core(flow, backend)
    assert run.result is True
    work = run.intervals("box_work")
    assert len(work) == 6  # the container's one unit of `held` served all six iterations
    assert most_at_once(work) == (2 if executor != "serial" else 1)  # `slots` per iteration
    assert run.outcome("other/1").started >= max(end for _, end in work)


def six_items() -> list[str]:
    return [f"file-{k}" for k in range(6)]


def test_a_callable_repeats_runs_in_parallel_too(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=six_items, parallel=3)
    box.add_step("a", func=hold, args=(0.5,))  # long enough to overlap on a loaded Dask
    run = run_core(flow, backend)
    assert run.result is True
    found = spans(run, "box_")
    assert sorted(found) == [f"1.{k}" for k in range(1, 7)]
    assert most_at_once(list(found.values())) == (3 if executor != "serial" else 1)
