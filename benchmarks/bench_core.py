"""The scheduling core and the store against a minimal reference loop, side by side in one run.

    python benchmarks/bench_core.py [--chain 1000] [--wide 10000] [--nodes 100000] [--repeat 3]

Measured on steps that do nothing, each figure the median of ``--repeat`` rounds, the rounds
interleaved so that a change in the machine's load touches every contender alike:

- per-hop latency: a chain of ``--chain`` steps, each requiring the previous one's success;
  the time of the whole ``flow.run()`` divided by the number of steps;
- throughput: ``--wide`` independent steps, no concurrency limit, in steps per second;
- for the ``serial`` and ``thread`` executors, with the store in memory and in a file;
- next to a reference loop: ``graphlib.TopologicalSorter`` feeding a ``ThreadPoolExecutor``,
  alone and committing every finished step to SQLite in a file (WAL, synchronous=NORMAL, as the
  store does);
- the time and peak memory (tracemalloc) to compile a flow of ``--nodes`` nodes, two shapes: a
  container repeated ``nodes / 10`` times over a chain of ten steps, and ``nodes`` top-level
  steps in chains of ten.

Targets: per-hop latency at most 2x the reference loop (the like-for-like pair: sequent on a
file store against the reference committing to SQLite); the store in a file within 1.5x of the
store in memory; compiling 100,000 nodes in under 3 s and 500 MB. Runs in about a minute on a
small machine.
"""

from __future__ import annotations

import argparse
import functools
import gc
import graphlib
import logging
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import sequent as seq

S = seq.StepStatus


STAMPS: list[float] = []  # when each step ran, for hop latencies (in-process executors only)


def noop() -> None:
    STAMPS.append(time.perf_counter())


# -- flows ---------------------------------------------------------------------------------


def chain_flow(length: int, executor: str, store: str, logdir: str) -> seq.Sequent:
    """``length`` steps, each requiring the previous one's success."""
    flow = seq.Sequent(
        name="chain",
        store=store,
        executor=executor,
        logging_level=logging.WARNING,
        config={"max_concurrent": 1, "logdir": logdir},
    )
    previous = None
    for number in range(length):
        requires = ((previous, S.success),) if previous is not None else ()
        previous = flow.add_step(f"s{number}", func=noop, requires=requires)
    return flow


def wide_flow(width: int, executor: str, store: str, logdir: str) -> seq.Sequent:
    """``width`` independent steps, no concurrency limit."""
    flow = seq.Sequent(
        name="wide",
        store=store,
        executor=executor,
        logging_level=logging.WARNING,
        config={"max_concurrent": 0, "logdir": logdir},
    )
    for number in range(width):
        flow.add_step(f"s{number}", func=noop)
    return flow


def repeated_flow(nodes: int) -> seq.Sequent:
    """A container repeated ``nodes // 10`` times over a chain of ten steps."""
    flow = seq.Sequent(name="repeated", store=":memory:", logging_level=logging.WARNING)
    box = flow.add_step("box", repeats=range(nodes // 10))
    previous = None
    for number in range(10):
        requires = ((previous, S.success),) if previous is not None else ()
        previous = box.add_step(f"s{number}", func=noop, requires=requires)
    return flow


def flat_flow(nodes: int) -> seq.Sequent:
    """``nodes`` top-level steps in chains of ten."""
    flow = seq.Sequent(name="flat", store=":memory:", logging_level=logging.WARNING)
    previous = None
    for number in range(nodes):
        requires = ((previous, S.success),) if number % 10 else ()
        previous = flow.add_step(f"s{number}", func=noop, requires=requires)
    return flow


# -- the reference loop --------------------------------------------------------------------


def reference(graph: dict[str, set[str]], database: str | None) -> float:
    """Run ``graph`` with graphlib and a thread pool; commit each finished node when asked.

    Returns the seconds taken, setting up the pool and the database included.
    """
    started = time.perf_counter()
    connection = None
    if database is not None:
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("CREATE TABLE IF NOT EXISTS done (node TEXT, status TEXT, at REAL)")
    sorter = graphlib.TopologicalSorter(graph)
    sorter.prepare()
    with ThreadPoolExecutor(max_workers=32) as pool:
        running = {}
        while sorter.is_active():
            for node in sorter.get_ready():
                running[pool.submit(noop)] = node
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                node = running.pop(future)
                future.result()
                if connection is not None:
                    connection.execute("BEGIN")
                    connection.execute(
                        "INSERT INTO done VALUES (?, ?, ?)", (node, "success", time.time())
                    )
                    connection.execute("COMMIT")
                sorter.done(node)
    if connection is not None:
        connection.close()
    return time.perf_counter() - started


def chain_graph(length: int) -> dict[str, set[str]]:
    return {f"s{n}": ({f"s{n - 1}"} if n else set()) for n in range(length)}


def wide_graph(width: int) -> dict[str, set[str]]:
    return {f"s{n}": set() for n in range(width)}


# -- measuring -----------------------------------------------------------------------------


class Sample:
    """One measured run: ``whole`` seconds from call to return, ``span`` from the first step's
    start to the last one's (steady state: no set-up, no tear-down), over ``steps`` steps."""

    def __init__(self, whole: float) -> None:
        self.whole = whole
        self.steps = len(STAMPS)
        self.span = STAMPS[-1] - STAMPS[0]
        STAMPS.clear()

    @property
    def hop(self) -> float:
        """Seconds from one step to the next."""
        return self.span / (self.steps - 1)


def run_flow(make: Callable[[str], seq.Sequent], store: str) -> Sample:
    """One ``flow.run()`` (it must succeed); the flow is built before the clock starts."""
    flow = make(store)
    gc.collect()
    STAMPS.clear()
    started = time.perf_counter()
    ok = flow.run()
    elapsed = time.perf_counter() - started
    flow.close()
    if not ok:
        raise SystemExit(f"benchmark flow {flow.name!r} failed")
    return Sample(elapsed)


def run_reference(graph: dict[str, set[str]], database: str | None) -> Sample:
    gc.collect()
    STAMPS.clear()
    return Sample(reference(graph, database))


def interleaved(
    contenders: dict[str, Callable[[int], Sample]], repeat: int
) -> dict[str, tuple[float, float]]:
    """Median ``(whole, hop)`` seconds of each contender over ``repeat`` interleaved rounds."""
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    for round_number in range(repeat):
        for name, measure in contenders.items():
            samples[name].append(measure(round_number))
    return {
        name: (
            statistics.median(s.whole for s in values),
            statistics.median(s.hop for s in values),
        )
        for name, values in samples.items()
    }


class Compiled:
    """Figures of compiling one flow: medians of seconds, peaks of traced memory (MB)."""

    def __init__(self, make: Callable[[], seq.Sequent], repeat: int) -> None:
        compile_times, graph_times = [], []
        for _ in range(repeat):
            flow = make()
            gc.collect()
            started = time.perf_counter()
            plan = flow.compile()
            compiled = time.perf_counter()
            plan.graph  # noqa: B018 - the networkx DAG, built on first use
            graph_times.append(time.perf_counter() - compiled)
            compile_times.append(compiled - started)
            self.nodes = len(plan.nodes)
            del plan
        self.seconds = statistics.median(compile_times)
        self.graph_seconds = statistics.median(graph_times)
        flow = make()
        gc.collect()
        tracemalloc.start()
        plan = flow.compile()
        self.peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
        plan.graph  # noqa: B018
        self.graph_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        del plan


def build_figures(make: Callable[[], seq.Sequent]) -> float:
    started = time.perf_counter()
    make()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--wide", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=100000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger().addHandler(logging.NullHandler())  # no console handler from runs
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="sequent-bench-") as folder:
        logdir = str(Path(folder, "logs"))

        def store_for(kind: str, round_number: int, name: str) -> str:
            if kind == "memory":
                return ":memory:"
            return str(Path(folder, f"{name}-{round_number}.run.db"))

        def contenders(shape: str, size: int) -> dict[str, Callable[[int], Sample]]:
            make_flow = chain_flow if shape == "chain" else wide_flow
            graph = chain_graph(size) if shape == "chain" else wide_graph(size)
            found: dict[str, Callable[[int], Sample]] = {}
            for kind in ("memory", "file"):
                for executor in ("serial", "thread"):
                    found[f"{executor} {kind}"] = functools.partial(
                        lambda r, executor, kind: run_flow(
                            lambda store: make_flow(size, executor, store, logdir),
                            store_for(kind, r, f"{shape}-{executor}"),
                        ),
                        executor=executor,
                        kind=kind,
                    )
                found[f"reference {kind}"] = functools.partial(
                    lambda r, kind: run_reference(
                        graph,
                        None if kind == "memory" else str(Path(folder, f"ref-{shape}-{r}.db")),
                    ),
                    kind=kind,
                )
            return found

        for warm_up in contenders("chain", 20).values():  # imports, first connections
            warm_up(-1)
        chain = interleaved(contenders("chain", args.chain), args.repeat)
        wide = interleaved(contenders("wide", args.wide), args.repeat)

    repeated = Compiled(lambda: repeated_flow(args.nodes), args.repeat)
    flat_build = build_figures(lambda: flat_flow(args.nodes))
    flat = Compiled(lambda: flat_flow(args.nodes), args.repeat)

    print(f"sequent {seq.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"medians of {args.repeat} interleaved rounds; store 'file' is SQLite in a file\n")
    header = f"{'store':<8}{'serial':>10}{'thread':>10}{'reference':>11}{'serial/ref':>12}"
    header += f"{'thread/ref':>12}"

    def row(kind: str, figures: dict[str, float], digits: int) -> str:
        ref = figures[f"reference {kind}"]
        serial, thread = figures[f"serial {kind}"], figures[f"thread {kind}"]
        return (
            f"{kind:<8}{serial:>10.{digits}f}{thread:>10.{digits}f}{ref:>11.{digits}f}"
            f"{serial / ref:>12.2f}{thread / ref:>12.2f}"
        )

    hops = {name: hop * 1e3 for name, (_, hop) in chain.items()}
    per_step = {name: whole / args.chain * 1e3 for name, (whole, _) in chain.items()}
    rates = {name: args.wide / whole for name, (whole, _) in wide.items()}
    print(f"per-hop latency, chain of {args.chain:,} no-op steps: one step's start to the next's")
    print(f"(ms; the ratio columns are sequent / reference, lower is better)\n{header}")
    for kind in ("memory", "file"):
        print(row(kind, hops, 3))
    print(f"\nthe same runs, whole run / {args.chain:,} (compile, store set-up, logs included; ms)")
    print(header)
    for kind in ("memory", "file"):
        print(row(kind, per_step, 3))
    print(f"\nthroughput, {args.wide:,} independent no-op steps, whole run (steps per second;")
    print(f"ratios are sequent / reference, higher is better)\n{header}")
    for kind in ("memory", "file"):
        print(row(kind, rates, 0))

    print(f"\ncompile a flow of {args.nodes:,} nodes (median seconds, peak traced memory)")
    print(f"{'':<40}{'nodes':>9}{'compile':>9}{'memory':>10}{'+ graph':>9}{'memory':>10}")
    for label, figures in (
        (f"container x {args.nodes // 10:,} iterations x 10 steps", repeated),
        (f"{args.nodes:,} top-level steps", flat),
    ):
        print(
            f"{label:<40}{figures.nodes:>9,}{figures.seconds:>7.2f} s{figures.peak:>7.0f} MB"
            f"{figures.graph_seconds:>7.2f} s{figures.graph_peak:>7.0f} MB"
        )
    print("(+ graph: building Plan.graph, the networkx DAG, on its first use; a run never does)")
    print(f"(building the {args.nodes:,} top-level steps with add_step: {flat_build:.2f} s)")

    def hop(name: str) -> float:
        return hops[name]

    worst_compile = max(repeated.seconds, flat.seconds)
    worst_memory = max(repeated.peak, flat.peak)
    print("\ntargets")
    for executor in ("serial", "thread"):
        ratio = hop(f"{executor} file") / hop("reference file")
        print(f"  per-hop, {executor} on a file store / reference with SQLite: {ratio:.2f}x"
              f" (target <= 2x) {'ok' if ratio <= 2 else 'MISSED'}")  # fmt: skip
    for executor in ("serial", "thread"):
        durable = hop(f"{executor} file") / hop(f"{executor} memory")
        print(f"  per-hop, {executor}, store in a file / in memory: {durable:.2f}x"
              f" (target <= 1.5x) {'ok' if durable <= 1.5 else 'MISSED'}")  # fmt: skip
    print(f"  compile {args.nodes:,} nodes: {worst_compile:.2f} s (target < 3 s) "
          f"{'ok' if worst_compile < 3 else 'MISSED'}")  # fmt: skip
    print(f"  compile {args.nodes:,} nodes: {worst_memory:.0f} MB (target < 500 MB) "
          f"{'ok' if worst_memory < 500 else 'MISSED'}")  # fmt: skip
    print(f"\ntook {time.perf_counter() - began:.0f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
