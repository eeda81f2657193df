"""Leaks: 30 runs of a 200-step flow in one process leave nothing behind that grows.

In a fresh interpreter, a 200-step flow (five iterations of 40 steps that each log a line) runs
30 times on one executor: ``reuse`` runs one flow 30 times (its pool stays warm), ``fresh``
builds, runs and closes a new flow each time (pools start and stop). After each run the child
counts its open file descriptors, threads, child processes and RSS; the test compares the
last run with the third (the first ones import modules and fill caches).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import note

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RUNS, WARM = 30, 3

LEAKER = textwrap.dedent(
    """
    import json, logging, os, sys, threading, time
    import psutil
    import sequent as seq

    executor, mode, folder, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    me = psutil.Process()

    def step(number):
        logging.getLogger(seq.current().logger_name).info("step %d says hello", number)
        return number

    def build():
        flow = seq.Sequent(name="leaks", store=os.path.join(folder, "leaks.run.db"),
                           executor=executor, logging_level=logging.WARNING,
                           config={"max_concurrent": 4, "logdir": os.path.join(folder, "logs")})
        box = flow.add_step("box", repeats=range(5))
        for number in range(40):
            box.add_step(f"s{number}", func=step, args=(number,))
        return flow

    def counts():
        return {"fds": len(os.listdir("/proc/self/fd")), "threads": me.num_threads(),
                "children": len(me.children(recursive=True)),
                "rss_mb": me.memory_info().rss / 2**20}

    def settled(before):
        # Threads and processes a closed pool stops end asynchronously: wait (bounded) for
        # them to be gone before counting, so a count is a leak and not a race.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = counts()
            if before is None or all(now[k] <= before[k] for k in ("threads", "children")):
                return now
            time.sleep(0.05)
        return counts()

    flow = build() if mode == "reuse" else None
    first = None
    for run in range(runs):
        if mode == "fresh":
            with build() as fresh:
                assert fresh.run() is True
        else:
            assert flow.run() is True
        now = settled(first)
        if run == 2:
            first = now
        print(json.dumps(now), flush=True)
    if flow is not None:
        flow.close()
    """
)


@pytest.mark.parametrize("mode", ["reuse", "fresh"])
@pytest.mark.parametrize("executor", ["thread", "process", "loky"])
def test_thirty_runs_leak_no_descriptor_thread_process_or_memory(executor, mode, tmp_path):
    if executor == "loky":
        pytest.importorskip("loky")
    script = tmp_path / "leaker.py"
    script.write_text(LEAKER, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), executor, mode, str(tmp_path), str(RUNS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == RUNS
    warm, last = rows[WARM - 1], rows[-1]
    note(f"leaks, {executor} {mode}: run {WARM} {warm}, run {RUNS} {last}")
    assert last["fds"] <= warm["fds"], rows
    assert last["threads"] <= warm["threads"], rows
    assert last["children"] <= warm["children"], rows
    assert last["rss_mb"] - warm["rss_mb"] < 20, rows
