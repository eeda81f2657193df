"""sequent on a real Dask cluster: a ``dask scheduler`` and two ``dask worker --nthreads 2``
processes on 127.0.0.1 (free ports, each worker from its own folder), started and stopped by
pid here. What the store records must be true: a step's body starts once per recorded try, a
step that outlived its orchestrator never runs twice at once, concurrent steps in one worker
process keep their own context and logs, ``hosts=`` lands where it says or fails up front.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
from click.testing import CliRunner
from daskcluster import Cluster, wait_for

import sequent as seq
from sequent.cli import cli
from sequent.errors import ClusterError, UnknownHostError
from sequent.store import open_store

distributed = pytest.importorskip("distributed")

from sequent.executors.dask import DaskExecutor  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import it
pytestmark = pytest.mark.slow
WORKERS = ["w1", "w2"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    made = Cluster(tmp_path_factory.mktemp("dask-cluster"))
    try:
        made.start_scheduler()
        for name in WORKERS:
            made.start_worker(name, 2)
        made.client = distributed.Client(made.address, set_as_default=False)
        made.wait_workers(made.client, WORKERS)
        yield made
        made.client.close()
    finally:
        made.stop()


@pytest.fixture
def live(cluster):
    """The cluster with both workers connected (a killed worker is restarted by its nanny)."""
    cluster.wait_workers(cluster.client, WORKERS)
    return cluster


def workers_by_name(cluster: Cluster) -> dict[str, dict]:
    infos = cluster.client.scheduler_info(n_workers=-1)["workers"]
    return {str(info["name"]): {"address": address, **info} for address, info in infos.items()}


def values(store_path: str, run_id: str) -> dict[tuple[str, str], object]:
    """Each step instance's recorded return value (stored as JSON text)."""
    return {
        (n["path"], n["sequence"]): json.loads(n["value"])
        for n in open_store(store_path).nodes(run_id)
        if n["value"] is not None
    }


def flow_on(
    cluster: Cluster,
    tmp_path: Path,
    name: str = "cluster",
    executor: DaskExecutor | None = None,
    **config,
) -> seq.Sequent:
    config.setdefault("logdir", str(tmp_path / "logs"))
    config.setdefault("max_concurrent", 0)
    return seq.Sequent(
        name=name,
        store=str(tmp_path / "cluster.run.db"),
        executor=executor or DaskExecutor(address=cluster.address),
        logging_level=logging.INFO,
        config=config,
    )


# -- the steps (sent by value: defined in this test module) -----------------------------------


def where() -> str:
    return str(distributed.get_worker().name)


def non_idempotent(starts: str) -> str:
    """Note each start; the first one waits to be killed with its worker."""
    with open(starts, "a") as handle:
        handle.write(f"{os.getpid()} {distributed.get_worker().name}\n")
    lines = Path(starts).read_text().splitlines()
    if len(lines) == 1:
        time.sleep(120)  # the test kills this worker process long before
    return "done"


def chatty(pause: float) -> tuple[str, str, str, str | None]:
    """Log lines before and after neighbours finish; report the context seen at the end."""
    log = logging.getLogger("chatty")
    context = seq.current()
    log.info("first line of %s/%s", context.name, context.sequence)
    time.sleep(pause)
    log.info("last line of %s/%s", seq.current().name, seq.current().sequence)
    now = seq.current()
    return now.name, now.sequence, where(), os.environ.get("SEQUENT_STEP_NAME")


# -- at most once per recorded try --------------------------------------------------------------


def kill_first_start(starts: Path) -> threading.Thread:
    def killer() -> None:
        wait_for(lambda: starts.exists() and starts.read_text().strip(), 60, "the first start")
        os.kill(int(starts.read_text().split()[0]), signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_is_a_failed_try_never_a_silent_rerun(live, tmp_path, retries):
    starts = tmp_path / "starts.txt"
    flow = flow_on(live, tmp_path)
    flow.add_step("once", func=non_idempotent, args=(str(starts),), retries=retries)
    killer = kill_first_start(starts)
    try:
        result = flow.run()
    finally:
        flow.close()
    killer.join(5)
    events = [
        (e["status"], e["retry"], e["error"])
        for e in open_store(str(tmp_path / "cluster.run.db")).events(flow.run_id)
        if e["status"] in ("success", "failure")
    ]
    died = events[0]
    assert died[0] == "failure" and died[1] == 0
    assert died[2].startswith("WorkerDied: worker tcp://127.0.0.1:")
    assert "died while running step 'once' (sequence 1)" in died[2]
    if retries:
        assert result is True
        assert events[1:] == [("success", 1, None)]
        assert len(starts.read_text().splitlines()) == 2  # one start per recorded try
    else:
        assert result is False and len(events) == 1
        live.wait_workers(live.client, WORKERS)  # the nanny brought the worker back ...
        # ... and the scheduler holds no task of the run that could start the body again
        keys = live.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
        assert not [key for key in keys if str(key).startswith(f"sequent-{flow.run_id}")]
        assert len(starts.read_text().splitlines()) == 1


def note_start(starts: str) -> str:
    with open(starts, "a") as handle:
        handle.write(f"{os.getpid()} {distributed.get_worker().name}\n")
    return "done"


def test_a_finished_step_whose_worker_dies_is_not_computed_again(live, tmp_path):
    """The worker holding a finished step's result dies while the client still holds the
    task (as the backend does until its next round is sent): Dask would compute it again on
    the other worker, running the body twice; sequent's plugin makes the result just lost."""
    import uuid

    from sequent.executors.dask_plugin import PREFIX

    starts = tmp_path / "starts.txt"
    backend = DaskExecutor(address=live.address)
    try:
        client = backend.client  # connected, with sequent's scheduler plugin
        key = f"{PREFIX}finished-{uuid.uuid4().hex[:8]}"
        body = lambda path: note_start(path)  # noqa: E731 - plain pickle refuses it: by value
        task = client.submit(body, str(starts), key=key, pure=False)
        assert task.result(timeout=60) == "done"
        pid = int(starts.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

        def forgotten() -> bool:
            known = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
            return key not in [str(each) for each in known]

        wait_for(forgotten, 60, "the scheduler to forget the lost result")
        assert len(starts.read_text().splitlines()) == 1  # and never again: it is forgotten
        del task
    finally:
        backend.shutdown()


ORPHAN = """\
import os, time, sys
from pathlib import Path
import sequent as seq

HERE = Path(__file__).parent

def locked():
    lock = HERE / "step.lock"
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails if a copy already runs
    os.close(fd)
    with open(HERE / "starts.txt", "a") as handle:
        handle.write("start\\n")
    deadline = time.time() + 90
    while not (HERE / "release").exists() and time.time() < deadline:
        time.sleep(0.05)
    lock.unlink()
    return "released"

flow = seq.Sequent(name="orphan", store=str(HERE / "orphan.run.db"),
                   config={"logdir": str(HERE / "logs")})
flow.add_step("locked", func=locked)
"""


def test_a_step_left_running_by_a_killed_orchestrator_is_waited_for_by_recover(live, tmp_path):
    (tmp_path / "flow.py").write_text(ORPHAN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sequent.cli"]
    first = subprocess.Popen(
        [*command, "run", "flow.py:flow", "--address", live.address, "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    starts = tmp_path / "starts.txt"
    wait_for(lambda: starts.exists() and starts.read_text(), 60, "the step to start")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # off the cluster, the recover is refused: the orphan still runs there
    elsewhere = subprocess.run(
        [*command, "recover", "flow.py:flow", "--executor", "thread", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert elsewhere.returncode == 2, elsewhere
    assert "ran on a Dask cluster" in elsewhere.stderr and "may still run there" in elsewhere.stderr
    assert "--address" in elsewhere.stderr and "--force" in elsewhere.stderr
    assert len(open_store(str(tmp_path / "orphan.run.db")).attempts(_only_run(tmp_path))) == 1
    recover = subprocess.Popen(
        [*command, "recover", "flow.py:flow", "--address", live.address, "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_log = wait_for(lambda: sorted(tmp_path.glob("logs/orphan/*/run.log")), 60, "a run log")
    wait_for(lambda: "still runs on worker" in run_log[0].read_text(), 60, "the orphan's line")
    assert starts.read_text().splitlines() == ["start"]  # the recover did not start it again
    (tmp_path / "release").write_text("")
    output, _ = recover.communicate(timeout=90)
    assert recover.returncode == 0, output
    text = run_log[0].read_text()
    assert "Recover: step 'locked' (sequence 1" in text
    assert "(Dask task sequent-" in text
    assert starts.read_text().splitlines() == ["start", "start"]
    store = open_store(str(tmp_path / "orphan.run.db"))
    (run,) = store.runs()
    final = store.nodes(run["run_id"])
    assert [(n["path"], n["status"]) for n in final] == [("locked", "success")]


def _only_run(folder: Path) -> str:
    (run,) = open_store(str(folder / "orphan.run.db")).runs()
    return str(run["run_id"])


# -- step context per step --------------------------------------------------------------------


def test_concurrent_steps_in_one_worker_process_keep_their_own_context_and_logs(live, tmp_path):
    flow = flow_on(live, tmp_path)
    program = [
        sys.executable,
        "-c",
        "import os; print('env', os.environ['SEQUENT_STEP_NAME'], "
        "os.environ['SEQUENT_STEP_SEQUENCE'])",
    ]
    for number in range(10):
        flow.add_step(f"talk{number}", func=chatty, args=(0.3 + 0.05 * (number % 4),))
        flow.add_step(f"prog{number}", func=seq.Program(program))
    try:
        assert flow.run() is True
    finally:
        flow.close()
    found = values(flow.store_path, flow.run_id)
    folder = next((tmp_path / "logs" / "cluster").iterdir())
    seen_workers = set()
    for number in range(10):
        name, seen, worker, variable = found[(f"talk{number}", "1")]
        assert (name, seen) == (f"talk{number}", "1")
        assert variable is None  # no process-wide variables on a worker with 2 threads
        seen_workers.add(worker)
        text = (folder / f"talk{number}@1.log").read_text()
        assert f"first line of talk{number}/1" in text
        assert f"last line of talk{number}/1" in text
        assert text.count("first line of") == 1 and text.count("last line of") == 1
        assert f"env prog{number} 1" in (folder / f"prog{number}@1.log").read_text()
    assert seen_workers == set(WORKERS)
    leftovers = live.client.run(lambda: os.environ.get("SEQUENT_STEP_NAME"))
    assert set(leftovers.values()) == {None}


# -- hosts= -----------------------------------------------------------------------------------


def test_hosts_by_name_address_host_name_and_ip_land_on_those_workers(live, tmp_path):
    by_name = workers_by_name(live)
    flow = flow_on(live, tmp_path)
    flow.add_step("by_name", func=where, hosts=["w1"])
    flow.add_step("by_address", func=where, hosts=[by_name["w2"]["address"]])
    flow.add_step("by_host_name", func=where, hosts=[socket.gethostname()])
    flow.add_step("by_ip", func=where, hosts=["127.0.0.1"])
    flow.add_step("by_localhost", func=where, hosts=["localhost"])
    try:
        assert flow.run() is True
    finally:
        flow.close()
    found = values(flow.store_path, flow.run_id)
    shown = CliRunner().invoke(cli, ["show", flow.run_id, "--store", flow.store_path])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if line.startswith("by_name/1"))
    assert f"w1 {by_name['w1']['address']}" in line
    assert found[("by_name", "1")] == "w1"
    assert found[("by_address", "1")] == "w2"
    for path in ("by_host_name", "by_ip", "by_localhost"):
        assert found[(path, "1")] in WORKERS


def test_hosts_that_match_no_worker_fail_before_anything_is_written(live, tmp_path):
    flow = flow_on(live, tmp_path)
    flow.add_step("fine", func=where)
    flow.add_step("typo", func=where, hosts=["W1"])
    with pytest.raises(UnknownHostError) as caught:
        flow.run()
    flow.close()
    message = str(caught.value)
    assert "step 'typo': hosts=['W1'] match no worker" in message
    assert "w1 (tcp://127.0.0.1:" in message and "w2 (tcp://127.0.0.1:" in message
    assert not (tmp_path / "cluster.run.db").exists()


def test_an_unknown_entry_beside_a_valid_one_fails_before_anything_is_written(live, tmp_path):
    flow = flow_on(live, tmp_path)
    flow.add_step("typo", func=where, hosts=["w1", "typo-host"])
    with pytest.raises(UnknownHostError) as caught:
        flow.run()
    flow.close()
    message = str(caught.value)
    assert "step 'typo': hosts=['w1', 'typo-host']: 'typo-host' matches no worker" in message
    assert "w1 (tcp://127.0.0.1:" in message and "w2 (tcp://127.0.0.1:" in message
    assert not (tmp_path / "cluster.run.db").exists()


def test_hosts_wait_fails_the_step_when_no_such_worker_joins(live, tmp_path):
    flow = flow_on(live, tmp_path, hosts_wait=1)
    flow.add_step("later", func=where, hosts=["w9"])
    flow.add_step("beside", func=where, hosts=["w1", "w8"])
    flow.add_step("now", func=where)
    try:
        assert flow.run() is False
    finally:
        flow.close()
    nodes = {n["path"]: n for n in open_store(flow.store_path).nodes(flow.run_id)}
    assert nodes["now"]["status"] == "success"
    assert nodes["beside"]["status"] == "success"  # on w1, the entry that is connected
    assert nodes["later"]["status"] == "failure"
    assert "no worker matching hosts=['w9'] joined within 1 s" in nodes["later"]["error"]
    run_log = (tmp_path / "logs" / "cluster" / flow.run_id / "run.log").read_text()
    assert "Step 'later': hosts=['w9'] match no connected worker yet" in run_log
    assert "Step 'beside': hosts=['w1', 'w8']: 'w8' matches no connected worker yet" in run_log


def kill_group_and_wait_gone(group: int, address: str) -> str:
    """SIGKILL a worker's nanny and worker (its process group); return once the scheduler
    dropped it (a step: ``wait_for`` cannot be imported on the workers)."""
    os.killpg(group, signal.SIGKILL)
    client = distributed.get_client()
    deadline = time.monotonic() + 60
    while address in client.scheduler_info(n_workers=-1)["workers"]:
        if time.monotonic() > deadline:
            raise AssertionError(f"the scheduler still lists {address} after 60 s")
        time.sleep(0.05)
    return address


def test_a_retry_pinned_to_a_restarted_worker_runs_on_its_new_process(live, tmp_path):
    """The nanny brings w2 back on a new address: the retry goes there, not to the dead one."""
    starts = tmp_path / "starts.txt"
    old = workers_by_name(live)["w2"]["address"]
    flow = flow_on(live, tmp_path)
    flow.add_step("once", func=non_idempotent, args=(str(starts),), retries=1, hosts=["w2"])
    killer = kill_first_start(starts)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    killer.join(5)
    first, second = (line.split() for line in starts.read_text().splitlines())
    assert first[1] == second[1] == "w2" and first[0] != second[0]
    events = [
        (e["status"], e["retry"])
        for e in open_store(flow.store_path).events(flow.run_id)
        if e["status"] in ("success", "failure")
    ]
    assert events == [("failure", 0), ("success", 1)]
    assert workers_by_name(live)["w2"]["address"] != old


def test_a_task_sent_to_a_worker_that_had_just_left_is_placed_again(live, tmp_path):
    """The step's hosts were resolved to an address no worker has any more (the news of its
    leaving not yet in): the scheduler plugin says so, and the step, which never ran, goes to
    the workers its hosts name now, as the same try."""
    backend = DaskExecutor(address=live.address)
    real, calls = backend._roster.resolve, []

    def stale(hosts: tuple[str, ...]) -> list[str]:
        calls.append(hosts)
        return ["tcp://127.0.0.1:9"] if len(calls) == 1 else real(hosts)

    backend._roster.resolve = stale  # type: ignore[method-assign]
    flow = flow_on(live, tmp_path, executor=backend)
    flow.add_step("moved", func=where, hosts=["w1"])
    try:
        assert flow.run() is True
    finally:
        flow.close()
    assert calls == [("w1",), ("w1",)]
    assert values(flow.store_path, flow.run_id) == {("moved", "1"): "w1"}
    events = [
        (e["status"], e["retry"])
        for e in open_store(flow.store_path).events(flow.run_id)
        if e["status"] in ("success", "failure")
    ]
    assert events == [("success", 0)]


def test_a_step_whose_worker_left_for_good_fails_after_hosts_wait(live, tmp_path):
    """w3 is there when the run starts and gone when its step is submitted: no hang."""
    live.start_worker("w3", 1)
    try:
        live.wait_workers(live.client, [*WORKERS, "w3"])
        address = workers_by_name(live)["w3"]["address"]
        flow = flow_on(live, tmp_path, hosts_wait=2)
        first = flow.add_step("first", func=where, hosts=["w3"])
        stop = flow.add_step(
            "stop",
            func=kill_group_and_wait_gone,
            args=(live.processes["w3"].pid, address),
            hosts=["w1"],
            requires=((first, seq.StepStatus.success),),
        )
        flow.add_step("then", func=where, hosts=["w3"], requires=((stop, seq.StepStatus.success),))
        started = time.monotonic()
        try:
            assert flow.run() is False
        finally:
            flow.close()
        assert time.monotonic() - started < 60
    finally:
        live.stop_one("w3")
    nodes = {n["path"]: n for n in open_store(flow.store_path).nodes(flow.run_id)}
    assert nodes["first"]["status"] == nodes["stop"]["status"] == "success"
    assert nodes["then"]["status"] == "failure"
    error = nodes["then"]["error"]
    assert error.startswith("UnknownHostError: step 'then': no worker matching hosts=['w3']")
    assert "joined within 2 s (workers: " in error and "w1 (tcp://127.0.0.1:" in error
    assert "w3" not in error.split("(workers: ")[1]


# -- timeouts ---------------------------------------------------------------------------------


def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return where()


def test_a_timeout_counts_from_the_start_on_the_worker_not_the_submission(live, tmp_path):
    flow = flow_on(live, tmp_path)
    for number in range(3):  # w1 has two threads: the third waits for one, then runs 1.5 s
        flow.add_step(f"queued{number}", func=sleeper, args=(1.5,), hosts=["w1"], timeout=2.5)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    nodes = open_store(flow.store_path).nodes(flow.run_id)
    assert [n["status"] for n in nodes] == ["success"] * 3
    started = sorted(n["started"] for n in nodes)
    assert started[2] - started[0] >= 1.4  # the third started when a thread came free


def test_a_python_step_that_times_out_is_recorded_at_its_timeout(live, tmp_path):
    flow = flow_on(live, tmp_path)
    flow.add_step("slow", func=sleeper, args=(4,), timeout=0.5, hosts=["w2"])
    began = time.monotonic()
    try:
        assert flow.run() is False
    finally:
        flow.close()
    assert time.monotonic() - began < 3.5  # not after the body's 4 s
    (node,) = open_store(flow.store_path).nodes(flow.run_id)
    assert node["error"] == "TimeoutError: step 'slow' timed out after 0.5 s"
    # its record starts when its worker began it (as it announced), and lasts its timeout
    assert 0.45 <= node["ended"] - node["started"] < 3.0


# -- connecting -------------------------------------------------------------------------------

CLI_FLOW = """\
import sequent as seq
from distributed import get_worker

def where():
    return str(get_worker().name)

flow = seq.Sequent(name="cli", store="cli.run.db", config={"logdir": "logs"})
flow.add_step("one", func=where)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_address_runs_on_that_cluster_and_an_unreachable_one_exits_2(live, tmp_path):
    (tmp_path / "flow.py").write_text(CLI_FLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    command = [sys.executable, "-m", "sequent.cli", "run", "flow.py:flow", "--no-progress"]
    done = subprocess.run(
        [*command, "--executor", "dask", "--address", live.address],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    store = open_store(str(tmp_path / "cli.run.db"))
    (run,) = store.runs()
    assert json.loads(store.nodes(run["run_id"])[0]["value"]) in WORKERS
    (tmp_path / "cli.run.db").unlink()
    shutil.rmtree(tmp_path / "logs")
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*command, "--address", nowhere],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the scheduler at {nowhere}" in done.stderr
    assert not (tmp_path / "cli.run.db").exists()
    assert not (tmp_path / "logs").exists()
    done = subprocess.run(
        [*command[:-1], "--executor", "dask"],
        cwd=tmp_path,
        env={**env, "DASK_SCHEDULER_ADDRESS": live.address},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"the scheduler at {live.address}" in done.stdout + done.stderr


def test_scheduler_file_and_per_step_worker_resources(live, tmp_path):
    with pytest.raises(ClusterError, match="scheduler file .* does not exist"):
        DaskExecutor(scheduler_file=str(tmp_path / "missing.json"))
    live.start_worker("gpu", 1, "--resources", "GPU=1")
    try:
        live.wait_workers(live.client, ["gpu"])
        flow = seq.Sequent(
            name="resources",
            store=str(tmp_path / "cluster.run.db"),
            executor=DaskExecutor(scheduler_file=live.scheduler_file),
            config={"logdir": str(tmp_path / "logs"), "max_concurrent": 0},
        )
        for number in range(3):
            flow.add_step(f"gpu{number}", func=where, config={"dask_resources": {"GPU": 1}})
        try:
            assert flow.run() is True
        finally:
            flow.close()
        assert list(values(flow.store_path, flow.run_id).values()) == ["gpu", "gpu", "gpu"]
    finally:
        live.stop_one("gpu")


def test_the_seed_recovery_example_without_a_guard_recovers_its_own_run_on_dask(tmp_path):
    from test_seed_scripts import DOING, RECOVERY, run_script, script

    text = script(RECOVERY, "plain").replace(
        "config={'sleep_between_loops': 0.05,",
        "config={'sleep_between_loops': 0.05, 'task_construct': 'dask',",
    )
    output = run_script(tmp_path, "runly04.py", textwrap.dedent(text))
    first, second = output.split("Processing finished with: failure ]")
    assert DOING.findall(second) == [
        ("prog1", "s1_s11_s111/1.2.2"),
        ("prog2", "s1_s11_s112/1.2.2"),
        ("prog3", "s1_s12/1.2"),
        ("prog4", "s2/1"),
    ]
    assert second.rstrip().endswith("[ Processing finished with: success ]")
    store = open_store(str(tmp_path / "runly04.run.db"))
    assert len(store.runs()) == 1  # the workers' re-imports of the script wrote no run


def test_a_lost_scheduler_fails_the_running_step_with_the_schedulers_reason(tmp_path):
    own = Cluster(tmp_path / "own-cluster")
    try:
        own.start_scheduler()
        own.start_worker("solo", 1)
        with distributed.Client(own.address, set_as_default=False) as client:
            own.wait_workers(client, ["solo"])
        started = tmp_path / "started"
        flow = seq.Sequent(
            name="lost",
            store=str(tmp_path / "lost.run.db"),
            executor=DaskExecutor(address=own.address, connect_timeout=3),
            config={"logdir": str(tmp_path / "logs")},
        )
        flow.add_step("long", func=touch_and_sleep, args=(str(started), 60))

        def kill_scheduler() -> None:
            wait_for(started.exists, 60, "the step to start")
            own.stop_one("scheduler")

        killer = threading.Thread(target=kill_scheduler, daemon=True)
        killer.start()
        try:
            assert flow.run() is False
        finally:
            flow.close()
        killer.join(10)
        (node,) = open_store(flow.store_path).nodes(flow.run_id)
        assert node["status"] == "failure"
        assert node["error"].startswith(
            "ClusterError: the connection to the Dask scheduler was lost while step 'long' "
            "(sequence 1) ran (Client lost the connection to the scheduler."
        )
    finally:
        own.stop()


def touch_and_sleep(path: str, seconds: float) -> None:
    Path(path).write_text("")
    time.sleep(seconds)


def test_a_step_its_worker_cannot_load_fails_with_the_workers_traceback(
    live, tmp_path, monkeypatch
):
    (tmp_path / "only_here.py").write_text("def helper():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from only_here import helper  # importable here, not on the workers

    flow = flow_on(live, tmp_path)
    flow.add_step("unloadable", func=helper)
    try:
        assert flow.run() is False
    finally:
        flow.close()
        sys.modules.pop("only_here", None)
    (node,) = open_store(flow.store_path).nodes(flow.run_id)
    assert re.match(
        r"ModuleNotFoundError: the step could not be loaded on worker w[12] tcp://127\.0\.0\.1:"
        r"\d+: No module named 'only_here'",
        node["error"],
    )
    assert "Traceback (most recent call last)" in node["traceback"]
    assert "pickle.loads(payload)" in node["traceback"]


# -- step logs: sent while the step runs ------------------------------------------------------


def step_log(tmp_path: Path, path: str) -> Path | None:
    found = sorted(tmp_path.glob(f"logs/cluster/*/{path}@1.log"))
    return found[0] if found else None


def numbered_lines(count: int, pause: float) -> str:
    log = logging.getLogger("numbered")
    for number in range(count):
        log.info("line %03d", number)
        time.sleep(pause)
    return "done"


def test_a_step_logging_across_batches_has_each_line_once_in_order(live, tmp_path):
    flow = flow_on(live, tmp_path)
    flow.add_step("talker", func=numbered_lines, args=(40, 0.02))  # ~0.8 s: several batches
    try:
        assert flow.run() is True
    finally:
        flow.close()
    text = step_log(tmp_path, "talker").read_text()
    assert re.findall(r"line (\d{3})", text) == [f"{n:03d}" for n in range(40)]


def silent() -> None:
    return None


def test_steps_that_log_nothing_send_no_log_batch(live, tmp_path):
    from sequent.executors import dask_logs

    before = len(live.client.get_events(dask_logs.TOPIC))
    flow = flow_on(live, tmp_path)
    for number in range(20):
        flow.add_step(f"quiet{number}", func=silent)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    assert len(live.client.get_events(dask_logs.TOPIC)) == before


def ticking(release: str) -> None:
    """Log a numbered tick every 10 ms until released (long past its timeout)."""
    log = logging.getLogger("ticking")
    deadline = time.time() + 60
    number = 0
    while not Path(release).exists() and time.time() < deadline:
        log.info("tick %04d", number)
        number += 1
        time.sleep(0.01)


def test_lines_logged_up_to_a_timeout_are_in_the_step_log_before_its_failure(live, tmp_path):
    """The workers' batches are made rare here (every 30 s): the lines reach the step log
    because the timeout asks the step's worker for what it logged since its last batch."""
    from sequent.executors import dask_logs

    every = live.client.run(lambda: dask_logs.FLUSH_EVERY)
    live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", 30.0))
    release = tmp_path / "release"
    flow = flow_on(live, tmp_path)
    flow.add_step("timed", func=ticking, args=(str(release),), timeout=1)
    try:
        assert flow.run() is False
    finally:
        flow.close()
        release.write_text("")
        live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", max(every.values())))
    (node,) = open_store(flow.store_path).nodes(flow.run_id)
    assert node["error"] == "TimeoutError: step 'timed' timed out after 1.0 s"
    lines = step_log(tmp_path, "timed").read_text().splitlines()
    ticks = [line for line in lines if "tick " in line]
    assert [re.search(r"tick (\d{4})", line).group(1) for line in ticks] == [
        f"{n:04d}" for n in range(len(ticks))
    ]
    assert len(ticks) >= 20  # about a second of ticks, none after the timeout was decided
    failed = next(i for i, line in enumerate(lines) if "TimeoutError" in line)
    assert lines.index(ticks[-1]) < failed


def log_then_wait(marks: str) -> None:
    logging.getLogger("victim").info("BEFORE-victim")
    Path(marks).write_text(str(os.getpid()))
    time.sleep(120)  # the test kills this worker process long before


def test_lines_sent_before_a_worker_died_are_in_the_step_log(live, tmp_path):
    marks = tmp_path / "victim.pid"
    flow = flow_on(live, tmp_path)
    flow.add_step("victim", func=log_then_wait, args=(str(marks),))

    def killer() -> None:
        # the line reached the orchestrator's step log (a batch was sent): then kill
        wait_for(lambda: (found := step_log(tmp_path, "victim")) and "BEFORE-victim" in
                 found.read_text(), 60, "the line before the kill")
        os.kill(int(marks.read_text()), signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        assert flow.run() is False
    finally:
        flow.close()
    thread.join(5)
    lines = step_log(tmp_path, "victim").read_text().splitlines()
    before = next(i for i, line in enumerate(lines) if "BEFORE-victim" in line)
    died = next(i for i, line in enumerate(lines) if "WorkerDied" in line)
    assert before < died
    assert sum("BEFORE-victim" in line for line in lines) == 1


INTERRUPTED = """\
import logging, sys, time
from pathlib import Path
import sequent as seq

def waits(marker):
    logging.getLogger("waits").info("BEFORE-interrupt")
    Path(marker).write_text("")
    deadline = time.time() + 60
    while not Path(marker + ".release").exists() and time.time() < deadline:
        time.sleep(0.05)  # frees its worker thread once the test is done

address, marker, logdir = sys.argv[1:]
flow = seq.Sequent(name="intr", store=":memory:", executor=seq.DaskExecutor(address=address),
                   config={"logdir": logdir})
flow.add_step("waits", func=waits, args=(marker,))
try:
    flow.run()
finally:
    flow.close()
"""


def test_lines_logged_before_an_interruption_are_in_the_step_log(live, tmp_path):
    """SIGINT to the orchestrator while batches are rare (every 30 s): stopping the step asks
    its worker for what it logged, before the step is recorded interrupted."""
    from sequent.executors import dask_logs

    (tmp_path / "flow.py").write_text(INTERRUPTED)
    marker = tmp_path / "started"
    every = live.client.run(lambda: dask_logs.FLUSH_EVERY)
    live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", 30.0))
    orchestrator = subprocess.Popen(
        [sys.executable, "flow.py", live.address, str(marker), str(tmp_path / "logs")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(marker.exists, 60, "the step to start")
        orchestrator.send_signal(signal.SIGINT)
        output, _ = orchestrator.communicate(timeout=60)
    finally:
        orchestrator.kill()
        (tmp_path / "started.release").write_text("")
        live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", max(every.values())))
    assert "Interrupted: waits/1" in output, output
    (log,) = tmp_path.glob("logs/intr/*/waits@1.log")
    assert "BEFORE-interrupt" in log.read_text()


def ticking_marked(release: str, started: str) -> None:
    Path(started).write_text("")
    ticking(release)


def test_two_backends_on_one_client_each_get_their_own_steps_events(live, tmp_path):
    """A second backend subscribing on the same client (and shutting down) must not take the
    first one's events: the first's timed-out step still gets its last lines."""
    from sequent.executors import dask_logs

    every = live.client.run(lambda: dask_logs.FLUSH_EVERY)
    live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", 30.0))
    release, started = tmp_path / "release", tmp_path / "started"
    first = flow_on(live, tmp_path, name="first", executor=DaskExecutor(client=live.client))
    first.add_step("timed", func=ticking_marked, args=(str(release), str(started)), timeout=6)
    (tmp_path / "second").mkdir()
    results: list[bool] = []
    running = threading.Thread(target=lambda: results.append(first.run()))
    try:
        running.start()
        wait_for(started.exists, 60, "the first flow's step to start")
        second = flow_on(live, tmp_path / "second", name="second",
                         executor=DaskExecutor(client=live.client))  # fmt: skip
        second.add_step("quick", func=silent)
        assert second.run() is True
        second.close()  # its backend unsubscribes; the first's subscriptions stay
        running.join(90)
        assert results == [False]
    finally:
        first.close()
        release.write_text("")
        live.client.run(lambda: setattr(dask_logs, "FLUSH_EVERY", max(every.values())))
    (log,) = tmp_path.glob("logs/first/*/timed@1.log")
    lines = log.read_text().splitlines()
    assert len([line for line in lines if "tick " in line]) >= 20, lines[:5]
