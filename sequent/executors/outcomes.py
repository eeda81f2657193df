"""An outcome as the core records it: what each backend's way of ending a step comes to.

The special cases of the backends live here, not in the core: a finished future (its
machinery's own failure becomes a failed outcome), the records a step logged in another process
(re-emitted here), a success that outlasted its timeout on an executor that cannot interrupt
(the serial one), and the tracebacks of functions sent by value (``<dynamic-code>`` frames).
``arrived`` applies them all, once per finished try.
"""

from __future__ import annotations

import linecache
import logging
import re
import time
from concurrent.futures import Future
from typing import Any

import attrs

from ..compiler import NodeKey, StepDef
from ..status import StepStatus
from .worker import Outcome, machine_failure


def arrived(key: NodeKey, step: StepDef, outcome: Outcome) -> Outcome:
    """``outcome`` of a try of ``key`` as recorded: its logs replayed, lateness and frames
    judged."""
    if outcome.logs:
        _replay_logs(key, outcome)
    outcome = _late(outcome, step.timeout, key)
    if outcome.traceback and _DYNAMIC in outcome.traceback:
        outcome = attrs.evolve(outcome, traceback=_named_frames(outcome.traceback, step.func))
    return outcome


def timed_out(key: NodeKey, timeout: float | None) -> Outcome:
    """The failure of a try of ``key`` that the core's timer stopped after ``timeout`` s."""
    now = time.time()
    return Outcome(
        status=StepStatus.failure,
        error=f"TimeoutError: step {key.path!r} timed out after {timeout} s",
        started=now - (timeout or 0),
        ended=now,
    )


def outcome_of(future: Future[Outcome]) -> Outcome:
    """The outcome a finished future carries; the machinery's own failures become outcomes."""
    try:
        return future.result()
    except BaseException as exc:  # noqa: BLE001 - a broken worker is a step failure
        return machine_failure(exc)


_DYNAMIC = '"<dynamic-code>"'
_FRAME = re.compile(r'^( *)File "<dynamic-code>", line (\d+), in (.*)$', re.MULTILINE)


def _named_frames(trace: str, func: Any) -> str:
    """Put the step function's file (and source lines) back into a worker's traceback.

    A function defined in the flow's script travels to worker processes by value, and its
    frames then say ``<dynamic-code>``; it was defined in the file of ``func`` here.
    """
    filename = getattr(getattr(func, "__code__", None), "co_filename", None)
    if not filename:
        return trace

    def frame(match: re.Match[str]) -> str:
        indent, line, name = match.group(1), match.group(2), match.group(3)
        source = linecache.getline(filename, int(line)).strip()
        shown = f'{indent}File "{filename}", line {line}, in {name}'
        return f"{shown}\n{indent}  {source}" if source else shown

    return _FRAME.sub(frame, trace)


def _late(outcome: Outcome, timeout: float | None, key: NodeKey) -> Outcome:
    """A success that took longer than the step's timeout is a timeout failure.

    The serial executor cannot interrupt a step, so its timer fires only after the step
    returned; judging the recorded duration makes every executor give the same status.
    """
    if timeout and outcome.status is StepStatus.success and outcome.ended - outcome.started > (
        timeout
    ):
        return attrs.evolve(
            outcome,
            status=StepStatus.failure,
            value=None,
            error=f"TimeoutError: step {key.path!r} timed out after {timeout} s",
        )
    return outcome


def _replay_logs(key: NodeKey, outcome: Outcome) -> None:
    """Re-emit the records a step logged in another process, as if logged here."""
    for data in outcome.logs:
        record = logging.makeLogRecord(data)
        record.args = None
        record.sequent_node = key
        logger = logging.getLogger(data["name"])
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
