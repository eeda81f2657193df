"""The seed's simple example flow (``runly00``), built by the suites that check its shape.

s1 repeats [1, 2] and holds s11 (repeats [1, 2]: s111 -> s112) then s12; s2 follows s1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sequent as seq

S = seq.StepStatus


def seed_flow(func: Callable[..., Any] = print, name: str = "seed") -> seq.Sequent:
    """The seed's simple example on an in-memory store, every leaf running ``func``."""
    flow = seq.Sequent(name=name, store=":memory:")
    s1 = flow.add_step("s1", repeats=[1, 2])
    s11 = s1.add_step("s11", repeats=[1, 2])
    s111 = s11.add_step("s111", func=func)
    s11.add_step("s112", func=func, requires=((s111, S.success),))
    s1.add_step("s12", func=func, requires=((s11, S.success),))
    flow.add_step("s2", func=func, requires=((s1, S.success),))
    return flow
