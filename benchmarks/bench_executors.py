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
how many times cheaper a warm pool is than a process per step. Takes well under a minute.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import sequent as seq
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
        from sequent.executors.dask import DaskBackend

        backend = DaskBackend(max_workers=1)
        client = backend.client  # the backend's own local cluster, used raw too
        raw = lambda: client.submit(noop, pure=False).result()  # noqa: E731
    figures = timed({"raw": raw, "backend": lambda: backend.submit(step).result()}, steps)
    figures["flow"] = flow_per_step(backend, steps, logdir)
    backend.shutdown()
    if name == "process":
        pool.shutdown()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dask-steps", type=int, default=40)
    parser.add_argument("--no-dask", action="store_true")
    options = parser.parse_args()
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


if __name__ == "__main__":
    main()
