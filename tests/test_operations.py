"""Operating runs from the command line (SPEC 5.4): the tutorial's walk, status and logs of live,
finished and abandoned runs, --only / --rerun / mark against the store and the plan, and every
bad usage exiting 2 with nothing written. Commands run as real ``sequent`` processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from corerun import wait_for

import sequent as seq

ROOT = Path(__file__).resolve().parents[1]
SEQUENT = [sys.executable, "-m", "sequent.cli"]

GATED = """
import os
import time
from pathlib import Path

import sequent as seq

HERE = Path(__file__).parent


def work(name, failing=()):
    with open(HERE / "calls.txt", "a") as calls:
        calls.write(name + "\\n")
    if name == "B":  # waits for the test to open the gate
        (HERE / "B.started").write_text("")
        deadline = time.monotonic() + 60
        while not (HERE / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if name in failing or name in os.environ.get("FAIL", "").split(","):
        raise RuntimeError(os.environ.get("ERROR_TEXT", f"{name} failed"))
    return name


def build_flow(fail=""):
    flow = seq.Sequent(name="gated", store=str(HERE / "gated.run.db"), executor="thread",
                       config={"logdir": str(HERE / "logs"), "stop_on_exception": False})
    failing = fail.split(",")
    a1 = flow.add_step("A1", func=work, args=("A1", failing))
    a2 = flow.add_step("A2", func=work, args=("A2", failing))
    b = flow.add_step("B", func=work, args=("B", failing),
                      requires=((a1, seq.StepStatus.success), (a2, seq.StepStatus.success)))
    c1 = flow.add_step("C1", func=work, args=("C1", failing),
                       requires=((b, seq.StepStatus.success),))
    flow.add_step("C2", func=work, args=("C2", failing), requires=((b, seq.StepStatus.success),))
    flow.add_step("D", func=work, args=("D", failing), requires=((c1, seq.StepStatus.success),))
    return flow
"""


def environment(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SEQUENT_STORE", None)
    env.update(extra)
    return env


def sequent(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [*SEQUENT, *map(str, args)],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def gated(tmp_path):
    (tmp_path / "gated.py").write_text(GATED, encoding="utf-8")
    (tmp_path / "gate").write_text("")  # open unless a test removes it
    return tmp_path


def calls(folder):
    path = folder / "calls.txt"
    found = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return found


def fingerprint(folder):
    """The bytes of every file in ``folder`` (store, WAL, logs), to show nothing was written."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not path.name.endswith("-shm")  # SQLite's shared-memory index, not data
        and not (path.name.endswith("-wal") and path.stat().st_size == 0)  # an empty log
    }


# -- the tutorial's walk -------------------------------------------------------------------------


def tutorial_commands():
    text = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    section = text.split("## 6.", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [
        line.split("#", 1)[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith("sequent ")
    ]


@pytest.mark.slow
def test_the_tutorial_walk_needs_no_store_and_no_copied_ids(tmp_path):
    commands = tutorial_commands()
    assert commands == [
        "sequent run examples/pitch.py -p fail_c2=true",
        "sequent status latest",
        "sequent logs latest C2",
        "sequent recover examples/pitch.py",
        "sequent runs examples/pitch.py",
    ]
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "pitch.py", tmp_path / "examples" / "pitch.py")
    results = [sequent(*command.split()[1:], cwd=tmp_path) for command in commands]
    codes = [result.returncode for result in results]
    assert codes == [1, 0, 0, 0, 0], [r.stderr for r in results]
    run_id = re.search(r"ran run (\w+) of flow 'pitch': failure", results[0].stdout).group(1)
    assert results[1].stdout.startswith(f"Run {run_id} of flow 'pitch': failure")
    assert "Steps: 4 success, 1 failure (of 5)" in results[1].stdout
    assert "C2 starts (sequence 1, recovery 0)" in results[2].stdout
    assert "RuntimeError: C2 could not reach the remote client" in results[2].stdout
    assert "A1 starts" not in results[2].stdout  # C2's log, not the run's
    assert results[3].stdout.strip() == f"recovered run {run_id} of flow 'pitch': success"
    assert "Summary: 4 recovered, 1 ran" in results[3].stderr
    listed = results[4].stdout.splitlines()
    assert listed[0].split()[:4] == ["run", "id", "flow", "state"]
    assert listed[1].split()[:3] == [run_id, "pitch", "success"]
    assert "2 (failure, success)" in listed[1]


# -- status: running, finished, abandoned ------------------------------------------------------


@pytest.mark.slow
def test_status_watch_follows_a_run_from_another_process_until_it_ends(gated):
    (gated / "gate").unlink()
    runner = subprocess.Popen(
        [*SEQUENT, "run", "gated.py", "--no-progress"], cwd=gated, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    watcher = None
    try:
        wait_for(lambda: (gated / "B.started").exists(), what="step B to start")
        watcher = subprocess.Popen(
            [*SEQUENT, "status", "latest", "--watch", "--interval", "0.2"], cwd=gated,
            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        first = "".join(watcher.stdout.readline() for _ in range(3))  # the first block
        assert ": running (pid " in first, first
        assert f"pid {runner.pid} " in first
        (gated / "gate").write_text("")
        assert watcher.wait(timeout=60) == 0, watcher.stderr.read()
        out = watcher.stdout.read()
        assert runner.wait(timeout=60) == 0
    finally:
        for process in (runner, watcher):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert "running now: B/1" in first + out
    last = out.split("--- ")[-1]
    assert ": success; attempt 0 (restart)" in last and "Steps: 6 success (of 6)" in last


#: What ``status`` prints that changes with time alone: the heartbeat's age, a step's run time.
CLOCKS = re.compile(r", heartbeat \d+ s ago|, \d+\.\d s(?=\))")


@pytest.mark.slow
@pytest.mark.parametrize("fail, code", [("", 0), ("D", 1)])
def test_status_watch_prints_only_when_the_status_changes(gated, monkeypatch, fail, code):
    """Polls while B runs, unchanged but for its clocks, print nothing; the end is printed once.

    The watcher runs here with its sleep counted: B's gate opens after five polls, each after a
    real interval, so B's run time shown differs from poll to poll.
    """
    from click.testing import CliRunner

    from sequent.cli import watching

    (gated / "gate").unlink()
    runner = subprocess.Popen(
        [*SEQUENT, "run", "gated.py", "--no-progress"], cwd=gated, env=environment(FAIL=fail),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    polls = []

    def sleep(seconds):
        time.sleep(seconds)
        polls.append(seconds)
        if len(polls) == 5:
            (gated / "gate").write_text("")

    monkeypatch.setattr(watching, "time", type("Clock", (), {"sleep": staticmethod(sleep)}))
    try:
        wait_for(lambda: (gated / "B.started").exists(), what="step B to start")
        args = ["latest", "--store", str(gated / "gated.run.db"), "--watch", "--interval", "0.2"]
        watched = CliRunner().invoke(watching.status, args)
        assert runner.wait(timeout=60) == code
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert watched.exit_code == code, watched.output
    assert len(polls) >= 5
    blocks = re.split(r"^--- .*\n", watched.output, flags=re.M)
    assert "running now: B/1" in blocks[0], blocks[0]
    steady = [CLOCKS.sub("", block) for block in blocks]
    assert len(set(steady)) == len(steady), watched.output  # no block printed twice
    word = "failure" if fail else "success"
    assert f": {word}; attempt 0 (restart)" in blocks[-1], blocks[-1]
    assert sum(f": {word}; attempt" in block for block in blocks) == 1


@pytest.mark.slow
def test_a_run_whose_orchestrator_was_killed_is_abandoned_within_15_seconds(gated):
    (gated / "gate").unlink()
    runner = subprocess.Popen(
        [*SEQUENT, "run", "gated.py", "--no-progress"], cwd=gated, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: (gated / "B.started").exists(), what="step B to start")
        assert ": running" in sequent("status", cwd=gated).stdout
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=30)
        killed = time.monotonic()

        def abandoned():
            shown = sequent("status", cwd=gated).stdout
            return shown if ": abandoned" in shown else None

        shown = wait_for(abandoned, timeout=20, what="the run to be shown abandoned")
        assert time.monotonic() - killed < 15
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert "were running when it stopped: B/1" in shown
    listed = sequent("runs", cwd=gated).stdout.splitlines()
    assert listed[1].split()[2] == "abandoned"
    assert sequent("logs", "latest", "--follow", cwd=gated).returncode == 2  # not running


# -- --only, --rerun --downstream and mark against the store and the plan ---------------------


def last_attempt_ran(folder):
    from sequent.plan import read_store

    with read_store(folder / "gated.run.db") as store:
        run_id = store.runs()[0]["run_id"]
        events = store.events(run_id)
    last = max(event["attempt"] for event in events)
    return [
        f"{e['path']}/{e['sequence']}" for e in events
        if e["attempt"] == last and e["status"] == "active"
    ]  # fmt: skip


def planned_to_run(folder, *options):
    result = sequent("plan", "gated.py", "--json", *options, cwd=folder)
    assert result.returncode == 0, result.stderr
    return [
        f"{n['path']}/{n['sequence']}" for n in json.loads(result.stdout)["nodes"]
        if n["action"] == "run" and not n["container"]
    ]  # fmt: skip


@pytest.mark.slow
def test_only_rerun_downstream_and_mark_do_what_the_plan_says(gated):
    assert sequent("run", "gated.py", "-p", "fail=C1,C2", cwd=gated).returncode == 1
    assert sorted(calls(gated)) == ["A1", "A2", "B", "C1", "C2"]

    planned = planned_to_run(gated, "--recover", "--only", "C1")
    assert planned == ["C1/1"]
    assert sequent("recover", "gated.py", "--only", "C1", cwd=gated).returncode == 1  # C2 kept
    assert calls(gated) == ["C1"] and last_attempt_ran(gated) == planned
    shown = sequent("show", "latest", cwd=gated).stdout
    assert re.search(r"C2/1\s+\S+ failure \(unhandled\) \(kept: --only left it out\)", shown), shown

    planned = planned_to_run(gated, "--recover", "--rerun", "A2", "--downstream")
    assert planned == ["A2/1", "B/1", "C1/1", "C2/1", "D/1"]
    rerun = sequent("recover", "gated.py", "--rerun", "A2", "--downstream", cwd=gated)
    assert rerun.returncode == 0, rerun.stderr
    assert calls(gated) == ["A2", "B", "C1", "C2", "D"] and last_attempt_ran(gated) == planned

    marked = sequent("mark", "latest", "D@1", "failure", "--reason", "bad output", cwd=gated)
    assert marked.returncode == 0, marked.stderr
    assert "marked D@1 of run" in marked.stdout and "failure (it was success)" in marked.stdout
    plan_text = sequent("plan", "gated.py", "--recover", cwd=gated).stdout
    assert re.search(r"D/1\s+run\s+failure\s+.*marked failure by \S+: bad output", plan_text)
    shown = sequent("show", "latest", cwd=gated).stdout
    assert re.search(r"D/1\s+\S+ failure \(marked by \S+: bad output\)", shown), shown
    planned = planned_to_run(gated, "--recover")
    assert planned == ["D/1"]
    assert sequent("recover", "gated.py", cwd=gated).returncode == 0
    assert calls(gated) == ["D"] and last_attempt_ran(gated) == planned


# -- bad usage: exit 2, the culprit and the fix, nothing written --------------------------------


@pytest.mark.slow
def test_every_bad_usage_exits_2_names_the_culprit_and_writes_nothing(gated):
    assert sequent("run", "gated.py", cwd=gated).returncode == 0
    calls(gated)
    before = fingerprint(gated)
    cases = [
        (("run", "gated.py", "-p", "colour=red"), r"takes no parameter 'colour'; it takes: fail"),
        (("run", "gated.py", "-p", "colour"), r"-p 'colour' is not KEY=VALUE"),
        (("run", "gated.py", "--config", "colour=red"), r"'colour' is not a flow config key"),
        (("run", "gated.py", "--only", "nope"), r"--only nope: no step 'nope' in the flow"),
        (("recover", "gated.py", "--rerun", "nope"), r"--rerun nope: no step 'nope'"),
        (("recover", "gated.py", "--downstream"), r"--downstream .* add --rerun STEP"),
        (("run", "gated.py", "--only", "B"), r"'B' at sequence 1 requires 'A1'.*add 'A1'"),
        (("run", "gated.py", "--executor", "nope"), r"'nope' is not one of 'serial', 'thread'"),
        (("show", "zzzz"), r"holds no run with id 'zzzz'.*or a prefix of one, or 'latest'"),
        (("mark", "latest", "Q@1", "success", "--reason", "x"), r"no step instance Q@1.*A1@1"),
        (("mark", "latest", "B", "success", "--reason", "x"), r"'B' is not STEP@SEQUENCE"),
        (("mark", "latest", "B@1", "skipped", "--reason", "x"), r"'skipped' is not one of"),
        (("logs", "latest", "nope"), r"no step instance 'nope'; name one as STEP"),
        (("logs", "latest", "--follow"), r"--follow follows a running run.*leave out --follow"),
        (("status", "--store", "nowhere.run.db"), r"no store at 'nowhere.run.db'"),
        (("recover", "gated.py", "--run-id", "zzzz"), r"holds no run with id 'zzzz'"),
    ]
    for args, message in cases:
        result = sequent(*args, cwd=gated)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert re.search(message, result.stderr), (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert calls(gated) == []
    assert fingerprint(gated) == before


def test_an_ambiguous_prefix_and_a_missing_store_exit_2(tmp_path):
    ids = []
    for _ in range(17):  # 17 ids of hexadecimal digits: two share their first digit
        with seq.Sequent(name="many", store=str(tmp_path / "many.run.db"), executor="serial",
                         config={"logdir": str(tmp_path / "logs")}) as flow:  # fmt: skip
            flow.add_step("a", func=print)
            flow.run()
            ids.append(flow.run_id)
    shared = next(i[0] for i in ids if sum(o.startswith(i[0]) for o in ids) > 1)
    before = fingerprint(tmp_path)
    result = sequent("show", shared, cwd=tmp_path)  # the single *.run.db here
    assert result.returncode == 2
    assert f"run prefix '{shared}' is ambiguous" in result.stderr
    assert "give more of the id" in result.stderr
    assert fingerprint(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    result = sequent("runs", cwd=empty)
    assert result.returncode == 2 and "no store given and none found" in result.stderr
    assert "--store PATH" in result.stderr


def test_errors_speak_the_command_lines_words(gated):
    result = sequent("recover", "gated.py", cwd=gated)
    assert result.returncode == 2
    assert "sequent run FILE" in result.stderr and "RunMode" not in result.stderr
    assert not (gated / "gated.run.db").exists()


# -- stored text reaches the terminal escaped ---------------------------------------------------


@pytest.mark.slow  # seven commands in subprocesses
def test_show_logs_and_status_print_control_sequences_escaped(gated):
    hostile = "boom \x1b]0;owned\x07 \x1b[2J\x1b[31mred \x9b1m end"
    env = environment(FAIL="C1", ERROR_TEXT=hostile)
    assert sequent("run", "gated.py", cwd=gated, env=env).returncode == 1
    logs = ("logs", "latest", "C1", "--logdir", gated / "logs")
    for args in (("show", "latest"), logs, ("status",), ("runs",)):
        result = sequent(*args, cwd=gated)
        assert result.returncode == 0, result.stderr
        for raw in ("\x1b", "\x07", "\x9b"):
            assert raw not in result.stdout, args
    shown = sequent("show", "latest", cwd=gated).stdout
    assert "boom \\x1b]0;owned\\x07 \\x1b[2J\\x1b[31mred \\x9b1m end" in shown
    logged = sequent(*logs, cwd=gated).stdout
    assert "\\x1b]0;owned\\x07" in logged


# -- loading errors, --debug, Ctrl-C, choices ---------------------------------------------------


def test_a_flow_file_failing_in_a_helper_names_it_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "helper.py").write_text("SETTINGS = {}\n\n\ndef setting(name):\n"
                                        "    return SETTINGS[name]\n")  # fmt: skip
    (tmp_path / "broken.py").write_text(textwrap.dedent("""
        import sequent as seq
        from helper import setting

        NAME = setting("name")
        flow = seq.Sequent(name=NAME)
    """))
    plain = sequent("run", "broken.py", cwd=tmp_path)
    assert plain.returncode == 2
    assert "raised KeyError: 'name'" in plain.stderr
    assert re.search(r"in \S*helper\.py line 5, reached from line 5\)", plain.stderr)
    assert "--debug" in plain.stderr and "Traceback" not in plain.stderr
    debug = sequent("--debug", "run", "broken.py", cwd=tmp_path)
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'helper.py", line 5, in setting' in debug.stderr
    assert not list(tmp_path.glob("*.run.db"))


@pytest.mark.slow
def test_ctrl_c_exits_130_and_leaves_the_run_recoverable(gated):
    (gated / "gate").unlink()
    runner = subprocess.Popen(
        [*SEQUENT, "run", "gated.py", "--no-progress", "--executor", "process"], cwd=gated,
        env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (gated / "B.started").exists(), what="step B to start")
        runner.send_signal(signal.SIGINT)  # to the orchestrator alone, as a terminal's Ctrl-C
        # would reach the whole group; the orchestrator stops the step's worker itself
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 130, err
    assert "sequent recover gated.py" in err
    (gated / "gate").write_text("")
    calls(gated)
    assert sequent("recover", "gated.py", cwd=gated).returncode == 0
    assert "B" in calls(gated)


def test_executor_is_a_choice_in_help(gated):
    shown = sequent("run", "--help", cwd=gated).stdout
    assert "[serial|thread|process|loky|dask]" in shown
