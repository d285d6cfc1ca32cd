"""Count fan-out (``n``): split ``n`` into upstream calls, run them concurrently, collect exactly ``n``.

Planning (pure): :func:`split` balances ``n`` over calls of at most the model's native maximum.
Running: :class:`FanOut` runs a plan's calls at once, bounded per request and across requests,
all or error. Collecting: :func:`collect` takes exactly the images each call was asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from core.errors import UpstreamError
from providers.base import GeneratedImage, ImageAdapter, OnPartial, ProviderResult, UpstreamCall, UpstreamTracker


def split(n: int, native_max: int) -> list[int]:
    """Balanced chunks of at most ``native_max`` summing to ``n`` (6 over max 4 gives [3, 3])."""
    calls = -(-n // native_max)
    base, extra = divmod(n, calls)
    return [base + (1 if i < extra else 0) for i in range(calls)]


class FanOut:
    """Runs one request's upstream calls concurrently.

    At most ``max_per_request`` of a request's calls run at once, and every call also holds one of
    ``global_slots`` (shared by all requests) while it runs.
    """

    def __init__(self, max_per_request: int, global_slots: asyncio.Semaphore) -> None:
        self._max_per_request = max_per_request
        self._global_slots = global_slots

    def request_slots(self) -> asyncio.Semaphore:
        """The per-request bound, made once per request and passed to each :meth:`run` of it."""
        return asyncio.Semaphore(self._max_per_request)

    async def run(
        self,
        adapter: ImageAdapter,
        calls: Sequence[UpstreamCall],
        tracker: UpstreamTracker | None = None,
        per_request: asyncio.Semaphore | None = None,
        on_partial: OnPartial | None = None,
    ) -> list[ProviderResult]:
        """Each call's result, in call order.

        All or error: the first call that fails (after the adapter's own retries), or a cancellation
        of this coroutine, cancels the other calls and with them their upstream jobs; its error is
        raised. With a ``tracker`` (the router always passes one: an async job's, wrapped by the one
        that lets the inputs leave memory, :mod:`normalization.input_spill`) each call runs through
        ``adapter.run_tracked``; with ``on_partial`` (a streamed request) through
        ``adapter.run_streaming`` instead, which tells it the partial images as they arrive (an async
        job is not streamed; a streamed request's inputs stay in memory until it ends).
        ``per_request``: the request's bound when it runs several fan-outs (failover legs) at once.
        """
        per_request = per_request or self.request_slots()

        async def one(call: UpstreamCall) -> ProviderResult:
            async with per_request, self._global_slots:
                # Only a call that asks its upstream for partial images streams; the others run as
                # usual (tracked: their inputs can leave memory once the upstream has them).
                if on_partial is not None and call.partial_images:
                    return await adapter.run_streaming(call, on_partial)
                return await (adapter.run(call) if tracker is None else adapter.run_tracked(call, tracker))

        tasks = [asyncio.create_task(one(call)) for call in calls]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


def collect(calls: Sequence[UpstreamCall], results: Sequence[ProviderResult]) -> list[GeneratedImage]:
    """The images in call order, exactly as many as each call expected (extras are dropped).

    Fewer than a call expected is an upstream failure: :class:`UpstreamError` (502).
    """
    images: list[GeneratedImage] = []
    for call, result in zip(calls, results, strict=True):
        if len(result.images) < call.expected_images:
            got, wanted = len(result.images), call.expected_images
            raise UpstreamError(f"the upstream returned {got} image(s) where {wanted} were asked for")
        images.extend(result.images[: call.expected_images])
    return images
