"""Per-step overhead of the process, loky and dask executors, side by side in one run.

    python benchmarks/bench_executors.py [--steps 200] [--dask-steps 40] [--no-dask]

For each executor it measures, on a step that does nothing:

- ``raw``: the underlying executor's own submit-and-wait round trip (``ProcessPoolExecutor``
  for process, the backend's own loky pool, a Dask ``Client`` on the same kind of local cluster);
- ``backend``: sequent's backend alone, ``submit(task).result()`` (pickling the step and its
  outcome, the worker-side wrapper with its log capture);
- ``flow``: a whole ``flow.run()`` of N independent steps at ``max_concurrent=1``, divided by N:
  what a step costs in a real run (scheduling, the SQLite store's commits, logs);
- ``Process per step``: starting and joining one ``multiprocessing.Process`` per step, the
  original library's way.

It prints the ratios ``backend/raw`` and ``flow/raw`` (the target for the backends is 1.5x) and
how many times cheaper a warm pool is than a process per step.

Then, on a real 2-worker Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes
on 127.0.0.1, started here and stopped at the end), whole flows against Dask used directly, in
the same run and interleaved: a **fan** of ``--fan`` (2,000) independent steps against one
``client.map`` of the same calls gathered at once (target: at most 1.5x), and a **chain** of
``--chain`` (200) steps each requiring the previous one against a ``submit().result()`` loop
(target: at most 1.1x). The flows record into an SQLite file, as a real run does.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# The checkout this script is in, not whatever sequent is installed (an editable install of
# another clone would be measured instead).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sequent as seq  # noqa: E402
from sequent.context import StepContext
from sequent.executors import Task, create_backend


def noop() -> None:
    return None


def timed(calls: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Seconds per call of each of ``calls``: batches interleaved (so a change in the machine's
    load touches all alike), the median of seven batches of ``repeat // 7`` calls each."""
    for call in calls.values():
        for _ in range(5):
            call()
    batch = max(1, repeat // 7)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(7):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(batch):
                call()
            samples[name].append((time.perf_counter() - started) / batch)
    return {name: statistics.median(values) for name, values in samples.items()}


def task() -> Task:
    context = StepContext(name="bench", sequence="1", recovery=0, run_id="bench", flow_name="b")
    return Task(func=noop, args=(), kwargs={}, context=context, remote=True)


def flow_per_step(executor: Any, steps: int, logdir: str) -> float:
    """Seconds per step of ``flow.run()`` with ``steps`` no-op steps, one at a time."""
    flow = seq.Sequent(
        name="bench",
        store=":memory:",
        executor=executor,
        logging_level=logging.WARNING,
        config={"max_concurrent": 1, "logdir": logdir},
    )
    for number in range(steps):
        flow.add_step(f"s{number}", func=noop)
    warm = seq.Sequent(name="warm", store=":memory:", executor=executor, config={"logdir": logdir})
    warm.add_step("w", func=noop)
    warm.run()  # start the pool before timing
    started = time.perf_counter()
    assert flow.run()
    elapsed = time.perf_counter() - started
    flow.close()
    return elapsed / steps


def process_per_step(repeat: int) -> float:
    context = multiprocessing.get_context("fork")

    def once() -> None:
        process = context.Process(target=noop)
        process.start()
        process.join()

    return timed({"spawn": once}, repeat)["spawn"]


def measure(name: str, steps: int, logdir: str) -> dict[str, float]:
    """raw, backend and flow figures for executor ``name``."""
    step = task()
    if name == "process":
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        backend = create_backend("process", max_workers=1)
        raw: Callable[[], Any] = lambda: pool.submit(noop).result()  # noqa: E731
    elif name == "loky":
        backend = create_backend("loky", max_workers=1)
        loky_pool = backend._live_pool()  # the backend's own loky pool, used raw too
        raw = lambda: loky_pool.submit(noop).result()  # noqa: E731
    else:
        from sequent.executors.dask import DaskExecutor

        backend = DaskExecutor(max_workers=1)
        client = backend.client  # the backend's own local cluster, used raw too
        raw = lambda: client.submit(noop, pure=False).result()  # noqa: E731
    figures = timed({"raw": raw, "backend": lambda: backend.submit(step).result()}, steps)
    figures["flow"] = flow_per_step(backend, steps, logdir)
    backend.shutdown()
    if name == "process":
        pool.shutdown()
    return figures


class DaskCluster:
    """A scheduler and ``workers`` worker processes of one thread, each in its own folder."""

    def __init__(self, workers: int) -> None:
        import json
        import os
        import subprocess
        import sys
        from pathlib import Path

        self.folder = Path(tempfile.mkdtemp(prefix="sequent-bench-dask-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        file = self.folder / "scheduler.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

        def start(module: str, *argv: str, cwd: Path) -> None:
            cwd.mkdir(exist_ok=True)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", f"distributed.cli.{module}", *argv],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(file), cwd=self.folder / "scheduler")  # fmt: skip
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit("the Dask scheduler did not start within 60 s")
            time.sleep(0.05)
        time.sleep(0.1)
        self.address = json.loads(file.read_text())["address"]
        for number in range(workers):
            start("dask_worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                  "--name", f"w{number + 1}", "--no-dashboard",
                  cwd=self.folder / f"w{number + 1}")  # fmt: skip

    def stop(self) -> None:
        import os
        import signal

        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in self.processes:
            try:
                process.wait(10)
            except Exception:  # noqa: BLE001 - then by force
                os.killpg(process.pid, signal.SIGKILL)


def dask_flows(fan: int, chain: int, repeat: int) -> dict[str, list[float]]:
    """Seconds of each fan and chain measurement (sequent's flow and Dask alone), interleaved."""
    import distributed

    from sequent.executors.dask import DaskExecutor

    cluster = DaskCluster(2)
    folder = tempfile.mkdtemp(prefix="sequent-bench-")
    try:
        client = distributed.Client(cluster.address, set_as_default=False)
        client.wait_for_workers(2, timeout=60)
        backend = DaskExecutor(client=client)

        def flow(shape: str, steps: int) -> seq.Sequent:
            made = seq.Sequent(
                name=shape,
                store=f"{folder}/{shape}.run.db",
                executor=backend,
                logging_level=logging.WARNING,
                config={"max_concurrent": 0, "logdir": folder},
            )
            previous = None
            for number in range(steps):
                needs = ((previous, seq.STEP_SUCCESS),) if shape == "chain" and previous else ()
                previous = made.add_step(f"s{number}", func=noop, requires=needs)
            return made

        def sequent_run(shape: str, steps: int) -> float:
            made = flow(shape, steps)
            started = time.perf_counter()
            assert made.run()
            return time.perf_counter() - started

        def raw_fan() -> float:
            started = time.perf_counter()
            client.gather(client.map(noop_arg, range(fan), pure=False))
            return time.perf_counter() - started

        def raw_chain() -> float:
            started = time.perf_counter()
            for number in range(chain):
                client.submit(noop_arg, number, pure=False).result()
            return time.perf_counter() - started

        sequent_run("fan", 50), raw_fan(), raw_chain()  # warm both
        times: dict[str, list[float]] = {"fan": [], "map": [], "chain": [], "loop": []}
        for _ in range(repeat):
            times["map"].append(raw_fan())
            times["fan"].append(sequent_run("fan", fan))
            times["loop"].append(raw_chain())
            times["chain"].append(sequent_run("chain", chain))
        backend.shutdown()
        client.close()
    finally:
        cluster.stop()
    return times


def noop_arg(_: Any) -> None:
    return None


def print_dask_flows(times: dict[str, list[float]], fan: int, chain: int) -> None:
    fan_ratio = statistics.median(f / m for f, m in zip(times["fan"], times["map"], strict=True))
    chain_ratio = statistics.median(
        c / r for c, r in zip(times["chain"], times["loop"], strict=True)
    )
    print(f"\non a 2-worker Dask cluster (separate processes), medians of {len(times['fan'])}:")
    print(
        f"fan of {fan}:   flow {statistics.median(times['fan']):7.2f} s, client.map "
        f"{statistics.median(times['map']):7.2f} s: {fan_ratio:5.2f}x (target <= 1.5x)"
    )
    print(
        f"chain of {chain}: flow {statistics.median(times['chain']):7.2f} s, submit().result() "
        f"{statistics.median(times['loop']):7.2f} s: {chain_ratio:5.2f}x (target <= 1.1x)"
    )


def local_fans(fan: int, repeat: int, logdir: str) -> dict[str, dict[str, float]]:
    """Seconds of a fan of ``fan`` no-op steps (``max_concurrent`` 0, warm pool) on process and
    loky, and of the raw executor's ``map`` of the same function (a ``ProcessPoolExecutor`` of
    as many workers as CPUs; the backend's own loky pool), interleaved, medians of ``repeat``."""
    import os

    figures: dict[str, dict[str, float]] = {}
    for name in ("process", "loky"):
        flow = seq.Sequent(
            name=f"fan-{name}",
            store=":memory:",
            executor=name,
            logging_level=logging.WARNING,
            config={"max_concurrent": 0, "logdir": logdir},
        )
        for number in range(fan):
            flow.add_step(f"s{number}", func=noop)
        if name == "process":
            context = multiprocessing.get_context("fork")
            pool: Any = ProcessPoolExecutor(os.cpu_count(), mp_context=context)
        else:
            pool = create_backend("loky")._live_pool()
        assert flow.run()  # warm both
        list(pool.map(noop_arg, range(fan)))
        samples: dict[str, list[float]] = {"raw map": [], "sequent fan": []}
        for _ in range(repeat):
            started = time.perf_counter()
            list(pool.map(noop_arg, range(fan)))
            samples["raw map"].append(time.perf_counter() - started)
            started = time.perf_counter()
            assert flow.run()
            samples["sequent fan"].append(time.perf_counter() - started)
        flow.close()
        pool.shutdown()
        figures[name] = {key: statistics.median(values) for key, values in samples.items()}
    return figures


def print_local_fans(figures: dict[str, dict[str, float]], fan: int) -> None:
    print(f"\na fan of {fan} no-op steps, max_concurrent 0 (seconds, medians):")
    print(f"{'executor':10} {'raw map':>8} {'sequent':>8} {'ratio':>7}   target 2x")
    for name, times in figures.items():
        raw, ours = times["raw map"], times["sequent fan"]
        print(f"{name:10} {raw:8.3f} {ours:8.3f} {ours / raw:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dask-steps", type=int, default=40)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--fan", type=int, default=2000)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only-dask-cluster", action="store_true")
    options = parser.parse_args()
    if options.only_dask_cluster:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        times = dask_flows(options.fan, options.chain, options.repeat)
        print_dask_flows(times, options.fan, options.chain)
        return
    logging.getLogger("distributed").setLevel(logging.ERROR)
    logdir = tempfile.mkdtemp(prefix="sequent-bench-")
    names = ["process", "loky"] + ([] if options.no_dask else ["dask"])
    results = {}
    for name in names:
        steps = options.dask_steps if name == "dask" else options.steps
        results[name] = measure(name, steps, logdir)
    spawn = process_per_step(min(options.steps, 100))

    def ms(value: float) -> str:
        return f"{value * 1000:8.3f}"

    print(f"\nper-step cost in milliseconds (a step that does nothing; {time.strftime('%F %T')})")
    print(
        f"{'executor':10} {'raw':>8} {'backend':>8} {'flow':>8}  {'backend/raw':>11} "
        f"{'flow/raw':>8}  {'Process/step vs flow':>20}"
    )
    for name, figures in results.items():
        raw, alone, flow = figures["raw"], figures["backend"], figures["flow"]
        print(
            f"{name:10} {ms(raw)} {ms(alone)} {ms(flow)}  {alone / raw:10.2f}x {flow / raw:7.2f}x"
            f"  {spawn / flow:18.1f}x"
        )
    print(f"{'Process per step (the original way)':46} {ms(spawn)}")
    print(
        "\nraw: the executor's own submit-and-wait; backend: sequent's backend alone; flow: "
        "flow.run() per step\n(scheduling, SQLite store, logs included). Target: backend/raw "
        "within 1.5x."
    )
    print_local_fans(local_fans(options.fan, options.repeat, logdir), options.fan)
    if not options.no_dask:
        times = dask_flows(options.fan, options.chain, options.repeat)
        print_dask_flows(times, options.fan, options.chain)


if __name__ == "__main__":
    main()
