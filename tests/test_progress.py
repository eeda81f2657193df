"""The live progress display: what it counts as a run goes, and what it draws."""

from __future__ import annotations

import io
import logging

from rich.console import Console

import sequent as seq
from sequent.compiler import NodeKey
from sequent.progress import LiveProgress
from sequent.store import MemoryRecorder

S = seq.StepStatus


def terminal():
    buffer = io.StringIO()
    return buffer, Console(file=buffer, force_terminal=True, width=140, color_system=None)


def test_counts_follow_the_recorded_changes_of_leaves_only():
    flow = seq.Sequent(name="count", store=":memory:", executor="serial")
    box = flow.add_step("box", repeats=[1, 2])
    box.add_step("a", func=print)
    flow.add_step("b", func=print, requires=((box, S.failure),))
    plan = flow.compile()
    _, console = terminal()
    display = LiveProgress(plan, "count", "r1", console=console)
    recorder = MemoryRecorder()
    tap = display.wrap(recorder)
    assert display.counts()["total"] == 3
    tap.node(NodeKey("box", "1"), S.active)  # a container: not counted
    tap.node(NodeKey("box_a", "1.1"), S.ready)
    tap.node(NodeKey("box_a", "1.1"), S.active)
    assert display.running() == [NodeKey("box_a", "1.1")]
    tap.node(NodeKey("box_a", "1.1"), S.failure, error="boom", retry=0)  # a try that is retried
    tap.node(NodeKey("box_a", "1.1"), S.success)
    tap.node(NodeKey("box_a", "1.2"), S.active)
    tap.node(NodeKey("b", "1"), S.skipped)
    counts = display.counts()
    assert counts == {
        "total": 3,
        "done": 2,
        "running": 1,
        "succeeded": 1,
        "failed": 0,
        "skipped": 1,
        "interrupted": 0,
        "waiting": 0,
    }
    # every call reached the real recorder, in order
    assert [(str(r.key), r.status.value) for r in recorder.records] == [
        ("box/1", "active"),
        ("box_a/1.1", "ready"),
        ("box_a/1.1", "active"),
        ("box_a/1.1", "failure"),
        ("box_a/1.1", "success"),
        ("box_a/1.2", "active"),
        ("b/1", "skipped"),
    ]
    assert recorder.records[3].error == "boom"
    tap.flush()
    assert recorder.flushes == 1


def test_instances_expanded_at_run_time_join_the_total(make_flow):
    buffer, console = terminal()
    flow = make_flow("serial", name="grow", logging_level=logging.WARNING)
    box = flow.add_step("box", repeats=lambda: ["x", "y", "z"])
    box.add_step("a", func=print)
    flow.add_step("b", func=print)
    assert flow.run(progress=console) is True
    screen = buffer.getvalue()
    assert "4/4 steps done" in screen  # b, then the three instances of box_a
    assert "4 succeeded" in screen and "0 failed" in screen
    assert "flow 'grow' run " in screen


def test_a_failing_run_shows_its_failures(make_flow):
    def fails():
        raise RuntimeError("no")

    buffer, console = terminal()
    flow = make_flow("serial", name="bad", logging_level=logging.CRITICAL, stop_on_exception=False)
    flow.add_step("x", func=fails)
    flow.add_step("y", func=print, requires=(("x", S.success),))
    flow.add_step("z", func=print)
    assert flow.run(progress=console) is False
    final = buffer.getvalue()
    assert "3/3 steps done" in final
    assert "1 failed" in final and "1 skipped" in final and "1 succeeded" in final


def test_library_runs_draw_nothing(make_flow, capsys):
    flow = make_flow("serial", name="plain", logging_level=logging.CRITICAL)
    flow.add_step("a", func=print, args=("hello",))
    assert flow.run() is True
    captured = capsys.readouterr()
    assert "steps done" not in captured.out + captured.err


def test_elapsed_time_and_the_estimate_of_time_left_follow_the_steps_done():
    flow = seq.Sequent(name="clock", store=":memory:", executor="serial")
    for name in "abcd":
        flow.add_step(name, func=print)
    buffer, console = terminal()
    display = LiveProgress(flow.compile(), "clock", "r1", console=console)
    now = [100.0]
    display._clock = lambda: now[0]
    display._started = 100.0
    tap = display.wrap(MemoryRecorder())
    assert display.times() == (0.0, None)  # nothing done: no estimate
    now[0] = 130.0
    tap.node(NodeKey("a", "1"), S.success)
    assert display.times() == (30.0, 90.0)  # 30 s a step, 3 steps left
    console.print(display.render())
    assert "elapsed 0:00:30" in buffer.getvalue() and "about 0:01:30 left" in buffer.getvalue()
    for name in "bcd":
        tap.node(NodeKey(name, "1"), S.success)
    assert display.times() == (30.0, 0.0)


def test_the_last_frame_ends_with_a_newline_off_a_terminal(make_flow):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=140, color_system=None)
    flow = make_flow("serial", name="piped", logging_level=logging.CRITICAL)
    flow.add_step("a", func=print)
    assert flow.run(progress=console) is True
    text = buffer.getvalue()
    assert "1/1 steps done" in text
    assert text.endswith("\n")
