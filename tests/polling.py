"""Waiting for an observable condition with a deadline, never for a fixed time.

A test that must wait for something to happen elsewhere (a thread's request reached the fake
upstream, a slot is taken) polls ``wait_until`` instead of sleeping and hoping: it returns as soon as
the condition holds, however loaded the machine, and fails with ``what`` when the deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Return once ``condition()`` is true; fail the test if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true after {timeout} s: {what}"
        time.sleep(interval)
