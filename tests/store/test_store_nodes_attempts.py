"""``Store.nodes(run_id)`` per attempt: each instance's row from the latest attempt that
reached it, saying which attempt that was; ``attempt=N`` gives exactly what attempt N recorded.

An attempt that never reaches an instance (the flow lost that step before the recover, or
the orchestrator was killed first) leaves its row from the attempt before: that is what the
next recover starts from, and the row's ``attempt`` says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sequent as seq
from sequent.store import open_store

S = seq.StepStatus


def fail_once(marker: str) -> str:
    if not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("the first try fails")
    return "fixed"


def _flow(folder: Path, mode: seq.RunMode, with_d: bool = True) -> seq.Sequent:
    """a (fails in attempt 0), b; c needs a's success; d needs c's success."""
    flow = seq.Sequent(
        name="per-attempt",
        store=str(folder / "flow.run.db"),
        executor="thread",
        run_mode=mode,
        logging_level=logging.WARNING,
        config={"max_concurrent": 0, "logdir": str(folder / "logs")},
    )
    a = flow.add_step("a", func=fail_once, args=(str(folder / "failed-once"),))
    flow.add_step("b", func=str, args=("b",))
    c = flow.add_step("c", func=str, args=("c",), requires=((a, S.success),))
    if with_d:
        flow.add_step("d", func=str, args=("d",), requires=((c, S.success),))
    return flow


def _rows(folder: Path, attempt: int | None = None) -> dict[str, tuple[str, int]]:
    store = open_store(str(folder / "flow.run.db"))
    try:
        (run,) = store.runs()
        rows = store.nodes(run["run_id"], attempt=attempt)
        previous = store.recovery("per-attempt").previous
    finally:
        store.close()
    found = {row["path"]: (row["status"], row["attempt"]) for row in rows}
    if attempt is None:  # the latest rows are exactly what a recover starts from
        assert {key.path: status.value for key, status in previous.items()} == {
            path: status for path, (status, _) in found.items()
        }
    return found


def test_nodes_are_per_instance_from_the_latest_attempt_that_reached_it(folder):
    with _flow(folder, seq.RunMode.restart) as flow:
        assert flow.run() is False
    first = {"a": ("failure", 0), "b": ("success", 0), "c": ("skipped", 0), "d": ("skipped", 0)}
    assert _rows(folder) == first
    assert _rows(folder, attempt=0) == first

    with _flow(folder, seq.RunMode.recover, with_d=False) as flow:  # d was taken out
        assert flow.run() is True
    reached = {"a": ("success", 1), "b": ("success", 1), "c": ("success", 1)}
    assert _rows(folder, attempt=1) == reached
    assert _rows(folder) == {**reached, "d": ("skipped", 0)}  # d's row is attempt 0's

    with _flow(folder, seq.RunMode.recover) as flow:
        assert flow.run() is True
    assert _rows(folder) == {path: ("success", 2) for path in "abcd"}
    assert _rows(folder, attempt=0) == first  # history is kept
