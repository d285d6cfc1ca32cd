"""Global admission control: at most N image requests in progress, a bounded FIFO queue, then 503.

:class:`AdmissionGuard` (pure ASGI) sits in front of the image endpoints. A request takes a
slot *before* its body is read; while it waits, the server reads none of its body either, so
the upload stays in the client's and the kernel's socket buffers (TCP back-pressure) instead of in
our memory. Slots are handed out strictly first come, first served, so under overload every request
waits about as long as the others (tight p99), and the bodies being read and the results being
converted at once are bounded by the number of slots, not by the number of clients. A request that
finds the queue full, or waits longer than the queue timeout, gets a 503 ``server_overloaded`` with
``retry-after``; nothing of it reached a provider.

A slot covers the gateway's own work (reading and parsing the body, converting and encoding the
results), not the wait for the upstream: :meth:`Slot.released` hands it on while the provider works
(seconds to a minute for an image model) and takes it back, ahead of new arrivals, when the results
are in. So the slots bound the gateway's CPU work at once, and a slow upstream does not cap how
many images are generated at once. A request waiting on its upstream keeps its inputs in memory; how
many do is bounded per key (``PIXELGATE_MAX_CONCURRENT_PER_KEY``) and by the rate limits, not here.
Requests without a valid API key take no slot (the route answers them 401 at once), and a slot is
freed as soon as the response starts: sending it to a slow reader needs none. (A ``stream=true``
answer starts before its images are made: its slot is freed once they are.) A refused request is
answered at once, its body unread; the HTTP protocol then reads and discards what the client still
sends, within bounds (:mod:`app.http_protocol`), so the client reads the 503.

Other routes (``/healthz``, ``/v1/models``, hosted image links) pass straight through.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import Timings, context_of
from app.handlers import error_response
from core.errors import ServiceUnavailableError


@dataclass(frozen=True)
class AdmissionLimits:
    """``max_inflight`` requests in progress, ``max_queued`` waiting for at most ``queue_timeout_seconds``."""

    max_inflight: int
    max_queued: int
    queue_timeout_seconds: float
    retry_after_seconds: int


class Overloaded(Exception):
    """No slot: the queue is full, or the wait ran out."""


class AdmissionGate:
    """A FIFO counting gate: ``acquire`` waits in arrival order; raises :class:`Overloaded` instead of queueing
    past ``max_queued`` or waiting past the timeout. ``reacquire`` (a request taking its slot back after
    the upstream answered) waits ahead of every new arrival, without limit or timeout: that request has
    already cost an upstream call. Single event loop; not thread-safe."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._returning: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self._free():
            self.inflight += 1
            return
        if len(self._waiters) >= self.limits.max_queued:
            raise Overloaded
        try:
            async with asyncio.timeout(self.limits.queue_timeout_seconds):
                await self._wait(self._waiters)
        except TimeoutError:
            raise Overloaded from None

    async def reacquire(self) -> None:
        if self._free():
            self.inflight += 1
            return
        await self._wait(self._returning)

    def release(self) -> None:
        for queue in (self._returning, self._waiters):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes to the next waiter directly
                    return
        self.inflight -= 1

    def _free(self) -> bool:
        return self.inflight < self.limits.max_inflight and not self._waiters and not self._returning

    async def _wait(self, queue: deque[asyncio.Future[None]]) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter  # release() counted us in before waking us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # woken and cancelled or timed out in the same instant: hand the slot on
            elif waiter in queue:  # a release() may already have dropped it, cancelled, from the queue
                queue.remove(waiter)
            raise


class Slot:
    """One admitted request's slot. Closed when the request's response is done; work that outlives
    it (an Idempotency-Key request whose client left) goes on without a slot. Time spent taking it
    back is added to the request's queue wait."""

    def __init__(self, gate: AdmissionGate, timings: Timings) -> None:
        self._gate = gate
        self._timings = timings
        self._held = True
        self._closed = False

    @asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Hand the slot on for the duration (waiting for an upstream); take it back afterwards."""
        if not self._held:
            yield
            return
        self._held = False
        self._gate.release()
        yield  # a failure or cancellation propagates without the slot: rendering an error needs none
        if not self._closed:
            started = time.monotonic()
            await self._gate.reacquire()
            self._timings.queue_wait += time.monotonic() - started
            self._held = True
            if self._closed:  # closed while waiting to come back: nobody will release it
                self.close()

    def close(self) -> None:
        self._closed = True
        if self._held:
            self._held = False
            self._gate.release()


class AdmissionGuard:
    """Runs image requests through an :class:`AdmissionGate`; see the module docstring."""

    def __init__(self, app: ASGIApp, gate: AdmissionGate, *, paths: frozenset[str]) -> None:
        self.app = app
        self.gate = gate
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope) if scope["type"] == "http" and scope["path"] in self._paths else None
        if context is None or context.principal is None:
            # Without a valid key the route answers 401 at once, reading no body: no slot, no
            # queueing behind (or pushing out) the clients that have one.
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.gate.acquire()
        except Overloaded:
            await _overloaded(self.gate.limits)(scope, receive, send)
            return
        finally:
            context.timings.queue_wait += time.monotonic() - started
        slot = context.slot = Slot(self.gate, context.timings)

        async def send_then_free(message: Message) -> None:
            if message["type"] == "http.response.start" and not _event_stream(message):
                slot.close()  # the answer is made: sending it to a slow reader needs no slot
            await send(message)

        try:
            await self.app(scope, receive, send_then_free)
        finally:
            slot.close()


def _event_stream(start: Message) -> bool:
    """Whether the answer is a ``stream=true`` event stream: it starts before its images are made, so it
    keeps its slot until they are (:mod:`app.api.streaming` closes it then) or the request ends."""
    return any(
        name == b"content-type" and value.startswith(b"text/event-stream") for name, value in start.get("headers", ())
    )


def _overloaded(limits: AdmissionLimits) -> ASGIApp:
    retry_after = max(1, math.ceil(limits.retry_after_seconds))
    return error_response(
        ServiceUnavailableError(
            "the gateway is at capacity; retry after the number of seconds in the retry-after header",
            code="server_overloaded",
            headers={"retry-after": str(retry_after)},
        )
    )
