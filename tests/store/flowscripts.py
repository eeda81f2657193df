"""Flows the store tests run in child processes: ``python flowscripts.py KIND MODE STORE DIR``.

KIND is ``soak`` (202 steps, for the kill -9 test), ``concurrent`` (150 steps and turns, for two
processes sharing a store) or ``interrupt`` (a step that waits to be interrupted). MODE is
``restart`` or ``recover``. Every step appends ``path sequence recovery pid`` to ``DIR/ran``
with one ``os.write`` on an ``O_APPEND`` descriptor, so a line is whole even when the process is
killed. The exit status is 0 when ``run()`` returned True, 1 when it returned False.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time

import sequent as seq

KIND, MODE, STORE, FOLDER = sys.argv[1:5]
RAN = os.path.join(FOLDER, "ran")


def note() -> None:
    """Leave a line saying which step instance ran, in which attempt."""
    context = seq.current()
    assert context is not None
    line = f"{context.name} {context.sequence} {context.recovery} {os.getpid()}\n"
    fd = os.open(RAN, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def work(pause: float) -> str:
    """A step: note, then pause a random part of ``pause`` seconds."""
    note()
    time.sleep(random.random() * pause)
    return seq.current().sequence  # type: ignore[union-attr]


def wait_to_be_interrupted(marker: str, seconds: float) -> str:
    """Write ``marker`` (our pid in it), then sleep ``seconds`` and write ``marker.done``."""
    note()
    with open(marker, "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(seconds)
    with open(marker + ".done", "w") as handle:
        handle.write("finished")
    return "slept"


def soak(flow: seq.Sequent) -> None:
    """202 steps: start; 20 iterations of fetch -> 8 workers -> merge; end."""
    start = flow.add_step("start", func=work, args=(0.004,))
    loop = flow.add_step("loop", repeats=range(1, 21), requires=((start, seq.STEP_SUCCESS),))
    fetch = loop.add_step("fetch", func=work, args=(0.006,))
    workers = [
        loop.add_step(f"work{i}", func=work, args=(0.01,), requires=((fetch, seq.STEP_SUCCESS),))
        for i in range(8)
    ]
    loop.add_step(
        "merge", func=work, args=(0.006,), requires=tuple((w, seq.STEP_SUCCESS) for w in workers)
    )
    flow.add_step("end", func=work, args=(0.004,), requires=((loop, seq.STEP_SUCCESS),))


TURNS = int(os.environ.get("TURNS", "0"))


def concurrent(flow: seq.Sequent) -> None:
    """150 steps: 15 iterations of 10 steps, each pair a small chain; with $PARTNER (the other
    process's flow name), also a chain of $TURNS steps taking turns with the partner's."""
    loop = flow.add_step("loop", repeats=range(15))
    for i in range(5):
        first = loop.add_step(f"a{i}", func=work, args=(0.02,))
        loop.add_step(f"b{i}", func=work, args=(0.02,), requires=((first, seq.STEP_SUCCESS),))
    partner = os.environ.get("PARTNER")
    if partner:
        previous: tuple = ()
        for number in range(1, TURNS + 1):
            step = flow.add_step(f"turn{number}", func=take_turn,
                                 args=(number, flow.name, partner), requires=previous)  # fmt: skip
            previous = ((step, seq.STEP_SUCCESS),)


def take_turn(number: int, me: str, partner: str) -> None:
    """Say that turn ``number`` of ``me`` began, then wait for the partner's move: the leader
    (the name that sorts first) waits for the partner's turn ``number`` to begin, the other
    for the leader's next turn. A turn begins only once the turn before it is recorded, so
    the two flows' turns end alternately (but the two last, which wait for nothing more)."""
    note()
    open(os.path.join(FOLDER, f"turn.{me}.{number}"), "w").close()
    awaited = number if me < partner else number + 1
    if awaited > TURNS:
        return
    path = os.path.join(FOLDER, f"turn.{partner}.{awaited}")
    deadline = time.monotonic() + 60  # only bounds a hang
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{partner} never began turn {awaited}")
        time.sleep(0.005)


def interrupt(flow: seq.Sequent) -> None:
    """quick -> slow (writes DIR/slow.started, then sleeps $SLOW seconds) -> after."""
    quick = flow.add_step("quick", func=work, args=(0.0,))
    slow = flow.add_step(
        "slow",
        func=wait_to_be_interrupted,
        args=(os.path.join(FOLDER, "slow.started"), float(os.environ.get("SLOW", "60"))),
        requires=((quick, seq.STEP_SUCCESS),),
    )
    flow.add_step("after", func=work, args=(0.0,), requires=((slow, seq.STEP_SUCCESS),))


def main() -> int:
    mode = seq.RunMode.recover if MODE == "recover" else seq.RunMode.restart
    flow = seq.Sequent(
        name=os.environ.get("FLOW_NAME", KIND),
        store=STORE,
        run_mode=mode,
        executor=os.environ.get("EXECUTOR", "thread"),
        logging_level=logging.INFO,
        config={
            "logdir": os.path.join(FOLDER, "logs"),
            "max_concurrent": int(os.environ.get("MAX_CONCURRENT", "4")),
        },
    )
    {"soak": soak, "concurrent": concurrent, "interrupt": interrupt}[KIND](flow)
    if os.environ.get("CUSTOM_SIGTERM"):
        import signal

        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    go = os.environ.get("WAIT_FOR")
    if go:  # start together with another process: say we are ready, wait for the go file
        open(f"{go}.{flow.name}.ready", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.005)
    with flow:
        result = flow.run()
    print(f"result={result} run_id={flow.run_id}", flush=True)
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
