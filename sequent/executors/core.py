"""The scheduling core: the only loop that decides what starts when, for every backend.

State and data flow of one run:

    RunState (state.py) ──get_ready──> [delay timers] ──> launch heap ──caps, resources──> start
        ^                                                                             │
        │ done(key, status)                                        record + commit ◄──┘
        │                                                                  │
    events queue  <──outcome──────── backend.post(Task, tag, events) ◄─────┘  (thread)
                  <──done callback── backend.submit(Task) ◄────────────────┘  (the others,
                                     and any concurrent.futures.Executor, via GivenExecutor)

The loop blocks on the events queue (completion callbacks, signals) with a timeout equal to the
next timer (delays, retry back-off, step timeouts, buffered rows falling due): no polling.
Every status change of a round is handed to the recorder, and committed before any node that
depends on it is submitted (``commits.py`` says which changes something depends on; the others
wait at most a second). What it needs of a backend and a recorder is in ``contract.py``; a
try's task in ``attempts.py``; the backends' special cases of an outcome in ``outcomes.py``;
signals in ``signals.py``; stopping early (a signal, ``max_loops``, a lease taken over) in
``stopping.py``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import attrs

from ..compiler import ROOT, NodeKey, NodeSpec, Plan
from ..resources import Ledger
from ..status import StepStatus
from .attempts import Attempt
from .commits import CommitPolicy
from .contract import Backend, Recorder, RunOptions
from .outcomes import arrived, outcome_of, timed_out
from .signals import install_signals
from .state import RunState
from .stopping import Stopping
from .worker import Outcome, StoppedTry

log = logging.getLogger("sequent")

RETRY_DELAY_CAP = 300.0
_READY, _ACTIVE = StepStatus.ready, StepStatus.active


class Scheduler(Stopping):
    """Mutates one run's progress: launches ready nodes, collects outcomes, records both."""

    def __init__(
        self,
        plan: Plan,
        backend: Backend,
        recorder: Recorder,
        options: RunOptions,
        previous: Mapping[NodeKey, StepStatus] | None = None,
    ) -> None:
        inline = getattr(backend, "inline", False)
        if inline:  # steps run in this thread: one at a time, whatever max_concurrent says
            options = attrs.evolve(options, max_concurrent=1)
        self.plan = plan
        self.backend = backend
        self.recorder = recorder
        self.options = options
        self.state = RunState(plan, previous, options.stop_on_exception, kept=options.kept)
        #: A backend's ``post(task, hosts, tag, outbox)``, if it has one (no future per step).
        self._post: Callable[..., None] | None = getattr(backend, "post", None)
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.ledger = Ledger(
            pool for step in plan.index.steps.values() for pool, _ in step.releases or ()
        )
        # Waiting to start: (moment ready, definition rank, node); earlier moments first.
        self._heap: list[tuple[int, tuple[int, tuple[int, ...]], NodeKey]] = []
        self._moment = 0
        self._timers: list[tuple[float, int, str, NodeKey, int]] = []
        self._tokens = itertools.count()
        self._granted: list[NodeKey] = []
        self._holders: set[NodeKey] = set()
        self._delayed: list[tuple[NodeKey, int]] = []
        self._running: dict[NodeKey, Attempt] = {}
        self._per_step: dict[str, int] = {}
        self._blocked: dict[str, list[tuple[int, tuple[int, tuple[int, ...]], NodeKey]]] = {}
        self._retries: dict[NodeKey, int] = {}
        self._outcomes: dict[NodeKey, tuple[Outcome, int]] = {}
        self._retry_wait: dict[NodeKey, Outcome] = {}
        #: Steps whose ending change is in the store already (a failed try, then no retry).
        self._recorded: set[NodeKey] = set()
        self._submit: list[Attempt] = []
        self._halted: str | None = None
        # Inline, the loop cannot commit while a step runs: each start is committed before it.
        self._commits = CommitPolicy(plan, every_start=inline)
        #: The nodes started in this run (leaves ran; containers were entered).
        self.ran: set[NodeKey] = set()
        #: The nodes that took a previous status without running (recover, ``--only``).
        self.replayed: dict[NodeKey, StepStatus] = {}
        #: The signal name (or "KeyboardInterrupt") that interrupted the run, if one did.
        self.interrupted_by: str | None = None
        #: Why this run stopped when another orchestrator took it over, if one did.
        self.taken_over: str | None = None
        self._lease = options.lease
        if self._lease is not None:
            events = self.events
            self._lease.on_lost = lambda why: events.put(("lost", why))
        self.rounds = 0

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> bool:
        """Run the plan to its end; return True when no failure went unhandled."""
        restore = (
            install_signals(self.events, self.backend)
            if self.options.handle_signals
            else lambda: None
        )
        try:
            self.state.prepare()
            self._absorb()
            while True:
                self.rounds += 1
                if 0 < self.options.max_loops < self.rounds:
                    self._halt("max_loops")
                self._launch()
                self._commit()
                self._dispatch()
                if self._can_start_now():
                    continue  # the commit gave resources back (a container ended): use them
                # With nothing running, timeout timers are stale: only delays and retries count.
                idle = not self._running and (
                    self._stopped()
                    or (
                        all(timer[2] == "timeout" for timer in self._timers)
                        and not self._waiting_to_start()
                    )
                )
                if idle:
                    if not self.state.is_active() or self._stopped():
                        break
                    if not self._fail_stuck_waiters(at_rest=True):
                        break
                    self._absorb()
                    continue
                self._wait()
                self._absorb()
        except KeyboardInterrupt as exc:
            self._interrupt(getattr(exc, "signal_name", "KeyboardInterrupt"))
        finally:
            restore()
        for key, outcome in self._retry_wait.items():  # stopped during a retry's back-off
            if self.interrupted_by or self.taken_over:
                self.state.done(key, StepStatus.interrupted,
                                f"its retry was not started: {self._stop_reason()}")  # fmt: skip
            else:  # it ends with its last try, recorded when it failed: no second row of it
                self._recorded.add(key)
                self.state.done(key, StepStatus.failure, outcome.error)
        self._retry_wait.clear()
        if self.state.is_active():
            status = StepStatus.interrupted if self._halted else StepStatus.failure
            self.state.close(status, self._stop_reason())
        self._commit(final=True)
        return self.state.result() and not self._halted

    def _wait(self) -> None:
        timeout = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        timeout = self._commits.wait_at_most(timeout)  # buffered rows fall due: commit them
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            event = None
        while event is not None:
            self._handle(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                event = None
        now = time.monotonic()
        lease = self._lease
        if lease is not None and now > lease.fresh_until:
            # The heartbeat is overdue (this process stalled, or a step held the GIL): look
            # before anything more is launched, instead of racing the heartbeat thread.
            lost = lease.verify()
            if lost is not None:
                self._take_over(lost)
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key, token = heapq.heappop(self._timers)
            self._fire(kind, key, token)

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "outcome":  # from a backend that posts outcomes (the thread backend)
            key, token = event[1]
            attempt = self._running.get(key)
            if attempt is not None and attempt.token == token:
                self._completed(attempt, event[2])
        elif kind == "done":
            _, key, token, future = event
            attempt = self._running.get(key)
            if attempt is None or attempt.token != token:
                return  # a late outcome of an attempt that timed out or was interrupted
            self._completed(attempt, outcome_of(future))
        elif kind == "signal":
            self._interrupt(event[1])
        elif kind == "lost":
            self._take_over(event[1])

    def _fire(self, kind: str, key: NodeKey, token: int) -> None:
        if kind == "delay":
            self._push(key, token)  # a delayed step keeps the moment it became ready
        elif kind == "retry":
            self._retry_wait.pop(key, None)
            spec = self.state.nodes[key]
            retry = Attempt(key, spec, self._retries[key], next(self._tokens))
            self._running[key] = retry
            self._submit.append(retry)
        elif kind == "timeout":
            attempt = self._running.get(key)
            if attempt is None or attempt.token != token:
                return
            self._kill(attempt)
            self._completed(attempt, timed_out(key, attempt.spec.step.timeout))

    # -- from ready to running --------------------------------------------------------------

    def _absorb(self) -> None:
        """Route newly ready nodes: a delay timer (armed once ``ready`` is committed), or the
        launch heap."""
        ready = self.state.get_ready()
        if not ready:
            return
        self._moment += 1
        for key in ready:
            if self.state.nodes[key].step.delay > 0:
                self._delayed.append((key, self._moment))
            else:
                self._push(key, self._moment)

    def _push(self, key: NodeKey, moment: int) -> None:
        heapq.heappush(self._heap, (moment, self.state.nodes[key].rank, key))

    def _waiting_to_start(self) -> bool:
        return bool(self._heap or self._granted) and not self._stopped()

    def _can_start_now(self) -> bool:
        """True when something granted or ready could start right now."""
        if self._stopped():
            return False
        if self._granted and self._has_slot(self.state.nodes[self._granted[0]]):
            return True
        return bool(self._heap) and not self._global_full()

    def _stopped(self) -> bool:
        return bool(self._halted) or self.state.stopping

    def _launch(self) -> None:
        """Start what may start now within caps and resources: what became ready first, then
        definition order, then sequence order (SPEC 2.7)."""
        while (self._heap or self._granted) and not self._stopped():
            if self._granted:
                key = self._granted[0]
                if not self._has_slot(self.state.nodes[key]):
                    return
                self._granted.pop(0)
                self._start(key)
                self._absorb()
                continue
            entry = heapq.heappop(self._heap)
            key = entry[2]
            spec = self.state.nodes[key]
            leaf = not spec.step.is_container
            if leaf and not self._has_slot(spec):
                if self._global_full():
                    heapq.heappush(self._heap, entry)
                    return
                self._blocked.setdefault(key.path, []).append(entry)
                continue
            if spec.step.acquires and not self.ledger.acquire(key, spec.step.acquires):
                self._fail_stuck_waiters(at_rest=False)
                continue
            self._start(key)
            self._absorb()

    def _global_full(self) -> bool:
        limit = self.options.max_concurrent
        return 0 < limit <= len(self._running)

    def _has_slot(self, spec: NodeSpec) -> bool:
        if spec.step.is_container:
            return True
        if self._global_full():
            return False
        cap = self.options.step_config(spec, "max_concurrent", 0)
        return not (cap and cap > 0 and self._per_step.get(spec.key.path, 0) >= cap)

    def _start(self, key: NodeKey) -> None:
        step = self.state.nodes[key].step
        if step.acquires or step.releases:
            self._holders.add(key)  # it took its resources (if any); it gives back at its end
        spec = self.state.start(key)
        if spec is None:
            failed = self.state.repeats_failed.pop(key, None)
            if failed is not None:  # its callable repeats failed: said and recorded like a step's
                error, trace = failed
                log.error("[ Step %s ] failed: %s\n%s", key, error, trace.rstrip(),
                          extra={"sequent_node": key})  # fmt: skip
                self._outcomes[key] = (Outcome(StepStatus.failure, error=error, traceback=trace), 0)
            self._absorb()
            return
        self._per_step[key.path] = self._per_step.get(key.path, 0) + 1
        attempt = Attempt(key, spec, 0, next(self._tokens))
        self._retries[key] = 0
        self._running[key] = attempt
        self._submit.append(attempt)

    def _dispatch(self) -> None:
        """Submit the attempts launched this round; their records are committed by now."""
        submit, self._submit = self._submit, []
        for attempt in submit:
            if self._running.get(attempt.key) is not attempt:
                continue
            step = attempt.spec.step
            task = attempt.task(self.options, self.backend.remote)
            if step.timeout and not getattr(self.backend, "times_steps", False):
                # (a backend that times steps itself counts from their start on a worker)
                self._timer(step.timeout, "timeout", attempt.key, attempt.token)
            if self._post is not None:  # one hand-off each way: the outcome comes back as
                self._post(task, step.hosts, (attempt.key, attempt.token), self.events)
                continue  # an ("outcome", tag, outcome) event, with no future in between
            try:
                future = self.backend.submit(task, step.hosts)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                future = Future()
                future.set_exception(exc)
            attempt.future = future
            future.add_done_callback(self._notifier(attempt))

    def _notifier(self, attempt: Attempt) -> Callable[[Future[Outcome]], None]:
        key, token, events = attempt.key, attempt.token, self.events
        return lambda future: events.put(("done", key, token, future))

    # -- from running to done ---------------------------------------------------------------

    def _completed(self, attempt: Attempt, outcome: Outcome) -> None:
        key = attempt.key
        step = attempt.spec.step
        outcome = arrived(key, step, outcome)
        if outcome.status is StepStatus.failure and not self._halted:
            if type(outcome) is StoppedTry:
                self._rerun(attempt, outcome)
                return
            if attempt.number < step.retries:
                self._retry(attempt, outcome)
                return
        del self._running[key]
        self._running_done(key)
        self._outcomes[key] = (outcome, attempt.number)
        if outcome.status is StepStatus.failure:
            log.error("[ Step %s ] failed: %s\n%s", key, outcome.error,
                      (outcome.traceback or "").rstrip(), extra={"sequent_node": key})  # fmt: skip
        else:
            log.debug(
                "[ Step %s ] Completed, status: %s",
                key,
                outcome.status.value,
                extra={"sequent_node": key},
            )
        self.state.done(key, outcome.status, outcome.error)
        self._release(key)
        self._absorb()

    def _retry(self, attempt: Attempt, outcome: Outcome) -> None:
        """Record a failed try, then run the step again after its back-off (``retries``)."""
        key, step = attempt.key, attempt.spec.step
        self.recorder.node(
            key, StepStatus.failure, error=outcome.error, outcome=outcome, retry=attempt.number
        )
        self._commits.durable = True  # the failed try is committed before the retry runs
        log.warning(
            "[ Step %s ] try %d failed (%s); retrying",
            key,
            attempt.number + 1,
            outcome.error,
        )
        self._retries[key] = attempt.number + 1
        self._retry_wait[key] = outcome
        delay = min(RETRY_DELAY_CAP, step.retry_delay * (2**attempt.number))
        del self._running[key]
        self._running_done(key)
        self._timer(delay, "retry", key, 0)
        self._per_step[key.path] = self._per_step.get(key.path, 0) + 1

    def _rerun(self, attempt: Attempt, outcome: Outcome) -> None:
        """Record a try the machinery stopped (``StoppedTry``) as a failure, then run it again
        at once with the same try number: every start of the body is in the record."""
        key = attempt.key
        error = f"{outcome.error}; the step is rerun, not counted against retries"
        self.recorder.node(key, StepStatus.failure, error=error, outcome=outcome,
                           retry=attempt.number)  # fmt: skip
        self._commits.durable = True  # the stopped try is committed before the rerun runs
        log.warning("[ Step %s ] %s", key, error, extra={"sequent_node": key})
        rerun = Attempt(key, attempt.spec, attempt.number, next(self._tokens))
        self._running[key] = rerun
        self._submit.append(rerun)

    def _running_done(self, key: NodeKey) -> None:
        self._per_step[key.path] -= 1
        blocked = self._blocked.get(key.path)
        if blocked:
            for entry in blocked:
                heapq.heappush(self._heap, entry)
            blocked.clear()

    def _release(self, key: NodeKey) -> None:
        """Give back what a step that started releases; skipped or replayed steps took nothing."""
        if key not in self._holders:
            return
        self._holders.discard(key)
        self._granted.extend(self.ledger.release(key, self.state.nodes[key].step.releases))
        self._fail_stuck_waiters(at_rest=False)

    def _fail_stuck_waiters(self, at_rest: bool) -> bool:
        """Fail the waiters that can never get their resources; True when there were some.

        ``at_rest``: nothing runs and no timer is due, so nothing will be given back any more.
        """
        stuck = self.ledger.stuck(self._enclosing, at_rest=at_rest)
        for owner, reason in stuck:
            self._granted.extend(self.ledger.remove(owner))
            message = f"ResourceError: step {owner.path!r} (sequence {owner.sequence}) {reason}"
            log.error("[ Step %s ] %s", owner, message)
            self.state.fail_unstarted(owner, message)
        if stuck:
            self._absorb()
        return bool(stuck)

    def _enclosing(self, key: NodeKey) -> list[NodeKey]:
        """The container instances around ``key``: they end only after it does."""
        nodes = self.state.nodes
        found = []
        parent = nodes[key].parent
        while parent != ROOT:
            found.append(parent)
            parent = nodes[parent].parent
        return found

    # -- helpers ----------------------------------------------------------------------------

    def _timer(self, seconds: float, kind: str, key: NodeKey, token: int) -> None:
        heapq.heappush(
            self._timers, (time.monotonic() + seconds, next(self._tokens), kind, key, token)
        )

    def _commit(self, final: bool = False) -> None:
        """Hand the round's changes to the recorder; commit them when something depends on
        them (``commits.py``), and always when the run ends."""
        changes = self.state.get_changes()
        expanded = self.state.get_expanded()
        policy = self._commits
        if expanded:
            self.recorder.expanded(expanded)
            policy.durable = True
        node, outcomes, watched = self.recorder.node, self._outcomes, policy.watched
        recorded = self._recorded
        for change in changes:
            key, status = change.key, change.status
            if status is _READY or status is _ACTIVE:
                if key.path in watched:
                    policy.durable = True
                if status is _ACTIVE:
                    self.ran.add(key)
                node(key, status, error=change.error, replayed=change.replayed)
                continue
            policy.durable = True
            if key in recorded:
                recorded.discard(key)
                continue
            if change.replayed:
                self.replayed[key] = status
            outcome, retry = outcomes.pop(key, (None, 0))
            node(key, status, error=change.error, replayed=change.replayed, outcome=outcome,
                 retry=retry)  # fmt: skip
            if self.state.nodes[key].step.is_container:
                self._release(key)
        if changes or expanded or policy.durable:
            policy.buffered()
        if policy.due() or final:
            self.recorder.flush()
        for key, moment in self._delayed:  # a delay counts from the recorded ``ready``
            self._timer(self.state.nodes[key].step.delay, "delay", key, moment)
        self._delayed.clear()
