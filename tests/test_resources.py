"""Resource pools (SPEC 3.4) on every executor: limits, whole requests, FIFO, impossible waits.

Pools live in the scheduling core, so the same flows must behave the same on every backend.
What a step saw is judged from the recorded outcomes (worker-stamped ``started``/``ended``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from corerun import WORKERS, most_at_once, new_flow, rendezvous, run_core

import sequent as seq
from sequent.compiler import NodeKey
from sequent.resources import Ledger
from sequent.status import StepStatus

S = StepStatus


# -- steps (module level: picklable) -------------------------------------------------------


def noop() -> None:
    return None


def pause(seconds: float) -> None:
    time.sleep(seconds)


def fail() -> None:
    raise RuntimeError("boom")


def touch(path: str) -> None:
    Path(path).touch()


def until(path: str) -> bool:
    """Wait until ``path`` exists; False if it never does (30 s bound a hang)."""
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def busy_until_seen(flow: seq.Sequent, executor: str, seen: tuple, folder: Path) -> None:
    """``busy``, a step that runs until ``witness`` (which requires ``seen``) has run; on the
    serial executor, which runs a leaf in the core's own thread, a step that returns at once."""
    witness = str(folder / "witness")
    flow.add_step("witness", func=touch, args=(witness,), requires=(seen,))
    flow.add_step("busy", func=noop if executor == "serial" else until,
                  args=() if executor == "serial" else (witness,))  # fmt: skip


# -- fixtures ------------------------------------------------------------------------------



def pool(name: str, limit: int) -> seq.ResourcePool:
    return seq.ResourcePool(name, policy={"resource_limit": limit}).load()


# -- limits --------------------------------------------------------------------------------


def test_limit_two_never_more_than_two_at_once(executor, backend, tmp_path):
    folder = tmp_path / "arrivals"
    folder.mkdir()
    width = 2 if executor != "serial" else 1
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    names = [f"s{i}" for i in range(1, 7)]
    for name in names:
        flow.add_step(
            name, func=rendezvous, args=(str(folder), name, width, 0.05), acquires=[(rp, 1)]
        )
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    assert run.status() == {f"{name}/1": "success" for name in names}
    assert all(run.value(f"{name}/1") for name in names), "two holders never ran together"
    assert most_at_once(run.intervals()) == width


def test_two_pools_in_opposite_order_never_deadlock(executor, backend, tmp_path):
    rp1, rp2 = pool("RP1", 1), pool("RP2", 1)
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=range(4))
    box.add_step("forward", func=pause, args=(0.01,), acquires=[(rp1, 1), (rp2, 1)])
    box.add_step("backward", func=pause, args=(0.01,), acquires=[(rp2, 1), (rp1, 1)])
    flow.add_step("lone1", func=pause, args=(0.01,), acquires=[(rp1, 1)])
    flow.add_step("lone2", func=pause, args=(0.01,), acquires=[(rp2, 1)])
    started = time.monotonic()
    run = run_core(flow, backend, max_concurrent=0)
    assert time.monotonic() - started < 20
    assert run.result is True
    assert len([e for e in run.events(S.success) if "ward/" in e]) == 8
    # each of forward/backward held both pools: none of them overlapped another holder
    assert most_at_once(run.intervals("box_")) == 1


def hold_pool(flow: seq.Sequent, rp: seq.ResourcePool, amount: int) -> None:
    """A container holding ``amount`` of ``rp`` for four ticks of 0.3 s.

    A container, not a long leaf: the serial executor runs a leaf in the core's own thread, so
    only between iterations does it see waiters arrive.
    """
    hold = flow.add_step("hold", repeats=range(4), acquires=[(rp, amount)])
    hold.add_step("tick", func=pause, args=(0.3,))


@pytest.mark.slow_on("serial", "process", "loky")  # pauses: the core's pools, quick on thread
def test_waiting_is_fifo_for_equal_requests(executor, backend, tmp_path):
    rp = pool("RP", 1)
    flow = new_flow(backend, tmp_path)
    hold_pool(flow, rp, 1)
    # defined in the opposite order of their arrival: arrival decides
    flow.add_step("third", func=noop, delay=0.75, acquires=[(rp, 1)])
    flow.add_step("second", func=noop, delay=0.45, acquires=[(rp, 1)])
    flow.add_step("first", func=noop, delay=0.15, acquires=[(rp, 1)])
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    starts = [e for e in run.events(S.active) if not e.startswith("hold")]
    assert starts == ["first/1:active", "second/1:active", "third/1:active"]
    assert run.outcome("first/1").started >= max(end for _, end in run.intervals("hold_"))
    assert most_at_once(run.intervals()) == 1


@pytest.mark.slow_on("serial", "process", "loky")  # pauses: the core's pools, quick on thread
def test_a_smaller_request_does_not_overtake_an_earlier_larger_one(executor, backend, tmp_path):
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    hold_pool(flow, rp, 1)
    flow.add_step("small", func=noop, delay=0.45, acquires=[(rp, 1)])  # 1 is free: it fits
    flow.add_step("big", func=pause, args=(0.1,), delay=0.15, acquires=[(rp, 2)])
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    starts = [e for e in run.events(S.active) if not e.startswith("hold")]
    assert starts == ["big/1:active", "small/1:active"]
    assert run.outcome("big/1").started >= max(end for _, end in run.intervals("hold_"))
    assert run.outcome("small/1").started >= run.outcome("big/1").ended


def test_resources_released_on_failure(executor, backend, tmp_path):
    rp = pool("RP", 1)
    flow = new_flow(backend, tmp_path)
    bad = flow.add_step("bad", func=fail, acquires=[(rp, 1)])
    flow.add_step("next", func=noop, acquires=[(rp, 1)], requires=((bad, S.failure),))
    run = run_core(flow, backend)
    assert run.status() == {"bad/1": "failure", "next/1": "success"}
    assert run.result is True


def test_explicit_releases_give_back_what_they_name(executor, backend, tmp_path):
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    # takes 2, gives back 1: one stays taken until `giver` returns it
    taker = flow.add_step("taker", func=noop, acquires=[(rp, 2)], releases=[(rp, 1)])
    one = flow.add_step("one", func=noop, acquires=[(rp, 1)], requires=((taker, S.success),))
    giver = flow.add_step("giver", func=noop, releases=[(rp, 1)], requires=((one, S.success),))
    flow.add_step("two", func=noop, acquires=[(rp, 2)], requires=((giver, S.success),))
    run = run_core(flow, backend)
    assert run.result is True
    assert set(run.status().values()) == {"success"}


def test_a_waiter_for_kept_resources_waits_for_a_step_that_gives_them_back(
    executor, backend, tmp_path
):
    """``keeper`` keeps the only E; ``giver`` (explicit ``releases``) returns it when it ends:
    ``user``, waiting for E meanwhile, is not failed as impossible but runs after ``giver``."""
    e = pool("E", 1)
    flow = new_flow(backend, tmp_path)
    keeper = flow.add_step("keeper", func=noop, acquires=[(e, 1)], releases=[])
    flow.add_step("user", func=noop, acquires=[(e, 1)], requires=((keeper, S.success),))
    flow.add_step("giver", func=pause, args=(0.05,), releases=[(e, 1)],
                  requires=((keeper, S.success),))  # fmt: skip
    run = run_core(flow, backend)
    assert run.status() == {"keeper/1": "success", "user/1": "success", "giver/1": "success"}
    assert run.result is True
    assert run.outcome("user/1").started >= run.outcome("giver/1").ended


# -- impossible waits ----------------------------------------------------------------------


def test_releases_empty_leads_to_a_clear_failure_not_a_hang(executor, backend, tmp_path):
    rp = pool("RP", 1)
    flow = new_flow(backend, tmp_path)
    keeper = flow.add_step("keeper", func=noop, acquires=[(rp, 1)], releases=[])
    flow.add_step("waiter", func=noop, acquires=[(rp, 1)], requires=((keeper, S.success),))
    flow.add_step("after", func=noop, requires=(("waiter", S.success),))
    run = run_core(flow, backend)
    assert run.result is False
    assert run.status() == {"keeper/1": "success", "waiter/1": "failure", "after/1": "skipped"}
    error = run.record("waiter/1", S.failure).error
    assert "'RP'" in error  # the pool
    assert "requests 1 of" in error  # the request
    assert "keeper/1" in error and "releases=[]" in error  # who holds it, and why
    # found when the run comes to rest, not after a waiting period (a hang never gets here)
    assert run.ended - run.outcome("keeper/1").ended < 10.0


def test_deadlock_is_detected_while_other_steps_still_run(executor, backend, tmp_path):
    """``busy`` runs until a step that needs the waiter's failure has run: the deadlock is
    found while it runs, not once everything else has ended (then ``busy`` would wait in
    vain)."""
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path, stop_on_exception=False)
    keeper = flow.add_step("keeper", func=noop, acquires=[(rp, 1)], releases=[])
    waiter = flow.add_step("waiter", func=noop, acquires=[(rp, 2)],
                           requires=((keeper, S.success),))  # fmt: skip
    busy_until_seen(flow, executor, (waiter, S.failure), tmp_path)
    run = run_core(flow, backend, stop_on_exception=False)
    assert run.result is True  # the witness handles the waiter's failure
    failed = run.record("waiter/1", S.failure)
    assert "requests 2 of resource pool 'RP'" in failed.error
    assert run.status()["busy/1"] == "success" and run.status()["witness/1"] == "success"
    if executor != "serial":
        assert run.value("busy/1") is True, "busy ended before the deadlock was found"


def test_child_waiting_for_what_its_container_holds_fails_at_once(executor, backend, tmp_path):
    rp = pool("RP", 1)
    flow = new_flow(backend, tmp_path, stop_on_exception=False)
    box = flow.add_step("box", acquires=[(rp, 1)])
    box.add_step("inner", func=noop, acquires=[(rp, 1)])
    busy_until_seen(flow, executor, (box, S.failure), tmp_path)
    run = run_core(flow, backend, stop_on_exception=False)
    assert run.result is True  # the witness handles the box's failure
    failed = run.record("box_inner/1.1", S.failure)
    assert "box/1" in failed.error  # the holder: its own container
    assert run.status()["box/1"] == "failure"
    assert run.index("box_inner/1.1", S.failure) < run.index("busy/1", S.success)
    if executor != "serial":
        assert run.value("busy/1") is True, "busy ended before the child failed"


def test_waiters_behind_an_impossible_request_still_get_served(executor, backend, tmp_path):
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    keeper = flow.add_step("keeper", func=noop, acquires=[(rp, 1)], releases=[])
    flow.add_step("big", func=noop, acquires=[(rp, 2)], requires=((keeper, S.success),))
    flow.add_step("small", func=noop, acquires=[(rp, 1)], requires=((keeper, S.success),))
    run = run_core(flow, backend, stop_on_exception=False)
    assert run.status() == {"keeper/1": "success", "big/1": "failure", "small/1": "success"}


def test_request_above_the_limit_is_a_build_error(executor, backend, tmp_path):
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    with pytest.raises(seq.ResourceError) as caught:
        flow.add_step("greedy", func=noop, acquires=[(rp, 3)])
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "'greedy'" in message and "'RP'" in message and "limit of 2" in message
    box = flow.add_step("box", acquires=[(rp, 2)])
    with pytest.raises(seq.ResourceError, match="'box_inner'"):
        box.add_step("inner", func=noop, releases=[(rp, 5)])


# -- containers and recovery ---------------------------------------------------------------


def test_container_holds_its_acquisition_across_all_iterations(executor, backend, tmp_path):
    rp = pool("RP", 2)
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[1, 2, 3], acquires=[(rp, 2)])
    box.add_step("work", func=pause, args=(0.05,))
    flow.add_step("outsider", func=noop, acquires=[(rp, 1)])
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    last_iteration = max(ended for _, ended in run.intervals("box_"))
    assert run.outcome("outsider/1").started >= last_iteration
    assert run.index("outsider/1", S.active) > run.index("box/1", S.success)


def test_seed_resource_example_flow(executor, backend, tmp_path):
    rp1 = pool("RP1", 2)
    rp2 = pool("RP2", 2)
    flow = new_flow(backend, tmp_path)
    s1 = flow.add_step("s1", repeats=[1, 2], acquires=[(rp1, 2)])
    s11 = s1.add_step("s11", func=pause, args=(0.01,), acquires=[(rp2, 1)])
    s1.add_step("s12", func=pause, args=(0.01,), acquires=[(rp2, 2)], requires=((s11, S.success),))
    flow.add_step("s2", func=noop, acquires=[(rp1, 1)], requires=((s1, S.success),))
    run = run_core(flow, backend)
    assert run.result is True
    assert run.events(S.success) == [
        "s1_s11/1.1:success",
        "s1_s12/1.1:success",
        "s1_s11/1.2:success",
        "s1_s12/1.2:success",
        "s1/1:success",
        "s2/1:success",
    ]


def test_steps_skipped_in_recovery_take_nothing(executor, backend, tmp_path):
    rp = pool("RP", 1)
    flow = new_flow(backend, tmp_path)
    # a fresh run would keep RP forever after `keeper`; recovered, `keeper` takes nothing
    keeper = flow.add_step("keeper", func=fail, acquires=[(rp, 1)], releases=[])
    flow.add_step("user", func=noop, acquires=[(rp, 1)], requires=((keeper, S.success),))
    previous = {NodeKey("keeper", "1"): S.success, NodeKey("user", "1"): S.failure}
    run = run_core(flow, backend, previous=previous)
    assert run.result is True
    assert run.status() == {"keeper/1": "success", "user/1": "success"}
    assert run.record("keeper/1", S.success).replayed is True
    assert run.record("user/1", S.success).replayed is False


def test_many_waiters_all_run_with_a_small_pool(executor, backend, tmp_path):
    rp = pool("RP", 3)
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[1, 2])
    for i in range(WORKERS * 2):
        box.add_step(f"w{i}", func=noop, acquires=[(rp, 1 + i % 3)])
    run = run_core(flow, backend, max_concurrent=0)
    assert run.result is True
    assert len(run.events(S.success)) == WORKERS * 2 * 2 + 1


# -- the ledger alone ----------------------------------------------------------------------


def test_ledger_grants_whole_requests_in_fifo_order(executor):
    rp1, rp2 = pool("RP1", 2), pool("RP2", 1)
    ledger = Ledger()
    assert ledger.acquire("a", ((rp1, 1),)) is True
    assert ledger.acquire("b", ((rp1, 2), (rp2, 1))) is False  # needs 2 of RP1: waits whole
    assert ledger.free == {rp1: 1, rp2: 1}  # nothing of b's request is held
    assert ledger.acquire("c", ((rp1, 1),)) is False  # would overtake b on RP1
    assert ledger.acquire("d", ((rp2, 1),)) is False  # would overtake b on RP2
    assert ledger.release("a", None) == ["b"]
    assert ledger.release("b", None) == ["c", "d"]
