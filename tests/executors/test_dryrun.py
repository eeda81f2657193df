"""The dry run's driver: RunState driven in the core's launch order, calling no user code."""

from __future__ import annotations

import sequent as seq
from sequent.compiler import NodeKey
from sequent.executors.dryrun import NEVER, RUN, SKIP, LaunchOrder, rehearse

S = seq.StepStatus


def flow_of(calls):
    flow = seq.Sequent(name="rehearsed", store=":memory:", executor="serial")
    late = flow.add_step("late", func=calls.append, args=("late",))
    box = flow.add_step("box", repeats=[1, 2])
    inner = box.add_step("inner", func=calls.append, args=("inner",))
    box.add_step("after", func=calls.append, args=("after",), requires=((inner, S.success),))
    flow.add_step("rescue", func=calls.append, args=("rescue",), requires=((late, S.failure),))
    dynamic = flow.add_step("dynamic", repeats=lambda: calls.append("repeats") or [1])
    dynamic.add_step("each", func=calls.append, args=("each",))
    return flow


def test_rehearsal_reaches_nodes_in_launch_order_and_calls_nothing():
    calls: list[str] = []
    rehearsal = rehearse(flow_of(calls).compile())
    assert calls == []
    assert list(rehearsal.reached.items()) == [
        (NodeKey("late", "1"), RUN),
        (NodeKey("rescue", "1"), NEVER),  # decided when late succeeds
        (NodeKey("box", "1"), RUN),
        (NodeKey("dynamic", "1"), RUN),
        (NodeKey("box_inner", "1.1"), RUN),
        (NodeKey("box_after", "1.1"), RUN),
        (NodeKey("box_inner", "1.2"), RUN),
        (NodeKey("box_after", "1.2"), RUN),
    ]
    assert rehearsal.deferred == {NodeKey("dynamic", "1")}


def test_a_recover_rehearsal_skips_what_succeeded():
    plan = flow_of([]).compile()
    previous = {NodeKey("late", "1"): S.success, NodeKey("box_inner", "1.1"): S.failure}
    reached = rehearse(plan, previous).reached
    assert reached[NodeKey("late", "1")] == SKIP
    assert reached[NodeKey("box_inner", "1.1")] == RUN


def test_launch_order_is_earlier_moment_first_then_rank():
    plan = flow_of([]).compile()
    order = LaunchOrder(plan.nodes)
    late, box, rescue = NodeKey("late", "1"), NodeKey("box", "1"), NodeKey("rescue", "1")
    order.push([rescue, box])
    order.push([late])
    assert [order.pop(), order.pop(), order.pop()] == [box, rescue, late]
    assert not order
