"""Python's cyclic garbage collector set up for a long-running server, once its start-up is done.

The collector's defaults suit a script: a young generation of 700 objects, and a full collection
walking every tracked object whenever the old generation has grown by a quarter. After start-up
pixelgate holds about 170,000 tracked objects (modules, FastAPI's routes, pydantic's schemas) that
live as long as the process, and a full collection walks them all: 133 ms on this 2-core host with
nothing in flight. Measured with 1,000 1 MiB edits sent at once (``python -m bench.bench_longjobs
--spread 0 --kind edit``, collection times summed by a ``gc.callbacks`` hook): the defaults made 6
full collections of 0.18 to 0.46 s each (1.76 s of the gateway's 11.8 s of CPU, pausing the event
loop up to 0.46 s at a time); :func:`tune_collector` made none, 0.42 s of collecting in all, and took
the run's gateway CPU to 10.0 s.

What :func:`tune_collector` does, for ``pixelgate serve`` only (tests keep the defaults):

- collects, then freezes what is alive (``gc.freeze``): the start-up objects move to a permanent
  generation that no collection walks (they are never garbage: they live until the process ends);
- raises the young generation's threshold to :data:`YOUNG_THRESHOLD` (the older generations keep
  theirs): a request allocates several thousand objects, almost all freed by reference counting,
  so collections come about once per few requests instead of several times per request, and cyclic
  garbage waits for at most that many allocations. What a request frees must not wait for them: an
  upstream answer was such a cycle (httpx's stream wrapper points back at its response), holding the
  answer and the upload until a collection; :mod:`app.upstream_http` unlinks it on close. With that
  cycle still there, the larger threshold had cost 1 MiB edits at c=1 about 3 ms each (their
  megabytes waited for a collection, and every request took fresh pages).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_collector(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what is alive now and raise the young generation's threshold; call once, after start-up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
