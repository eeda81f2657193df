"""DOT output (SPEC 5.1): parsed with pydot and laid out with Graphviz when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pydot
import pytest

import sequent as seq
from sequent.compiler import NodeKey
from sequent.compiler.dot import NOT_RUN_COLOR, STATUS_COLORS, expression_text, to_dot

S = seq.StepStatus


def prog(progname, success=True):
    if not success:
        raise RuntimeError(f"{progname} failed")
    return progname


def seed_flow(name="seed"):
    """The seed's simple example (with the typo ``require=s(`` fixed)."""
    flow = seq.Sequent(name=name, store=":memory:", config={"sleep_between_loops": 0.05})
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", repeats=[1, 2])
    s111 = s11.add_step("s111", func=prog, kwargs={"progname": "prog1"})
    s11.add_step("s112", func=prog, kwargs={"progname": "prog2"}, requires=((s111, S.success),))
    s1.add_step("s12", func=prog, kwargs={"progname": "prog3"}, requires=((s11, S.success),))
    flow.add_step("s2", func=prog, kwargs={"progname": "prog4"}, requires=((s1, S.success),))
    return flow


def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value[1:-1])
    return value


class Parsed:
    """The parts of a DOT graph the tests look at: nodes (with their cluster chain), edges."""

    def __init__(self, text):
        graphs = pydot.graph_from_dot_data(text)
        assert graphs and len(graphs) == 1, text
        self.graph = graphs[0]
        self.nodes = {}  # id -> (attributes, tuple of enclosing cluster names)
        self.clusters = {}  # name -> (attributes, parent cluster name or None)
        self._walk(self.graph, ())
        self.edges = [
            (unquote(e.get_source()), unquote(e.get_destination()), self._attrs(e))
            for e in self.graph.get_edges()
        ]

    @staticmethod
    def _attrs(obj):
        return {key: unquote(value) for key, value in obj.get_attributes().items()}

    def _walk(self, graph, chain):
        for node in graph.get_nodes():
            name = unquote(node.get_name())
            if name in ("graph", "node", "edge"):
                continue
            self.nodes[name] = (self._attrs(node), chain)
        for sub in graph.get_subgraphs():
            name = unquote(sub.get_name())
            self.clusters[name] = (self._attrs(sub), chain[-1] if chain else None)
            self._walk(sub, (*chain, name))

    def edge(self, source, target):
        found = [attrs for s, t, attrs in self.edges if (s, t) == (source, target)]
        assert len(found) == 1, f"{source} -> {target} not once in {self.edges}"
        return found[0]


def layout(text):
    """Lay the graph out with Graphviz when installed: it must accept the text."""
    if shutil.which("dot") is None:
        return None
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout
    return done.stdout.decode()


def test_definition_graph_of_the_seed_flow_has_clusters_and_labelled_edges():
    text = seq_text = seed_flow().to_dot()
    assert seq_text.startswith('digraph "seed" {')
    dot = Parsed(text)
    assert set(dot.clusters) == {"cluster_s1", "cluster_s1_s11"}
    assert dot.clusters["cluster_s1_s11"][1] == "cluster_s1"  # nested as the steps are
    assert "repeats \u00d72: [1, 2]" in dot.clusters["cluster_s1"][0]["label"]
    # one node per step; leaves sit in their container's cluster
    assert set(dot.nodes) == {"s1", "s1_s11", "s1_s11_s111", "s1_s11_s112", "s1_s12", "s2"}
    assert dot.nodes["s1_s11_s111"][1] == ("cluster_s1", "cluster_s1_s11")
    assert dot.nodes["s1_s12"][1] == ("cluster_s1",)
    assert dot.nodes["s2"][1] == ()
    assert dot.nodes["s1_s11_s112"][0]["label"] == "s112"
    # edges carry the status they wait for; edges of containers are clipped at the cluster
    assert len(dot.edges) == 3
    assert dot.edge("s1_s11_s111", "s1_s11_s112")["label"] == "success"
    assert dot.edge("s1_s11", "s1_s12") == {"label": "success", "ltail": "cluster_s1_s11"}
    assert dot.edge("s1", "s2") == {"label": "success", "ltail": "cluster_s1"}
    assert "compound=true" in text
    layout(text)


def test_expanded_graph_has_one_node_per_instance_and_a_cluster_per_container_instance():
    text = seed_flow().to_dot(expanded=True)
    dot = Parsed(text)
    leaves = {n for n in dot.nodes if not dot.nodes[n][0].get("shape") == "point"}
    assert leaves == {
        "s1_s11_s111/1.1.1", "s1_s11_s111/1.1.2", "s1_s11_s111/1.2.1", "s1_s11_s111/1.2.2",
        "s1_s11_s112/1.1.1", "s1_s11_s112/1.1.2", "s1_s11_s112/1.2.1", "s1_s11_s112/1.2.2",
        "s1_s12/1.1", "s1_s12/1.2", "s2/1",
    }  # fmt: skip
    containers = set(dot.nodes) - leaves
    assert containers == {"s1/1", "s1_s11/1.1", "s1_s11/1.2"}
    instance_clusters = {c for c in dot.clusters if not c.endswith("#")}
    assert instance_clusters == {"cluster_s1/1", "cluster_s1_s11/1.1", "cluster_s1_s11/1.2"}
    # iteration k of s11 at 1.2 is a sub-cluster inside that container instance
    chain = dot.nodes["s1_s11_s111/1.2.2"][1]
    assert chain == (
        "cluster_s1/1",
        "cluster_s1/1.2#",
        "cluster_s1_s11/1.2",
        "cluster_s1_s11/1.2.2#",
    )
    assert dot.clusters["cluster_s1_s11/1.2.2#"][0]["label"] == "iteration 2 (item 2)"
    # requirement edges between instances of the same sequence, 4 + 2 + 1 of them
    assert len(dot.edges) == 7
    for sequence in ("1.1.1", "1.1.2", "1.2.1", "1.2.2"):
        edge = dot.edge(f"s1_s11_s111/{sequence}", f"s1_s11_s112/{sequence}")
        assert edge["label"] == "success"
    assert dot.edge("s1_s11/1.2", "s1_s12/1.2")["ltail"] == "cluster_s1_s11/1.2"
    assert dot.edge("s1/1", "s2/1")["ltail"] == "cluster_s1/1"
    # no run given: everything white
    assert {attrs.get("fillcolor") for attrs, _ in dot.nodes.values()} == {NOT_RUN_COLOR}
    svg = layout(text)
    if svg is not None:
        assert svg.count('class="node"') == 14
        assert svg.count('class="cluster"') == 3 + 2 + 4


def test_statuses_fill_nodes_with_their_colour_in_both_views():
    flow = seed_flow()
    plan = flow.compile()
    statuses = {key: S.success for key in plan.nodes}
    statuses[NodeKey("s1_s11_s111", "1.2.2")] = S.failure
    statuses[NodeKey("s1_s11", "1.2")] = S.failure
    statuses[NodeKey("s1", "1")] = S.failure
    del statuses[NodeKey("s1_s11_s112", "1.2.2")]
    del statuses[NodeKey("s1_s12", "1.2")]
    statuses[NodeKey("s2", "1")] = S.skipped
    expanded = Parsed(to_dot(plan, expanded=True, statuses=statuses))
    fill = {name: attrs["fillcolor"] for name, (attrs, _) in expanded.nodes.items()}
    assert fill["s1_s11_s111/1.2.2"] == STATUS_COLORS[S.failure]
    assert fill["s1_s11_s111/1.1.1"] == STATUS_COLORS[S.success]
    assert fill["s1_s11_s112/1.2.2"] == NOT_RUN_COLOR
    assert fill["s2/1"] == STATUS_COLORS[S.skipped]
    assert fill["s1/1"] == STATUS_COLORS[S.failure]
    assert expanded.nodes["s2/1"][0]["tooltip"] == "s2/1: skipped"
    cluster = expanded.clusters["cluster_s1_s11/1.1"][0]
    assert cluster["style"] == "rounded,filled"  # a container instance is tinted too
    # the definition view colours a step by its most telling instance and counts them
    definition = Parsed(to_dot(plan, statuses=statuses))
    s111 = definition.nodes["s1_s11_s111"][0]
    assert s111["fillcolor"] == STATUS_COLORS[S.failure]
    assert s111["label"] == "s111\n1 failure, 3 success"
    assert definition.nodes["s1_s12"][0]["label"] == "s12\n1 success"
    assert definition.nodes["s2"][0]["fillcolor"] == STATUS_COLORS[S.skipped]
    assert "1 failure" in definition.clusters["cluster_s1"][0]["label"]
    layout(to_dot(plan, statuses=statuses))


def test_or_and_requirements_are_dashed_labelled_and_noted_on_the_step():
    flow = seq.Sequent(name="choices", store=":memory:")
    a = flow.add_step("a", func=prog, args=("a",))
    b = flow.add_step("b", func=prog, args=("b",))
    c = flow.add_step("c", func=prog, args=("c",))
    flow.add_step("d", func=prog, args=("d",), requires=((a, S.success), (b, S.complete)))
    event = flow.add_event(seq.or_((a, S.failure), seq.and_((b, S.success), (c, S.ready))))
    flow.add_step("e", func=prog, args=("e",), requires=event)
    dot = Parsed(flow.to_dot())
    assert dot.edge("a", "d") == {"label": "success"}
    assert dot.edge("b", "d") == {"label": "complete"}
    assert dot.nodes["d"][0]["label"] == "d"  # a plain AND needs no note
    assert dot.edge("a", "e") == {"label": "failure (or)", "style": "dashed"}
    assert dot.edge("b", "e") == {"label": "success (or)", "style": "dashed"}
    assert dot.edge("c", "e") == {"label": "ready (or)", "style": "dashed"}
    assert dot.nodes["e"][0]["label"] == "e\nrequires a:failure or (b:success and c:ready)"
    expanded = Parsed(flow.to_dot(expanded=True))
    assert expanded.edge("a/1", "e/1")["style"] == "dashed"
    assert "requires a:failure or" in expanded.nodes["e/1"][0]["label"]
    layout(flow.to_dot())


def test_expression_text_reads_like_the_requirement():
    flow = seq.Sequent(name="x", store=":memory:")
    a = flow.add_step("a", func=prog, args=("a",))
    b = flow.add_step("b", func=prog, args=("b",))
    step = flow.add_step(
        "c", func=prog, args=("c",), requires=seq.and_(seq.or_((a, S.success), (b, "failure")))
    )
    assert expression_text(step.definition.requires) == "a:success or b:failure"


def test_callable_repeats_shown_as_expanded_at_run_time_then_drawn_from_a_run():
    flow = seq.Sequent(name="dynamic", store=":memory:")
    calls = []

    def files():
        calls.append(1)
        return ["x.csv", "y.csv"]

    box = flow.add_step("box", repeats=files)
    box.add_step("load", func=prog, args=("load",))
    flow.add_step("after", func=prog, args=("after",), requires=((box, S.success),))
    definition = Parsed(flow.to_dot())
    assert "repeats: expanded at run time" in definition.clusters["cluster_box"][0]["label"]
    plan = flow.compile()
    expanded = Parsed(to_dot(plan, expanded=True))
    assert "expanded at run time" in expanded.clusters["cluster_box/1"][0]["label"]
    assert set(expanded.nodes) == {"box/1", "after/1"}
    assert calls == []  # drawing never calls user code
    # a run's statuses bring the instances expanded at run time
    statuses = {
        NodeKey("box", "1"): S.success,
        NodeKey("box_load", "1.1"): S.success,
        NodeKey("box_load", "1.2"): S.failure,
        NodeKey("after", "1"): S.skipped,
    }
    ran = Parsed(to_dot(plan, expanded=True, statuses=statuses))
    assert ran.nodes["box_load/1.2"][1] == ("cluster_box/1", "cluster_box/1.2#")
    assert ran.nodes["box_load/1.2"][0]["fillcolor"] == STATUS_COLORS[S.failure]
    assert "repeats \u00d72, expanded at run time" in ran.clusters["cluster_box/1"][0]["label"]
    layout(to_dot(plan, expanded=True, statuses=statuses))


def test_names_that_need_quoting_survive():
    flow = seq.Sequent(name='say "hi"', store=":memory:")
    first = flow.add_step('a "quoted" \\ step', func=prog, args=("a",))
    flow.add_step("b-2 (x)", func=prog, args=("b",), requires=((first, S.success),))
    dot = Parsed(flow.to_dot())
    assert dot.nodes['a "quoted" \\ step'][0]["label"] == 'a "quoted" \\ step'
    assert dot.edge('a "quoted" \\ step', "b-2 (x)")["label"] == "success"
    layout(flow.to_dot(expanded=True))


def test_to_dot_checks_the_flow_first():
    flow = seq.Sequent(name="bad", store=":memory:")
    flow.add_step("a", func=prog, args=("a",), requires=(("missing", S.success),))
    with pytest.raises(seq.UnknownStepError, match="missing"):
        flow.to_dot()


@pytest.mark.slow
def test_graphviz_renders_a_thousand_nodes(graphviz):
    flow = seq.Sequent(name="big", store=":memory:")
    box = flow.add_step("box", repeats=range(250))
    first = box.add_step("a", func=prog, args=("a",))
    second = box.add_step("b", func=prog, args=("b",), requires=((first, S.success),))
    box.add_step("c", func=prog, args=("c",), requires=((second, S.complete),))
    text = flow.to_dot(expanded=True)  # pydot's parser takes ~15 s here: Graphviz checks it
    svg = layout(text)
    assert svg.count('class="node"') == 1 + 750
    assert svg.count('class="cluster"') == 1 + 250
    assert svg.count('class="edge"') == 500


def test_to_dot_with_a_run_id_reads_the_statuses_from_the_store(tmp_path):
    import hashlib
    import logging

    def build():
        flow = seq.Sequent(
            name="coloured",
            store=str(tmp_path / "coloured.run.db"),
            executor="serial",
            logging_level=logging.WARNING,
            config={"logdir": str(tmp_path / "logs")},
        )
        box = flow.add_step("box", repeats=[1, 2])
        box.add_step("work", func=prog, args=("w",), kwargs={"success": True})
        flow.add_step("last", func=prog, args=("l",), kwargs={"success": False},
                      requires=((box, S.success),))  # fmt: skip
        return flow

    ran = build()
    assert ran.run() is False
    run_id = ran.run_id
    live = Parsed(ran.to_dot(expanded=True, run_id=run_id))  # through the flow's open store
    ran.close()
    store = tmp_path / "coloured.run.db"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    fresh = build()  # another process, say: the store file is opened read-only
    dot = Parsed(fresh.to_dot(expanded=True, run_id=run_id))
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    fill = {name: attrs["fillcolor"] for name, (attrs, _) in dot.nodes.items()}
    assert fill == {name: attrs["fillcolor"] for name, (attrs, _) in live.nodes.items()}
    assert fill["box_work/1.1"] == fill["box_work/1.2"] == STATUS_COLORS[S.success]
    assert fill["box/1"] == STATUS_COLORS[S.success]
    assert fill["last/1"] == STATUS_COLORS[S.failure]
    definition = Parsed(fresh.to_dot(run_id=run_id))
    assert definition.nodes["box_work"][0]["label"] == "work\n2 success"
    with pytest.raises(seq.RecoveryError, match="'feedbeef'"):
        fresh.to_dot(run_id="feedbeef")
    with pytest.raises(seq.DefinitionTypeError, match="run_id"):
        fresh.to_dot(run_id=7)
    memory = seed_flow()
    with pytest.raises(seq.RecoveryError, match="in-memory store"):
        memory.to_dot(run_id=run_id)
