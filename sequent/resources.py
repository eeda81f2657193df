"""Resource pools: at most N of a scarce thing in use at once, across unrelated steps.

``Resource`` and ``ResourcePool`` are what flows declare; ``Ledger`` is the scheduler's
accounting of them during one run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ResourceError


class Resource:
    """One unit of a pool; subclass it to give a pool's resources their own type."""

    def __init__(self, pool: str = "", index: int = 0) -> None:
        self.pool = pool
        self.index = index

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool!r}, {self.index})"


class ResourcePool:
    """A named pool of ``policy['resource_limit']`` resources of type ``resource_cls``."""

    def __init__(
        self,
        name: str,
        resource_cls: type[Resource] = Resource,
        policy: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ResourceError(f"ResourcePool name must be a non-empty string, got {name!r}")
        if not (isinstance(resource_cls, type) and issubclass(resource_cls, Resource)):
            raise ResourceError(
                f"ResourcePool {name!r}: resource_cls must be a subclass of sequent.Resource, "
                f"got {resource_cls!r}"
            )
        policy = dict(policy or {})
        unknown = set(policy) - {"resource_limit"}
        if unknown:
            raise ResourceError(
                f"ResourcePool {name!r}: unknown policy keys {sorted(unknown)}; "
                f"the policy takes 'resource_limit'"
            )
        limit = policy.get("resource_limit", 1)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ResourceError(
                f"ResourcePool {name!r}: resource_limit must be a whole number of at least 1, "
                f"got {limit!r}"
            )
        self.name = name
        self.resource_cls = resource_cls
        self.policy = policy
        self.limit = limit
        self.resources: list[Resource] = []

    def load(self) -> ResourcePool:
        """Create the pool's resources; returns the pool (so ``ResourcePool(...).load()`` works)."""
        if not self.resources:
            self.resources = [self.resource_cls(self.name, i) for i in range(self.limit)]
        return self

    def __repr__(self) -> str:
        return f"ResourcePool({self.name!r}, limit={self.limit})"


Request = tuple[tuple[ResourcePool, int], ...]


class Ledger:
    """Mutates the count of free resources per pool and the FIFO queue of waiting requests.

    A request is granted whole or not at all, and never ahead of an earlier waiter on any pool
    it shares with that waiter.
    """

    def __init__(self) -> None:
        self.free: dict[ResourcePool, int] = {}
        self.lost: dict[ResourcePool, int] = {}
        self.held: dict[Any, Request] = {}
        self.waiting: deque[tuple[Any, Request]] = deque()

    def _pool(self, pool: ResourcePool) -> None:
        if pool not in self.free:
            self.free[pool] = pool.limit
            self.lost[pool] = 0

    def acquire(self, owner: Any, request: Request) -> bool:
        """Take ``request`` for ``owner`` now if it fits and nobody waits ahead; else queue it."""
        for pool, _ in request:
            self._pool(pool)
        if self._fits(request, ahead=self.waiting):
            self._take(owner, request)
            return True
        self.waiting.append((owner, request))
        return False

    def release(self, owner: Any, releases: Request | None) -> list[Any]:
        """Give back what ``owner`` releases (None: all it took); return the owners now granted."""
        acquired = self.held.pop(owner, ())
        given = acquired if releases is None else releases
        taken = dict(_totals(acquired))
        for pool, amount in _totals(given).items():
            self._pool(pool)
            self.free[pool] = min(pool.limit, self.free[pool] + amount)
            taken[pool] = taken.get(pool, 0) - amount
        for pool, kept in taken.items():
            self.lost[pool] = max(0, self.lost[pool] + kept)
        return self._grant()

    def _grant(self) -> list[Any]:
        granted = []
        blocked: list[tuple[Any, Request]] = []
        for owner, request in list(self.waiting):
            if self._fits(request, ahead=blocked):
                self._take(owner, request)
                self.waiting.remove((owner, request))
                granted.append(owner)
            else:
                blocked.append((owner, request))
        return granted

    def _fits(self, request: Request, ahead: Iterable[tuple[Any, Request]]) -> bool:
        pools = {pool for pool, _ in request}
        for _, other in ahead:
            if pools & {pool for pool, _ in other}:
                return False
        return all(self.free[pool] >= amount for pool, amount in _totals(request).items())

    def _take(self, owner: Any, request: Request) -> None:
        for pool, amount in _totals(request).items():
            self.free[pool] -= amount
        self.held[owner] = request

    def impossible(self) -> list[tuple[Any, str]]:
        """Waiting requests that can never be granted: more than the pool can still give."""
        stuck = []
        for owner, request in self.waiting:
            for pool, amount in _totals(request).items():
                if amount > pool.limit - self.lost[pool]:
                    stuck.append((owner, self.describe(pool, amount)))
                    break
        return stuck

    def describe(self, pool: ResourcePool, amount: int) -> str:
        """Explain why a request for ``amount`` of ``pool`` waits: the free count and holders."""
        holders = [
            str(owner) for owner, request in self.held.items() if any(p is pool for p, _ in request)
        ]
        return (
            f"requests {amount} of resource pool {pool.name!r} (limit {pool.limit}), which can "
            f"never be satisfied: {self.free[pool]} free, {self.lost[pool]} never released "
            f"(releases=[]), held by {holders or 'no running step'}"
        )

    def drain_waiting(self) -> list[tuple[Any, str]]:
        """Remove every waiter, with the reason it could not be served (the run is quiescent)."""
        stuck = []
        for owner, request in self.waiting:
            pool, amount = next(iter(_totals(request).items()))
            for candidate, want in _totals(request).items():
                if self.free[candidate] < want:
                    pool, amount = candidate, want
                    break
            stuck.append((owner, self.describe(pool, amount)))
        self.waiting.clear()
        return stuck

    def remove(self, owner: Any) -> None:
        """Forget a waiting request (its step will not run)."""
        self.waiting = deque(item for item in self.waiting if item[0] != owner)


def _totals(request: Iterable[tuple[ResourcePool, int]]) -> dict[ResourcePool, int]:
    totals: dict[ResourcePool, int] = {}
    for pool, amount in request:
        totals[pool] = totals.get(pool, 0) + amount
    return totals
