"""One try of one step instance, as the core tracks it while it runs."""

from __future__ import annotations

from concurrent.futures import Future

from ..compiler import NodeKey, NodeSpec
from ..context import StepContext
from .contract import RunOptions
from .worker import Outcome, Task


class Attempt:
    """Mutated by the core only: one try (``number`` 0, then each retry) of ``key``.

    ``token`` tells this try's outcome from a late one of an earlier try; ``future`` is set
    for backends that return one (the thread backend posts outcomes instead).
    """

    __slots__ = ("key", "spec", "number", "future", "token")

    def __init__(self, key: NodeKey, spec: NodeSpec, number: int, token: int) -> None:
        self.key = key
        self.spec = spec
        self.number = number
        self.token = token
        self.future: Future[Outcome] | None = None

    def task(self, options: RunOptions, remote: bool) -> Task:
        """What a backend runs for this try: the step's call and the context it sees."""
        spec = self.spec
        step = spec.step
        return Task(
            func=step.func,  # type: ignore[arg-type]
            args=step.args,
            kwargs=step.kwargs,
            context=StepContext(
                name=self.key.path,
                sequence=self.key.sequence,
                recovery=options.recovery,
                run_id=options.run_id,
                flow_name=options.flow_name,
                ordinal=spec.ordinal,
                item=spec.item,
                logger_name=options.logger_name,
                retry=self.number,
            ),
            remote=remote,
            timeout=step.timeout,
        )
