"""SPEC 4.4: kill -9 the orchestrator at random moments; recover each time; nothing is lost.

A child process runs a 202-step flow on the thread executor with a file store. The test waits
for a random number of new step lines (or, on recover attempts, sometimes a random time from
launch, which can land in start-up or in ``begin``), adds a random pause, and SIGKILLs it.
After at least ten kills a last recover runs to the end. Then every step has succeeded, no
step whose success was recorded ran again, and the file passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter, defaultdict

import pytest

from sequent.store import open_store

from .storehelp import finish, query, ran, start

LEAVES = 1 + 20 * 10 + 1
KILLS = 12


def _wait_for_lines(folder, count: int, process, deadline: float) -> None:
    target = folder / "ran"
    while time.monotonic() < deadline and process.poll() is None:
        if target.exists() and target.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_9_at_random_moments_then_recover(folder):
    seed = int(os.environ.get("SEQUENT_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    store = folder / "soak.run.db"
    began = time.monotonic()
    kills = 0
    finished_early = 0
    mode = "restart"
    while kills < KILLS:
        lines_before = len(ran(folder))
        process = start("soak", mode, store, folder)
        if mode == "recover" and rng.random() < 0.2:
            time.sleep(rng.random() * 0.8)  # anywhere from start-up to the first rounds
        else:
            wanted = lines_before + rng.randint(1, 12)
            _wait_for_lines(folder, wanted, process, time.monotonic() + 30)
            time.sleep(rng.random() * 0.008)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        else:
            finished_early += 1
        status, out, err = finish(process)
        assert status in (-signal.SIGKILL, 0), f"seed {seed}: child failed ({status}):\n{err}"
        mode = "recover"
        assert time.monotonic() - began < 90, f"seed {seed}: soak took too long"
    assert kills >= 10

    status, out, err = finish(start("soak", "recover", store, folder))
    assert status == 0, f"seed {seed}: the last recover did not succeed:\n{out}\n{err}"
    assert "database is locked" not in err

    # Every step instance succeeded (its latest recorded status), and exactly once for real.
    reader = open_store(str(store))
    try:
        (run,) = reader.runs()
        nodes = [row for row in reader.nodes(run["run_id"]) if row["kind"] == "step"]
        attempts = reader.attempts(run["run_id"])
    finally:
        reader.close()
    assert len(nodes) == LEAVES
    assert {row["status"] for row in nodes} == {"success"}
    assert run["result"] is True
    assert len(attempts) >= 2

    real_success = defaultdict(list)
    for path, sequence, attempt in query(
        store,
        "SELECT path, sequence, attempt FROM events "
        "WHERE status = 'success' AND replayed = 0 AND kind = 'step'",
    ):
        real_success[(path, sequence)].append(attempt)
    assert len(real_success) == LEAVES
    twice = {key: found for key, found in real_success.items() if len(found) != 1}
    assert not twice, f"seed {seed}: steps recorded as succeeding twice: {twice}"

    lines = ran(folder)
    runs_of = Counter((path, sequence) for path, sequence, _, _ in lines)
    assert set(runs_of) == set(real_success), f"seed {seed}: steps that never ran"
    again = [
        (path, sequence, recovery, real_success[(path, sequence)][0])
        for path, sequence, recovery, _ in lines
        if recovery > real_success[(path, sequence)][0]
    ]
    assert not again, f"seed {seed}: ran again after their success was recorded: {again}"

    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    # The kills did cut runs short: some step instances ran more than once.
    assert sum(runs_of.values()) >= LEAVES
    print(
        f"seed {seed}: {kills} kills, {finished_early} early finishes, {len(attempts)} attempts, "
        f"{sum(runs_of.values()) - LEAVES} reruns of unfinished steps, "
        f"{time.monotonic() - began:.1f} s"
    )

