"""The one bounded path for Pillow work: a thread pool sized to the CPU count, shared by every layer.

Decoding an image costs memory in proportion to its pixels, whatever its file size (a 7.8 KB 1-bit
PNG of 8000x8000 decodes to 64 MP). So every decode, resample and encode in the process, whoever
asks for it (the emulation stage converting results, an adapter such as the offline sandbox
drawing on its inputs), runs here: at most ``max_workers`` images are in memory at once, and the
event loop never waits on Pillow. The app creates one pool in its lifespan and hands it to the
pipeline and to the adapters.

Threads suffice: Pillow releases the GIL while it decodes, resamples and encodes, so work runs in
parallel without pickling megabytes to and from worker processes (``bench/bench_convert.py --pools``
measures both).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ImageWorkers:
    """Runs synchronous Pillow work off the event loop, at most ``max_workers`` jobs at once.

    Jobs beyond that wait in FIFO order without holding any pixel memory: a job decodes its image
    only once it runs.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="pixelgate-image")

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` in the pool; its result or its exception."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job)

    def close(self) -> None:
        """Wait for running jobs, drop queued ones, stop the threads (call once, at shutdown)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
