"""A step's trip to a worker process: its function pickled once per function, not per step.

The orchestrator's ``Packer`` keeps the pickled function of each step definition it has sent
(most runs send many instances of few functions; a function of the main script costs
cloudpickle tens of microseconds each time); the worker's ``unpack`` keeps the functions it
has rebuilt, by the key the packer gave them, so it unpickles each one once. Arguments and the
step context travel afresh with every step (a step may change its arguments: the next instance
must not see that). Both caches hold at most ``CACHED`` functions.

Mutates only its caches.
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections import OrderedDict
from typing import Any

from .worker import Task, dumps

CACHED = 256


class Packer:
    """Mutates its cache: packs tasks for workers, pickling each function once."""

    def __init__(self) -> None:
        self._prefix = f"{os.getpid()}-{id(self):x}"
        self._numbers = itertools.count()
        self._functions: OrderedDict[int, tuple[Any, str, bytes]] = OrderedDict()

    def pack(self, task: Task) -> bytes:
        """The bytes ``unpack`` turns back into ``task`` in a worker."""
        entry = self._functions.get(id(task.func))
        if entry is None or entry[0] is not task.func:
            entry = (task.func, f"{self._prefix}-{next(self._numbers)}", dumps(task.func))
            self._functions[id(task.func)] = entry
            if len(self._functions) > CACHED:
                self._functions.popitem(last=False)
        else:
            self._functions.move_to_end(id(task.func))
        _, key, function = entry
        rest = dumps((task.args, task.kwargs, task.context, task.remote))
        return pickle.dumps((key, function, rest), pickle.HIGHEST_PROTOCOL)


_rebuilt: OrderedDict[str, Any] = OrderedDict()


def unpack(data: bytes) -> Task:
    """The task ``Packer.pack`` sent; raises what unpickling raises (an unimportable name)."""
    key, function, rest = pickle.loads(data)
    args, kwargs, context, remote = pickle.loads(rest)
    func = _rebuilt.get(key)
    if func is None:
        func = _rebuilt[key] = pickle.loads(function)
        if len(_rebuilt) > CACHED:
            _rebuilt.popitem(last=False)
    else:
        _rebuilt.move_to_end(key)
    return Task(func=func, args=args, kwargs=kwargs, context=context, remote=remote)


__all__ = ["CACHED", "Packer", "unpack"]
