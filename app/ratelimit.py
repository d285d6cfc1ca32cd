"""Per-key limits on the image endpoints: a token bucket (requests per minute) and a concurrency cap.

Who is limited: the API key a request authenticated with (a digest of it; the key itself is never
kept), or the client's address when no keys are configured (:func:`client_identity`). The check
runs as a route dependency after authentication, so an unauthenticated flood cannot create
buckets, and before the body is read, so a refused request costs no upload.

Every image-endpoint response (200 or error) carries OpenAI's headers for request limits:
``x-ratelimit-limit-requests`` (the bucket's capacity), ``x-ratelimit-remaining-requests`` and
``x-ratelimit-reset-requests`` (until the bucket is full again, as OpenAI writes durations:
``1s``, ``250ms``, ``6m0s``). A refused request is a 429 with OpenAI's body for rate limits
(``type: requests``, ``code: rate_limit_exceeded``) plus ``retry-after`` (whole seconds, at least 1)
and ``retry-after-ms``, which both official SDKs honour before retrying.

State lives behind :class:`LimitStore` (one process: :class:`MemoryLimitStore`). The
:class:`LimitsMiddleware` adds the headers on the way out and gives the concurrency slot back once
the response is sent or the request is abandoned, whatever happened in between.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import presented_key
from core.errors import RequestRateLimitError

_TICKET = "pixelgate_limits"


@dataclass(frozen=True)
class BucketState:
    """One bucket after a take: whether the request may go, and what the headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    """Until the bucket is full again."""
    retry_after_seconds: float
    """Until the next token (0 when allowed)."""


class LimitStore(Protocol):
    """Where buckets and in-flight counts live. Implementations must be safe for concurrent use."""

    async def take(self, identity: str, *, capacity: int, per_second: float) -> BucketState:
        """Take one token from ``identity``'s bucket (refilled at ``per_second``, full at start)."""
        ...

    async def enter(self, identity: str, *, limit: int) -> str | None:
        """Count one more request in flight for ``identity``: its slot, or None (no count) at ``limit``."""
        ...

    async def leave(self, identity: str, slot: str) -> None:
        """The request that got ``slot`` from :meth:`enter` is over."""
        ...


class MemoryLimitStore:
    """:class:`LimitStore` in this process. At most ``max_identities`` buckets are kept: the least
    recently used is dropped first, which only forgets a bucket that has likely refilled anyway."""

    def __init__(self, *, max_identities: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._max_identities = max_identities
        self._clock = clock

    async def take(self, identity: str, *, capacity: int, per_second: float) -> BucketState:
        now = self._clock()
        tokens, updated = self._buckets.pop(identity, (float(capacity), now))
        tokens = min(float(capacity), tokens + (now - updated) * per_second)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[identity] = (tokens, now)
        while len(self._buckets) > self._max_identities:
            self._buckets.popitem(last=False)
        return BucketState(
            allowed=allowed,
            limit=capacity,
            remaining=int(tokens),
            reset_seconds=(capacity - tokens) / per_second,
            retry_after_seconds=0.0 if allowed else (1.0 - tokens) / per_second,
        )

    async def enter(self, identity: str, *, limit: int) -> str | None:
        current = self._in_flight.get(identity, 0)
        if current >= limit:
            return None
        self._in_flight[identity] = current + 1
        return identity

    async def leave(self, identity: str, slot: str) -> None:
        current = self._in_flight.get(identity, 0) - 1
        if current > 0:
            self._in_flight[identity] = current
        else:
            self._in_flight.pop(identity, None)


@dataclass(frozen=True)
class LimitConfig:
    requests_per_minute: int
    """0 turns the token bucket (and its headers) off."""
    burst: int
    max_concurrent: int
    """0 turns the concurrency cap off."""


@dataclass
class _Ticket:
    """Per-request state shared by the dependency (which fills it) and the middleware (which uses it)."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    release: Callable[[], Awaitable[None]] | None = None
    hold: asyncio.Future[Any] | None = None


def hold_slot_until(request: Request, work: asyncio.Future[Any]) -> None:
    """Keep ``request``'s concurrency slot until ``work`` is over, even when the request ends first.

    For work that outlives its request (an Idempotency-Key request whose client left): leaving must
    not be a way around the cap.
    """
    ticket: _Ticket | None = request.scope.get("state", {}).get(_TICKET)
    if ticket is not None:
        ticket.hold = work


def client_identity(request: Request, *, keyed: bool) -> str:
    """Whom a request counts against: a digest of its bearer key, else the client's address.

    Only meaningful after authentication (with keys configured, the key is then a valid one).
    """
    if keyed:
        presented = presented_key(request.headers.get("authorization", "")) or ""
        return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:32]
    host = request.client.host if request.client else "unknown"
    return "addr:" + host


def duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60.0:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{rest}s"


def _ratelimit_headers(state: BucketState) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-requests", str(state.limit).encode()),
        (b"x-ratelimit-remaining-requests", str(state.remaining).encode()),
        (b"x-ratelimit-reset-requests", duration(state.reset_seconds).encode()),
    ]


def _retry_headers(seconds: float) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


class RateLimiter:
    """The route dependency: take a token, then a concurrency slot; 429 when either is exhausted."""

    def __init__(self, store: LimitStore, config: LimitConfig, *, keyed: bool) -> None:
        self._store = store
        self._config = config
        self._keyed = keyed

    async def __call__(self, request: Request) -> None:
        ticket: _Ticket | None = request.scope.get("state", {}).get(_TICKET)
        if ticket is None:
            raise RuntimeError("RateLimiter needs LimitsMiddleware around the app")
        identity = client_identity(request, keyed=self._keyed)
        config = self._config
        if config.requests_per_minute > 0:
            state = await self._store.take(identity, capacity=config.burst, per_second=config.requests_per_minute / 60)
            ticket.headers = _ratelimit_headers(state)
            if not state.allowed:
                raise RequestRateLimitError(
                    f"Rate limit reached on requests per min (RPM): Limit {config.requests_per_minute}, "
                    f"burst {config.burst}. Please try again in {duration(state.retry_after_seconds)}.",
                    code="rate_limit_exceeded",
                    headers=_retry_headers(state.retry_after_seconds),
                )
        if config.max_concurrent > 0:
            slot = await self._store.enter(identity, limit=config.max_concurrent)
            if slot is None:
                raise RequestRateLimitError(
                    f"Too many concurrent requests: at most {config.max_concurrent} in flight per API key. "
                    "Please try again when one of them has finished.",
                    code="rate_limit_exceeded",
                    headers=_retry_headers(1.0),
                )

            async def release() -> None:
                await self._store.leave(identity, slot)

            ticket.release = release


class LimitsMiddleware:
    """Adds the limiter's headers to the response and releases its concurrency slot afterwards."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._releasing: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = _Ticket()
        scope.setdefault("state", {})[_TICKET] = ticket

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and ticket.headers:
                message["headers"] = [*message.get("headers", []), *ticket.headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            release, hold = ticket.release, ticket.hold
            if release is not None and hold is not None and not hold.done():
                hold.add_done_callback(lambda _: self._later(release))
            elif release is not None:
                await release()

    def _later(self, release: Callable[[], Awaitable[None]]) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(release())
        self._releasing.add(task)  # a strong reference until it has run
        task.add_done_callback(self._releasing.discard)


def build_limiter(
    *,
    requests_per_minute: int,
    burst: int | None,
    max_concurrent: int,
    keyed: bool,
    store: LimitStore | None = None,
) -> RateLimiter:
    """The dependency for the settings' limits (burst defaults to one minute's worth of requests)."""
    config = LimitConfig(
        requests_per_minute=requests_per_minute,
        burst=burst or max(1, requests_per_minute),
        max_concurrent=max_concurrent,
    )
    return RateLimiter(store or MemoryLimitStore(), config, keyed=keyed)
