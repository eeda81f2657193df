"""``parallel=`` on containers (SPEC 1.2) before and around a run: checks when the step is
added, the compiled structure, ``to_dot()``, ``plan()`` and the progress display."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import sequent as seq
from sequent import DefinitionError, DefinitionTypeError
from sequent.compiler import NodeKey
from sequent.compiler.structure import plan_from_structure, read_structure, structure_of
from sequent.progress import LiveProgress
from sequent.store import MemoryRecorder

S = seq.StepStatus


def step() -> None:
    return None


def new_flow() -> seq.Sequent:
    return seq.Sequent(name="fan", store=":memory:", executor="serial")


@pytest.mark.parametrize(
    "value, error, builtin, words",
    [
        (-1, DefinitionError, ValueError, ("'box'", "parallel", ">= 0", "-1")),
        (2.5, DefinitionTypeError, TypeError, ("'box'", "parallel", "2.5")),
        ("4", DefinitionTypeError, TypeError, ("'box'", "parallel", "'4'")),
        (None, DefinitionTypeError, TypeError, ("'box'", "parallel", "None")),
    ],
)
def test_a_bad_parallel_is_refused_when_the_step_is_added(value, error, builtin, words):
    flow = new_flow()
    with pytest.raises(error) as caught:
        flow.add_step("box", repeats=[1, 2], parallel=value)
    assert isinstance(caught.value, builtin)
    for word in words:
        assert word in str(caught.value)
    assert flow._steps == []  # nothing was added


def test_parallel_on_a_leaf_is_refused():
    flow = new_flow()
    with pytest.raises(DefinitionError, match="'a'.*parallel=.*has a func"):
        flow.add_step("a", func=step, parallel=2)
    flow.add_step("placeholder", parallel=3)  # may still become a container
    with pytest.raises(DefinitionError, match="'placeholder' has parallel=3 but no child steps"):
        flow.compile()


@pytest.mark.parametrize("value, stored", [(1, 1), (4, 4), (0, 0), (True, 0), (False, 1)])
def test_parallel_values(value, stored):
    flow = new_flow()
    box = flow.add_step("box", repeats=range(3), parallel=value)
    box.add_step("a", func=step)
    plan = flow.compile()
    assert plan.index.steps["box"].parallel == stored
    recorded = structure_of(plan)
    entry = next(s for s in recorded["steps"] if s["path"] == "box")
    assert entry.get("parallel", 1) == stored
    again = plan_from_structure(read_structure(recorded))
    assert again.index.steps["box"].parallel == stored


def test_to_dot_says_how_many_at_once():
    flow = new_flow()
    box = flow.add_step("box", repeats=range(20), parallel=4)
    box.add_step("a", func=step)
    every = flow.add_step("every", repeats=lambda: [1, 2], parallel=0)
    every.add_step("b", func=step)
    text = flow.to_dot()
    assert 'label="box\\nrepeats \u00d720, up to 4 at once: [0, 1, 2, 3, 4, ...]"' in text
    assert 'label="every\\nrepeats: expanded at run time, all at once"' in text
    assert "up to 4 at once" in flow.to_dot(expanded=True)


def test_plan_shows_the_parallel_container():
    flow = new_flow()
    box = flow.add_step("box", repeats=range(3), parallel=2)
    box.add_step("a", func=step)
    planned = flow.plan()
    [container] = [node for node in planned if node.container]
    assert container.reason == "iterations up to 2 at once"
    assert "box/1      run                   -         iterations up to 2 at once" in str(planned)
    assert planned.keys(leaves_only=True) == [NodeKey("box_a", f"1.{k}") for k in (1, 2, 3)]


def test_progress_counts_the_iterations_running():
    flow = new_flow()
    box = flow.add_step("box", repeats=range(5), parallel=3)
    inner = box.add_step("inner")
    inner.add_step("a", func=step)
    inner.add_step("b", func=step)
    plan = flow.compile()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=140, color_system=None)
    display = LiveProgress(plan, "fan", "r1", console=console)
    tap = display.wrap(MemoryRecorder())
    tap.node(NodeKey("box", "1"), S.active)
    for sequence in ("1.1.1", "1.2.1"):
        tap.node(NodeKey("box_inner_a", sequence), S.active)
    tap.node(NodeKey("box_inner_b", "1.1.1"), S.active)  # two steps of one iteration
    assert display.iterations() == ["box/1: 2 iterations running (up to 3 at once)"]
    console.print(display.render())
    assert "box/1: 2 iterations running (up to 3 at once)" in buffer.getvalue()
