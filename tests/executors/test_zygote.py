"""The process executor's default start method: workers forked by a single-threaded zygote.

Each case runs a script without a ``__main__`` guard as a user would, with
``-W error::DeprecationWarning`` (Python 3.12+ turns a fork of a threaded process into an
error then): the zygote is a copy of the orchestrator when that runs one thread, else a fresh
interpreter; either way the script runs once, a worker that died is replaced, and each worker
takes the orchestrator's environment and folder of the moment it starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """\
import os, sys, threading
import sequent as seq
from sequent.executors.process import ProcessExecutor

print("the script ran", flush=True)
folder = sys.argv[2]
if sys.argv[1] == "threaded":
    threading.Thread(target=threading.Event().wait, daemon=True).start()
backend = ProcessExecutor(max_workers=1)
print("forked zygote:", backend._zygote.forked, flush=True)
os.environ["ZYGOTE_SEEN"] = "set after the executor was created"
os.chdir(folder)


def look(name):
    with open(os.path.join(folder, name), "w") as out:
        out.write(f"{os.environ.get('ZYGOTE_SEEN')}|{os.getcwd()}|{os.getpid()}")


def die():
    os._exit(3)


flow = seq.Sequent(
    name="zygote", store=os.path.join(folder, "z.run.db"), executor=backend,
    config={"logdir": os.path.join(folder, "logs")},
)
first = flow.add_step("first", func=look, args=("first",))
dead = flow.add_step("dead", func=die, requires=((first, seq.STEP_SUCCESS),))
flow.add_step("after", func=look, args=("after",), requires=((dead, seq.STEP_FAILURE),))
print("result:", flow.run(), flush=True)
flow.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["single", "threaded"])
def test_a_script_without_a_guard_runs_once_on_zygote_workers(tmp_path, mode):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(script), mode, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("the script ran") == 1, output  # no worker imported the script
    assert f"forked zygote: {mode == 'single'}" in output, output
    assert "result: True" in output, output  # "dead" failed; "after" handled its failure
    assert "WorkerDied" in output and "exit code 3" in output, output
    assert "DeprecationWarning" not in output, output
    seen = {name: (tmp_path / name).read_text().split("|") for name in ("first", "after")}
    for environ, cwd, _ in seen.values():
        assert environ == "set after the executor was created"
        assert Path(cwd).resolve() == tmp_path.resolve()
    assert seen["first"][2] != seen["after"][2]  # the dead worker was replaced
