"""The compiler's output compared whole against literals: nodes, iterations, graph, index."""

from __future__ import annotations

import networkx as nx
import pytest
from seedflow import seed_flow

import sequent as seq
from sequent.compiler import ROOT, AllOf, AnyOf, Atom, NodeKey, Plan

S = seq.StepStatus


def prog() -> None:
    return None


def K(text: str) -> NodeKey:
    path, sequence = text.split("/")
    return NodeKey(path, sequence)


def nodes_of(plan: Plan) -> dict[str, tuple]:
    """Every node as ``{"path/sequence": (step path, parent, ordinal, item, rank)}``."""
    return {
        str(key): (spec.step.path_name, str(spec.parent), spec.ordinal, spec.item, spec.rank)
        for key, spec in plan.nodes.items()
    }


def iterations_of(plan: Plan) -> dict[str, list[tuple]]:
    """Every container's iterations as ``(ordinal, item, sequence, [children])``."""
    return {
        str(key): [(i.ordinal, i.item, i.sequence, [str(c) for c in i.children]) for i in its]
        for key, its in plan.iterations.items()
    }


def edges_of(plan: Plan) -> set[tuple]:
    return {
        (str(u), str(v), tuple(sorted((k, v2) for k, v2 in data.items())))
        for u, v, data in plan.graph.edges(data=True)
    }


def test_seed_flow_nodes():
    assert nodes_of(seed_flow(prog).compile()) == {
        "s1/1": ("s1", "/", 1, None, (0, (1,))),
        "s1_s11/1.1": ("s1_s11", "s1/1", 1, 1, (1, (1, 1))),
        "s1_s11/1.2": ("s1_s11", "s1/1", 2, 2, (1, (1, 2))),
        "s1_s11_s111/1.1.1": ("s1_s11_s111", "s1_s11/1.1", 1, 1, (2, (1, 1, 1))),
        "s1_s11_s111/1.1.2": ("s1_s11_s111", "s1_s11/1.1", 2, 2, (2, (1, 1, 2))),
        "s1_s11_s111/1.2.1": ("s1_s11_s111", "s1_s11/1.2", 1, 1, (2, (1, 2, 1))),
        "s1_s11_s111/1.2.2": ("s1_s11_s111", "s1_s11/1.2", 2, 2, (2, (1, 2, 2))),
        "s1_s11_s112/1.1.1": ("s1_s11_s112", "s1_s11/1.1", 1, 1, (3, (1, 1, 1))),
        "s1_s11_s112/1.1.2": ("s1_s11_s112", "s1_s11/1.1", 2, 2, (3, (1, 1, 2))),
        "s1_s11_s112/1.2.1": ("s1_s11_s112", "s1_s11/1.2", 1, 1, (3, (1, 2, 1))),
        "s1_s11_s112/1.2.2": ("s1_s11_s112", "s1_s11/1.2", 2, 2, (3, (1, 2, 2))),
        "s1_s12/1.1": ("s1_s12", "s1/1", 1, 1, (4, (1, 1))),
        "s1_s12/1.2": ("s1_s12", "s1/1", 2, 2, (4, (1, 2))),
        "s2/1": ("s2", "/", 1, None, (5, (1,))),
    }


def test_seed_flow_iterations():
    assert iterations_of(seed_flow(prog).compile()) == {
        "/": [(1, None, "1", ["s1/1", "s2/1"])],
        "s1/1": [
            (1, 1, "1.1", ["s1_s11/1.1", "s1_s12/1.1"]),
            (2, 2, "1.2", ["s1_s11/1.2", "s1_s12/1.2"]),
        ],
        "s1_s11/1.1": [
            (1, 1, "1.1.1", ["s1_s11_s111/1.1.1", "s1_s11_s112/1.1.1"]),
            (2, 2, "1.1.2", ["s1_s11_s111/1.1.2", "s1_s11_s112/1.1.2"]),
        ],
        "s1_s11/1.2": [
            (1, 1, "1.2.1", ["s1_s11_s111/1.2.1", "s1_s11_s112/1.2.1"]),
            (2, 2, "1.2.2", ["s1_s11_s111/1.2.2", "s1_s11_s112/1.2.2"]),
        ],
    }


def test_seed_flow_graph():
    plan = seed_flow(prog).compile()
    requires = (("kind", "requires"), ("statuses", ("success",)))

    def contains(ordinal: int) -> tuple:
        return (("kind", "contains"), ("ordinal", ordinal))

    assert edges_of(plan) == {
        ("s1/1", "s2/1", requires),
        ("s1/1", "s1_s11/1.1", contains(1)),
        ("s1/1", "s1_s12/1.1", contains(1)),
        ("s1/1", "s1_s11/1.2", contains(2)),
        ("s1/1", "s1_s12/1.2", contains(2)),
        ("s1_s11/1.1", "s1_s12/1.1", requires),
        ("s1_s11/1.2", "s1_s12/1.2", requires),
        ("s1_s11/1.1", "s1_s11_s111/1.1.1", contains(1)),
        ("s1_s11/1.1", "s1_s11_s112/1.1.1", contains(1)),
        ("s1_s11/1.1", "s1_s11_s111/1.1.2", contains(2)),
        ("s1_s11/1.1", "s1_s11_s112/1.1.2", contains(2)),
        ("s1_s11/1.2", "s1_s11_s111/1.2.1", contains(1)),
        ("s1_s11/1.2", "s1_s11_s112/1.2.1", contains(1)),
        ("s1_s11/1.2", "s1_s11_s111/1.2.2", contains(2)),
        ("s1_s11/1.2", "s1_s11_s112/1.2.2", contains(2)),
        ("s1_s11_s111/1.1.1", "s1_s11_s112/1.1.1", requires),
        ("s1_s11_s111/1.1.2", "s1_s11_s112/1.1.2", requires),
        ("s1_s11_s111/1.2.1", "s1_s11_s112/1.2.1", requires),
        ("s1_s11_s111/1.2.2", "s1_s11_s112/1.2.2", requires),
    }
    assert nx.is_directed_acyclic_graph(plan.graph)
    assert nx.is_frozen(plan.graph)
    assert plan.graph.nodes[K("s2/1")]["spec"] is plan.nodes[K("s2/1")]


def test_seed_flow_order_is_definition_then_sequence():
    assert [str(k) for k in seed_flow(prog).compile().order()] == [
        "s1/1",
        "s1_s11/1.1",
        "s1_s11/1.2",
        "s1_s11_s111/1.1.1",
        "s1_s11_s111/1.1.2",
        "s1_s11_s111/1.2.1",
        "s1_s11_s111/1.2.2",
        "s1_s11_s112/1.1.1",
        "s1_s11_s112/1.1.2",
        "s1_s11_s112/1.2.1",
        "s1_s11_s112/1.2.2",
        "s1_s12/1.1",
        "s1_s12/1.2",
        "s2/1",
    ]


def test_seed_flow_index():
    index = seed_flow(prog).compile().index
    assert dict(index.watchers) == {
        "s1": ("s2",),
        "s2": (),
        "s1_s11": ("s1_s12",),
        "s1_s12": (),
        "s1_s11_s111": ("s1_s11_s112",),
        "s1_s11_s112": (),
    }
    assert dict(index.parents) == {
        "s1": "",
        "s2": "",
        "s1_s11": "s1",
        "s1_s12": "s1",
        "s1_s11_s111": "s1_s11",
        "s1_s11_s112": "s1_s11",
    }
    assert not any(index.handled.values())


def test_requirement_expressions_and_handled_failures():
    flow = seq.Sequent(name="exprs", store=":memory:")
    a = flow.add_step("a", func=prog)
    b = flow.add_step("b", func=prog)
    either = flow.add_event(seq.or_((a, S.failure), (b, S.success)))
    c = flow.add_step("c", func=prog, requires=(either, seq.and_((a, S.complete), (b, "active"))))
    flow.add_step("d", func=prog, requires=seq.or_((c, S.ready)))
    plan = flow.compile()
    steps = plan.index.steps
    assert steps["c"].requires == AllOf(
        (
            AnyOf((Atom(("a",), S.failure), Atom(("b",), S.success))),
            AllOf((Atom(("a",), S.complete), Atom(("b",), S.active))),
        )
    )
    assert steps["d"].requires == AnyOf((Atom(("c",), S.ready),))
    assert steps["a"].requires == AllOf(())
    assert {name: plan.index.handled[name] for name in "abcd"} == {
        "a": True, "b": False, "c": False, "d": False,
    }  # fmt: skip
    assert dict(plan.index.handled) == {"a": True}  # only the handled are held
    assert dict(plan.index.watchers) == {"a": ("c",), "b": ("c",), "c": ("d",), "d": ()}
    assert edges_of(plan) == {
        ("a/1", "c/1", (("kind", "requires"), ("statuses", ("failure", "complete")))),
        ("b/1", "c/1", (("kind", "requires"), ("statuses", ("success", "active")))),
        ("c/1", "d/1", (("kind", "requires"), ("statuses", ("ready",)))),
    }


def test_repeats_ranges_and_nesting_sequences():
    flow = seq.Sequent(name="nest", store=":memory:")
    outer = flow.add_step("o", repeats=range(3))
    inner = outer.add_step("i", repeats=["x"])
    inner.add_step("leaf", func=prog)
    flow.add_step("empty", repeats=[]).add_step("never", func=prog)
    plan = flow.compile()
    assert sorted(str(k) for k in plan.nodes if k.path == "o_i_leaf") == [
        "o_i_leaf/1.1.1",
        "o_i_leaf/1.2.1",
        "o_i_leaf/1.3.1",
    ]
    assert [spec.item for key, spec in sorted(plan.nodes.items()) if key.path == "o_i"] == [0, 1, 2]
    assert iterations_of(plan)["empty/1"] == []
    assert not any(key.path == "empty_never" for key in plan.nodes)


def test_callable_repeats_are_left_for_the_scheduler():
    calls = []

    def items() -> list[int]:
        calls.append(1)
        return [1, 2]

    flow = seq.Sequent(name="lazy", store=":memory:")
    box = flow.add_step("box", repeats=items)
    box.add_step("leaf", func=prog)
    plan = flow.compile()
    assert calls == []  # not called while compiling
    assert sorted(str(k) for k in plan.nodes) == ["box/1"]
    assert K("box/1") not in plan.iterations
    assert iterations_of(plan) == {"/": [(1, None, "1", ["box/1"])]}
    assert list(plan.graph.edges) == []


def test_compiled_plan_is_immutable():
    plan = seed_flow(prog).compile()
    with pytest.raises(nx.NetworkXError):
        plan.graph.add_edge(K("s2/1"), K("s1/1"))
    with pytest.raises(AttributeError):
        plan.nodes[K("s2/1")].ordinal = 3  # type: ignore[misc]
    assert ROOT in plan.iterations
