"""Freed large blocks go back to the operating system (glibc's malloc), so a burst of edits does not
leave the process holding their memory.

A waiting edit's input leaves memory once its upstream job has it (:mod:`normalization.input_spill`),
but glibc keeps freed blocks inside its heap unless they were served by ``mmap``, and its *dynamic*
mmap threshold rises to the size of the first such block freed (up to 32 MiB): from then on every
1 MiB input, data URI and result is carved from the heap, and the heap's freed holes stay resident.
Measured with 300 1 MiB edits waiting on 15 s jobs (``bench/bench_longjobs.py``): RSS while they waited
was 105 MiB over idle with the dynamic threshold, 57 MiB with a fixed 128 KiB one.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number (malloc.h)."""
LARGE_BLOCK_BYTES = 128 * 1024
"""Blocks this large or larger are mapped on their own (glibc's initial default, kept fixed)."""


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold at :data:`LARGE_BLOCK_BYTES` (which also turns its dynamic growth
    off). Returns whether it was set: not on another C library, nor when the operator chose a
    threshold through glibc's own ``MALLOC_MMAP_THRESHOLD_`` variable."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
