"""Bad input while building a flow (SPEC 8): refused at once, with the documented error type,
a message naming the step and the fix, and before anything runs or is written.

Errors found by ``add_step`` are raised there; those that need the whole flow (a forward
reference, a cycle) are raised by ``compile()``, which ``run()`` calls before it opens the
store, creates a log folder or starts a step.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import sequent as seq
from sequent.errors import (
    CycleError,
    DefinitionError,
    DefinitionTypeError,
    DuplicateStepError,
    NotSendableError,
    ResourceError,
    SequentError,
    UnknownStepError,
)

S = seq.StepStatus
CALLS: list[str] = []


def step() -> None:
    CALLS.append("called")


@pytest.fixture
def flow(tmp_path: Path) -> seq.Sequent:
    CALLS.clear()
    made = seq.Sequent(
        name="bad",
        store=str(tmp_path / "bad.run.db"),
        executor="thread",
        logging_level=logging.INFO,
        config={"logdir": str(tmp_path / "logs")},
    )
    yield made
    made.close()


def refused_before_anything(flow: seq.Sequent, tmp_path: Path, error: type, *names: str) -> str:
    """``run()`` raises ``error``; nothing ran, no store file, no log folder. Returns the text."""
    with pytest.raises(error) as caught:
        flow.run()
    assert isinstance(caught.value, SequentError)
    assert CALLS == []
    assert not (tmp_path / "bad.run.db").exists()
    assert not (tmp_path / "logs").exists()
    message = str(caught.value)
    for name in names:
        assert repr(name) in message, message
    return message


# -- requirements --------------------------------------------------------------------------


def test_cycle_names_the_cycle(flow, tmp_path):
    flow.add_step("a", func=step, requires=(("c", S.success),))
    flow.add_step("b", func=step, requires=(("a", S.success),))
    flow.add_step("c", func=step, requires=(("b", S.success),))
    with pytest.raises(CycleError) as caught:
        flow.compile()
    assert isinstance(caught.value, ValueError)
    cycle = caught.value.cycle
    assert cycle in {("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")}  # a -> b -> c -> a
    assert " -> ".join((*cycle, cycle[0])) in str(caught.value)
    message = refused_before_anything(flow, tmp_path, CycleError)
    assert "remove one of these requirements" in message


def test_a_step_requiring_itself_is_a_cycle(flow, tmp_path):
    flow.add_step("loop", func=step, requires=(("loop", S.failure),))
    with pytest.raises(CycleError, match="loop -> loop"):
        flow.compile()


def test_cycle_inside_a_container_names_the_container(flow, tmp_path):
    box = flow.add_step("box")
    box.add_step("x", func=step, requires=(("y", S.success),))
    box.add_step("y", func=step, requires=(("x", S.success),))
    message = refused_before_anything(flow, tmp_path, CycleError, "box")
    assert "box_x" in message and "box_y" in message


def test_unknown_step_in_requires(flow, tmp_path):
    flow.add_step("a", func=step, requires=(("ghost", S.success),))
    message = refused_before_anything(flow, tmp_path, UnknownStepError, "a", "ghost")
    assert isinstance(UnknownStepError("x"), LookupError)
    assert "not a sibling" in message


def test_non_sibling_in_requires_names_both_steps(flow):
    box = flow.add_step("box")
    inner = box.add_step("inner", func=step)
    with pytest.raises(UnknownStepError) as caught:
        flow.add_step("outer", func=step, requires=((inner, S.success),))
    message = str(caught.value)
    assert "'outer'" in message and "'box_inner'" in message
    assert "drop the requirement" in message
    with pytest.raises(UnknownStepError, match="'box_late'.*'outer_step'"):
        outer = flow.add_step("outer_step", func=step)
        box.add_step("late", func=step, requires=((outer, S.success),))


def test_bad_status_in_requires(flow):
    a = flow.add_step("a", func=step)
    with pytest.raises(DefinitionError, match="'b'.*skipped.*ready, active, success"):
        flow.add_step("b", func=step, requires=((a, S.skipped),))
    with pytest.raises(DefinitionTypeError, match="'c'"):
        flow.add_step("c", func=step, requires=((a, "finished"),))
    with pytest.raises(DefinitionTypeError, match="'d'.*without a status"):
        flow.add_step("d", func=step, requires=(a,))


def test_event_of_another_flow(flow, tmp_path):
    other = seq.Sequent(name="other", store=":memory:")
    event = other.add_event(((other.add_step("x", func=step), S.success),))
    with pytest.raises(SequentError, match="'a'"):
        flow.add_step("a", func=step, requires=event)


# -- names and shape -----------------------------------------------------------------------


def test_duplicate_name_among_siblings(flow):
    flow.add_step("a", func=step)
    with pytest.raises(DuplicateStepError, match="'a'.*already defined in the flow") as caught:
        flow.add_step("a", func=step)
    assert isinstance(caught.value, ValueError)
    box = flow.add_step("box")
    box.add_step("a", func=step)  # a different path: fine
    with pytest.raises(DuplicateStepError, match="container 'box'"):
        box.add_step("a", func=step)


def test_duplicate_path_through_underscores(flow):
    box = flow.add_step("s1")
    box.add_step("s11", func=step)
    with pytest.raises(DuplicateStepError, match="'s1_s11'.*rename one"):
        flow.add_step("s1_s11", func=step)


@pytest.mark.parametrize("name", ["", None, 3])
def test_bad_step_names(flow, name):
    with pytest.raises(DefinitionTypeError, match="non-empty string"):
        flow.add_step(name, func=step)


def test_non_callable_func(flow):
    with pytest.raises(DefinitionTypeError, match="'a'.*func must be callable.*str") as caught:
        flow.add_step("a", func="not a function")
    assert isinstance(caught.value, TypeError)


def test_container_with_a_func(flow, tmp_path):
    leaf = flow.add_step("leaf", func=step)
    with pytest.raises(DefinitionError, match="'leaf'.*drop func="):
        leaf.add_step("child", func=step)


def test_leaf_without_func_is_a_placeholder_that_succeeds(flow):
    flow.add_step("empty")  # the original ran such a step as a no-op (SPEC 6)
    assert flow.run() is True
    rows = flow._store.nodes(flow.run_id)
    assert [(row["path"], row["status"]) for row in rows] == [("empty", "success")]


def test_repeats_on_a_leaf(flow, tmp_path):
    flow.add_step("leaf", func=step, repeats=[1, 2])
    message = refused_before_anything(flow, tmp_path, DefinitionError, "leaf")
    assert "child step" in message


@pytest.mark.parametrize("repeats", [3, "abc", {"a": 1}])
def test_bad_repeats(flow, repeats):
    with pytest.raises(DefinitionTypeError, match="'box'.*repeats"):
        flow.add_step("box", repeats=repeats)


def test_flow_without_steps(flow, tmp_path):
    refused_before_anything(flow, tmp_path, DefinitionError, "bad")


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["delay", "timeout", "retry_delay"])
def test_negative_seconds(flow, what):
    with pytest.raises(DefinitionError, match=f"'a'.*{what} must be .*>= 0, got -1") as caught:
        flow.add_step("a", func=step, **{what: -1})
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("what", ["delay", "timeout"])
def test_seconds_of_the_wrong_type(flow, what):
    with pytest.raises(DefinitionTypeError, match=f"'a'.*{what} must be a number of seconds"):
        flow.add_step("a", func=step, **{what: "5"})


def test_zero_timeout(flow):
    with pytest.raises(DefinitionError, match="'a'.*timeout must be > 0"):
        flow.add_step("a", func=step, timeout=0)


def test_negative_retries(flow):
    with pytest.raises(DefinitionError, match="'a'.*retries must be >= 0"):
        flow.add_step("a", func=step, retries=-2)


# -- resources -----------------------------------------------------------------------------


def test_resource_request_above_the_limit(flow):
    rp = seq.ResourcePool("RP", policy={"resource_limit": 2}).load()
    with pytest.raises(ResourceError) as caught:
        flow.add_step("greedy", func=step, acquires=[(rp, 3)])
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "'greedy'" in message and "'RP'" in message and "at most 2" in message


def test_resource_request_shapes(flow):
    rp = seq.ResourcePool("RP", policy={"resource_limit": 2}).load()
    with pytest.raises(DefinitionTypeError, match="'a'.*\\(ResourcePool, amount\\)"):
        flow.add_step("a", func=step, acquires=[("RP", 1)])
    with pytest.raises(ResourceError, match="'b'.*whole number >= 1"):
        flow.add_step("b", func=step, acquires=[(rp, 0)])
    flow.add_step("c", func=step, acquires=[rp])  # a bare pool means one of it


def test_bad_pools():
    with pytest.raises(ResourceError, match="resource_limit"):
        seq.ResourcePool("RP", policy={"resource_limit": 0})
    with pytest.raises(ResourceError, match="unknown policy keys"):
        seq.ResourcePool("RP", policy={"limit": 2})
    with pytest.raises(ResourceError, match="subclass of sequent.Resource"):
        seq.ResourcePool("RP", resource_cls=dict)


# -- sending to workers --------------------------------------------------------------------


class RemoteBackend:
    """A backend that runs steps in 'another process': it must never be handed a step here."""

    name = "remote-test"
    remote = True

    def submit(self, task, hosts=None):
        raise AssertionError("a step was submitted")

    def kill(self, future) -> bool:
        return False

    def shutdown(self) -> None:
        pass


def test_func_the_executor_cannot_send(tmp_path):
    import threading

    CALLS.clear()
    flow = seq.Sequent(
        name="bad",
        store=str(tmp_path / "bad.run.db"),
        executor=RemoteBackend(),
        config={"logdir": str(tmp_path / "logs")},
    )
    flow.add_step("fine", func=step)
    flow.add_step("locked", func=step, args=(threading.Lock(),))
    message = refused_before_anything(flow, tmp_path, NotSendableError, "locked")
    assert "argument 0" in message and "remote-test" in message
    assert isinstance(NotSendableError("x"), TypeError)
    flow.close()
