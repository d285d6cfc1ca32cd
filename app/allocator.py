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
  glibc makes it. But 1,000 1 MiB edits sent at once then peaked anywhere from 354 to 494 MiB: a
  quarter of a second of intake frees 100 MB and more before the next trim.

``pixelgate serve`` therefore reads how much the heap holds free (glibc's ``mallinfo2``) every
:data:`CHECK_SECONDS`: over :data:`TRIM_FREE_BYTES` (a burst) it trims at once; over
:data:`STEADY_TRIM_BYTES` (more than a few requests leave free), at most every
:data:`TRIM_INTERVAL_SECONDS`; an idle heap left fragmented (trims that give nothing back) is checked
less and less often. Measured (1,000 1 MiB edits at once, ``python -m bench.bench_longjobs``; CPU per
4 MiB edit at concurrency 16): see the README's "Long jobs". Without ``mallinfo2`` (glibc before
2.33) it trims every :data:`TRIM_INTERVAL_SECONDS`.

Besides, :func:`fix_thresholds` pins the two thresholds glibc would otherwise move by itself: the
mmap threshold at its maximum (what the dynamic one reaches anyway after the first large free) and
the top-of-heap trim threshold at :data:`TOP_TRIM_BYTES`. The dynamic trim threshold is twice the
mmap threshold, a few megabytes after a 2.4 MB answer was freed: a request freeing its answer and
upload at the top of the heap then shrank the heap (``brk``), and the next request faulted the same
pages in again. Interleaved (two ``pixelgate serve`` in front of one fake, 1 MiB edits at c=1, six
rounds of 100): page faults per edit 434 -> 125, CPU 9.8 -> 9.2 ms. Larger freed tops stay with
glibc's own trim; the trimming thread still gives back what is free inside the heap.

An operator's own glibc tuning (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) turns both off.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

TRIM_INTERVAL_SECONDS = 0.25
CHECK_SECONDS = 0.05
IDLE_CHECK_SECONDS = 1.0
STEADY_TRIM_BYTES = 32 * 1024 * 1024
"""Free memory worth a trim on the steady schedule (every :data:`TRIM_INTERVAL_SECONDS`). Over what a few
requests leave free between them: at 8 MiB, 1 MiB edits at c=1 had their freed answers and uploads
trimmed every quarter second and faulted back in (156-169 page faults and about 0.8 ms of CPU per
edit, interleaved against 32 MiB: 9.5 against 8.65 ms, 1 fault)."""
_GAVE_BACK_BYTES = 1024 * 1024
"""A trim that gives back less found the heap idle."""
TRIM_FREE_BYTES = 64 * 1024 * 1024
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
OPERATOR_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's largest (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit): larger blocks get mappings of their own."""
TOP_TRIM_BYTES = 16 * 1024 * 1024
"""Free memory at the top of the heap that glibc gives back when a block is freed."""
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    call: Callable[[int], int] = trim
    return call


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # ctypes' own declaration style
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _rss_bytes() -> int:
    """This process's resident memory (Linux's ``/proc``); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _free_heap_bytes() -> Callable[[], int] | None:
    """A function giving the bytes free inside glibc's heaps (every arena), or None before glibc 2.33."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.argtypes = ()
    mallinfo2.restype = _MallInfo2

    def free_bytes() -> int:
        info: _MallInfo2 = mallinfo2()
        return int(info.fordblks)

    return free_bytes


class Trimmer:
    """The trimming thread: how often it trimmed, and how to stop it (a test's; ``pixelgate serve``
    lets it run). See :func:`start_trimming`."""

    def __init__(
        self,
        trim: Callable[[int], int],
        free_bytes: Callable[[], int] | None,
        *,
        check_seconds: float,
        free_bytes_over: int,
        interval_seconds: float,
    ) -> None:
        self._trim = trim
        self._free_bytes = free_bytes
        self.check_seconds = check_seconds
        self.free_bytes_over = free_bytes_over
        self.interval_seconds = interval_seconds
        self.trims = 0
        self.wait_seconds = check_seconds
        """The wait before the next check: longer while trims give nothing back."""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pixelgate-malloc-trim", daemon=True)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()

    def _run(self) -> None:
        free_bytes = self._free_bytes
        if free_bytes is None:
            while not self._stop.wait(self.interval_seconds):
                self._trim(0)
                self.trims += 1
            return
        # mallinfo2 counts trimmed pages as free still, so a heap left fragmented after a burst stays
        # over the bar though idle: a trim that gives back little doubles the wait (up to
        # IDLE_CHECK_SECONDS), as each check and trim walks every free block with the arena locked.
        last_trim = time.monotonic()
        while not self._stop.wait(self.wait_seconds):
            free = free_bytes()
            burst = free > self.free_bytes_over
            steady = free > STEADY_TRIM_BYTES and time.monotonic() - last_trim >= self.interval_seconds
            if not (burst or steady):
                self.wait_seconds = self.check_seconds
                continue
            last_trim = time.monotonic()
            before = _rss_bytes()
            self._trim(0)
            self.trims += 1
            if before - _rss_bytes() >= _GAVE_BACK_BYTES:
                self.wait_seconds = self.check_seconds
            else:
                self.wait_seconds = min(2 * self.wait_seconds, IDLE_CHECK_SECONDS)


def fix_thresholds() -> bool:
    """Pin glibc's mmap and trim thresholds (see the module docstring). Process-wide: for ``pixelgate
    serve``, not for a process that only imports the app. Returns whether they were set: not on another
    C library, nor when the operator tuned glibc himself."""
    if any(name in os.environ for name in OPERATOR_TUNING):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TOP_TRIM_BYTES))


def start_trimming(
    *,
    check_seconds: float = CHECK_SECONDS,
    free_bytes_over: int = TRIM_FREE_BYTES,
    interval_seconds: float = TRIM_INTERVAL_SECONDS,
) -> Trimmer | None:
    """Start a daemon thread that gives the heap's free pages back to the system: at once when more
    than ``free_bytes_over`` bytes are free, at most every ``interval_seconds`` when more than
    :data:`STEADY_TRIM_BYTES` are (checked every ``check_seconds``, less often while trims give
    nothing back); without ``mallinfo2``, every ``interval_seconds``.

    Returns it, or None: not on another C library, nor when the operator tuned glibc himself.
    """
    if any(name in os.environ for name in OPERATOR_TUNING):
        return None
    trim = _malloc_trim()
    if trim is None:
        return None
    trimmer = Trimmer(
        trim,
        _free_heap_bytes(),
        check_seconds=check_seconds,
        free_bytes_over=free_bytes_over,
        interval_seconds=interval_seconds,
    )
    trimmer.thread.start()
    return trimmer
