"""Two processes run flows against one store file at the same time; both finish, fully recorded.

The file does not exist when they start, so they also race to create it. Each child waits for a
go file after importing everything, and the two flows take turns at a chain of steps, so their
runs overlap and their records interleave (the test checks that they did).
"""

from __future__ import annotations

import time

import pytest

from sequent.store import open_store
from sequent.store.schema import MIGRATIONS

from .storehelp import finish, query, start

TURNS = 6  # steps each flow takes in turn with the other (flowscripts.take_turn)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_two_processes_share_a_store_file(folder):
    store = folder / "shared.run.db"
    go = folder / "go"
    children = [
        start("concurrent", "restart", store, folder, FLOW_NAME=name, PARTNER=partner,
              TURNS=str(TURNS), WAIT_FOR=str(go), MAX_CONCURRENT="8")
        for name, partner in (("left", "right"), ("right", "left"))
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not all((folder / f"go.{name}.ready").exists() for name in ("left", "right")):
        assert time.monotonic() < deadline, "the children never got ready"
        assert all(child.poll() is None for child in children), "a child ended early"
        time.sleep(0.005)
    go.touch()
    results = [finish(child, timeout=90) for child in children]
    for status, out, err in results:
        assert status == 0, err
        assert "locked" not in err.lower()
        assert "result=True" in out

    reader = open_store(str(store))
    try:
        runs = {run["flow_name"]: run for run in reader.runs()}
        assert set(runs) == {"left", "right"}
        for run in runs.values():
            assert run["result"] is True
            nodes = reader.nodes(run["run_id"])
            leaves = [row for row in nodes if row["kind"] == "step"]
            assert len(leaves) == 150 + TURNS
            assert {row["status"] for row in nodes} == {"success"}
            # Every leaf went ready -> active -> success, all recorded.
            assert len(reader.events(run["run_id"])) == 3 * len(nodes)
    finally:
        reader.close()
    left, right = runs["left"], runs["right"]
    assert left["started"] < right["ended"] and right["started"] < left["ended"], (
        "the two runs did not overlap"
    )
    # Their records interleaved in the one file: the turns alone end in alternation (left's
    # turn k, right's turn k, left's turn k+1, ...; the two last turns wait for nothing more).
    order = [row[0] for row in query(store, "SELECT run_id FROM events ORDER BY time")]
    switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
    assert switches >= 2 * TURNS - 2, f"the runs' records did not interleave ({switches} switches)"
    names = {run["run_id"]: name for name, run in runs.items()}
    ended = [(path, names[run_id]) for path, run_id in query(
        store, "SELECT path, run_id FROM events WHERE path LIKE 'turn%' AND status = 'success' "
        "ORDER BY time")]  # fmt: skip
    assert ended[:-2] == [
        (f"turn{number}", name) for number in range(1, TURNS) for name in ("left", "right")
    ]
    assert sorted(ended[-2:]) == [(f"turn{TURNS}", "left"), (f"turn{TURNS}", "right")]
    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    assert query(store, "SELECT COUNT(*) FROM sequent_migrations") == [(len(MIGRATIONS),)]
