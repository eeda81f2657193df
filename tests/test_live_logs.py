"""Step logs while a step runs (issue 14, SPEC 3.7): the log writer thread's guarantees.

- a running step's lines reach its log file within about a second, and `sequent logs RUN STEP
  --follow` shows them before the step may finish (thread and process executors);
- every line of a step that fails, times out or is interrupted is in its step log, in order;
  lines already written survive a SIGKILL of the orchestrator;
- the run log's closing line is its last; lines are in the seed's format, exactly as the
  ``logging`` formatter renders them.

The orchestrator runs as a child process (a real signal, a real second process reading the
store and the files); its step waits on a file the test creates, never on a timer.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_logs import records

import sequent as seq
from sequent.logs import FORMAT, SeedFormatter, run_log_dir, step_log_path

WAIT = 20.0  # seconds: how long a line may take on a loaded machine before the test fails

ORCHESTRATOR = textwrap.dedent(
    """
    import logging, os, sys, time
    import sequent as seq

    executor, store, logdir, release = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else None


    def slow(count):
        log = logging.getLogger(seq.current().logger_name)
        for number in range(1, count + 1):
            log.info("line %d of the slow step", number)
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)  # waits for the test's file, not for a time
        log.info("released")
        if os.path.exists(release + ".fail"):
            raise RuntimeError("asked to fail")


    flow = seq.Sequent(name="live", store=store, executor=executor, logging_level="INFO",
                       config={"logdir": logdir, "max_concurrent": 0})
    flow.add_step("slow", func=slow, args=(int(os.environ.get("LINES", "3")),), timeout=timeout)
    print("result", flow.run(), flow.run_id, flush=True)
    """
)


class Orchestrator:
    """A flow run in a child process; its step ``slow`` logs, then waits for ``release``."""

    def __init__(self, tmp_path: Path, executor: str, lines: int = 3, timeout: float | None = None):
        self.tmp_path = tmp_path
        self.store = tmp_path / "live.run.db"
        self.logdir = tmp_path / "logs"
        self.release = tmp_path / "release"
        script = tmp_path / "live.py"
        script.write_text(ORCHESTRATOR, encoding="utf-8")
        argv = [sys.executable, str(script), executor, str(self.store), str(self.logdir),
                str(self.release)]  # fmt: skip
        if timeout is not None:
            argv.append(str(timeout))
        self.console = tmp_path / "console.txt"  # a file: a full pipe would block the step
        with open(self.console, "w") as console:
            self.process = subprocess.Popen(
                argv, env={**os.environ, "LINES": str(lines)}, stdout=subprocess.PIPE,
                stderr=console, text=True,
            )  # fmt: skip

    def step_log(self) -> Path:
        folders = list((self.logdir / "live").glob("*")) if (self.logdir / "live").is_dir() else []
        assert len(folders) <= 1, folders
        return step_log_path(folders[0], "slow", "1") if folders else self.logdir / "missing"

    def run_log(self) -> Path:
        return self.step_log().parent / "run.log"

    def wait_for_line(self, text: str) -> str:
        """The step log once it holds ``text`` (fails after WAIT seconds)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.console.read_text()
            path = self.step_log()
            if path.exists():
                content = path.read_text(encoding="utf-8")
                if text in content:
                    return content
            time.sleep(0.05)
        raise AssertionError(f"{text!r} did not reach {self.step_log()} within {WAIT} s")

    def finish(self, fail: bool = False) -> tuple[str, str]:
        """Let the step go on; the orchestrator's stdout and console once it has ended."""
        if fail:
            Path(f"{self.release}.fail").touch()
        self.release.touch()
        return self.wait()

    def wait(self) -> tuple[str, str]:
        out, _ = self.process.communicate(timeout=120)
        return out, self.console.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def orchestrators():
    started: list[Orchestrator] = []

    def start(*args, **kwargs) -> Orchestrator:
        started.append(Orchestrator(*args, **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.kill()


def follow(store: Path, step: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    """``sequent logs latest STEP --follow`` as a child; its stdout lines arrive in a queue."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from sequent.cli import main; main()", "logs", "latest", step,
         "--store", str(store), "--follow", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def read_until(lines: queue.Queue[str | None], text: str) -> list[str]:
    """The lines read until one holds ``text`` (fails after WAIT seconds or at the end)."""
    seen: list[str] = []
    deadline = time.monotonic() + WAIT
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"{text!r} not shown within {WAIT} s; shown: {seen}") from None
        assert line is not None, f"the command ended before showing {text!r}; shown: {seen}"
        seen.append(line)
        if text in line:
            return seen


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_running_steps_lines_reach_its_log_and_logs_follow_shows_them(
    executor, orchestrators, tmp_path
):
    run = orchestrators(tmp_path, executor)
    before = run.wait_for_line("line 3 of the slow step")  # the step is still waiting
    assert "released" not in before
    assert [message for _, message in records(before)] == [
        "line 1 of the slow step", "line 2 of the slow step", "line 3 of the slow step",
    ]  # fmt: skip
    follower, lines = follow(run.store, "slow")
    try:
        shown = read_until(lines, "line 3 of the slow step")
        assert run.process.poll() is None and "released" not in "".join(shown)
        out, err = run.finish()
        assert run.process.returncode == 0, err
        assert out.startswith("result True"), out
        shown += read_until(lines, "released")
        follower.wait(timeout=60)
        assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        follower.kill()
    messages = [message for _, message in records("".join(shown))]
    assert messages[:3] == [f"line {n} of the slow step" for n in (1, 2, 3)]
    assert "released" in messages
    run_log = records(run.run_log().read_text(encoding="utf-8"))
    assert run_log[-1] == ("INFO", "Processing finished with: success")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["failure", "timeout", "SIGTERM", "SIGKILL"])
def test_every_line_of_a_step_that_ends_badly_is_in_its_log_in_order(how, orchestrators, tmp_path):
    """2,000 lines, then the step fails, times out, or its orchestrator is signalled."""
    run = orchestrators(tmp_path, "thread", lines=2000, timeout=3.0 if how == "timeout" else None)
    run.wait_for_line("line 2000 of the slow step")
    if how == "failure":
        out, err = run.finish(fail=True)
        assert "result False" in out, err
    elif how == "timeout":
        out, err = run.wait()
        assert "result False" in out, err
    else:
        run.process.send_signal(getattr(signal, how))
        run.wait()
    messages = [message for _, message in records(run.step_log().read_text(encoding="utf-8"))]
    numbered = [m for m in messages if m.endswith(" of the slow step")]
    assert numbered == [f"line {n} of the slow step" for n in range(1, 2001)]
    if how == "failure":
        assert messages[2000] == "released"
        assert messages[-1].startswith("[ Step slow/1 ] failed: RuntimeError: asked to fail")
    elif how == "timeout":
        assert messages[-1].startswith("[ Step slow/1 ] failed: TimeoutError")
    run_log = records(run.run_log().read_text(encoding="utf-8"))
    if how == "SIGKILL":  # what was written stays; nothing closes the run log
        assert run_log[-1][1] == "line 2000 of the slow step"
    else:
        assert run_log[-1] == ("INFO", "Processing finished with: failure")
        assert [m for _, m in run_log].count("line 1000 of the slow step") == 1


def many_lines(count: int) -> None:
    log = logging.getLogger(seq.current().logger_name)
    for number in range(count):
        log.info("%s says %d", seq.current().sequence, number)


def test_lines_keep_their_order_in_every_step_of_a_busy_fan(make_flow, tmp_path):
    """50 steps at once, 300 lines each (more than the writer takes in one go)."""
    flow = make_flow("thread", name="busy", logging_level=logging.INFO, max_concurrent=0)
    box = flow.add_step("box", repeats=range(50), parallel=0)
    box.add_step("talk", func=many_lines, args=(300,))
    assert flow.run() is True
    folder = run_log_dir(tmp_path / "logs", "busy", flow.run_id)
    for ordinal in range(1, 51):
        sequence = f"1.{ordinal}"
        text = step_log_path(folder, "box_talk", sequence).read_text(encoding="utf-8")
        assert [m for _, m in records(text)] == [f"{sequence} says {n}" for n in range(300)]
    run_log = records((folder / "run.log").read_text(encoding="utf-8"))
    assert len([m for _, m in run_log if " says " in m]) == 50 * 300
    assert run_log[-1] == ("INFO", "Processing finished with: success")


def seed_text(record: logging.LogRecord) -> str:
    """What the seed's formatter made of a record: ``logging``'s own, the traceback inside."""
    text = logging.Formatter(FORMAT).format(record)
    if text.endswith("]") or "\n" not in text:
        return text
    head, _, tail = text.partition(" ]\n")
    return f"{head}\n{tail} ]" if tail else text


def test_lines_are_the_seed_formatters_exactly(make_flow, tmp_path):
    """A plain line, one with newlines, one with a traceback, one with a stack, one replayed
    with a traceback text: the file holds what the ``logging`` formatter renders."""
    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(logging.makeLogRecord(record.__dict__))

    def chatter() -> None:
        log = logging.getLogger(seq.current().logger_name)
        log.info("plain %s", "line")
        log.warning("two\nlines")
        try:
            raise ValueError("broken")
        except ValueError:
            log.exception("caught")
        log.info("where", stack_info=True)
        text = "Traceback (most recent call last):\nX\n"  # as a worker's record brings it
        log.handle(logging.makeLogRecord(
            {"name": log.name, "levelno": logging.ERROR, "levelname": "ERROR", "msg": "replayed",
             "exc_text": text}
        ))  # fmt: skip

    keep = Keep()
    logging.getLogger("sequent.fmt").addHandler(keep)
    try:
        flow = make_flow("thread", name="fmt", logging_level=logging.INFO)
        flow.add_step("a", func=chatter)
        assert flow.run() is True
    finally:
        logging.getLogger("sequent.fmt").removeHandler(keep)
    folder = run_log_dir(tmp_path / "logs", "fmt", flow.run_id)
    expected = "".join(seed_text(record) + "\n" for record in made)
    assert len(made) == 5
    assert step_log_path(folder, "a", "1").read_text(encoding="utf-8") == expected
    assert all(SeedFormatter().format(record) == seed_text(record) for record in made)
