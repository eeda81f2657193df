"""Helpers for tests that watch processes: is a pid still running, does it stop in time."""

from __future__ import annotations

import time

import psutil


def alive(pid: int) -> bool:
    """True while ``pid`` is a running process (a zombie waiting to be reaped is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    """True when ``pid`` stops running within ``seconds`` (a kill takes effect asynchronously)."""
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
