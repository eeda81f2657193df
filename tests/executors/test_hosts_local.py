"""``hosts=`` on the executors that run every step on this machine: ignored, with one warning
per run that names the steps (SPEC 3.2)."""

from __future__ import annotations

import warnings

import pytest

import sequent as seq


def noop() -> None:
    return None


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "loky"])
@pytest.mark.slow_on("process", "loky")  # each run starts its own worker pool
def test_hosts_on_a_local_executor_is_one_warning_per_run_naming_the_steps(executor, tmp_path):
    flow = seq.Sequent(
        name="hosts",
        store=":memory:",
        executor=executor,
        config={"logdir": str(tmp_path / "logs"), "max_concurrent": 0},
    )
    box = flow.add_step("box", repeats=[1, 2, 3])
    box.add_step("pinned", func=noop, hosts=["db-host"])
    flow.add_step("also", func=noop, hosts=["gpu-host", "other"])
    flow.add_step("free", func=noop)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # Python's default shows a repeat only once
            assert flow.run() is True
            assert flow.run() is True
    finally:
        flow.close()
    warned = [w for w in caught if "hosts= is ignored" in str(w.message)]
    assert len(warned) == 2  # once per run, not once per step instance
    assert {w.category for w in warned} == {seq.SequentWarning}
    assert {w.filename for w in warned} == {__file__}  # the caller's line, not sequent's
    assert f"on the {executor} executor" in str(warned[0].message)
    assert "steps with hosts: also, box_pinned." in str(warned[0].message)


def test_no_hosts_no_warning(tmp_path):
    flow = seq.Sequent(name="free", store=":memory:", executor="thread",
                       config={"logdir": str(tmp_path / "logs")})  # fmt: skip
    flow.add_step("free", func=noop, hosts=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error", seq.SequentWarning)
        with flow:
            assert flow.run() is True
