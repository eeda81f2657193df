"""``seq.Program`` steps: exit status, output in the step's log, the process group killed on a
timeout or an interruption, the step context in the program's environment."""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import pytest
from corerun import new_flow, run_core
from procs import alive, gone_within

import sequent as seq
from sequent.errors import DefinitionError, DefinitionTypeError
from sequent.logs import step_log_path
from sequent.program import ProgramError, ProgramTimeout, kill_programs
from sequent.status import StepStatus

S = StepStatus
REMOTE = ("process", "loky", "dask")

#: A shell that starts a background child in its own (the program's) process group, writes the
#: child's pid to the file named by $1, and waits for it.
HANG = ["sh", "-c", 'sleep 60 & echo $! > "$0"; wait']


def test_program_success_logs_its_output_in_the_step_log(executor, make_flow, tmp_path):
    flow = make_flow(executor, name="prog")
    script = "print('out one'); import sys; print('err one', file=sys.stderr); print('out two')"
    flow.add_step("talk", func=seq.Program([sys.executable, "-c", script]))
    assert flow.run() is True
    folder = tmp_path / "logs" / "prog" / flow.run_id
    step_log = step_log_path(folder, "talk", "1").read_text()
    for line in ("[stdout] out one", "[stdout] out two", "[stderr] err one"):
        assert line in step_log
        assert line in (folder / "run.log").read_text()
    assert step_log.index("out one") < step_log.index("out two")
    assert "exited with status 0" in step_log


def test_program_failure_reports_status_and_stderr_tail(executor, lend, tmp_path):
    backend = lend(executor)
    flow = new_flow(backend, tmp_path)
    script = "import sys; print('first', file=sys.stderr); print('last words', file=sys.stderr)"
    flow.add_step("bad", func=seq.Program([sys.executable, "-c", script + "; sys.exit(4)"]))
    run = run_core(flow, backend)
    assert run.status() == {"bad/1": "failure"}
    error = run.record("bad/1", S.failure).error
    assert error.startswith("ProgramError: program [")
    assert "exited with status 4; last lines of its stderr:\nfirst\nlast words" in error


def test_program_sees_the_step_context_in_its_environment(executor, lend, tmp_path):
    out = tmp_path / "env.txt"
    backend = lend(executor)
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=["x"])
    box.add_step(
        "show",
        func=seq.Program(
            ["sh", "-c", 'echo "$SEQUENT_STEP_NAME $EVENTOR_STEP_SEQUENCE $MINE" > "$0"'],
            env={"MINE": "mine"},
        ),
        args=(str(out),),
    )
    run = run_core(flow, backend)
    assert run.result is True
    assert out.read_text().split() == ["box_show", "1.1", "mine"]


@pytest.mark.parametrize("name", ["serial", "thread", *REMOTE])
def test_program_own_timeout_kills_its_group(name, lend, tmp_path):
    pidfile = tmp_path / "child.pid"
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    # 1 s leaves a loaded machine time to start the child and write its pid first
    flow.add_step("slow", func=seq.Program(HANG, timeout=1.0, grace=0.2), args=(str(pidfile),))
    started = time.monotonic()
    run = run_core(flow, backend)
    assert time.monotonic() - started < 10
    assert run.status() == {"slow/1": "failure"}
    assert "ProgramTimeout: program ['sh'" in run.record("slow/1", S.failure).error
    assert "timed out after 1 s; its process group was killed" in (
        run.record("slow/1", S.failure).error
    )
    assert gone_within(int(pidfile.read_text()), 5)


@pytest.mark.parametrize("name", ["thread", *REMOTE])
@pytest.mark.slow  # waits for a 3 s timeout
def test_step_timeout_kills_the_program_group(name, lend, tmp_path):
    """A step's own ``timeout=`` stops its program on every executor that can stop a step.

    The timeout counts from the submission: a first step warms a worker, and the timeout
    leaves a loaded machine seconds to start the program and its child before it fires."""
    pidfile = tmp_path / "child.pid"
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    warm = flow.add_step("warm", func=seq.Program(["true"]))
    flow.add_step("slow", func=seq.Program(HANG), args=(str(pidfile),), timeout=3.0,
                  requires=((warm, S.success),))  # fmt: skip
    run = run_core(flow, backend)
    assert run.status() == {"warm/1": "success", "slow/1": "failure"}
    assert run.record("slow/1", S.failure).error.startswith("TimeoutError: step 'slow' timed out")
    wait_for_file(pidfile)
    assert gone_within(int(pidfile.read_text()), 5), "the program's child outlived the timeout"


def test_program_is_picklable_and_checks_its_arguments():
    program = seq.Program("echo 'a b' c", cwd="/tmp", env={"K": "v"}, timeout=3)
    copy = pickle.loads(pickle.dumps(program))
    assert (copy.argv, copy.cwd, copy.env, copy.timeout) == (
        ["echo", "a b", "c"],
        "/tmp",
        {"K": "v"},
        3,
    )
    with pytest.raises(DefinitionTypeError, match="non-empty list of strings"):
        seq.Program([])
    with pytest.raises(DefinitionTypeError, match="convert numbers with str"):
        seq.Program(["sleep", 1])
    with pytest.raises(DefinitionTypeError, match="env must map"):
        seq.Program(["true"], env={"K": 1})
    with pytest.raises(DefinitionError, match="timeout must be > 0"):
        seq.Program(["true"], timeout=0)


def test_program_called_directly_returns_zero_or_raises(tmp_path):
    assert seq.Program(["true"])() == 0
    with pytest.raises(ProgramError) as failed:
        seq.Program(["sh", "-c", "kill -9 $$"])()
    assert "was killed by signal SIGKILL (9)" in str(failed.value)
    pidfile = tmp_path / "pid"
    with pytest.raises(ProgramTimeout):
        seq.Program(HANG, timeout=0.3, grace=0.1)(str(pidfile))
    assert not alive(int(pidfile.read_text()))


def test_kill_programs_kills_only_the_named_step(tmp_path):
    """The registry behind timeouts: a step's programs are found by (run, path, seq, attempt)."""
    import threading

    from sequent.context import StepContext, entered

    outcomes: dict[str, BaseException | int] = {}

    def run_as(name: str, pidfile: Path) -> None:
        context = StepContext(name=name, sequence="1", recovery=0, run_id="r", flow_name="f")
        with entered(context):
            try:
                outcomes[name] = seq.Program(HANG, grace=0.1)(str(pidfile))
            except BaseException as exc:  # noqa: BLE001
                outcomes[name] = exc

    files = {name: tmp_path / f"{name}.pid" for name in ("keep", "stop")}
    threads = [threading.Thread(target=run_as, args=item) for item in files.items()]
    for thread in threads:
        thread.start()
    for pidfile in files.values():
        wait_for_file(pidfile)
    assert kill_programs(("r", "stop", "1", 0)) == 1
    threads[1].join(10)
    assert isinstance(outcomes["stop"], ProgramError)
    keep = int(files["keep"].read_text())
    assert alive(keep)
    assert kill_programs() == 1
    threads[0].join(10)
    assert gone_within(keep, 5)


# -- helpers -------------------------------------------------------------------------------


def wait_for_file(path: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.01)


INTERRUPTED = """
import sys
import sequent as seq

pidfile, executor, logdir = sys.argv[1:]
flow = seq.Sequent(name="intr", store=":memory:", executor=executor, config={"logdir": logdir})
flow.add_step("hang", func=seq.Program(HANG), args=(pidfile,))
try:
    flow.run()
finally:
    flow.close()
"""


@pytest.mark.parametrize("name", ["thread", "process", "loky"])
@pytest.mark.slow
def test_interrupting_a_run_kills_the_program_group(name, tmp_path):
    """SIGINT to the orchestrator: the step is recorded interrupted; its program's group dies."""
    import signal
    import subprocess

    script = tmp_path / "interrupted.py"
    script.write_text(f"HANG = {HANG!r}\n" + INTERRUPTED)
    pidfile = tmp_path / "child.pid"
    orchestrator = subprocess.Popen(
        [sys.executable, str(script), str(pidfile), name, str(tmp_path / "logs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_file(pidfile, 60)
        orchestrator.send_signal(signal.SIGINT)
        output, _ = orchestrator.communicate(timeout=60)
    finally:
        orchestrator.kill()
    # the run is recorded and ends; then the signal goes on to Python's own handler
    assert "Interrupted: hang/1" in output, output
    assert "Processing finished with: failure" in output, output
    assert "KeyboardInterrupt" in output and orchestrator.returncode != 0
    assert gone_within(int(pidfile.read_text()), 5), "the program outlived the interruption"
