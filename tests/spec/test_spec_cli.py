"""SPEC 5.3 as a user meets it at the terminal: `sequent` exit statuses 0/1/2/130 with the
reason on standard error, and `graph` printing DOT to standard output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GOOD = """
import sequent as seq
def ok(): pass
flow = seq.Sequent(name="good", store="good.run.db")
a = flow.add_step("a", func=ok)
flow.add_step("b", func=ok, requires=((a, seq.STEP_SUCCESS),))
"""
BAD = """
import sequent as seq
def boom(): raise RuntimeError("boom")
flow = seq.Sequent(name="bad", store="bad.run.db")
flow.add_step("a", func=boom)
"""
SLOW = """
import sequent as seq, time
def nap(): time.sleep(60)
flow = seq.Sequent(name="slow", store="slow.run.db", executor="thread")
flow.add_step("a", func=nap)
"""
CLI = [sys.executable, "-c", "import sys; from sequent.cli import main; sys.exit(main())"]


def sequent(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], cwd=folder, capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, text in (("good.py", GOOD), ("bad.py", BAD), ("slow.py", SLOW)):
        (tmp_path / name).write_text(text)
    (tmp_path / "noflow.py").write_text("x = 1\n")
    return tmp_path


@pytest.mark.slow  # five runs of the command, each a fresh interpreter
def test_exit_statuses_success_failure_bad_usage(folder):
    assert sequent(folder, "run", "good.py").returncode == 0
    assert sequent(folder, "run", "bad.py").returncode == 1
    for argv, culprit in (
        (("run", "missing.py"), "missing.py"),
        (("run", "noflow.py"), "noflow.py"),
        (("show", "0000dead", "--store", "good.run.db"), "0000dead"),
    ):
        done = sequent(folder, *argv)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert culprit in done.stderr


def test_graph_prints_dot_to_standard_output(folder):
    done = sequent(folder, "graph", "good.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.lstrip().startswith("digraph")
    assert '"a"' in done.stdout and '"b"' in done.stdout and "->" in done.stdout


@pytest.mark.slow
def test_ctrl_c_exits_130_with_the_reason_on_stderr(folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQUENT_")}
    child = subprocess.Popen(
        [*CLI, "run", "slow.py"],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    log = folder / "slow.run.db"
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the step start; the run is recorded either way
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    assert "interrupt" in err.lower()
