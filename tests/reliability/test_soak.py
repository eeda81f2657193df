"""Soak: a flow of 100,000 step instances runs to its end on the thread executor.

1,000 iterations of a container holding 100 leaves, no concurrency limit, logging at WARNING,
once with the in-memory store and once with a file store. Each run happens in a fresh
interpreter so its peak memory (``ru_maxrss``) is its own; the figures are printed in the
session summary and bounded, so a leak or a slowdown fails the test instead of going unseen.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from sequent.store import open_store

from .conftest import note

ITERATIONS, LEAVES = 1_000, 100
NODES = ITERATIONS * LEAVES
MAX_SECONDS = 180.0  # about 10 s here; a tenfold slowdown is a finding, not noise
MAX_PEAK_MB = 1_500  # about 250 MB here

SOAK = textwrap.dedent(
    f"""
    import json, logging, resource, sys, time
    import sequent as seq

    def noop():
        return None

    store, logdir = sys.argv[1], sys.argv[2]
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flow = seq.Sequent(name="soak", store=store, executor="thread",
                       logging_level=logging.WARNING,
                       config={{"max_concurrent": 0, "logdir": logdir}})
    box = flow.add_step("box", repeats=range({ITERATIONS}))
    for number in range({LEAVES}):
        box.add_step(f"leaf{{number}}", func=noop)
    started = time.perf_counter()
    result = flow.run()
    seconds = time.perf_counter() - started
    run_id = flow.run_id
    flow.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"result": result, "run_id": run_id, "seconds": seconds,
                      "peak_kb": peak, "start_kb": start_rss}}))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("store", ["memory", "file"])
def test_100k_nodes_run_to_the_end(store, tmp_path):
    script = tmp_path / "soak.py"
    script.write_text(SOAK, encoding="utf-8")
    path = ":memory:" if store == "memory" else str(tmp_path / "soak.run.db")
    done = subprocess.run(
        [sys.executable, str(script), path, str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS * 2,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["result"] is True
    seconds, peak_mb = figures["seconds"], figures["peak_kb"] / 1024
    grown_mb = (figures["peak_kb"] - figures["start_kb"]) / 1024
    note(
        f"soak ({store} store): {NODES:,} nodes in {seconds:.1f} s "
        f"({NODES / seconds:,.0f} nodes/s), peak RSS {peak_mb:.0f} MB "
        f"(+{grown_mb:.0f} MB during the run)"
    )
    assert seconds < MAX_SECONDS, f"{NODES} nodes took {seconds:.0f} s"
    assert peak_mb < MAX_PEAK_MB, f"peak memory {peak_mb:.0f} MB"
    (run_log,) = (tmp_path / "logs" / "soak").glob("*/run.log")
    # At level WARNING the run log holds only its closing line (SPEC 3.7: always written).
    lines = run_log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("[ Processing finished with: success ]"), lines
    if store == "file":
        db = open_store(path)
        try:
            nodes = db.nodes(figures["run_id"])
            (attempt,) = db.attempts(figures["run_id"])
        finally:
            db.close()
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            counts = conn.execute("SELECT status, COUNT(*) FROM events GROUP BY status").fetchall()
        finally:
            conn.close()
        assert attempt["result"] is True
        assert len(nodes) == NODES + 1
        assert {row["status"] for row in nodes} == {"success"}
        # every node went ready -> active -> success, each change recorded once
        assert dict(counts) == {"ready": NODES + 1, "active": NODES + 1, "success": NODES + 1}
