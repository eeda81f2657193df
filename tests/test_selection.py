"""``--only``, ``--rerun [--downstream]`` and ``mark``, judged by the store's events and by the
dry run's plan of the same choice (SPEC 5.4)."""

from __future__ import annotations

import logging

import pytest

import sequent as seq
from sequent.compiler import NodeKey
from sequent.errors import SelectionError
from sequent.marks import check_markable, latest_marks, parse_node, record_mark
from sequent.plan import KEPT, RUN, SKIP, dry_run, find_recovery, recorded_marks
from sequent.runner import FlowOptions
from sequent.selection import select
from sequent.store import open_store

S = seq.StepStatus


def build(tmp_path, fail=(), mode=seq.RunMode.restart, calls=None):
    """A1, A2 -> B -> C1, C2, and a container box (x -> y) after B."""
    calls = [] if calls is None else calls

    def work(name):
        calls.append(name)
        if name in fail:
            raise RuntimeError(f"{name} fails")

    flow = seq.Sequent(
        name="pitch",
        store=str(tmp_path / "pitch.run.db"),
        executor="serial",
        run_mode=mode,
        logging_level=logging.CRITICAL,
        config={"logdir": str(tmp_path / "logs"), "stop_on_exception": False},
    )
    a1 = flow.add_step("A1", func=work, args=("A1",))
    a2 = flow.add_step("A2", func=work, args=("A2",))
    b = flow.add_step("B", func=work, args=("B",), requires=((a1, S.success), (a2, S.success)))
    flow.add_step("C1", func=work, args=("C1",), requires=((b, S.success),))
    flow.add_step("C2", func=work, args=("C2",), requires=((b, S.success),))
    box = flow.add_step("box", requires=((b, S.success),), repeats=[1, 2])
    x = box.add_step("x", func=work, args=("x",))
    box.add_step("y", func=work, args=("y",), requires=((x, S.success),))
    return flow, calls


def plan_of(flow, only=(), rerun=(), downstream=False):
    """What ``sequent plan`` shows for these choices (a restart or a recover, as the flow)."""
    plan = flow.compile()
    if flow.run_mode is seq.RunMode.restart:
        return dry_run(plan, flow.name, selection=select(plan, only, rerun, downstream))
    with flow._reading() as store:
        found = find_recovery(store, flow.name, None)
        marks = recorded_marks(store, found.run_id)
    selection = select(plan, only, rerun, downstream, found.previous, found.run_id)
    return dry_run(plan, flow.name, found, selection, marks)


def run_flow(flow, only=(), rerun=(), downstream=False):
    """What ``sequent run/recover`` does with these choices."""
    options = FlowOptions(
        flow_name=flow.name, config=flow.config, mode=flow.run_mode,
        logging_level=flow.logging_level, only=tuple(only), rerun=tuple(rerun),
        downstream=downstream,
    )  # fmt: skip
    return flow._run(options)


def run(tmp_path, fail=(), mode=seq.RunMode.restart, **choice):
    flow, calls = build(tmp_path, fail, mode)
    try:
        planned = plan_of(flow, **choice)
        ok = run_flow(flow, **choice)
        events = flow._store.events(flow.run_id)
        attempt = max(event["attempt"] for event in events)
        mine = [e for e in events if e["attempt"] == attempt]
    finally:
        flow.close()
    return ok, calls, mine, planned


def ran(events):
    return [f"{e['path']}/{e['sequence']}" for e in events if e["status"] == "active"]


def planned_leaves(planned, action):
    return [str(key) for key in planned.keys(action, leaves_only=True)]


def test_only_runs_the_chosen_steps_and_keeps_the_others_statuses(tmp_path):
    ok, _, _, _ = run(tmp_path, fail=("C1", "C2"))
    assert ok is False
    # the chosen steps follow their recovery policy (C1 failed: it runs; box_y succeeded: it
    # is recovered unless --rerun names it too)
    ok, calls, events, planned = run(
        tmp_path, mode=seq.RunMode.recover, only=["C1", "box_y"], rerun=["box_y"]
    )
    assert calls == ["C1", "y", "y"]
    assert ran(events) == ["C1/1", "box/1", "box_y/1.1", "box_y/1.2"]
    kept = {f"{e['path']}/{e['sequence']}": e["status"] for e in events if e["replayed"]}
    assert kept == {
        "A1/1": "success",
        "A2/1": "success",
        "B/1": "success",
        "C2/1": "failure",  # still failed: kept, not rerun, not called a success
        "box_x/1.1": "success",
        "box_x/1.2": "success",
    }
    assert ok is False  # C2's failure stands
    assert planned_leaves(planned, RUN) == ["C1/1", "box_y/1.1", "box_y/1.2"]
    assert set(planned_leaves(planned, KEPT)) == {
        "A1/1",
        "A2/1",
        "B/1",
        "C2/1",
        "box_x/1.1",
        "box_x/1.2",
    }
    ok, calls, events, planned = run(tmp_path, mode=seq.RunMode.recover, only=["C1", "box_y"])
    assert calls == [] and planned_leaves(planned, RUN) == []  # both succeeded last time


def test_only_refuses_a_requirement_that_did_not_succeed_before_writing(tmp_path):
    run(tmp_path, fail=("B",))
    flow, calls = build(tmp_path, mode=seq.RunMode.recover)
    try:
        with pytest.raises(
            SelectionError,
            match=r"--only C1: 'C1' at sequence 1 requires 'B'.*"
            r"latest status: failure.*add 'B' to --only",
        ):
            run_flow(flow, only=["C1"])
        with pytest.raises(SelectionError, match=r"requires 'B'"):
            plan_of(flow, only=["C1"])
        assert len(flow._store.attempts(flow._store.runs()[0]["run_id"])) == 1  # nothing written
    finally:
        flow.close()
    assert calls == []
    flow, calls = build(tmp_path)
    try:
        with pytest.raises(SelectionError, match=r"this is a fresh run.*sequent recover --only"):
            run_flow(flow, only=["B"])
        with pytest.raises(SelectionError, match=r"--only nope: no step 'nope' in the flow"):
            run_flow(flow, only=["nope"])
    finally:
        flow.close()


def test_only_in_a_fresh_run_skips_the_steps_left_out(tmp_path):
    ok, calls, events, planned = run(tmp_path, only=["A1", "A2"])
    assert calls == ["A1", "A2"] and ok is True
    assert not [e for e in events if e["replayed"]]  # nothing ran before: nothing to keep
    ready = [f"{e['path']}/{e['sequence']}" for e in events if e["status"] == "ready"]
    assert ready == ["A1/1", "A2/1", "B/1"]  # B was reached, left out, so skipped
    final = {f"{e['path']}/{e['sequence']}": e["status"] for e in events}
    assert [final[k] for k in ("C1/1", "C2/1", "box/1")] == ["skipped"] * 3
    assert planned_leaves(planned, RUN) == ["A1/1", "A2/1"]


def test_rerun_reruns_succeeded_steps_and_downstream_what_follows(tmp_path):
    run(tmp_path, fail=("C2",))
    ok, calls, events, planned = run(tmp_path, mode=seq.RunMode.recover, rerun=["A2"])
    # A2 reruns though it had succeeded; C2 reruns as any recover reruns a failure
    assert calls == ["A2", "C2"] and ok is True
    assert planned_leaves(planned, RUN) == ["A2/1", "C2/1"]
    ok, calls, events, planned = run(
        tmp_path, mode=seq.RunMode.recover, rerun=["A2"], downstream=True
    )
    assert calls == ["A2", "B", "C1", "C2", "x", "y", "x", "y"]
    assert planned_leaves(planned, SKIP) == ["A1/1"]
    assert planned_leaves(planned, RUN) == ran(e for e in events if e["path"] != "box")
    ok, calls, events, planned = run(
        tmp_path, mode=seq.RunMode.recover, rerun=["box_x"], downstream=True
    )
    assert calls == ["x", "y", "x", "y"]


def test_a_mark_is_a_new_attempt_that_the_next_recover_and_plan_honour(tmp_path):
    run(tmp_path, fail=("C2",))
    flow, calls = build(tmp_path, mode=seq.RunMode.recover)
    store = open_store(flow.store_path)
    try:
        run_id = store.runs()[0]["run_id"]
        key = parse_node("C2@1")
        assert check_markable(store, run_id, key)["status"] == "failure"
        with pytest.raises(SelectionError, match=r"no step instance C3@1"):
            check_markable(store, run_id, NodeKey("C3", "1"))
        with pytest.raises(SelectionError, match=r"is a container"):
            check_markable(store, run_id, NodeKey("box", "1"))
        attempt = record_mark(store, run_id, key, S.success, "sent by hand", user="alice")
        assert attempt == 1
        assert [a["mode"] for a in store.attempts(run_id)] == ["restart", "mark"]
        mark = latest_marks(store, run_id)[key]
        assert (mark["status"], mark["marked_by"], mark["reason"]) == (
            "success",
            "alice",
            "sent by hand",
        )
        planned = plan_of(flow)
        c2 = next(node for node in planned if str(node.key) == "C2/1")
        assert c2.action == SKIP and "marked success by alice: sent by hand" in c2.reason
        assert run_flow(flow) is True
    finally:
        store.close()
        flow.close()
    assert calls == []  # everything succeeded or was marked so
    with pytest.raises(SelectionError, match=r"not STEP@SEQUENCE"):
        parse_node("C2")
