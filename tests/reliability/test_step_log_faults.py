"""Step logs under faults: what a step logged before it timed out is in its log, and program
output of any size or shape streams to the step log in bounded memory and linear time.

SPEC 3.5 and 3.7, on the serial, thread, process and loky executors (Dask has its own).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

import sequent as seq
from sequent.logs import run_log_dir, step_log_path
from sequent.program import MAX_LINE

from .conftest import note

LOCAL = ["serial", "thread", "process", "loky"]
WORKERS = os.cpu_count() or 1  # loky's pool size with no max_concurrent


def chatty_then_hang(seconds: float) -> None:
    logger = logging.getLogger(seq.current().logger_name)
    for number in range(1, 6):
        logger.info("line %d before the timeout", number)
    time.sleep(seconds)
    logger.info("never logged: the step was stopped")


def _step_log(tmp_path, flow, path: str) -> str:
    folder = run_log_dir(tmp_path / "logs", flow.name, flow.run_id)
    return step_log_path(folder, path, "1").read_text(encoding="utf-8")


@pytest.mark.parametrize("executor", LOCAL)
@pytest.mark.slow  # waits for 3 s timeouts
def test_lines_logged_before_a_timeout_are_in_the_step_log(executor, make_flow, tmp_path):
    """A Python step and a program step each log lines, then outlive their timeout."""
    if executor == "loky":
        pytest.importorskip("loky")
    # serial cannot stop a step: it judges the time taken once the step returns
    hang = 3.5 if executor == "serial" else 30.0
    # stop_on_exception off: the serial executor runs one step at a time, and both must run
    flow = make_flow(executor, name="timeouts", max_concurrent=0, stop_on_exception=False)
    # Warm the pool first, one step per worker: a timeout counts from the submission, and
    # a loaded machine may take a while to hand a step to a worker.
    warm = [flow.add_step(f"warm{n}", func=time.sleep, args=(0.3,)) for n in range(WORKERS)]
    after = tuple((step, seq.STEP_SUCCESS) for step in warm)
    flow.add_step("py", func=chatty_then_hang, args=(hang,), timeout=3.0, requires=after)
    script = f"for i in 1 2 3; do echo out $i; echo err $i >&2; done; sleep {hang}"
    prog = seq.Program(["sh", "-c", script])
    flow.add_step("prog", func=prog, timeout=3.0, requires=after)
    started = time.monotonic()
    assert flow.run() is False
    assert time.monotonic() - started < 20
    py = _step_log(tmp_path, flow, "py")
    for number in range(1, 6):
        assert f"line {number} before the timeout" in py, py
    assert "TimeoutError: step 'py' timed out after 3.0 s" in py
    assert py.index("line 5 before") < py.index("TimeoutError")
    prog = _step_log(tmp_path, flow, "prog")
    for number in (1, 2, 3):
        assert f"[stdout] out {number}" in prog and f"[stderr] err {number}" in prog, prog
    assert prog.index("[stdout] out 3") < prog.index("TimeoutError")


ORCHESTRATOR = textwrap.dedent(
    """
    import json, sys, time
    import sequent as seq


    def peak_mb():
        # VmHWM is this process's own peak since exec; ru_maxrss would include the pages of
        # the test process it was forked from.
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/self/status")

    executor, shape, megabytes, logdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    # 'lines': lines of 1,000 bytes; 'one': a single line of the whole size
    width = 999 if shape == "lines" else megabytes * 1024 * 1024 - 1
    count = megabytes * 1024 * 1024 // (width + 1)
    code = (
        "import sys; out = sys.stdout.buffer; block = b'x' * %d + b'\\\\n'\\n"
        "for _ in range(%d): out.write(block)\\n" % (width, count)
    )
    flow = seq.Sequent(name="output", store=":memory:", executor=executor,
                       logging_level="WARNING", config={"logdir": logdir})
    flow.add_step("talk", func=seq.Program([sys.executable, "-c", code]))
    started = time.monotonic()
    result = flow.run()
    took = time.monotonic() - started
    print(json.dumps({"result": result, "seconds": took, "run_id": flow.run_id,
                      "peak_mb": peak_mb()}))
    flow.close()
    """
)


def _talk(tmp_path, executor: str, shape: str, megabytes: int) -> dict:
    script = tmp_path / "orchestrator.py"
    script.write_text(ORCHESTRATOR, encoding="utf-8")
    logdir = tmp_path / f"logs-{executor}-{shape}-{megabytes}"
    done = subprocess.run(
        [sys.executable, str(script), executor, shape, str(megabytes), str(logdir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["result"] is True
    log = step_log_path(run_log_dir(logdir, "output", figures["run_id"]), "talk", "1")
    size = log.stat().st_size
    widest = 0
    with open(log, "rb") as handle:
        for line in handle:
            widest = max(widest, len(line))
    log.unlink()  # 200 MB per run: do not keep them
    figures.update(log_mb=size / 2**20, widest=widest)
    return figures


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("shape", ["lines", "one"])
@pytest.mark.parametrize("executor", LOCAL)
def test_200_mb_of_program_output_streams_in_bounded_memory_and_linear_time(
    executor, shape, tmp_path
):
    """200 MB of output (lines of 1,000 bytes, or one single line): all of it reaches the step
    log, a line is at most MAX_LINE bytes, the orchestrator's peak RSS stays under 100 MB, and
    8 times the output takes well under 8 x 8 times as long (quadratic would be 64x)."""
    if executor == "loky":
        pytest.importorskip("loky")
    small = _talk(tmp_path, executor, shape, 25)
    large = _talk(tmp_path, executor, shape, 200)
    assert large["log_mb"] > 200, large
    assert large["widest"] < MAX_LINE + 200, large  # the record's stamp and "[stdout] "
    assert large["peak_mb"] < 100, large
    ratio = large["seconds"] / max(small["seconds"], 0.05)
    note(
        f"program output, {executor}, {shape}: 25 MB {small['seconds']:.2f} s, 200 MB "
        f"{large['seconds']:.2f} s (x{ratio:.1f}), peak RSS {large['peak_mb']:.0f} MB"
    )
    assert ratio < 20, (small, large)
