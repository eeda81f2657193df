"""The ``sequent`` command (SPEC 5.3): every subcommand, its exit status and its messages."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import textwrap

import pydot
import pytest
from click.testing import CliRunner

import sequent as seq
from sequent.cli import cli, load_flow
from sequent.compiler.dot import STATUS_COLORS

FLOW = """
import os
from pathlib import Path

import sequent as seq

HERE = Path(__file__).parent


def work(name):
    context = seq.current()
    me = f"{context.name}/{context.sequence}"
    with open(HERE / "calls.txt", "a") as calls:
        calls.write(me + "\\n")
    if os.environ.get("FAIL_AT") == me:
        raise RuntimeError(f"{name} failed at {me}")
    return name


def build_flow():
    flow = seq.Sequent(name="demo", store=str(HERE / "demo.run.db"), executor="serial",
                       config={"logdir": str(HERE / "logs")})
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", func=work, args=("s11",))
    s1.add_step("s12", func=work, args=("s12",), requires=((s11, seq.StepStatus.success),))
    flow.add_step("s2", func=work, args=("s2",), requires=((s1, seq.StepStatus.success),))
    return flow


flow = build_flow()
flow.run()  # run when the script runs; `sequent` loads the flow without running it
flow.close()
"""

ALL = ["s1_s11/1.1", "s1_s12/1.1", "s1_s11/1.2", "s1_s12/1.2", "s2/1"]


@pytest.fixture
def folder(tmp_path, empty_cwd):
    (tmp_path / "demo.py").write_text(FLOW, encoding="utf-8")
    return tmp_path


def calls(folder):
    path = folder / "calls.txt"
    lines = path.read_text().split() if path.exists() else []
    if path.exists():
        path.unlink()
    return lines


def invoke(*args, env=None):
    result = CliRunner().invoke(cli, [str(arg) for arg in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_id_of(result):
    found = re.search(r"run (\w+) of flow", result.stdout)
    assert found, result.stdout
    return found.group(1)


# -- run and recover ------------------------------------------------------------------------


def test_run_loads_without_running_then_runs_once(folder):
    result = invoke("run", folder / "demo.py")
    assert result.exit_code == 0, result.output
    assert calls(folder) == ALL  # once: the module-level flow.run() was only noted
    run_id = run_id_of(result)
    assert result.stdout.strip() == f"ran run {run_id} of flow 'demo': success"
    assert (folder / "demo.run.db").is_file()
    assert (folder / "logs" / "demo" / run_id / "run.log").is_file()


def test_failed_run_exits_1_and_recover_reruns_only_what_failed(folder):
    failed = invoke("run", folder / "demo.py", env={"FAIL_AT": "s1_s12/1.2"})
    assert failed.exit_code == 1, failed.output
    assert "failure" in failed.stdout
    assert calls(folder) == ["s1_s11/1.1", "s1_s12/1.1", "s1_s11/1.2", "s1_s12/1.2"]
    run_id = run_id_of(failed)

    planned = invoke("plan", folder / "demo.py", "--recover", "--json")
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert plan["run_id"] == run_id and plan["mode"] == "recover" and plan["attempt"] == 1
    to_run = [f"{n['path']}/{n['sequence']}" for n in plan["nodes"] if n["action"] == "run"]
    assert [key for key in to_run if key != "s1/1"] == ["s1_s12/1.2", "s2/1"]
    assert calls(folder) == []

    recovered = invoke("recover", folder / "demo.py")
    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout.strip() == f"recovered run {run_id} of flow 'demo': success"
    assert calls(folder) == ["s1_s12/1.2", "s2/1"]

    again = invoke("recover", folder / "demo.py", "--run-id", run_id)
    assert again.exit_code == 0 and calls(folder) == []


def test_run_options_override_the_flow(folder, tmp_path):
    other = tmp_path / "elsewhere.run.db"
    result = invoke(
        "run", f"{folder / 'demo.py'}:build_flow", "--store", other, "--executor", "thread",
        "--logdir", tmp_path / "otherlogs", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert other.is_file() and not (folder / "demo.run.db").exists()
    assert (tmp_path / "otherlogs" / "demo" / run_id_of(result) / "run.log").is_file()
    listed = invoke("runs", "--store", other, "--json")
    assert json.loads(listed.stdout)[0]["executor"] == "thread"


def test_max_loops_stops_early_and_leaves_the_run_recoverable(folder):
    result = invoke("run", folder / "demo.py", "--max-loops", "2")
    assert result.exit_code == 1, result.output
    ran = calls(folder)
    assert 0 < len(ran) < len(ALL)
    recovered = invoke("recover", folder / "demo.py")
    assert recovered.exit_code == 0, recovered.output
    assert sorted(ran + calls(folder)) == sorted(ALL)


INTERRUPTING = """
import os
import signal
from pathlib import Path

import sequent as seq

HERE = Path(__file__).parent


def stop_once():
    if not (HERE / "stopped").exists():
        (HERE / "stopped").write_text("")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the step runs


def build_flow(label="x"):
    flow = seq.Sequent(name="intr", executor="serial")
    first = flow.add_step("first", func=stop_once)
    flow.add_step("then", func=lambda: None, requires=((first, seq.StepStatus.success),))
    return flow
"""


def test_interrupted_run_prints_its_line_and_the_recover_that_continues_it(folder):
    import shlex

    write(folder, "intr.py", INTERRUPTING)
    invoke("run", folder / "intr.py", "--store", folder / "other.run.db")  # another run...
    (folder / "stopped").unlink()
    store, logs = folder / "mine.run.db", folder / "my logs"
    stopped = invoke(
        "run", folder / "intr.py", "-p", "label=a b", "--store", store, "--logdir", logs,
        "--config", "stop_on_exception=false", "-j", "3",
    )  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    run_id = run_id_of(stopped)
    assert stopped.stdout == f"ran run {run_id} of flow 'intr': interrupted\n"  # as docs/cli.md
    hint = stopped.stderr.strip().splitlines()[-1]
    command = re.search(r"continue it with `(.+)`$", hint).group(1)
    words = shlex.split(command)
    assert words[:5] == ["sequent", "recover", str(folder / "intr.py"), "--run-id", run_id]
    assert shlex.join(["-p", "label=a b"]) in command and f"--store {store}" in command
    assert "--config stop_on_exception=false" in command and "-j 3" in command
    assert shlex.join(["--logdir", str(logs)]) in command
    continued = invoke(*words[1:])
    assert continued.exit_code == 0, continued.output
    assert continued.stdout == f"recovered run {run_id} of flow 'intr': success\n"
    run_log = (logs / "intr" / run_id / "run.log").read_text()  # the same --logdir
    assert f"Run {run_id} of flow 'intr' (recover, attempt 1)" in run_log


def test_a_mark_changes_the_state_status_watch_and_runs_show(folder):
    store = folder / "demo.run.db"
    failed = invoke("run", folder / "demo.py", env={"FAIL_AT": "s2/1"})
    assert failed.exit_code == 1, failed.output
    run_id = run_id_of(failed)

    def state():
        shown = invoke("status", run_id, "--store", store)
        watched = invoke("status", run_id, "--store", store, "--watch")
        listed = json.loads(invoke("runs", "--store", store, "--json").stdout)
        head = invoke("show", run_id, "--store", store).stdout.splitlines()[0]
        return shown.stdout.splitlines()[0], watched.exit_code, listed[0]["state"], head

    marked = invoke("mark", run_id, "s2@1", "success", "--reason", "x", "--store", store)
    assert marked.exit_code == 0, marked.output
    status_line, watch_exit, listed, head = state()
    assert f"Run {run_id} of flow 'demo': success;" in status_line
    assert (watch_exit, listed) == (0, "success")
    assert head.startswith(f"Run {run_id} of flow 'demo': success,")
    marked = invoke("mark", run_id, "s1_s11@1.2", "failure", "--reason", "y", "--store", store)
    assert marked.exit_code == 0, marked.output
    status_line, watch_exit, listed, head = state()
    assert f"Run {run_id} of flow 'demo': failure;" in status_line
    assert (watch_exit, listed) == (1, "failure")
    again = invoke("mark", run_id, "s1_s11@1.2", "success", "--reason", "z", "--store", store)
    assert again.exit_code == 0, again.output
    assert state()[1:3] == (0, "success")  # the latest statuses, marks included, decide


def test_a_mark_does_not_end_a_run_with_steps_not_started(folder):
    store = folder / "demo.run.db"
    stopped = invoke("run", folder / "demo.py", "--max-loops", "1", env={"FAIL_AT": "s1_s11/1.1"})
    assert stopped.exit_code == 1, stopped.output
    run_id = run_id_of(stopped)
    invoke("mark", run_id, "s1_s11@1.1", "success", "--reason", "x", "--store", store)
    assert invoke("status", run_id, "--store", store, "--watch").exit_code == 1  # s2 never ran


def test_status_and_show_count_the_instances_not_started(folder):
    stopped = invoke("run", folder / "demo.py", "--max-loops", "1")
    assert stopped.exit_code == 1, stopped.output
    run_id = run_id_of(stopped)
    store = folder / "demo.run.db"
    shown = invoke("status", run_id, "--store", store).stdout.splitlines()[1]
    counts = re.fullmatch(r"Steps: (.*) \(of (\d+)\)", shown)
    assert counts and counts.group(2) == str(len(ALL)), shown  # every leaf of the structure
    assert sum(int(part.split()[0]) for part in counts.group(1).split(", ")) == len(ALL)
    assert "not started" in counts.group(1)
    table = invoke("show", run_id, "--store", store).stdout
    for node in ALL:
        assert node in table, (node, table)
    assert "not started (waiting)" in table
    nodes = json.loads(invoke("show", run_id, "--store", store, "--json").stdout)["nodes"]
    leaves = [n for n in nodes if n["kind"] != "container"]
    assert sorted(f"{n['path']}/{n['sequence']}" for n in leaves) == sorted(ALL)
    assert {n["status"] for n in leaves} >= {"not started"}


def test_logs_refuses_links_missing_logs_and_containers_with_status_2(folder):
    ran = invoke("run", folder / "demo.py")
    run_id = run_id_of(ran)
    store = folder / "demo.run.db"
    run_log = folder / "logs" / "demo" / run_id / "run.log"
    assert invoke("logs", run_id, "--store", store).exit_code == 0
    victim = folder / "victim"
    victim.write_text("not a log\n")
    run_log.rename(folder / "kept.log")
    run_log.symlink_to(victim)
    linked = invoke("logs", run_id, "--store", store)
    assert linked.exit_code == 2, linked.output
    assert "symbolic link" in linked.stderr and str(run_log) in linked.stderr
    assert "not a log" not in linked.stdout
    run_log.unlink()
    gone = invoke("logs", run_id, "--store", store)  # a finished run's log is always written
    assert gone.exit_code == 2 and "no run log" in gone.stderr and "--logdir" in gone.stderr
    (folder / "kept.log").rename(run_log)
    elsewhere = invoke("logs", run_id, "--store", store, "--logdir", folder / "nowhere")
    assert elsewhere.exit_code == 2, elsewhere.output
    assert "no log folder" in elsewhere.stderr and "nowhere" in elsewhere.stderr
    box = invoke("logs", run_id, "s1", "--store", store)
    assert box.exit_code == 2, box.output
    assert "container" in box.stderr and "s1_s11, s1_s12" in box.stderr
    quiet = invoke("logs", run_id, "s2", "--store", store)  # a step that logged nothing
    assert quiet.exit_code == 0 and "(no log at" in quiet.stderr


def test_messages_name_where_the_bad_value_came_from(folder):
    typo = invoke("runs", env={"SEQUENT_STORE": "typo.run.db"})
    assert typo.exit_code == 2
    assert "'typo.run.db'" in typo.stderr and "SEQUENT_STORE" in typo.stderr
    assert invoke("run", folder / "demo.py").exit_code == 0
    for command in ("recover", "plan", "graph"):
        unknown = invoke(command, folder / "demo.py", "--run-id", "ffff")
        assert unknown.exit_code == 2, (command, unknown.output)
        assert "--run-id ffff:" in unknown.stderr, (command, unknown.stderr)
    misplaced = invoke("run", folder / "demo.py", "--debug")
    assert misplaced.exit_code == 2
    assert "No such option" in misplaced.stderr and "`sequent --debug run ...`" in misplaced.stderr


def test_plan_of_a_recover_says_a_live_orchestrator_would_refuse_it(folder):
    import sqlite3
    import time

    from sequent.store.lease import HOST

    failed = invoke("run", folder / "demo.py", env={"FAIL_AT": "s2/1"})
    run_id = run_id_of(failed)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        conn = sqlite3.connect(folder / "demo.run.db")
        with conn:  # as a live orchestrator of that run leaves the store while it runs
            now = time.time()
            conn.execute(
                "INSERT INTO leases (run_id, attempt, host, pid, user, started, heartbeat) "
                "VALUES (?, 1, ?, ?, 'someone', ?, ?)",
                (run_id, HOST, holder.pid, now, now),
            )
            conn.execute("UPDATE runs SET ended = NULL, result = NULL WHERE run_id = ?", (run_id,))
        conn.close()
        planned = invoke("plan", folder / "demo.py", "--recover")
        assert planned.exit_code == 0, planned.output
        note = planned.stdout.strip().splitlines()[-1]
        assert note.startswith("Note: a recover would be refused now: run "), note
        assert f"pid {holder.pid} on host {HOST!r}" in note
        as_json = json.loads(invoke("plan", folder / "demo.py", "--recover", "--json").stdout)
        assert f"pid {holder.pid}" in as_json["refused"]
        refused = invoke("recover", folder / "demo.py")
        assert refused.exit_code == 2 and f"pid {holder.pid}" in refused.stderr  # as it says
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(invoke("plan", folder / "demo.py", "--recover", "--json").stdout)[
        "refused"
    ] is None  # the holder is gone: a recover takes over


def test_recover_errors_exit_2(folder):
    nothing = invoke("recover", folder / "demo.py")
    assert nothing.exit_code == 2
    assert "nothing to recover" in nothing.stderr and "demo.run.db" in nothing.stderr
    assert not (folder / "demo.run.db").exists()
    assert invoke("run", folder / "demo.py").exit_code == 0
    unknown = invoke("recover", folder / "demo.py", "--run-id", "feedbeef")
    assert unknown.exit_code == 2 and "'feedbeef'" in unknown.stderr
    assert calls(folder) == ALL  # only the good run's steps ran


# -- loading FILE[:OBJECT] -------------------------------------------------------------------


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_bad_targets_exit_2_with_the_reason_on_stderr(folder):
    cases = {
        (folder / "missing.py",): "no such file: ",
        (write(folder, "empty.py", "x = 1\n"),): "no flow found in",
        (f"{folder / 'demo.py'}:nothing",): "has no object 'nothing'",
        (f"{folder / 'demo.py'}:HERE",): "not a Sequent",
        (f"{folder / 'demo.py'}:work",): "cannot be called without arguments",
        (write(folder, "bad.py", "def (:\n"),): "SyntaxError",
        (write(folder, "boom.py", "raise RuntimeError('boom at load')\n"),): "boom at load",
        (write(folder, "exits.py", "import sys\nsys.exit(3)\n"),): "exited with status 3",
    }
    for command in ("run", "plan", "graph", "recover"):
        for args, message in cases.items():
            result = invoke(command, *args)
            assert result.exit_code == 2, (command, args, result.output)
            assert message in result.stderr, (command, message, result.stderr)
            assert result.stdout == ""
    assert calls(folder) == []


def test_several_flows_must_be_named(folder):
    path = write(
        folder,
        "two.py",
        """
        import sequent as seq
        first = seq.Sequent(name="first", store=":memory:")
        first.add_step("a", func=print)
        second = seq.Sequent(name="second", store=":memory:")
        second.add_step("b", func=print)
        """,
    )
    result = invoke("plan", path)
    assert result.exit_code == 2
    assert "several flows (first, second)" in result.stderr
    assert f"{path}:first" in result.stderr
    chosen = invoke("plan", f"{path}:second")
    assert chosen.exit_code == 0 and "Plan of flow 'second'" in chosen.stdout


def test_flows_found_in_main_blocks_functions_and_run_calls(folder):
    guarded = write(
        folder,
        "guarded.py",
        """
        import sequent as seq
        if __name__ == "__main__":
            flow = seq.Sequent(name="guarded", store=":memory:")
            flow.add_step("a", func=print)
            flow.run()
        """,
    )
    inside = write(
        folder,
        "inside.py",
        """
        import sequent as seq
        def main():
            flow = seq.Sequent(name="inside", store=":memory:")
            flow.add_step("a", func=print)
            assert flow.run()
        main()
        """,
    )
    builder = write(
        folder,
        "builder.py",
        """
        import sequent as seq
        def build_flow(name="built"):
            flow = seq.Sequent(name=name, store=":memory:")
            flow.add_step("a", func=print)
            return flow
        def other():
            return build_flow("other")
        """,
    )
    for target, name in (
        (guarded, "guarded"),
        (inside, "inside"),
        (builder, "built"),
        (f"{builder}:other", "other"),
        (f"{inside}:main", "inside"),
    ):
        result = invoke("plan", target)
        assert result.exit_code == 0, (target, result.output)
        assert f"Plan of flow {name!r}" in result.stdout


def test_load_flow_restores_the_interpreter(folder):
    main, argv, path = sys.modules["__main__"], list(sys.argv), list(sys.path)
    run = seq.Sequent.run
    with load_flow(str(folder / "demo.py")) as flow:
        assert flow.name == "demo"
        assert sys.modules["__main__"].__file__ == str((folder / "demo.py").resolve())
        assert sys.path[0] == str(folder.resolve())
        assert seq.Sequent.run is run  # the interception ends once the flow is loaded
    assert sys.modules["__main__"] is main and sys.argv == argv and sys.path == path
    assert calls(folder) == []


# -- plan and graph --------------------------------------------------------------------------


def test_plan_prints_the_order(folder):
    result = invoke("plan", folder / "demo.py")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Plan of flow 'demo': restart"
    nodes = [line.split()[1] for line in lines[2:-1]]
    assert nodes == ["s1/1", *ALL]
    assert lines[-1] == "Steps: 5 run"
    assert not (folder / "demo.run.db").exists()


def dot_of(text):
    graphs = pydot.graph_from_dot_data(text)
    assert graphs, text
    return graphs[0]


def test_graph_prints_dot_and_colours_a_run(folder):
    plain = invoke("graph", folder / "demo.py")
    assert plain.exit_code == 0, plain.output
    graph = dot_of(plain.stdout)
    assert [s.get_name() for s in graph.get_subgraphs()] == ['"cluster_s1"']
    failed = invoke("run", folder / "demo.py", env={"FAIL_AT": "s1_s12/1.2"})
    run_id = run_id_of(failed)
    coloured = invoke("graph", folder / "demo.py", "--expanded", "--run-id", run_id)
    assert coloured.exit_code == 0, coloured.output
    fills = {
        node.get_name().strip('"'): node.get("fillcolor").strip('"')
        for node in dot_of(coloured.stdout).get_node_list()
        + [n for s in dot_of(coloured.stdout).get_subgraph_list() for n in _nodes(s)]
        if node.get("fillcolor")
    }
    assert fills["s1_s12/1.2"] == STATUS_COLORS[seq.StepStatus.failure]
    assert fills["s1_s11/1.2"] == STATUS_COLORS[seq.StepStatus.success]
    assert fills["s2/1"] == STATUS_COLORS[seq.StepStatus.skipped]
    assert fills["s1/1"] == STATUS_COLORS[seq.StepStatus.failure]


def _nodes(graph):
    found = list(graph.get_node_list())
    for sub in graph.get_subgraph_list():
        found += _nodes(sub)
    return found


def test_graph_renders_svg_and_png_through_graphviz(folder, tmp_path, graphviz):
    svg = tmp_path / "flow.svg"
    result = invoke("graph", folder / "demo.py", "-f", "svg", "-o", svg)
    assert result.exit_code == 0, result.output
    assert svg.read_text().count('class="node"') == 4  # s1 anchor, s11, s12, s2
    png = tmp_path / "flow.png"
    assert invoke("graph", folder / "demo.py", "--expanded", "-f", "png", "-o", png).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    to_stdout = invoke("graph", folder / "demo.py", "-f", "svg")
    assert to_stdout.exit_code == 0 and "<svg" in to_stdout.stdout


def test_graph_without_graphviz_says_so(folder, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))  # no dot on PATH
    result = invoke("graph", folder / "demo.py", "-f", "svg")
    assert result.exit_code == 2
    assert "needs Graphviz's 'dot' program, which is not installed" in result.stderr
    assert "leave out -f to get DOT text" in result.stderr
    assert invoke("graph", folder / "demo.py").exit_code == 0  # DOT needs no Graphviz


# -- runs, show, report ----------------------------------------------------------------------


def test_runs_show_and_report(folder, tmp_path):
    failed = run_id_of(invoke("run", folder / "demo.py", env={"FAIL_AT": "s2/1"}))
    invoke("recover", folder / "demo.py")
    second = run_id_of(invoke("run", folder / "demo.py"))
    store = folder / "demo.run.db"

    listed = invoke("runs", "--store", store)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["run", "id", "flow", "state", "attempts", "started", "ended",
                                "executor"]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == [second, failed]  # newest first
    assert lines[2].split()[2] == "success" and "2 (failure, success)" in lines[2]
    as_json = json.loads(invoke("runs", "--store", store, "--json").stdout)
    assert [(r["run_id"], r["attempts"]) for r in as_json] == [(second, 1), (failed, 2)]
    assert "no runs of flow 'x'" in invoke("runs", "--store", store, "--flow", "x").stdout

    shown = invoke("show", failed, "--store", store)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert f"Run {failed} of flow 'demo': success, 2 attempt(s)" in out
    assert "attempt 0 (restart): failure" in out and "attempt 1 (recover): success" in out
    rows = {line.split()[0]: line for line in out.splitlines() if "/" in line.split()[0]}
    assert set(rows) == {"s1/1", *ALL}
    assert "success (recovered)" in rows["s1_s11/1.1"]
    assert "success (rerun: it failed in an earlier attempt)" in rows["s2/1"]
    details = json.loads(invoke("show", failed, "--store", store, "--json").stdout)
    assert [a["result"] for a in details["attempts"]] == [False, True]
    assert {n["path"]: n["attempt"] for n in details["nodes"]}["s2"] == 1

    page = tmp_path / "report.html"
    made = invoke("report", failed, "--store", store, "-o", page)
    assert made.exit_code == 0, made.output
    assert made.stdout.strip() == f"wrote {page}"
    text = page.read_text()
    timelines = text.split('<table class="grid"')[0]  # the lines the timelines draw, as JSON
    assert timelines.count('"step","') == 5 + 1  # five steps in attempt 0 (s2 failed), s2 again


def test_show_reports_errors_of_failed_steps(folder):
    run_id = run_id_of(invoke("run", folder / "demo.py", env={"FAIL_AT": "s1_s11/1.1"}))
    shown = invoke("show", run_id, "--store", folder / "demo.run.db")
    line = next(line for line in shown.stdout.splitlines() if line.startswith("s1_s11/1.1"))
    assert "failure" in line and "RuntimeError: s11 failed at s1_s11/1.1" in line


def test_store_commands_reject_missing_stores_and_unknown_runs(folder):
    missing = folder / "missing.run.db"
    for args in (("runs",), ("show", "abc"), ("report", "abc")):
        result = invoke(*args, "--store", missing)
        assert result.exit_code == 2, args
        assert f"no store at {str(missing)!r}" in result.stderr
        assert not missing.exists()
    not_a_store = folder / "notes.txt"
    not_a_store.write_text("hello\n")
    result = invoke("runs", "--store", not_a_store)
    assert result.exit_code == 2 and "not a sequent store" in result.stderr
    assert invoke("run", folder / "demo.py").exit_code == 0
    for command in ("show", "report"):
        result = invoke(command, "feedbeef", "--store", folder / "demo.run.db")
        assert result.exit_code == 2
        assert "holds no run with id 'feedbeef'" in result.stderr
    no_store = invoke("runs")
    assert no_store.exit_code == 2 and "--store" in no_store.stderr
    from_env = invoke("runs", env={"SEQUENT_STORE": str(folder / "demo.run.db")})
    assert from_env.exit_code == 0 and "demo" in from_env.stdout


# -- progress and the installed command ------------------------------------------------------


def test_progress_is_drawn_when_asked_and_not_otherwise(folder):
    quiet = invoke("run", folder / "demo.py")
    assert "steps done" not in quiet.output  # not a terminal: plain output only
    shown = invoke("run", folder / "demo.py", "--progress")
    assert shown.exit_code == 0
    assert "5/5 steps done" in shown.stderr
    assert "0 failed" in shown.stderr


@pytest.mark.slow  # the installed command, in subprocesses
def test_installed_command_exit_statuses(folder):
    command = shutil.which("sequent")
    if command is None:
        pytest.skip("the sequent console script is not installed (pip install -e .)")
    env = {**os.environ, "FAIL_AT": "s2/1"}
    failed = subprocess.run(
        [command, "run", "demo.py"], cwd=folder, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "Processing finished with: failure" in failed.stderr
    assert "RuntimeError: s2 failed at s2/1" in failed.stderr
    bad = subprocess.run(
        [command, "show", "nope", "--store", "demo.run.db"], cwd=folder, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "holds no run with id 'nope'" in bad.stderr
    assert bad.stdout == ""


def test_live_progress_on_a_terminal(folder):
    """Under a pseudo-terminal the command draws the live display by itself."""
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from sequent.cli import main; main()", "run", "demo.py"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=child, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(child)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    stdout = process.stdout.read().decode()
    process.wait(timeout=60)
    assert process.returncode == 0, seen.decode(errors="replace")
    screen = seen.decode(errors="replace")
    assert "5/5 steps done" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert stdout.startswith("ran run ")


@pytest.mark.slow  # a subprocess
@pytest.mark.parametrize("module", ["sequent", "sequent.cli"])
def test_python_dash_m_runs_the_command(module, empty_cwd):
    done = subprocess.run(
        [sys.executable, "-m", module, "runs", "--store", "none.run.db"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done
    assert "no store at 'none.run.db'" in done.stderr, done.stderr
