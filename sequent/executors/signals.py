"""SIGINT and SIGTERM during a run: an event for the core's loop, and the serial step stopped.

A signal never acts in its handler beyond posting ``("signal", name)`` on the loop's events
queue; the loop then stops launching and interrupts what runs. A serial step runs in the
loop's own thread, so there the handler also raises ``Interrupted`` to end it.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from typing import Any


class Interrupted(KeyboardInterrupt):
    """Raised in a step running in the scheduler's thread (serial) when a signal arrives."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def install_signals(events: queue.SimpleQueue[Any], backend: Any) -> Callable[[], None]:
    """Route SIGINT and SIGTERM to ``events`` while a run lasts; return what restores the
    handlers found. Only the main thread can set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        events.put(("signal", name))
        if getattr(backend, "running_inline", False):
            raise Interrupted(name)  # a serial step runs in this thread: stop it there

    saved = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            saved[signum] = signal.signal(signum, on_signal)
        except (ValueError, OSError):
            pass

    def restore() -> None:
        for signum, handler in saved.items():
            signal.signal(signum, handler)

    return restore
