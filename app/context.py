"""One typed record per request, :class:`RequestContext`, shared by the request guards and the routes.

The outermost guard (:class:`RequestContextGuard`) creates it when a request arrives and gives every
response its ``x-request-id``; the guards inside fill in what they decide (the authenticated
:class:`~app.principal.Principal`, the per-key limits ticket, the admission slot, the queue wait), the
routes add what only they know (time spent waiting for providers, the model and provider that
served the request), and whatever reads the record when the response is over (a usage ledger, the
access log) finds the status and the total time there too.

Code reads it through :func:`context_of` (guards, with the ASGI scope) or the
:data:`RequestContextDep` FastAPI dependency (routes); nothing else is passed through the scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.handlers import internal_error_response
from app.principal import Principal
from core.errors import GatewayError

log = logging.getLogger("pixelgate")

REQUEST_ID_HEADER = "x-request-id"
_SCOPE_KEY = "pixelgate.context"


@dataclass
class Timings:
    """Where a request's time went, in seconds (monotonic clock)."""

    started: float
    queue_wait: float = 0.0
    """Waiting for an admission slot: on arrival and when taking it back after the upstream answered."""
    upstream: float = 0.0
    """Waiting for providers, summed over the request's upstream phases."""
    total: float | None = None
    """Arrival to the last byte of the response handed to the server; None until then."""


@dataclass
class Outcome:
    """What the request came to, for whatever reads the context at its end (a usage ledger).

    ``status`` is filled in by :class:`RequestContextGuard`; the image routes fill in ``model``,
    ``provider`` and ``images``. ``cost_usd`` stays None until a price source exists.
    """

    status: int | None = None
    model: str | None = None
    provider: str | None = None
    images: int = 0
    megapixels: float = 0.0
    deployments: tuple[str, ...] = ()
    """Each deployment tried, in order, as ``provider:upstream``."""
    cost_usd: Decimal | None = None
    stream_error: tuple[int, str | None] | None = None
    """A streamed answer (``stream=true``, 200 on the wire) that ended in an ``error`` event: the status
    and code the error would have had as a JSON answer, which the ledger, metrics and log record."""


class AdmissionSlot(Protocol):
    """A request's admission slot (:class:`app.admission.Slot`), as the routes use it."""

    def inputs_sent(self) -> None:
        """The inputs are with the upstream: the intake budget's share goes back."""

    async def reserve_intake(self, more: int) -> int:
        """``more`` bytes of the intake budget reserved besides those held; returns what was reserved."""

    def return_intake(self, unused: int) -> None:
        """``unused`` bytes of a reservation given back."""

    def released(self) -> AbstractAsyncContextManager[None]:
        """The slot handed on for the duration, then taken back ahead of new arrivals."""

    async def take_back(self) -> None:
        """The slot taken back now, ahead of new arrivals, if it was handed on."""

    def hand_on(self) -> None:
        """The slot handed on again after :meth:`take_back` (waiting on an upstream again)."""

    def close(self) -> None:
        """The slot given back for good (idempotent)."""


class _NoSlot:
    """The slot of a request that holds none (not an image request, no valid key, an async job's
    runner): every step is nothing to do, so callers need not ask whether there is one."""

    def inputs_sent(self) -> None:
        return None

    async def reserve_intake(self, more: int) -> int:
        return 0

    def return_intake(self, unused: int) -> None:
        return None

    def released(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def take_back(self) -> None:
        return None

    def hand_on(self) -> None:
        return None

    def close(self) -> None:
        return None


NO_SLOT: AdmissionSlot = _NoSlot()
"""The slot of every request that holds none."""


class LimitsTicket:
    """One request's standing with its key's limits: the headers to report, and its concurrency slot."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.release: Callable[[], Awaitable[None]] | None = None
        self.hold: asyncio.Future[Any] | None = None

    def hold_until(self, work: asyncio.Future[Any]) -> None:
        """Keep the concurrency slot until ``work`` is over, even when the request ends first.

        For work that outlives its request (an Idempotency-Key request whose client left): leaving
        must not be a way around the cap.
        """
        self.hold = work


@dataclass(eq=False)
class RequestContext:
    """The per-request record; see the module docstring for who fills which field."""

    request_id: str
    timings: Timings
    principal: Principal | None = None
    """Who sent the request; None when it carried no valid API key (the routes that need one answer 401)."""
    credentials_presented: bool = False
    """Whether the request carried a bearer key at all (to word the 401)."""
    auth_error: GatewayError | None = None
    """Why a presented key was refused when the reason is more than "unknown" (revoked, expired, the key
    database away); the routes that need a principal raise it."""
    limits: LimitsTicket | None = None
    """Set by the per-key limits guard (:mod:`app.ratelimit`)."""
    slot: AdmissionSlot = NO_SLOT
    """Set by the admission guard (:mod:`app.admission`); :data:`NO_SLOT` for a request that holds none."""
    outcome: Outcome = field(default_factory=Outcome)

    def inputs_sent(self) -> None:
        """The request's inputs are with its upstream, or will not be sent while it waits (a duplicate of an
        Idempotency-Key request): its share of the intake budget goes back."""
        self.slot.inputs_sent()

    async def reserve_intake(self, more: int) -> int:
        """Reserve ``more`` bytes of the intake budget (an input about to be downloaded), given back with
        the request's other bytes; returns what was reserved (0 for a request without a slot)."""
        return await self.slot.reserve_intake(more)

    def return_intake(self, unused: int) -> None:
        """Give back ``unused`` bytes of what :meth:`reserve_intake` reserved."""
        self.slot.return_intake(unused)

    async def take_slot_back(self) -> None:
        """Take the admission slot back now if it was handed on (a finished result is about to be
        fetched: it waits upstream until the gateway has room); nothing for a request without one."""
        await self.slot.take_back()

    def hand_slot_on(self) -> None:
        """Hand the admission slot on again after :meth:`take_slot_back` (a failover: the request waits on
        an upstream again); nothing for a request without one."""
        self.slot.hand_on()

    def without_slot(self) -> AbstractAsyncContextManager[None]:
        """The admission slot handed on for the duration (waiting on someone else's server), then taken
        back ahead of new arrivals; nothing for a request that holds none."""
        return self.slot.released()

    @asynccontextmanager
    async def upstream(self) -> AsyncIterator[None]:
        """:meth:`without_slot`, with the time inside counted as upstream time."""
        async with self.without_slot():
            started = time.monotonic()
            try:
                yield
            finally:
                self.timings.upstream += time.monotonic() - started


def context_of(scope: Scope) -> RequestContext:
    """The request's context. Raises ``RuntimeError`` outside :class:`RequestContextGuard` (a wiring bug)."""
    context = scope.get(_SCOPE_KEY)
    if not isinstance(context, RequestContext):
        raise RuntimeError("no request context: RequestContextGuard must be the outermost guard")
    return context


async def _request_context(request: Request) -> RequestContext:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    return context_of(request.scope)


RequestContextDep = Annotated[RequestContext, Depends(_request_context)]


class RequestContextGuard:
    """Creates each HTTP request's :class:`RequestContext`, adds ``x-request-id`` to its response (the
    client's, if it sent a sane one) and records the response's status and the total time.

    An exception no handler took (a bug) is logged and answered here, a 500 in the OpenAI shape, so
    that it too carries the request id (the framework's own last-resort handler sits outside)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(
            request_id=_incoming_id(scope) or "req_" + secrets.token_hex(12),
            timings=Timings(started=time.monotonic()),
        )
        scope[_SCOPE_KEY] = context
        request_id = (REQUEST_ID_HEADER.encode(), context.request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), request_id]
                context.outcome.status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                context.timings.total = time.monotonic() - context.timings.started

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if context.outcome.status is not None:  # the answer has started: only the server can end it
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await internal_error_response()(scope, receive, send_with_id)
        finally:
            if context.timings.total is None:  # no complete response (client gone, or cancelled)
                context.timings.total = time.monotonic() - context.timings.started


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 128 and all(ch.isalnum() or ch in "-_.:" for ch in text):
                return text
    return None
