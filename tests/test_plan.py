"""Dry runs (SPEC 5.2): the order and actions a run would take, without running or writing."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

import sequent as seq
from sequent.compiler import NodeKey
from sequent.plan import AT_RUN_TIME, NEVER, RUN, SKIP, DryRun, read_store

S = seq.StepStatus


class Calls:
    """Records which step instances ran, in order (steps run in this process here)."""

    def __init__(self):
        self.keys: list[NodeKey] = []
        self.fail: set[tuple[str, str]] = set()

    def __call__(self, name):
        context = seq.current()
        self.keys.append(NodeKey(context.name, context.sequence))
        if (context.name, context.sequence) in self.fail:
            raise RuntimeError(f"{name} failed at {context.sequence}")
        return name


def seed_recovery_flow(store, calls, run_mode=seq.RunMode.restart, executor="serial", **config):
    """The seed's recovery example, its step function replaced by ``calls``."""
    config.setdefault("logdir", str(Path(store).parent / "logs"))
    flow = seq.Sequent(
        name="runly04",
        store=str(store),
        run_mode=run_mode,
        executor=executor,
        logging_level=logging.WARNING,
        config={"sleep_between_loops": 0.05, **config},
    )
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", repeats=[1, 2])
    s111 = s11.add_step("s111", func=calls, args=("prog1",))
    s11.add_step("s112", func=calls, args=("prog2",), requires=((s111, S.success),))
    s1.add_step("s12", func=calls, args=("prog3",), requires=((s11, S.success),))
    flow.add_step("s2", func=calls, args=("prog4",), requires=((s1, S.success),))
    return flow


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def active_order(store, run_id, attempt):
    """The nodes that started in ``attempt`` of ``run_id``, in the order they started."""
    return [
        NodeKey(event["path"], event["sequence"])
        for event in store.events(run_id, attempt=attempt)
        if event["status"] == "active"
    ]


SEED_ORDER = [
    ("s1", "1"),
    ("s1_s11", "1.1"),
    ("s1_s11_s111", "1.1.1"),
    ("s1_s11_s112", "1.1.1"),
    ("s1_s11_s111", "1.1.2"),
    ("s1_s11_s112", "1.1.2"),
    ("s1_s12", "1.1"),
    ("s1_s11", "1.2"),
    ("s1_s11_s111", "1.2.1"),
    ("s1_s11_s112", "1.2.1"),
    ("s1_s11_s111", "1.2.2"),
    ("s1_s11_s112", "1.2.2"),
    ("s1_s12", "1.2"),
    ("s2", "1"),
]


def test_restart_plan_lists_every_node_in_execution_order(tmp_path):
    calls = Calls()
    flow = seed_recovery_flow(tmp_path / "seed.run.db", calls)
    plan = flow.plan()
    assert isinstance(plan, DryRun)
    assert [tuple(node.key) for node in plan] == SEED_ORDER
    assert {node.action for node in plan} == {RUN}
    assert [node.key.path for node in plan if node.container] == ["s1", "s1_s11", "s1_s11"]
    assert plan.counts() == {RUN: 11}
    assert plan.run_id is None and plan.mode is seq.RunMode.restart
    assert calls.keys == []
    assert not (tmp_path / "seed.run.db").exists(), "a restart plan must not create the store"
    text = plan.text()
    assert text.splitlines()[0] == "Plan of flow 'runly04': restart"
    assert "s1_s11_s111/1.2.2" in text and text.splitlines()[-1] == "Steps: 11 run"


@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_plan_order_is_the_order_a_run_starts_nodes(tmp_path, executor):
    calls = Calls()
    flow = seed_recovery_flow(tmp_path / "seed.run.db", calls, executor=executor)
    gate = flow.add_step("gate", func=calls, args=("gate",))
    flow.add_step("follower", func=calls, args=("f",), requires=((gate, S.active),))
    flow.add_step("on_failure", func=calls, args=("x",), requires=((gate, S.failure),))
    plan = flow.plan()
    assert plan.keys(NEVER) == [NodeKey("on_failure", "1")]
    try:
        assert flow.run() is True
        started = active_order(flow._store, flow.run_id, 0)
    finally:
        flow.close()
    assert plan.keys(RUN) == started
    # one at a time (max_concurrent 1), first ready first (SPEC 2.7): gate is ready at the
    # start, with s1, and starts before what s1 holds (ready only once s1 started); follower
    # is ready when gate starts, s2 only when s1 succeeded
    assert [key for key in started if not key.path.startswith("s1")] == [
        NodeKey("gate", "1"),
        NodeKey("follower", "1"),
        NodeKey("s2", "1"),
    ]
    assert started.index(NodeKey("gate", "1")) == 1  # right after the container s1


def test_recover_plan_lists_exactly_what_the_recover_runs_and_writes_nothing(tmp_path):
    store = tmp_path / "runly04.run.db"
    calls = Calls()
    calls.fail.add(("s1_s11_s111", "1.2.2"))
    flow = seed_recovery_flow(store, calls)
    assert flow.run() is False
    failed_run = flow.run_id
    flow.close()

    calls = Calls()
    recovering = seed_recovery_flow(store, calls, run_mode=seq.RunMode.recover)
    before = digest(store)
    files_before = sorted(p.name for p in tmp_path.iterdir())
    plan = recovering.plan()
    assert digest(store) == before, "plan() changed the store file"
    wal = Path(f"{store}-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "plan() wrote to the write-ahead log"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name for name in files_before if not name.endswith(("-wal", "-shm"))
    ]
    assert plan.run_id == failed_run and plan.attempt == 1
    assert calls.keys == []
    expected = [
        NodeKey("s1_s11_s111", "1.2.2"),
        NodeKey("s1_s11_s112", "1.2.2"),
        NodeKey("s1_s12", "1.2"),
        NodeKey("s2", "1"),
    ]
    assert plan.keys(RUN, leaves_only=True) == expected
    assert set(plan.keys(SKIP, leaves_only=True)) == {
        NodeKey("s1_s11_s111", "1.1.1"),
        NodeKey("s1_s11_s112", "1.1.1"),
        NodeKey("s1_s11_s111", "1.1.2"),
        NodeKey("s1_s11_s112", "1.1.2"),
        NodeKey("s1_s12", "1.1"),
        NodeKey("s1_s11_s111", "1.2.1"),
        NodeKey("s1_s11_s112", "1.2.1"),
    }
    by_key = {node.key: node for node in plan}
    assert by_key[NodeKey("s1_s11", "1.1")].action == SKIP  # everything inside skipped
    assert by_key[NodeKey("s1_s11", "1.2")].action == RUN
    assert by_key[NodeKey("s1_s11_s111", "1.2.2")].previous is S.failure
    assert by_key[NodeKey("s1_s11_s111", "1.1.1")].reason == "recovered: previous status success"
    # the real recover runs exactly those, in that order
    assert recovering.run() is True
    assert calls.keys == expected
    started = active_order(recovering._store, failed_run, 1)
    containers = [NodeKey("s1", "1"), NodeKey("s1_s11", "1.1"), NodeKey("s1_s11", "1.2")]
    assert [key for key in started if key not in containers] == expected
    # containers are entered (the instances inside them that are skipped are marked success as
    # the run reaches them), in the planned order
    assert started == [key for key in plan.keys() if key in containers or key in expected]
    recovering.close()
    # and a recover of the now successful run would skip everything
    again = seed_recovery_flow(store, Calls(), run_mode=seq.RunMode.recover)
    assert again.plan().counts() == {SKIP: 11}


def test_plan_reads_the_store_through_a_read_only_connection(tmp_path):
    store = tmp_path / "runly04.run.db"
    flow = seed_recovery_flow(store, Calls())
    assert flow.run() is True
    run_id = flow.run_id
    flow.close()
    before = digest(store)
    with read_store(store) as opened:
        assert [run["run_id"] for run in opened.runs()] == [run_id]
        with pytest.raises(seq.StoreError, match="read-only"):
            opened.begin(
                flow.compile(), flow_name="runly04", mode=seq.RunMode.restart, executor="serial"
            )
        connection = opened._conn
        with pytest.raises(Exception, match="readonly|read-only"):
            connection.execute("DELETE FROM runs")
    assert digest(store) == before
    with pytest.raises(seq.StoreError, match="no store at"):
        with read_store(tmp_path / "missing.run.db"):
            pass
    assert not (tmp_path / "missing.run.db").exists()


def test_recovery_policies_decide_skip_or_run(tmp_path):
    store = tmp_path / "policy.run.db"
    calls = Calls()
    calls.fail.add(("b", "1"))

    def build(mode=seq.RunMode.restart):
        flow = seq.Sequent(
            name="policy",
            store=str(store),
            run_mode=mode,
            executor="serial",
            logging_level=logging.WARNING,
            config={"logdir": str(tmp_path / "logs"), "stop_on_exception": False},
        )
        flow.add_step("a", func=calls, args=("a",), recovery={S.success: seq.StepReplay.rerun})
        flow.add_step("b", func=calls, args=("b",), recovery={S.failure: seq.StepReplay.skip})
        flow.add_step("c", func=calls, args=("c",))
        return flow

    first = build()
    assert first.run() is False
    first.close()
    plan = build(seq.RunMode.recover).plan()
    actions = {node.key.path: node.action for node in plan}
    assert actions == {"a": RUN, "b": SKIP, "c": SKIP}


def test_callable_repeats_are_not_called_and_show_as_expanded_at_run_time(tmp_path):
    called = []

    def items():
        called.append(True)
        return [1, 2, 3]

    flow = seq.Sequent(name="dyn", store=":memory:", executor="serial")
    box = flow.add_step("box", repeats=items)
    box.add_step("inner", func=print, args=("x",))
    flow.add_step("after", func=print, args=("y",), requires=((box, S.success),))
    plan = flow.plan()
    assert [(str(node.key), node.action) for node in plan] == [
        ("box/1", AT_RUN_TIME),
        ("after/1", RUN),
    ]
    assert called == []


def test_never_reached_when_a_requirement_waits_for_a_failure():
    flow = seq.Sequent(name="handler", store=":memory:", executor="serial")
    work = flow.add_step("work", func=print, args=("w",))
    flow.add_step("alert", func=print, args=("a",), requires=((work, S.failure),))
    flow.add_step("report", func=print, args=("r",), requires=((work, S.complete),))
    plan = flow.plan()
    assert [(node.key.path, node.action) for node in plan] == [
        ("work", RUN),
        ("alert", NEVER),
        ("report", RUN),
    ]
    assert "cannot hold" in plan.nodes[1].reason


def test_recover_plan_refuses_when_there_is_nothing_to_recover(tmp_path):
    store = tmp_path / "none.run.db"
    flow = seed_recovery_flow(store, Calls())
    with pytest.raises(seq.RecoveryError, match="nothing to recover"):
        flow.plan(run_mode=seq.RunMode.recover)
    assert not store.exists(), "plan() created the store"
    assert flow.run() is True
    flow.close()
    before = digest(store)
    again = seed_recovery_flow(store, Calls())
    with pytest.raises(seq.RecoveryError, match="'feedbeef'"):
        again.plan(run_mode=seq.RunMode.recover, recovery_run="feedbeef")
    other = seq.Sequent(name="other", store=str(store), executor="serial")
    other.add_step("x", func=print)
    with pytest.raises(seq.RecoveryError, match="no run of flow 'other'"):
        other.plan(run_mode=seq.RunMode.recover)
    assert digest(store) == before


def test_plan_checks_its_arguments_and_the_flow():
    flow = seq.Sequent(name="args", store=":memory:", executor="serial")
    flow.add_step("a", func=print)
    with pytest.raises(seq.DefinitionTypeError, match="run_mode"):
        flow.plan(run_mode="recover")
    with pytest.raises(seq.DefinitionTypeError, match="recovery_run"):
        flow.plan(run_mode=seq.RunMode.recover, recovery_run=7)
    flow.add_step("b", func=print, requires=(("a", S.success), ("b", S.success)))
    with pytest.raises(seq.CycleError):
        flow.plan()


def test_plan_of_a_flow_that_ran_in_this_process_uses_its_open_store():
    calls = Calls()
    calls.fail.add(("s2", "1"))
    flow = seq.Sequent(name="mem", store=":memory:", executor="serial")
    s1 = flow.add_step("s1", func=calls, args=("s1",))
    flow.add_step("s2", func=calls, args=("s2",), requires=((s1, S.success),))
    try:
        assert flow.run() is False
        plan = flow.plan(run_mode=seq.RunMode.recover)
        assert [(node.key.path, node.action) for node in plan] == [("s1", SKIP), ("s2", RUN)]
        assert plan.run_id == flow.run_id
    finally:
        flow.close()
