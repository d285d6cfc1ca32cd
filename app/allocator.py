"""Freed large blocks go back to the operating system (glibc's malloc), so a burst of edits does not
leave the process holding their memory, without making each request pay for it.

A waiting edit's input leaves memory once its upstream job has it (:mod:`normalization.input_spill`),
but glibc keeps freed blocks inside its heap unless they were served by ``mmap``, and its *dynamic*
mmap threshold rises to the size of the first such block freed (up to 32 MiB): from then on every
1 MiB input, data URI and result is carved from the heap, and the heap's freed holes stay resident.

Two ways out were measured (``bench/bench_longjobs.py``, ``python -m bench.run --only edits1``):

- a fixed mmap threshold of 128 KiB (every large block its own mapping): RSS while 300 edits waited
  fell from 105 to 57 MiB over idle, but every request then pays page faults and ``munmap`` for its
  several megabytes of large temporaries: 3 to 10 ms more added latency per 1 MiB edit on this host;
- the heap as glibc grows it, and ``malloc_trim(0)`` four times a second from a thread of its own:
  freed pages anywhere in the heap go back to the system (``madvise``), allocation stays as fast as
  glibc makes it (1,000 1 MiB edits sent at once: peak RSS 384 MiB trimming every 0.25 s, 410 MiB
  every second). This is what ``pixelgate serve`` does.

An operator's own glibc tuning (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("pixelgate")

TRIM_INTERVAL_SECONDS = 0.25
OPERATOR_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    call: Callable[[int], int] = trim
    return call


def start_trimming(interval_seconds: float = TRIM_INTERVAL_SECONDS) -> threading.Thread | None:
    """Start a daemon thread that returns the heap's free pages to the system every ``interval_seconds``.

    Returns the thread, or None: not on another C library, nor when the operator tuned glibc himself.
    """
    if any(name in os.environ for name in OPERATOR_TUNING):
        return None
    trim = _malloc_trim()
    if trim is None:
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_seconds):
            trim(0)

    thread = threading.Thread(target=loop, name="pixelgate-malloc-trim", daemon=True)
    thread.start()
    return thread
