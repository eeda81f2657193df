"""SPEC scenarios written as a user would, on serial, thread, process and loky, for what the
other suites leave out: delay before acquiring (1.6), a recovery number read through a
``Sequent`` in kwargs (1.4), releases=[] (3.4), run() twice and ``with`` (3.1), max_loops (3.1),
sleep_between_loops (3.1, 3.3), a config file with config_tag (3.3), recovering a succeeded run
and a changed structure (4.3)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from spec_steps import fail, mark, recovery_gate, starts, when

import sequent as seq
from sequent.store import open_store

# loky starts its own worker processes per flow: those cases take over 2 s here
EXECUTORS = ["serial", "thread", "process", pytest.param("loky", marks=pytest.mark.slow)]


def statuses(store: Path, run_id: str) -> dict[str, str]:
    """``path/sequence -> status`` of a run's latest recorded nodes."""
    with open_store(store, readonly=True) as reader:
        rows = reader.nodes(run_id)
    return {f"{row['path']}/{row['sequence']}": str(row["status"]) for row in rows}


@pytest.fixture(params=EXECUTORS)
def executor(request) -> str:
    return request.param


@pytest.mark.slow
def test_delay_passes_before_resources_are_acquired(tmp_path, executor):
    # 1.6: b is defined first and ready first, but its delay comes before the acquire, so c
    # (no delay) takes the only resource at once and b starts only after c gave it back.
    trace = str(tmp_path / "trace")
    pool = seq.ResourcePool("one", policy={"resource_limit": 1}).load()
    with seq.Sequent(
        name="delay", store=":memory:", executor=executor, config={"max_concurrent": 0}
    ) as flow:
        flow.add_step("b", func=mark, args=(trace, "b"), delay=0.5, acquires=[(pool, 1)])
        flow.add_step("c", func=mark, args=(trace, "c", 1.0), acquires=[(pool, 1)])
        assert flow.run() is True
    assert starts(Path(trace)) == ["c", "b"]
    assert when(Path(trace), "b", "start") >= when(Path(trace), "c", "end")


@pytest.mark.slow
def test_nth_recovery_seen_through_a_sequent_in_kwargs(tmp_path, executor):
    # 1.4: get_step_recovery() is 0, 1, 2 on the fresh run and the first two recovers, read in
    # the step (another process for process/loky) through the Sequent passed in its kwargs.
    trace, store = str(tmp_path / "trace"), tmp_path / "rc.run.db"
    results, ids = [], []
    for mode in (seq.RunMode.restart, seq.RunMode.recover, seq.RunMode.recover):
        with seq.Sequent(name="rc", store=str(store), executor=executor, run_mode=mode) as flow:
            flow.add_step(
                "x", func=recovery_gate, kwargs={"flow": flow, "trace": trace, "succeed_at": 2}
            )
            results.append(flow.run())
            ids.append(flow.run_id)
    assert results == [False, False, True]
    assert len(set(ids)) == 1
    assert starts(Path(trace)) == ["x@1#0", "x@1#1", "x@1#2"]
    with open_store(store, readonly=True) as reader:
        assert [a["attempt"] for a in reader.attempts(ids[0])] == [0, 1, 2]


def test_releases_empty_fails_the_waiting_step_instead_of_hanging(tmp_path, executor):
    # 3.4: a keeps the only resource (releases=[]); b can never get it: the run ends False
    # with b failed and an error naming the pool, without running b's body.
    trace, store = str(tmp_path / "trace"), tmp_path / "dl.run.db"
    pool = seq.ResourcePool("solo", policy={"resource_limit": 1}).load()
    with seq.Sequent(name="dl", store=str(store), executor=executor) as flow:
        flow.add_step("a", func=mark, args=(trace, "a"), acquires=[(pool, 1)], releases=[])
        flow.add_step("b", func=mark, args=(trace, "b"), acquires=[(pool, 1)])
        started = time.monotonic()
        assert flow.run() is False
        assert time.monotonic() - started < 60
        run_id = flow.run_id
    assert starts(Path(trace)) == ["a"]
    assert statuses(store, run_id) == {"a/1": "success", "b/1": "failure"}
    with open_store(store, readonly=True) as reader:
        (b,) = [row for row in reader.nodes(run_id) if row["path"] == "b"]
    assert "solo" in (b.get("error") or "")


def test_run_twice_and_with_block(tmp_path, executor):
    # 3.1: run() may be called again (a new run each time, both recorded); `with` closes.
    trace, store = str(tmp_path / "trace"), tmp_path / "tw.run.db"
    with seq.Sequent(name="tw", store=str(store), executor=executor) as flow:
        a = flow.add_step("a", func=mark, args=(trace, "a"))
        flow.add_step("b", func=mark, args=(trace, "b"), requires=((a, seq.STEP_SUCCESS),))
        first = flow.run()
        first_id = flow.run_id
        second = flow.run()
        second_id = flow.run_id
    assert (first, second) == (True, True)
    assert first_id != second_id
    assert starts(Path(trace)) == ["a", "b", "a", "b"]
    with open_store(store, readonly=True) as reader:
        assert {r["run_id"] for r in reader.runs("tw")} == {first_id, second_id}


def build_chain(store: Path, trace: str, executor: str, mode: seq.RunMode, **config) -> seq.Sequent:
    flow = seq.Sequent(
        name="chain", store=str(store), executor=executor, run_mode=mode, config=config
    )
    previous = None
    for name in ("a", "b", "c"):
        requires = ((previous, seq.STEP_SUCCESS),) if previous else ()
        previous = flow.add_step(name, func=mark, args=(trace, name), requires=requires)
    return flow


def test_max_loops_stops_launching_and_leaves_the_run_recoverable(tmp_path, executor):
    # 3.1: max_loops=1 runs only what the first scheduling round launches; a recover finishes.
    trace, store = str(tmp_path / "trace"), tmp_path / "ml.run.db"
    with build_chain(store, trace, executor, seq.RunMode.restart) as flow:
        assert flow.run(max_loops=1) is False
        run_id = flow.run_id
    assert starts(Path(trace)) == ["a"]
    assert statuses(store, run_id)["a/1"] == "success"
    assert statuses(store, run_id)["c/1"] != "success"
    with build_chain(store, trace, executor, seq.RunMode.recover) as flow:
        assert flow.run() is True
        assert flow.run_id == run_id
    assert starts(Path(trace)) == ["a", "b", "c"]


def test_sleep_between_loops_adds_no_latency(tmp_path):
    # 3.1/3.3: accepted for compatibility, ignored: a chain of three dependent steps with a
    # 5 s loop sleep finishes before a single such sleep would have passed (a polling loop
    # would need two of them to start b and c); the margin is for a loaded machine.
    trace, store = str(tmp_path / "trace"), tmp_path / "sl.run.db"
    with build_chain(store, trace, "thread", seq.RunMode.restart, sleep_between_loops=5) as flow:
        started = time.monotonic()
        assert flow.run() is True
        assert time.monotonic() - started < 4.5
    assert starts(Path(trace)) == ["a", "b", "c"]


@pytest.mark.parametrize("suffix", ["yaml", "toml", "conf"])
def test_config_file_with_config_tag(tmp_path, suffix):
    # 3.3 (and 6: any suffix but .toml is YAML): stop_on_exception False and max_concurrent 1
    # read from the tagged sub-tree; the untagged top-level values are not used.
    text = {
        "toml": "[prod.SEQUENT]\nstop_on_exception = false\nmax_concurrent = 1\n"
        "[dev.SEQUENT]\nstop_on_exception = true\n",
        "yaml": "prod:\n  SEQUENT:\n    stop_on_exception: false\n    max_concurrent: 1\n"
        "dev:\n  SEQUENT:\n    stop_on_exception: true\n",
    }
    path = tmp_path / f"flow.{suffix}"
    path.write_text(text["toml" if suffix == "toml" else "yaml"])
    trace = str(tmp_path / "trace")
    with seq.Sequent(
        name="cf", store=":memory:", executor="thread", config=str(path), config_tag="prod.SEQUENT"
    ) as flow:
        flow.add_step("a", func=fail, args=(trace, "a"))
        flow.add_step("b", func=mark, args=(trace, "b", 0.2))
        flow.add_step("c", func=mark, args=(trace, "c"))
        assert flow.run() is False
    # stop_on_exception False: b and c still ran after a's unhandled failure; max_concurrent 1:
    # one at a time, in definition order.
    assert starts(Path(trace)) == ["a", "b", "c"]
    assert when(Path(trace), "c", "start") >= when(Path(trace), "b", "end")


def test_recover_of_a_succeeded_run_skips_everything_and_returns_true(tmp_path, executor):
    # 4.3: nothing runs again; the recover is a new attempt of the same run.
    trace, store = str(tmp_path / "trace"), tmp_path / "ok.run.db"
    with build_chain(store, trace, executor, seq.RunMode.restart) as flow:
        assert flow.run() is True
        run_id = flow.run_id
    with build_chain(store, trace, executor, seq.RunMode.recover) as flow:
        assert flow.run() is True
        assert flow.run_id == run_id
    assert starts(Path(trace)) == ["a", "b", "c"]
    assert set(statuses(store, run_id).values()) == {"success"}
    with open_store(store, readonly=True) as reader:
        assert [a["attempt"] for a in reader.attempts(run_id)] == [0, 1]


def test_recover_with_a_changed_structure_logs_the_differences(tmp_path, caplog):
    # 4.3: b is removed and d added since the failed run; the recover matches nodes by
    # (path, sequence), reruns what did not succeed, runs the new step, and logs both changes.
    trace, store = str(tmp_path / "trace"), tmp_path / "ch.run.db"
    with seq.Sequent(name="ch", store=str(store), executor="thread") as flow:
        a = flow.add_step("a", func=mark, args=(trace, "a"))
        flow.add_step("b", func=mark, args=(trace, "b"), requires=((a, seq.STEP_SUCCESS),))
        flow.add_step("c", func=fail, args=(trace, "c"), requires=((a, seq.STEP_SUCCESS),))
        assert flow.run() is False
        run_id = flow.run_id
    caplog.set_level(logging.INFO)
    with seq.Sequent(
        name="ch", store=str(store), executor="thread", run_mode=seq.RunMode.recover
    ) as flow:
        a = flow.add_step("a", func=mark, args=(trace, "a"))
        flow.add_step("c", func=mark, args=(trace, "c"), requires=((a, seq.STEP_SUCCESS),))
        flow.add_step("d", func=mark, args=(trace, "d"), requires=((a, seq.STEP_SUCCESS),))
        assert flow.run() is True
        assert flow.run_id == run_id
    assert starts(Path(trace)) == ["a", "b", "c", "c", "d"]
    logged = caplog.text
    assert "b" in logged and "d" in logged
    assert any(word in logged.lower() for word in ("removed", "no longer", "gone", "missing"))
    assert any(word in logged.lower() for word in ("added", "new"))
