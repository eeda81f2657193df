"""The recorded structure (issue 12): each definition once plus how it expands, read back per
node; stores written in the earlier per-node format stay readable and recoverable."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import sequent as seq
from sequent.compiler import NodeKey, requirements
from sequent.compiler.structure import (
    decoded,
    describe_changes,
    item_text,
    plan_from_structure,
    read_structure,
    structure_of,
)
from sequent.errors import StoreError
from sequent.store import open_store


def work() -> None:
    """A step body."""


def new_flow(name: str = "codec", store: str = ":memory:") -> seq.Sequent:
    return seq.Sequent(name=name, store=store, executor="serial", logging_level=logging.WARNING)


def rich_flow() -> seq.Sequent:
    """Containers, static and callable repeats, parallel=, nesting, events, or_ and and_."""
    flow = new_flow()
    a = flow.add_step("a", func=work)
    b = flow.add_step("b", func=work, requires=((a, seq.STEP_FAILURE),))
    either = flow.add_event(seq.or_((a, seq.STEP_SUCCESS), (b, seq.STEP_COMPLETE)))
    box = flow.add_step("box", repeats=["p", "q", 3], requires=either, parallel=2)
    first = box.add_step("first", func=work, retries=2, timeout=5)
    inner = box.add_step(
        "inner", repeats=range(2), requires=seq.and_((first, "success"), (first, "complete"))
    )
    leaf = inner.add_step("leaf", func=work)
    inner.add_step("after", func=work, requires=((leaf, seq.STEP_SUCCESS),))
    later = flow.add_step("later", repeats=lambda: [1, 2], requires=either, parallel=0)
    later.add_step("each", func=work)
    flow.add_step(
        "z",
        func=work,
        requires=seq.or_(seq.and_((a, "success"), (b, "success")), (box, seq.STEP_SUCCESS)),
        recovery={seq.StepStatus.success: seq.StepReplay.rerun},
    )
    return flow


def per_node(plan) -> list[list]:
    """What formats 1 and 2 recorded per node: [path, sequence, item], in definition order."""
    return [
        [key.path, key.sequence, item_text(spec.item)]
        for key, spec in sorted(plan.nodes.items(), key=lambda item: item[1].rank)
    ]


def test_the_structure_records_definitions_not_nodes():
    plan = rich_flow().compile()
    recorded = json.loads(json.dumps(structure_of(plan)))
    assert recorded["format"] == 3 and "nodes" not in recorded
    assert [step["path"] for step in recorded["steps"]] == [
        "a", "b", "box", "box_first", "box_inner", "box_inner_leaf", "box_inner_after",
        "later", "later_each", "z",
    ]  # fmt: skip
    box = recorded["steps"][2]
    assert box["repeats"] == {"count": 3} and box["items"] == ["'p'", "'q'", "3"]
    assert box["parallel"] == 2
    assert recorded["steps"][7]["requires_as"] == "box"  # the same event: recorded once
    assert "items" not in recorded["steps"][7]  # callable repeats: expanded at run time


def test_decoding_gives_back_every_static_node_in_order():
    plan = rich_flow().compile()
    recorded = json.loads(json.dumps(structure_of(plan)))
    view = decoded(recorded)
    assert view["nodes"] == per_node(plan)
    assert ["box_inner_after", "1.3.2", "1"] in view["nodes"]  # the item of its own container
    assert ["box_first", "1.2", "'q'"] in view["nodes"]
    assert all("order" in step and "items" not in step for step in view["steps"])
    assert decoded(view) == view  # decoding twice changes nothing


def test_round_trip_compiles_the_same_flow_again():
    plan = rich_flow().compile()
    recorded = json.loads(json.dumps(structure_of(plan)))
    again = plan_from_structure(read_structure(recorded))
    assert per_node(again) == per_node(plan)
    for name, step in plan.index.steps.items():
        other = again.index.steps[name]
        assert requirements.to_data(other.requires) == requirements.to_data(step.requires)
        assert (other.parallel, other.order, other.is_container) == (
            step.parallel,
            step.order,
            step.is_container,
        )
    assert decoded(structure_of(again))["nodes"] == decoded(recorded)["nodes"]


def test_read_structure_adds_run_time_expansions():
    plan = rich_flow().compile()
    expansions = [("later_each", "1.1", "later", "1", 1, "1")]
    view = read_structure(structure_of(plan), expansions)
    shown = {(node["path"], node["sequence"]): node for node in view["nodes"]}
    second = shown[("box_first", "1.2")]
    assert (second["parent"], second["item"], second["ordinal"]) == (["box", "1"], "'q'", 2)
    assert shown[("later_each", "1.1")]["expanded"] is True
    assert {step["path"]: step["kind"] for step in view["steps"]}["box_inner"] == "container"


def test_changes_are_named_across_formats():
    old = decoded(structure_of(rich_flow().compile()))
    old["format"] = 2
    flow = rich_flow()
    flow.add_step("extra", func=work)
    notes = describe_changes(old, structure_of(flow.compile()), "r1")
    assert notes[1:] == ["Steps added: extra", "Nodes added (will run): extra/1"]


# -- a store written by an earlier version ---------------------------------------------------

#: What the earlier encoder (format 2, one [path, sequence, item] per node) wrote for
#: ``old_flow``.
OLD_FORMAT = {
    "format": 2,
    "flow": "old",
    "steps": [
        {"path": "a", "order": 0, "func": "tests.compiler.test_structure_codec.work"},
        {"path": "box", "order": 1, "kind": "container",
         "requires": {"step": "a", "status": "success"}, "repeats": {"count": 2}},
        {"path": "box_b", "order": 2, "parent": "box",
         "func": "tests.compiler.test_structure_codec.work"},
        {"path": "box_c", "order": 3, "parent": "box",
         "func": "tests.compiler.test_structure_codec.work",
         "requires": {"step": "box_b", "status": "complete"}, "retries": 1},
        {"path": "z", "order": 4, "func": "tests.compiler.test_structure_codec.work",
         "requires_as": "box"},
    ],
    "nodes": [["a", "1", None], ["box", "1", None], ["box_b", "1.1", "'x'"],
              ["box_b", "1.2", "'y'"], ["box_c", "1.1", "'x'"], ["box_c", "1.2", "'y'"],
              ["z", "1", None]],
}  # fmt: skip


def old_flow(store: Path, mode: seq.RunMode, fail: bool) -> seq.Sequent:
    def maybe() -> None:
        if fail:
            raise RuntimeError("told to fail")

    flow = seq.Sequent(
        name="old",
        store=str(store),
        run_mode=mode,
        executor="serial",
        logging_level=logging.INFO,
        config={"logdir": str(store.parent / "logs"), "stop_on_exception": False},
    )
    a = flow.add_step("a", func=work)
    box = flow.add_step("box", repeats=["x", "y"], requires=((a, seq.STEP_SUCCESS),))
    b = box.add_step("b", func=work)
    box.add_step("c", func=maybe, requires=((b, seq.STEP_COMPLETE),), retries=1)
    flow.add_step("z", func=work, requires=((a, seq.STEP_SUCCESS),))
    return flow


@pytest.fixture
def old_store(tmp_path) -> tuple[Path, str]:
    """A store whose run records its structure as the earlier version wrote it."""
    store = tmp_path / "old.run.db"
    with old_flow(store, seq.RunMode.restart, fail=True) as flow:
        assert flow.run() is False
        run_id = flow.run_id
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(
            "UPDATE runs SET structure = ? WHERE run_id = ?", (json.dumps(OLD_FORMAT), run_id)
        )
    conn.close()
    return store, run_id


def test_a_store_in_the_old_format_reads_as_before(old_store):
    store, run_id = old_store
    with open_store(str(store)) as reader:
        view = reader.structure(run_id)
    assert [(n["path"], n["sequence"], n["item"]) for n in view["nodes"]] == [
        tuple(node) for node in OLD_FORMAT["nodes"]
    ]
    steps = {step["path"]: step for step in view["steps"]}
    assert steps["z"]["requires"] == {"step": "a", "status": "success"}
    assert steps["box_c"]["parent"] == "box" and steps["box_c"]["name"] == "c"
    now = read_structure(structure_of(old_flow(store, seq.RunMode.restart, False).compile()))
    assert now["nodes"] == view["nodes"]  # the new format reads back to the same view


def test_recovering_a_run_recorded_in_the_old_format(old_store, caplog):
    store, run_id = old_store
    with old_flow(store, seq.RunMode.recover, fail=False) as flow, caplog.at_level(logging.INFO):
        assert flow.run() is True
        assert flow.run_id == run_id
    assert "structure changed" not in caplog.text  # matched by (path, sequence): the same
    assert "3 recovered, 3 ran" in caplog.text  # a, box_b twice: succeeded before, skipped
    with open_store(str(store)) as reader:
        latest = {(n["path"], n["sequence"]): n for n in reader.nodes(run_id)}
        assert latest[("box_c", "1.2")]["status"] == "success"
        assert latest[("a", "1")]["status"] == "success"
        recorded = reader.structure(run_id)
    assert [n["path"] for n in recorded["nodes"]].count("box_c") == 2


def test_a_damaged_new_structure_names_the_problem(old_store):
    store, run_id = old_store
    broken = structure_of(old_flow(store, seq.RunMode.restart, False).compile())
    broken["steps"][1]["items"] = ["'x'"]  # two iterations, one item
    conn = sqlite3.connect(store)
    with conn:
        conn.execute("UPDATE runs SET structure = ? WHERE run_id = ?", (json.dumps(broken), run_id))
    conn.close()
    with open_store(str(store)) as reader, pytest.raises(StoreError, match="'box' whose repeats"):
        reader.structure(run_id)


@pytest.mark.slow
def test_a_million_nodes_compile_and_record_as_their_definitions():
    flow = new_flow("million")
    box = flow.add_step("box", repeats=range(10_000))
    for number in range(100):
        box.add_step(f"s{number}", func=work)
    plan = flow.compile()
    assert len(plan.nodes) == 1 + 1_000_000
    assert len(plan.iterations[NodeKey("box", "1")]) == 10_000
    recorded = structure_of(plan)
    assert len(recorded["steps"]) == 101 and "nodes" not in recorded  # nothing per node
    assert len(recorded["steps"][0]["items"]) == 10_000
    nodes = decoded(json.loads(json.dumps(recorded)))["nodes"]
    assert len(nodes) == len(plan.nodes)
    assert nodes[:3] == [["box", "1", None], ["box_s0", "1.1", "0"], ["box_s0", "1.2", "1"]]
    assert nodes[-1] == ["box_s99", "1.10000", "9999"]
