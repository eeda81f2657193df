"""Generations of ready nodes: what the state machine releases, round by round, for a plan.

As CPython's graphlib tests do, a flow is judged by the groups of nodes that become ready
together when every node of the previous group is started and finished. The state machine
(``RunState``) is driven by hand, with no executor and no clock.
"""

from __future__ import annotations

import graphlib

from hypothesis import given, settings
from hypothesis import strategies as st
from seedflow import seed_flow

import sequent as seq
from sequent.compiler import NodeKey
from sequent.executors.state import RunState

S = seq.StepStatus


def prog() -> None:
    return None


def generations(
    flow: seq.Sequent,
    outcomes: dict[str, seq.StepStatus] | None = None,
    previous: dict[NodeKey, seq.StepStatus] | None = None,
) -> tuple[list[list[str]], RunState]:
    """Start and finish each generation of ready nodes; return the generations and the state.

    A leaf ends with ``outcomes["path/sequence"]`` (success when not given).
    """
    outcomes = outcomes or {}
    state = RunState(flow.compile(), previous)
    state.prepare()
    result = []
    ready = state.get_ready()
    while ready:
        result.append([str(key) for key in ready])
        leaves = [key for key in ready if state.start(key) is not None]
        for key in leaves:
            state.done(key, outcomes.get(str(key), S.success))
        ready = state.get_ready()
    return result, state


def statuses(state: RunState) -> dict[str, str]:
    return {str(key): status.value for key, status in state.status.items()}


def test_diamond():
    flow = seq.Sequent(name="diamond", store=":memory:")
    a = flow.add_step("a", func=prog)
    b = flow.add_step("b", func=prog, requires=((a, S.success),))
    c = flow.add_step("c", func=prog, requires=((a, S.success),))
    flow.add_step("d", func=prog, requires=((b, S.success), (c, S.success)))
    found, state = generations(flow)
    assert found == [["a/1"], ["b/1", "c/1"], ["d/1"]]
    assert not state.is_active() and state.result()


def test_diamond_with_a_failure_skips_what_depends_on_it():
    flow = seq.Sequent(name="diamond", store=":memory:")
    a = flow.add_step("a", func=prog)
    b = flow.add_step("b", func=prog, requires=((a, S.success),))
    c = flow.add_step("c", func=prog, requires=((a, S.success),))
    flow.add_step("d", func=prog, requires=((b, S.success), (c, S.success)))
    found, state = generations(flow, {"b/1": S.failure})
    assert found == [["a/1"], ["b/1", "c/1"]]
    assert statuses(state) == {
        "a/1": "success",
        "b/1": "failure",
        "c/1": "success",
        "d/1": "skipped",
    }
    assert not state.is_active() and not state.result()


def test_seed_flow_generations():
    flow = seed_flow(prog)
    found, state = generations(flow)
    assert found == [
        ["s1/1"],
        ["s1_s11/1.1"],
        ["s1_s11_s111/1.1.1"],
        ["s1_s11_s112/1.1.1"],
        ["s1_s11_s111/1.1.2"],
        ["s1_s11_s112/1.1.2"],
        ["s1_s12/1.1"],
        ["s1_s11/1.2"],
        ["s1_s11_s111/1.2.1"],
        ["s1_s11_s112/1.2.1"],
        ["s1_s11_s111/1.2.2"],
        ["s1_s11_s112/1.2.2"],
        ["s1_s12/1.2"],
        ["s2/1"],
    ]
    assert set(statuses(state).values()) == {"success"}


def test_status_atoms_release_in_the_right_generation():
    flow = seq.Sequent(name="atoms", store=":memory:")
    a = flow.add_step("a", func=prog)
    flow.add_step("on_ready", func=prog, requires=((a, S.ready),))
    flow.add_step("on_active", func=prog, requires=((a, S.active),))
    flow.add_step("on_success", func=prog, requires=((a, S.success),))
    flow.add_step("on_failure", func=prog, requires=((a, S.failure),))
    flow.add_step("on_complete", func=prog, requires=((a, S.complete),))
    found, state = generations(flow)
    # `ready` holds as soon as `a` is ready: same generation; `active` when it is started
    assert found == [["a/1", "on_ready/1"], ["on_active/1", "on_success/1", "on_complete/1"]]
    assert statuses(state)["on_failure/1"] == "skipped"
    assert state.result()  # a handled step that succeeded: nothing failed


def test_containers_iterate_one_after_another_and_fail_fast():
    flow = seq.Sequent(name="box", store=":memory:")
    box = flow.add_step("box", repeats=["a", "b", "c"])
    box.add_step("x", func=prog)
    box.add_step("y", func=prog)
    flow.add_step("after", func=prog, requires=((box, S.failure),))
    found, state = generations(flow, {"box_y/1.2": S.failure})
    assert found == [
        ["box/1"],
        ["box_x/1.1", "box_y/1.1"],
        ["box_x/1.2", "box_y/1.2"],
        ["after/1"],
    ]
    assert statuses(state)["box/1"] == "failure"
    assert state.result()  # the container's failure is handled by `after`


def test_recovered_nodes_are_marked_success_when_reached():
    flow = seq.Sequent(name="recover", store=":memory:")
    a = flow.add_step("a", func=prog)
    b = flow.add_step("b", func=prog, requires=((a, S.success),))
    flow.add_step("c", func=prog, requires=((b, S.success),))
    previous = {NodeKey("a", "1"): S.success, NodeKey("b", "1"): S.failure}
    found, state = generations(flow, previous=previous)
    assert found == [["b/1"], ["c/1"]]  # a is replayed, not released to the executor
    assert statuses(state) == {"a/1": "success", "b/1": "success", "c/1": "success"}
    assert [str(change.key) for change in state.get_changes() if change.replayed] == ["a/1"]


# -- against graphlib, for flows of plain success requirements -----------------------------


@st.composite
def dags(draw):
    size = draw(st.integers(min_value=1, max_value=12))
    edges = {
        node: draw(st.sets(st.integers(min_value=0, max_value=node - 1), max_size=3))
        if node
        else set()
        for node in range(size)
    }
    return edges


@settings(max_examples=60, deadline=None)
@given(dags())
def test_generations_match_graphlib(edges):
    flow = seq.Sequent(name="random", store=":memory:")
    handles = {}
    for node, deps in edges.items():
        handles[node] = flow.add_step(
            f"n{node}", func=prog, requires=tuple((handles[d], S.success) for d in sorted(deps))
        )
    found, state = generations(flow)

    sorter = graphlib.TopologicalSorter(
        {f"n{n}/1": {f"n{d}/1" for d in deps} for n, deps in edges.items()}
    )
    sorter.prepare()
    expected = []
    while sorter.is_active():
        group = sorted(sorter.get_ready())
        expected.append(group)
        sorter.done(*group)
    assert [sorted(group) for group in found] == expected
    assert not state.is_active() and state.result()
