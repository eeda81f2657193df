"""A live progress display for runs started on a terminal: steps done, running, failed, skipped.

``LiveProgress`` sits between the scheduling core and the store's recorder: every status
change the core reports passes through ``ProgressTap.node`` on its way to the store, updates the
counters, and a rich ``Live`` display redraws them a few times a second. Counts are of step
instances that run code (leaves); containers only group them. Nothing here is used when the
output is not a terminal: the command line then shows the plain log lines only.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .compiler import NodeKey, NodeSpec, Plan
from .status import StepStatus

_DONE = (StepStatus.success, StepStatus.failure, StepStatus.skipped, StepStatus.interrupted)


class LiveProgress:
    """Mutates its counters from the recorder calls it sees; draws them with rich's ``Live``.

    Use as a context manager around the run, and give the scheduling core ``wrap(recorder)``
    instead of the recorder itself.
    """

    def __init__(
        self,
        plan: Plan,
        flow_name: str,
        run_id: str,
        console: Console | None = None,
        refresh_per_second: float = 4,
        shown_running: int = 6,
    ) -> None:
        self.flow_name = flow_name
        self.run_id = run_id
        self.console = console or Console(stderr=True)
        self.shown_running = shown_running
        self._lock = threading.Lock()
        self._leaves = {key for key, spec in plan.nodes.items() if not spec.step.is_container}
        self._specs: dict[NodeKey, NodeSpec] = dict(plan.nodes)
        self._status: dict[NodeKey, StepStatus] = {}
        self._counts: Counter[StepStatus] = Counter()
        self._clock = time.monotonic
        self._started = self._clock()
        self._live = Live(
            console=self.console,
            refresh_per_second=refresh_per_second,
            get_renderable=self.render,
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def __enter__(self) -> LiveProgress:
        self._started = self._clock()
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.refresh()
        self._live.stop()
        if not self.console.is_terminal:
            self.console.line()  # rich leaves the last frame unterminated off a terminal

    def wrap(self, recorder: Any) -> ProgressTap:
        """A recorder that updates this display, then passes every call on to ``recorder``."""
        return ProgressTap(self, recorder)

    def note(self, key: NodeKey, status: StepStatus) -> None:
        """Count ``key``'s new status (leaves only)."""
        if key not in self._leaves:
            return
        with self._lock:
            before = self._status.get(key)
            if before is not None:
                self._counts[before] -= 1
            self._status[key] = status
            self._counts[status] += 1

    def add_leaves(self, specs: list[NodeSpec]) -> None:
        """Count instances expanded at run time (a container with a callable ``repeats``)."""
        with self._lock:
            self._leaves.update(spec.key for spec in specs if not spec.step.is_container)
            self._specs.update((spec.key, spec) for spec in specs)

    def counts(self) -> dict[str, int]:
        """A snapshot: total, done, running, succeeded, failed, skipped, interrupted, waiting."""
        with self._lock:
            counts = dict(self._counts)
            total = len(self._leaves)
        done = sum(counts.get(status, 0) for status in _DONE)
        running = counts.get(StepStatus.active, 0)
        return {
            "total": total,
            "done": done,
            "running": running,
            "succeeded": counts.get(StepStatus.success, 0),
            "failed": counts.get(StepStatus.failure, 0),
            "skipped": counts.get(StepStatus.skipped, 0),
            "interrupted": counts.get(StepStatus.interrupted, 0),
            "waiting": max(total - done - running, 0),
        }

    def running(self) -> list[NodeKey]:
        """The leaves running now, in the order they started."""
        with self._lock:
            return [key for key, status in self._status.items() if status is StepStatus.active]

    def times(self) -> tuple[float, float | None]:
        """Seconds since the run started, and an estimate of the seconds left (None: unknown).

        The estimate assumes the steps left take as long on average as the ones done so far.
        """
        elapsed = max(self._clock() - self._started, 0.0)
        counts = self.counts()
        done, total = counts["done"], counts["total"]
        if done == 0 or done >= total:
            return elapsed, None if done == 0 else 0.0
        return elapsed, elapsed / done * (total - done)

    def iterations(self) -> list[str]:
        """For each parallel container with steps running: how many of its iterations run.

        ``box/1: 3 iterations running (up to 4 at once)``, in the order the containers' first
        running step started.
        """
        groups: dict[NodeKey, set[int]] = {}
        for key in self.running():
            spec = self._specs.get(key)
            while spec is not None and spec.parent in self._specs:
                container = self._specs[spec.parent]
                if container.step.parallel != 1:  # the nearest parallel container
                    groups.setdefault(container.key, set()).add(spec.ordinal)
                    break
                spec = container
        lines = []
        for key, ordinals in groups.items():
            limit = self._specs[key].step.parallel
            at_once = "all at once" if limit == 0 else f"up to {limit} at once"
            lines.append(f"{key}: {len(ordinals)} iterations running ({at_once})")
        return lines

    def render(self) -> Group:
        """The display: a header, a bar with counts and times, and the steps running now."""
        counts = self.counts()
        elapsed, left = self.times()
        header = Text.assemble(
            ("sequent ", "bold"), f"flow {self.flow_name!r} run {self.run_id}", style="cyan"
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(counts["total"], 1), completed=counts["done"], width=30),
            Text(f"{counts['done']}/{counts['total']} steps done"),
            Text(f"{counts['running']} running", style="yellow"),
            Text(f"{counts['succeeded']} succeeded", style="green"),
            Text(f"{counts['failed']} failed", style="red" if counts["failed"] else ""),
            Text(f"{counts['skipped']} skipped", style="dim"),
        )
        left_text = "time left unknown" if left is None else f"about {clock(left)} left"
        parts: list[Any] = [
            header,
            bar,
            Text(f"elapsed {clock(elapsed)}, {left_text}", style="dim"),
        ]
        if counts["interrupted"]:
            parts.append(Text(f"{counts['interrupted']} interrupted", style="magenta"))
        running = self.running()
        if running:
            shown = ", ".join(str(key) for key in running[: self.shown_running])
            more = len(running) - self.shown_running
            if more > 0:
                shown += f" and {more} more"
            parts.append(Text(f"running: {shown}", style="dim"))
        parts.extend(Text(line, style="dim") for line in self.iterations())
        return Group(*parts)


def clock(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressTap:
    """A recorder passing every call on to the real one after updating a ``LiveProgress``."""

    def __init__(self, display: LiveProgress, recorder: Any) -> None:
        self.display = display
        self.recorder = recorder

    def node(self, key: NodeKey, status: StepStatus, **details: Any) -> None:
        """Record a status change, and count it."""
        self.recorder.node(key, status, **details)
        self.display.note(key, status)

    def expanded(self, specs: list[NodeSpec]) -> None:
        """Record instances expanded at run time, and count their leaves."""
        self.recorder.expanded(specs)
        self.display.add_leaves(specs)

    def flush(self) -> None:
        """Commit what was recorded."""
        self.recorder.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.recorder, name)
