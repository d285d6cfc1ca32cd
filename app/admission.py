"""Global admission control: at most N image requests in progress, a bounded FIFO queue, then 503.

:class:`~app.admission_guard.AdmissionGuard` (pure ASGI) sits in front of the image endpoints. A request takes a
slot *before* its body is read; while it waits, the server reads none of its body either, so
the upload stays in the client's and the kernel's socket buffers (TCP back-pressure) instead of in
our memory. Slots are handed out strictly first come, first served, so under overload every request
waits about as long as the others (tight p99), and the bodies being read and the results being
converted at once are bounded by the number of slots, not by the number of clients. A request that
finds the queue full, or waits longer than the queue timeout, gets a 503 ``server_overloaded`` with
``retry-after``; nothing of it reached a provider.

A slot covers the gateway's own work (reading and parsing the body, fetching, converting and encoding
the results), not the wait for the upstream: :meth:`Slot.released` hands it on while the provider works
(seconds to a minute for an image model) and takes it back, ahead of new arrivals, when the results
are in, or (:meth:`Slot.take_back`) before a finished job's results are fetched from a queue upstream:
they wait there until the gateway has room. So the slots bound the gateway's CPU work at once, and a
slow upstream does not cap how many images are generated at once. Inputs not yet with the upstream
are bounded by the intake budget (below); how many requests wait on their upstreams is bounded per key
(``PIXELGATE_MAX_CONCURRENT_PER_KEY``) and by the rate limits, not here.
Requests without a valid API key take no slot (the route answers them 401 at once), and a slot is
freed as soon as the response starts: sending it to a slow reader needs none. (A ``stream=true``
answer starts before its images are made: its slot is freed once they are.) A refused request is
answered at once, its body unread; the HTTP protocol then reads and discards what the client still
sends, within bounds (:mod:`app.http_protocol`), so the client reads the 503.

The intake budget (``PIXELGATE_MAX_INTAKE_BYTES``) bounds the memory of large uploads between their
read and their upstream: a request whose declared body is :data:`INTAKE_MIN_BYTES` or more reserves
that many bytes (a chunked body, of unknown length, as many as one file may have) along with its
slot, in the same FIFO order, and gives them back once its inputs are with the upstream
(:meth:`Slot.inputs_sent`: fal has accepted the job, after which the inputs leave memory; for
upstreams that take inputs and answer in one call, as that call starts) or when the request ends. A
declared length no image route reads reserves nothing: its route refuses it unread. A JSON edit's
``image_url`` download reserves what its body may hold before reading it (:meth:`Slot.reserve_intake`,
through :meth:`AdmissionGate.exchange`). Handing the slot
on while the upstream works does not free the bytes: 1,000 1 MiB edits sent at once to fal had up to
83 submits in flight (the input and its 1.4 MB of base64 each), read faster than the upstream accepted
them; with the budget the bodies not yet admitted wait unread in the sockets.

Other routes (``/healthz``, ``/v1/models``, hosted image links) pass straight through.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.context import Timings

INTAKE_MIN_BYTES = 256 * 1024
"""Bodies smaller than this reserve nothing of the intake budget."""


@dataclass(frozen=True)
class AdmissionLimits:
    """``max_inflight`` requests in progress, ``max_queued`` waiting for at most ``queue_timeout_seconds``;
    ``max_intake_bytes`` (0: no bound) of large bodies read and not yet handed to an upstream (see
    :func:`~app.admission_guard.reserved_intake` for what a request reserves)."""

    max_inflight: int
    max_queued: int
    queue_timeout_seconds: float
    retry_after_seconds: int
    max_intake_bytes: int = 0
    body_caps: Mapping[str, int] = field(default_factory=dict)
    """The largest body each image route (by path) reads: a longer declared one reserves nothing, its
    route refuses it (413) before reading a byte."""
    undeclared_intake_bytes: int = 0
    """What a body without a declared length (chunked) reserves: it may be as large as a file may."""


class Overloaded(Exception):
    """No slot: the queue is full, or the wait ran out."""


class AdmissionGate:
    """A FIFO counting gate: ``acquire`` waits in arrival order; raises :class:`Overloaded` instead of queueing
    past ``max_queued`` or waiting past the timeout. ``reacquire`` (a request taking its slot back after
    the upstream answered) waits ahead of every new arrival, without limit or timeout: that request has
    already cost an upstream call. ``acquire(intake_bytes)`` also reserves that many bytes of the intake
    budget (see the module docstring), given back with :meth:`release_intake`; a reservation larger than
    the budget is taken when no other is held. Uploads get their bytes strictly in arrival order; a
    request that reserves none (a generation) is not held back by an upload waiting for bytes, only by
    the slots. ``exchange`` (an admitted request about to download an input) grows a reservation ahead of
    every arrival. Single event loop; not thread-safe."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.inflight = 0
        self.intake_bytes = 0
        """Bytes of the intake budget reserved now."""
        self._uploads: deque[_Waiter] = deque()
        """Arrivals that reserve bytes, in order."""
        self._others: deque[_Waiter] = deque()
        """Arrivals that reserve none, in order."""
        self._returning: deque[asyncio.Future[None]] = deque()
        self._growing: deque[_Waiter] = deque()
        """Admitted requests waiting to grow their reservation (:meth:`exchange`), in order."""
        self._arrivals = itertools.count()

    @property
    def queued(self) -> int:
        return len(self._uploads) + len(self._others)

    async def acquire(self, intake_bytes: int = 0) -> None:
        # Uploads keep their order among themselves; with a slot free, a queued upload can only be
        # waiting for bytes, which a request reserving none does not take.
        queue_allows = not self._returning and not self._others
        queue_allows = queue_allows and (not intake_bytes or not (self._uploads or self._growing))
        if queue_allows and self._admits(intake_bytes):
            self._take(intake_bytes)
            return
        if self.queued >= self.limits.max_queued:
            raise Overloaded
        waiter = _Waiter(asyncio.get_running_loop().create_future(), intake_bytes, next(self._arrivals))
        queue = self._uploads if intake_bytes else self._others
        queue.append(waiter)
        try:
            async with asyncio.timeout(self.limits.queue_timeout_seconds):
                await self._wait(waiter.future, lambda: self._drop(queue, waiter), intake_bytes)
        except TimeoutError:
            raise Overloaded from None

    async def reacquire(self) -> None:
        # A free slot with arrivals queued means they wait for bytes: a returning request takes none.
        if not self._returning and self.inflight < self.limits.max_inflight:
            self.inflight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._returning.append(waiter)
        await self._wait(waiter, lambda: self._drop_returning(waiter), 0)

    async def exchange(self, held: int, wanted: int) -> None:
        """Trade a reservation of ``held`` bytes for one of ``wanted`` (an admitted request about to read
        more: a JSON edit's ``image_url`` download), waiting without limit or timeout until it fits or no
        other bytes are held.

        It waits ahead of every arrival and holds nothing meanwhile, so two requests growing at once
        cannot wait on each other; the uploads behind it wait too, so the bytes it gave back are not
        taken by a new arrival. Cancelled, it holds nothing (its ``held`` bytes are already given back).
        """
        self.intake_bytes -= held
        if not self._growing and self._fits(wanted):
            self.intake_bytes += wanted
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), wanted, next(self._arrivals))
        self._growing.append(waiter)
        self._dispatch()  # what it gave back may let the one growing before it through
        try:
            await waiter.future  # _dispatch() counted its bytes in before waking it
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release_intake(wanted)  # woken and cancelled in the same instant
            elif waiter in self._growing:
                self._growing.remove(waiter)
                self._dispatch()  # it may have held back the uploads behind it
            raise

    def release(self) -> None:
        self.inflight -= 1
        self._dispatch()

    def release_intake(self, intake_bytes: int) -> None:
        self.intake_bytes -= intake_bytes
        self._dispatch()

    def _admits(self, intake_bytes: int) -> bool:
        return self.inflight < self.limits.max_inflight and self._fits(intake_bytes)

    def _fits(self, intake_bytes: int) -> bool:
        budget = self.limits.max_intake_bytes
        return not intake_bytes or not budget or not self.intake_bytes or self.intake_bytes + intake_bytes <= budget

    def _take(self, intake_bytes: int) -> None:
        self.inflight += 1
        self.intake_bytes += intake_bytes

    def _dispatch(self) -> None:
        """Wake waiters while slots (and bytes) allow: growing ones first (they need bytes, not slots), then
        returning ones, then arrivals in order, but an upload whose bytes do not fit yet holds back only the
        uploads behind it."""
        while self._growing:
            growing = self._growing[0]
            if not growing.future.done():
                if not self._fits(growing.intake_bytes):
                    break
                self.intake_bytes += growing.intake_bytes
                growing.future.set_result(None)
            self._growing.popleft()
        while self._returning and self.inflight < self.limits.max_inflight:
            returning = self._returning.popleft()
            if not returning.done():
                self.inflight += 1
                returning.set_result(None)
        while self.inflight < self.limits.max_inflight and (chosen := self._next_arrival()) is not None:
            self._take(chosen.intake_bytes)
            chosen.future.set_result(None)

    def _next_arrival(self) -> _Waiter | None:
        """Take the arrival that goes next, given a free slot: the first upload when its bytes fit and
        it came first (and no admitted request waits to grow); else the first arrival that reserves none;
        None when only uploads wait for bytes."""
        for queue in (self._uploads, self._others):
            while queue and queue[0].future.done():  # gone while waiting
                queue.popleft()
        upload = None
        if self._uploads and not self._growing and self._admits(self._uploads[0].intake_bytes):
            upload = self._uploads[0]
        other = self._others[0] if self._others else None
        if upload is not None and (other is None or upload.arrival < other.arrival):
            return self._uploads.popleft()
        return self._others.popleft() if other is not None else None

    def _drop(self, queue: deque[_Waiter], waiter: _Waiter) -> None:
        if waiter in queue:
            queue.remove(waiter)
            self._dispatch()  # it may have held back those behind it

    def _drop_returning(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._returning:
            self._returning.remove(waiter)

    async def _wait(self, waiter: asyncio.Future[None], drop: Callable[[], None], intake_bytes: int) -> None:
        try:
            await waiter  # _dispatch() counted us in before waking us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Woken and cancelled or timed out in the same instant: hand the slot and bytes on.
                self.intake_bytes -= intake_bytes
                self.release()
            else:  # _dispatch() may already have dropped it, cancelled, from the queue
                drop()
            raise


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[None]
    intake_bytes: int
    arrival: int


class Slot:
    """One admitted request's slot, and its reservation of the intake budget. Closed when the request's
    response is done; work that outlives it (an Idempotency-Key request whose client left) goes on
    without a slot. Time spent taking it back is added to the request's queue wait."""

    def __init__(self, gate: AdmissionGate, timings: Timings, intake_bytes: int = 0) -> None:
        self._gate = gate
        self._timings = timings
        self._held = True
        self._closed = False
        self._intake_bytes = intake_bytes
        self._coming_back = asyncio.Lock()
        self._hand_on_when_back = False
        """:meth:`hand_on` was asked while :meth:`take_back` waited: hand it on again once back."""

    def inputs_sent(self) -> None:
        """The request's inputs are with its upstream, or no longer wait for it: the bytes go back."""
        if self._intake_bytes:
            self._gate.release_intake(self._intake_bytes)
            self._intake_bytes = 0

    async def reserve_intake(self, more: int) -> int:
        """Reserve ``more`` bytes of the intake budget besides those held (see :meth:`AdmissionGate.exchange`),
        given back with the rest; returns what was reserved: 0 below :data:`INTAKE_MIN_BYTES`, without a
        budget, or once the slot is closed (work that outlives its response goes on unbounded)."""
        if more < INTAKE_MIN_BYTES or not self._gate.limits.max_intake_bytes or self._closed:
            return 0
        held, self._intake_bytes = self._intake_bytes, 0
        await self._gate.exchange(held, held + more)
        if self._closed:  # closed while it waited: nobody will give these back
            self._gate.release_intake(held + more)
            return 0
        self._intake_bytes = held + more
        return more

    def return_intake(self, unused: int) -> None:
        """Give back ``unused`` bytes of a reservation (a download smaller than it might have been)."""
        unused = min(unused, self._intake_bytes)
        if unused > 0:
            self._intake_bytes -= unused
            self._gate.release_intake(unused)

    @asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Hand the slot on for the duration (waiting for an upstream); take it back afterwards."""
        if not self._held:
            yield
            return
        self._held = False
        self._gate.release()
        yield  # a failure or cancellation propagates without the slot: rendering an error needs none
        await self.take_back()

    async def take_back(self) -> None:
        """Take the slot back now, ahead of new arrivals, when it was handed on: at the end of
        :meth:`released`, or before then to fetch a finished result (which waits upstream until the
        gateway has room for it). Nothing when it is held, or once closed."""
        async with self._coming_back:  # two calls finishing at once take it back once
            if self._held or self._closed:
                return
            started = time.monotonic()
            await self._gate.reacquire()
            self._timings.queue_wait += time.monotonic() - started
            self._held = True
            if self._closed:  # closed while waiting to come back: nobody will release it
                self.close()
            elif self._hand_on_when_back:
                self.hand_on()

    def hand_on(self) -> None:
        """Hand the slot on again inside :meth:`released` after :meth:`take_back` (the request waits on
        an upstream again: a failover after its results were fetched); its end takes it back. Asked
        while a :meth:`take_back` still waits, it is handed on as soon as that one has it."""
        self._hand_on_when_back = self._coming_back.locked() and not self._held
        if self._held and not self._closed:
            self._held = False
            self._gate.release()

    def close(self) -> None:
        self._closed = True
        self.inputs_sent()
        if self._held:
            self._held = False
            self._gate.release()
