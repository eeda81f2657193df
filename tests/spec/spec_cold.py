"""A step module that is slow to import in a fresh worker process: a cold pool, made slow on
purpose. Importing it in any process but the one named by ``SPEC_COLD_PARENT`` takes
``SPEC_COLD_SECONDS`` (what a worker that must import a heavy library first goes through)."""

from __future__ import annotations

import os
import time

import spec_steps

if os.environ.get("SPEC_COLD_PARENT", str(os.getpid())) != str(os.getpid()):
    time.sleep(float(os.environ.get("SPEC_COLD_SECONDS", "1.5")))



def mark(trace: str, name: str, pause: float = 0.0) -> str:
    """``spec_steps.mark``, defined here so that a worker must import this module to run it."""
    return spec_steps.mark(trace, name, pause)


__all__ = ["mark"]
