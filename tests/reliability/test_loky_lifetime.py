"""loky workers, their programs and loky's resource tracker end with the orchestrator.

The orchestrator runs a loky flow in a subprocess whose environment carries a marker that
every process it starts inherits (its loky workers, the resource tracker, the steps'
programs), so the test finds all of them with psutil, whichever process started which.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

pytest.importorskip("loky")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LIMIT = 60.0
KILLS = 20
SEED = 20261202

FLOW = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import sequent as seq

    here = Path(sys.argv[1])

    def work(name, seconds):
        Path(here, "started", name).touch()
        time.sleep(seconds)

    flow = seq.Sequent(name="lifetime", store=str(here / "flow.run.db"), executor="loky",
                       logging_level="WARNING",
                       config={"max_concurrent": 0, "logdir": str(here / "logs")})
    first = flow.add_step("first", func=work, args=("first", 0.2))
    for number in range(3):
        flow.add_step(f"w{number}", func=work, args=(f"w{number}", 0.3 * number),
                      requires=(first, seq.STEP_SUCCESS))
    flow.add_step("prog", func=seq.Program(["sh", "-c", f"touch {here}/started/prog; sleep 30"]),
                  requires=(first, seq.STEP_SUCCESS))
    print(flow.run(), flush=True)
    """
)


def _marked(marker: str) -> list[psutil.Process]:
    """Every live process whose environment carries ``marker`` (zombies excluded)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("SEQUENT_LIFETIME_MARK") == marker:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "started").mkdir(parents=True)
    script = folder / "flow.py"
    script.write_text(FLOW, encoding="utf-8")
    marker = uuid.uuid4().hex
    env = dict(os.environ, SEQUENT_LIFETIME_MARK=marker)
    process = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, marker


def _wait_for(folder: Path, name: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + LIMIT
    while not (folder / "started" / name).exists():
        assert process.poll() is None, "the flow ended before its steps started"
        assert time.monotonic() < deadline, f"step {name} never started"
        time.sleep(0.01)


def _left_after(marker: str, seconds: float) -> list[str]:
    """The marked processes still alive ``seconds`` after now (checked until then)."""
    deadline = time.monotonic() + seconds
    while True:
        left = _marked(marker)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    descriptions = []
    for process in left:
        try:
            descriptions.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
        process.kill()  # leave nothing behind for the next test
    return descriptions


def test_sigkill_of_the_orchestrator_at_random_instants_leaves_no_process(tmp_path):
    """20 SIGKILLs of a loky orchestrator, each at a random instant after its first step
    started (0-0.8 s, while steps and a program run): 5 s later no process of the run lives."""
    rng = random.Random(SEED)
    for kill in range(KILLS):
        folder = tmp_path / f"kill{kill}"
        process, marker = _start(folder)
        try:
            _wait_for(folder, "first", process)
            time.sleep(rng.uniform(0.0, 0.8))
            assert _marked(marker), "the run has no process to leak"
            process.kill()
            process.wait(LIMIT)
        finally:
            if process.poll() is None:
                process.kill()
        left = _left_after(marker, 5.0)
        assert not left, f"kill {kill}: these outlived the orchestrator by 5 s: {left}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_of_the_orchestrator_leaves_no_process(signum, tmp_path):
    process, marker = _start(tmp_path)
    try:
        _wait_for(tmp_path, "prog", process)
        process.send_signal(signum)
        process.wait(LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
    left = _left_after(marker, 5.0)
    assert not left, f"these outlived the orchestrator by 5 s: {left}"
