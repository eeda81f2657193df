"""Resource pools: at most N of a scarce thing in use at once, across unrelated steps.

``Resource`` and ``ResourcePool`` are what flows declare; ``Ledger`` is the scheduler's
accounting of them during one run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
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
    it shares with that waiter. Resources an owner did not give back when it ended
    (``releases=[]``) are *kept*: gone for the rest of the run unless a later step's explicit
    ``releases`` returns them.
    """

    def __init__(self, returnable: Iterable[ResourcePool] = ()) -> None:
        #: Pools that some step's explicit ``releases`` names: what is kept of them may come
        #: back while steps still run, so only a run at rest finds their waiters stuck.
        self.returnable = frozenset(returnable)
        self.free: dict[ResourcePool, int] = {}
        self.held: dict[Any, Request] = {}
        self.kept: dict[ResourcePool, dict[Any, int]] = {}
        self.waiting: deque[tuple[Any, Request]] = deque()

    def _pool(self, pool: ResourcePool) -> None:
        if pool not in self.free:
            self.free[pool] = pool.limit
            self.kept[pool] = {}

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
        acquired = _totals(self.held.pop(owner, ()))
        given = acquired if releases is None else _totals(releases)
        for pool in set(acquired) | set(given):
            self._pool(pool)
            amount = given.get(pool, 0)
            kept = acquired.get(pool, 0) - amount
            if kept > 0:
                self.kept[pool][owner] = self.kept[pool].get(owner, 0) + kept
            elif kept < 0:
                self._forget_kept(pool, -kept)
            self.free[pool] = min(pool.limit, self.free[pool] + amount)
        return self._grant()

    def _forget_kept(self, pool: ResourcePool, amount: int) -> None:
        """An explicit release returned ``amount`` that earlier owners kept: oldest first."""
        kept = self.kept[pool]
        for owner in list(kept):
            if amount <= 0:
                break
            back = min(amount, kept[owner])
            amount -= back
            kept[owner] -= back
            if not kept[owner]:
                del kept[owner]

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

    def stuck(
        self, waits_for: Callable[[Any], Iterable[Any]], at_rest: bool = False
    ) -> list[tuple[Any, str]]:
        """Waiting requests that can never be granted, each with the reason why.

        A request can never be granted when it asks more of a pool than is left once kept
        resources (unless the pool is ``returnable``) and those held by owners that cannot end
        before it (``waits_for(owner)``: its enclosing containers) are taken away.
        ``at_rest`` says nothing will end on its own any more (no step runs, no timer is due):
        then every request that does not fit what is free now is stuck as well.
        """
        result = []
        for owner, request in self.waiting:
            blockers = set(waits_for(owner))
            for pool, amount in _totals(request).items():
                if at_rest:
                    possible = self.free[pool]
                else:
                    possible = pool.limit
                    if pool not in self.returnable:
                        possible -= sum(self.kept[pool].values())
                    possible -= sum(
                        n for holder in blockers for p, n in self.held.get(holder, ()) if p is pool
                    )
                if amount > possible:
                    result.append((owner, self.describe(pool, amount, blockers)))
                    break
        return result

    def describe(self, pool: ResourcePool, amount: int, blockers: Iterable[Any] = ()) -> str:
        """Why a request for ``amount`` of ``pool`` waits: who holds the pool and who kept it."""
        blockers = set(blockers)
        holders = []
        for owner, request in self.held.items():
            count = sum(n for p, n in request if p is pool)
            if count:
                why = ", an enclosing container, until it ends" if owner in blockers else ""
                holders.append(f"{owner} ({count}{why})")
        kept = [f"{owner} ({count}, releases=[])" for owner, count in self.kept[pool].items()]
        return (
            f"requests {amount} of resource pool {pool.name!r} (limit {pool.limit}), which can "
            f"never be satisfied: {self.free[pool]} free; held by "
            f"{', '.join(holders) or 'no running step'}; kept by "
            f"{', '.join(kept) or 'no step'}"
        )

    def remove(self, owner: Any) -> list[Any]:
        """Forget a waiting request (its step will not run); return the owners now granted."""
        self.waiting = deque(item for item in self.waiting if item[0] != owner)
        return self._grant()


def _totals(request: Iterable[tuple[ResourcePool, int]]) -> dict[ResourcePool, int]:
    totals: dict[ResourcePool, int] = {}
    for pool, amount in request:
        totals[pool] = totals.get(pool, 0) + amount
    return totals
