"""How recorded values read to people, in the command line and the HTML report alike."""

from __future__ import annotations

import time
from typing import Any


def clock_text(value: float | None) -> str:
    """A moment as local date and time with milliseconds, ``-`` for none."""
    if not value:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return f"{stamp}.{int(value % 1 * 1000):03d}"


def result_text(result: Any) -> str:
    """``success``, ``failure`` or ``unfinished`` for a recorded result (True/1, False/0, None)."""
    if result is True or result == 1:
        return "success"
    if result is False or result == 0:
        return "failure"
    return "unfinished"
