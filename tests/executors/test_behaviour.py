"""The behaviour suite: one set of flows, run on every executor, judged from what was recorded.

Every test takes the ``executor`` fixture (serial, thread, process, loky, dask). Steps are
module-level functions so process-based executors can send them; they report what they saw
through their return value, and ordering is judged from the recorded outcomes (``started`` and
``ended`` stamped by the worker) and the order of the recorded status changes.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from corerun import WORKERS, most_at_once, new_flow, rendezvous, run_core

import sequent as seq
from sequent.compiler import NodeKey
from sequent.status import StepStatus
from sequent.store import open_store

S = StepStatus


# -- steps (module level: picklable) -------------------------------------------------------


def noop(*args: Any, **kwargs: Any) -> None:
    return None


def echo(value: Any) -> Any:
    return value


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


def pause(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def whoami(hold: float = 0.0) -> tuple[Any, ...]:
    """Report the step context, after ``hold`` seconds (so concurrent steps overlap)."""
    before = seq.current()
    time.sleep(hold)
    after = seq.current()
    assert before == after
    return (after.name, after.sequence, after.ordinal, after.item, after.run_id)


def write_files(folder: str, names: list[str]) -> int:
    for name in names:
        Path(folder, name).write_text(name)
    return len(names)


def list_files(folder: str) -> list[str]:
    return sorted(os.listdir(folder))


def fail_at(item: Any) -> Any:
    """Fail in the iteration whose repeat value is ``item``; return the value otherwise."""
    value = seq.current().item
    if value == item:
        raise RuntimeError(f"failing at {value!r}")
    return value


def read_item() -> Any:
    return seq.current().item


# -- running a flow on the core directly -----------------------------------------------------


def parallel(executor: str) -> bool:
    """False for the serial executor: it runs one step at a time by design."""
    return executor != "serial"


# -- requirements: every status atom, or_/and_, events ---------------------------------------


def test_success_atom_triggers_dependent(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    a = flow.add_step("a", func=echo, args=("a",))
    flow.add_step("b", func=echo, args=("b",), requires=((a, S.success),))
    run = run_core(flow, backend)
    assert run.result is True
    assert run.events() == [
        "a/1:ready",
        "a/1:active",
        "a/1:success",
        "b/1:ready",
        "b/1:active",
        "b/1:success",
    ]
    assert run.outcome("b/1").started >= run.outcome("a/1").ended


def test_failure_atom_triggers_dependent_and_handles_the_failure(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    a = flow.add_step("a", func=fail)
    flow.add_step("b", func=echo, args=("b",), requires=((a, S.failure),))
    run = run_core(flow, backend)
    assert run.status() == {"a/1": "failure", "b/1": "success"}
    assert run.result is True
    assert "RuntimeError: boom" in run.record("a/1", S.failure).error


def test_complete_atom_fires_on_success_and_on_failure(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    good = flow.add_step("good", func=noop)
    bad = flow.add_step("bad", func=fail)
    flow.add_step("after_good", func=noop, requires=((good, S.complete),))
    flow.add_step("after_bad", func=noop, requires=((bad, S.complete),))
    run = run_core(flow, backend)
    assert run.status() == {
        "good/1": "success",
        "bad/1": "failure",
        "after_good/1": "success",
        "after_bad/1": "success",
    }
    assert run.result is True  # `complete` handles the failure


def test_ready_atom_fires_when_the_step_is_ready_before_it_starts(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    slow = flow.add_step("slow", func=noop, delay=0.3)
    flow.add_step("follower", func=noop, requires=((slow, S.ready),))
    run = run_core(flow, backend)
    assert run.result is True
    # the follower starts (and even ends) while `slow` still waits out its delay
    assert run.index("follower/1", S.active) < run.index("slow/1", S.active)
    assert run.outcome("follower/1").ended < run.outcome("slow/1").started


def test_active_atom_fires_when_the_step_starts(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    busy = flow.add_step("busy", func=pause, args=(0.2,))
    flow.add_step("watcher", func=noop, requires=((busy, S.active),))
    run = run_core(flow, backend)
    assert run.result is True
    assert run.index("watcher/1", S.active) < run.index("busy/1", S.success)
    if parallel(executor):
        assert run.outcome("watcher/1").started < run.outcome("busy/1").ended


def test_or_holds_when_only_its_second_operand_holds(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    a = flow.add_step("a", func=noop)
    b = flow.add_step("b", func=fail)
    flow.add_step("either", func=noop, requires=seq.or_((a, S.failure), (b, S.failure)))
    flow.add_step("neither", func=noop, requires=seq.or_((a, S.failure), (b, S.success)))
    run = run_core(flow, backend)
    assert run.status() == {
        "a/1": "success",
        "b/1": "failure",
        "either/1": "success",
        "neither/1": "skipped",
    }
    assert run.result is True  # b's failure is handled by `either`


def test_or_starts_as_soon_as_one_operand_holds(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    quick = flow.add_step("quick", func=noop)
    slow = flow.add_step("slow", func=pause, args=(0.3,))
    flow.add_step("first", func=noop, requires=seq.or_((slow, S.success), (quick, S.success)))
    run = run_core(flow, backend)
    assert run.result is True
    assert run.status()["first/1"] == "success"
    if parallel(executor):  # serial runs `slow` to its end in the round it starts
        assert run.index("first/1", S.active) < run.index("slow/1", S.success)


def test_nested_and_or_and_events(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    a = flow.add_step("a", func=noop)
    b = flow.add_step("b", func=fail)
    c = flow.add_step("c", func=noop, requires=((b, S.failure),))
    a_or_b = flow.add_event(seq.or_((a, S.failure), (b, S.success)))  # false
    a_and_c = flow.add_event(((a, S.success), (c, S.success)))  # true
    # or_(false event, and_(true event, or_(false, true))) -> true
    flow.add_step(
        "d",
        func=noop,
        requires=seq.or_(a_or_b, seq.and_(a_and_c, seq.or_((c, S.failure), (b, S.complete)))),
    )
    # (true event, or_(false event, false)) -> false: skipped
    flow.add_step("e", func=noop, requires=(a_and_c, seq.or_(a_or_b, (c, S.failure))))
    flow.add_step("f", func=noop, requires=a_or_b)
    run = run_core(flow, backend)
    assert run.status() == {
        "a/1": "success",
        "b/1": "failure",
        "c/1": "success",
        "d/1": "success",
        "e/1": "skipped",
        "f/1": "skipped",
    }
    assert run.result is True


# -- failures, skipped, containers -----------------------------------------------------------


def test_handled_failure_run_returns_true(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    extract = flow.add_step("extract", func=fail, args=("no data",))
    flow.add_step("alert", func=echo, args=("alerted",), requires=((extract, S.failure),))
    assert flow.run() is True


def test_unhandled_failure_run_returns_false(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    extract = flow.add_step("extract", func=fail, args=("no data",))
    flow.add_step("load", func=noop, requires=((extract, S.success),))
    assert flow.run() is False


def test_dependent_of_failed_step_is_skipped_and_reported(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    extract = flow.add_step("extract", func=fail, args=("no data",))
    load = flow.add_step("load", func=noop, requires=((extract, S.success),))
    flow.add_step("report", func=noop, requires=((load, S.success),))
    assert flow.run() is False
    run_log = (tmp_path / "logs" / "behaviour" / flow.run_id / "run.log").read_text()
    assert "Skipped: load/1, report/1" in run_log
    assert "Failure: extract/1" in run_log
    assert "Summary: " in run_log and "2 skipped" in run_log
    assert run_log.rstrip().endswith("[ Processing finished with: failure ]")

    run = run_core(flow, backend)
    assert run.status() == {"extract/1": "failure", "load/1": "skipped", "report/1": "skipped"}
    assert run.events(S.skipped) == ["load/1:skipped", "report/1:skipped"]


def test_failing_child_stops_later_iterations_and_fails_container(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=["x", "y", "z"])
    box.add_step("work", func=fail_at, args=("y",))
    flow.add_step("after", func=noop, requires=((box, S.success),))
    run = run_core(flow, backend)
    assert run.result is False
    assert run.status() == {
        "box/1": "failure",
        "box_work/1.1": "success",
        "box_work/1.2": "failure",
        "after/1": "skipped",
    }
    assert "box_work" in run.record("box/1", S.failure).error
    assert not any(r.key.sequence == "1.3" for r in run.records)


def test_container_failure_handled_by_a_sibling(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[1, 2])
    box.add_step("work", func=fail_at, args=(1,))
    flow.add_step("cleanup", func=noop, requires=((box, S.failure),))
    run = run_core(flow, backend)
    assert run.status() == {"box/1": "failure", "box_work/1.1": "failure", "cleanup/1": "success"}
    assert run.result is True


def test_stop_on_exception_true_starts_nothing_new(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    flow.add_step("boom", func=fail)
    long = flow.add_step("long", func=pause, args=(0.5, "finished"))
    flow.add_step("next", func=noop, requires=((long, S.success),))
    box = flow.add_step("box", repeats=[1, 2], requires=((long, S.success),))
    box.add_step("inner", func=noop)
    run = run_core(flow, backend, stop_on_exception=True)
    assert run.result is False
    failed_at = run.index("boom/1", S.failure)
    assert [r for r in run.records[failed_at:] if r.status is S.active] == []
    # the step running at the failure finished
    assert run.status()["long/1"] == "success"
    assert run.value("long/1") == "finished"
    if run.index("long/1", S.success) > failed_at:  # as a rule: `boom` fails at once
        # what `long` enabled became ready after the failure, never started, and the finished
        # run says so: skipped, with the reason (no node is left ready)
        assert run.status() == {
            "boom/1": "failure",
            "long/1": "success",
            "next/1": "skipped",
            "box/1": "skipped",
        }
        for node in ("next/1", "box/1"):
            assert run.index(node, S.ready) < run.index(node, S.skipped)
            assert "stopped after a failure" in run.record(node, S.skipped).error


def test_stop_on_exception_false_runs_independent_branches_to_the_end(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[1, 2, 3])
    boom = box.add_step("boom", func=fail_at, args=(1,))
    sibling = box.add_step("sibling", func=pause, args=(0.1,))
    box.add_step("tail", func=noop, requires=((sibling, S.success),))
    box.add_step("never", func=noop, requires=((boom, S.success),))
    first = flow.add_step("first", func=pause, args=(0.1,))
    flow.add_step("second", func=noop, requires=((first, S.success),))
    run = run_core(flow, backend, stop_on_exception=False)
    assert run.result is False
    assert run.status() == {
        "box/1": "failure",
        "box_boom/1.1": "failure",
        "box_sibling/1.1": "success",
        "box_tail/1.1": "success",
        "box_never/1.1": "skipped",
        "first/1": "success",
        "second/1": "success",
    }
    assert not any(r.key.sequence.startswith(("1.2", "1.3")) for r in run.records)


def test_stop_on_exception_per_step_config(executor, backend, tmp_path):
    """Through ``flow.run()``: a step's own ``stop_on_exception`` overrides the flow's."""

    def events_of_run(own: dict[str, bool], name: str) -> list[str]:
        store = tmp_path / f"{name}.run.db"
        flow = new_flow(backend, tmp_path, store=str(store), stop_on_exception=True)
        flow.add_step("boom", func=fail, config=own)
        long = flow.add_step("long", func=pause, args=(0.3,))
        flow.add_step("next", func=noop, requires=((long, S.success),))
        assert flow.run() is False
        run_id = flow.run_id
        flow.close()
        reader = open_store(str(store))
        try:
            return [f"{e['path']}/{e['sequence']}:{e['status']}" for e in reader.events(run_id)]
        finally:
            reader.close()

    own = events_of_run({"stop_on_exception": False}, "own")
    assert "next/1:success" in own and "boom/1:failure" in own

    inherited = events_of_run({}, "inherited")  # the flow's True: nothing new starts after it
    assert "long/1:success" in inherited
    after = inherited[inherited.index("boom/1:failure") :]
    assert [event for event in after if event.endswith(":active")] == []


# -- time: delay and concurrency ---------------------------------------------------------


def test_delay_is_respected(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    a = flow.add_step("a", func=noop)
    flow.add_step("b", func=noop, requires=((a, S.success),), delay=0.25)
    run = run_core(flow, backend)
    assert run.result is True
    ready = run.record("b/1", S.ready).time
    assert run.outcome("b/1").started >= ready + 0.25
    assert run.outcome("b/1").started >= run.outcome("a/1").ended + 0.25


def test_delays_run_concurrently(executor, backend, tmp_path):
    """Delays do not take a slot: with ``max_concurrent=1`` the four delays are waited out
    together, so a step does not wait its delay again after the one before it ends."""
    flow = new_flow(backend, tmp_path)
    names = ("a", "b", "c", "d")
    for name in names:
        flow.add_step(name, func=noop, delay=0.4)
    run = run_core(flow, backend, max_concurrent=1)
    assert run.result is True
    for name in names:
        assert run.outcome(f"{name}/1").started >= run.record(f"{name}/1", S.ready).time + 0.4
    calls = sorted((run.outcome(f"{name}/1").started, run.outcome(f"{name}/1").ended)
                   for name in names)  # fmt: skip
    assert most_at_once(calls) == 1
    # Delays waited one after another would put 0.4 s between every end and the next start;
    # waited together, the later steps start as soon as the slot is free (load can delay one
    # hand-off, not make every one of them wait a whole delay).
    gaps = [start - end for (_, end), (start, _) in zip(calls, calls[1:], strict=False)]
    assert min(gaps) < 0.4, f"each step waited its delay after the one before it: {gaps}"


@pytest.mark.parametrize("limit", [1, 2, 0])
def test_max_concurrent_bounds_recorded_intervals(executor, backend, tmp_path, limit):
    width = {1: 1, 2: 2, 0: WORKERS}[limit] if parallel(executor) else 1
    folder = tmp_path / "arrivals"
    folder.mkdir()
    flow = new_flow(backend, tmp_path)
    names = [f"s{i}" for i in range(1, 7 if limit else WORKERS + 1)]
    for name in names:
        flow.add_step(name, func=rendezvous, args=(str(folder), name, width, 0.05))
    run = run_core(flow, backend, max_concurrent=limit)
    assert run.result is True
    assert run.status() == {f"{name}/1": "success" for name in names}
    assert all(run.value(f"{name}/1") for name in names), "steps did not meet their peers"
    assert most_at_once(run.intervals()) == width


def test_per_step_max_concurrent_caps_instances(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    for outer in ("p", "q", "r"):
        flow.add_step(outer, func=pause, args=(0.05,), config={"max_concurrent": 1})
    box = flow.add_step("box", repeats=[1])
    for name in ("a", "b", "c", "d"):
        box.add_step(name, func=pause, args=(0.1,))
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    assert len(run.intervals()) == 7


def test_first_ready_then_definition_order_with_max_concurrent_one(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    first = flow.add_step("zeta", func=noop)
    flow.add_step("alpha", func=noop)
    box = flow.add_step("box", repeats=[1, 2])
    box.add_step("inner_b", func=noop)
    box.add_step("inner_a", func=noop)
    flow.add_step("mid", func=noop, requires=((first, S.success),))
    flow.add_step("omega", func=noop)
    # SPEC 2.7: first ready, first started; ready together: definition order. zeta, alpha,
    # box and omega are ready at the start; mid when zeta ends; box's steps when box starts
    # (after alpha ended), its second iteration's when the first ends.
    expected = [
        "zeta/1:active",
        "alpha/1:active",
        "box/1:active",
        "omega/1:active",
        "mid/1:active",
        "box_inner_b/1.1:active",
        "box_inner_a/1.1:active",
        "box_inner_b/1.2:active",
        "box_inner_a/1.2:active",
    ]
    for _ in range(2):  # deterministic: the same order every time
        run = run_core(flow, backend, max_concurrent=1)
        assert run.result is True
        assert run.events(S.active) == expected
        assert most_at_once(run.intervals()) == 1


def test_step_context_in_concurrent_steps(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    for outer, items in (("left", ["a", "b"]), ("right", [10, 20])):
        box = flow.add_step(outer, repeats=items)
        box.add_step("one", func=whoami, args=(0.1,))
        box.add_step("two", func=whoami, args=(0.1,))
    flow.add_step("top", func=whoami, args=(0.1,))
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    seen = {str(r.key): r.outcome.value for r in run.records if r.outcome is not None}
    assert seen == {
        "left_one/1.1": ("left_one", "1.1", 1, "a", "behaviour-run"),
        "left_two/1.1": ("left_two", "1.1", 1, "a", "behaviour-run"),
        "left_one/1.2": ("left_one", "1.2", 2, "b", "behaviour-run"),
        "left_two/1.2": ("left_two", "1.2", 2, "b", "behaviour-run"),
        "right_one/1.1": ("right_one", "1.1", 1, 10, "behaviour-run"),
        "right_two/1.1": ("right_two", "1.1", 1, 10, "behaviour-run"),
        "right_one/1.2": ("right_one", "1.2", 2, 20, "behaviour-run"),
        "right_two/1.2": ("right_two", "1.2", 2, 20, "behaviour-run"),
        "top/1": ("top", "1", 1, None, "behaviour-run"),
    }
    if parallel(executor):
        assert most_at_once(run.intervals()) >= 3, "the steps did not run concurrently"


def test_step_context_through_flow_methods(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=["only"])
    box.add_step("ask", func=ask_flow, args=(flow,))
    assert flow.run() is True
    assert flow.get_step_name() is None


def ask_flow(flow: seq.Sequent) -> None:
    assert flow.get_step_name() == "box_ask"
    assert flow.get_step_sequence() == "1.1"
    assert flow.get_step_recovery() == 0
    assert seq.current().item == "only"
    assert flow.run_id == seq.current().run_id


# -- repeats -------------------------------------------------------------------------------


def test_callable_repeats_expand_when_the_container_starts(executor, backend, tmp_path):
    folder = tmp_path / "produced"
    folder.mkdir()
    flow = new_flow(backend, tmp_path)
    produce = flow.add_step(
        "produce", func=write_files, args=(str(folder), ["c.csv", "a.csv", "b.csv"])
    )
    each = flow.add_step(
        "each",
        repeats=functools.partial(list_files, str(folder)),
        requires=((produce, S.success),),
    )
    each.add_step("load", func=read_item)
    assert flow.compile().iterations.get(NodeKey("each", "1")) is None  # not expanded up front
    run = run_core(flow, backend)
    assert run.result is True
    assert [
        (str(r.key), r.outcome.value)
        for r in run.records
        if r.key.path == "each_load" and r.status is S.success
    ] == [
        ("each_load/1.1", "a.csv"),
        ("each_load/1.2", "b.csv"),
        ("each_load/1.3", "c.csv"),
    ]


def test_callable_repeats_that_raise_fail_the_container(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    each = flow.add_step("each", repeats=functools.partial(list_files, str(tmp_path / "none")))
    each.add_step("load", func=read_item)
    run = run_core(flow, backend)
    assert run.result is False
    assert run.status() == {"each/1": "failure"}
    assert "FileNotFoundError" in run.record("each/1", S.failure).error


def test_a_failed_callable_repeats_is_logged_with_its_traceback(
    executor, backend, tmp_path, caplog
):
    flow = new_flow(backend, tmp_path)
    each = flow.add_step("each", repeats=functools.partial(list_files, str(tmp_path / "none")))
    each.add_step("load", func=read_item)
    with caplog.at_level(logging.ERROR, logger="sequent"):
        run = run_core(flow, backend)
    assert run.result is False
    outcome = run.outcome("each/1")
    assert "FileNotFoundError" in outcome.error
    assert "list_files" in outcome.traceback  # the frame that raised, as for a step
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("each" in line and "FileNotFoundError" in line for line in said), said


def test_callable_repeats_that_return_a_set_fail_the_container(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    each = flow.add_step("each", repeats=lambda: {"alpha", "beta", "gamma"})
    each.add_step("load", func=read_item)
    run = run_core(flow, backend)
    assert run.result is False
    assert run.status() == {"each/1": "failure"}
    error = run.record("each/1", S.failure).error
    assert "returned a set" in error and "sorted(" in error, error


def test_empty_repeats_run_no_iteration_and_succeed(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[])
    box.add_step("never", func=fail)
    later = flow.add_step("later", repeats=lambda: iter(()))
    later.add_step("never", func=fail)
    flow.add_step("after", func=noop, requires=((box, S.success), (later, S.success)))
    run = run_core(flow, backend)
    assert run.result is True
    assert run.status() == {"box/1": "success", "later/1": "success", "after/1": "success"}


def test_seed_flow_sequences(executor, backend, tmp_path):
    flow = new_flow(backend, tmp_path)
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", repeats=[1, 2])
    s111 = s11.add_step("s111", func=echo, args=("prog1",))
    s11.add_step("s112", func=echo, args=("prog2",), requires=((s111, S.success),))
    s1.add_step("s12", func=echo, args=("prog3",), requires=((s11, S.success),))
    flow.add_step("s2", func=echo, args=("prog4",), requires=((s1, S.success),))
    run = run_core(flow, backend, max_concurrent=1)
    assert run.result is True
    assert run.events(S.success) == [
        "s1_s11_s111/1.1.1:success",
        "s1_s11_s112/1.1.1:success",
        "s1_s11_s111/1.1.2:success",
        "s1_s11_s112/1.1.2:success",
        "s1_s11/1.1:success",
        "s1_s12/1.1:success",
        "s1_s11_s111/1.2.1:success",
        "s1_s11_s112/1.2.1:success",
        "s1_s11_s111/1.2.2:success",
        "s1_s11_s112/1.2.2:success",
        "s1_s11/1.2:success",
        "s1_s12/1.2:success",
        "s1/1:success",
        "s2/1:success",
    ]
    values = [r.outcome.value for r in run.records if r.outcome is not None]
    assert values == ["prog1", "prog2", "prog1", "prog2", "prog3"] * 2 + ["prog4"]
