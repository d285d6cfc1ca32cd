"""Per-key limits on the image endpoints: a token bucket (requests per minute) and a concurrency cap.

Who is limited: the request's :class:`~app.principal.Principal` (its ``key_id``: a digest of the API key,
or the client's address when no keys are configured). :class:`LimitsGuard` runs after the
authentication guard, so an unauthenticated flood cannot create buckets, and before admission and
the body read, so a refused request costs no upload and no place in the shared admission queue (a
key's requests waiting there count against its concurrency cap).

Every image-endpoint response (200 or error) carries OpenAI's headers for request limits:
``x-ratelimit-limit-requests`` (the bucket's capacity), ``x-ratelimit-remaining-requests`` and
``x-ratelimit-reset-requests`` (until the bucket is full again, as OpenAI writes durations:
``1s``, ``250ms``, ``6m0s``). A refused request is a 429 with OpenAI's body for rate limits
(``type: requests``, ``code: rate_limit_exceeded``) plus ``retry-after`` (whole seconds, at least 1)
and ``retry-after-ms``, which both official SDKs honour before retrying.

State lives behind :class:`LimitStore` (one process: :class:`MemoryLimitStore`). The guard adds the
headers on the way out and gives the concurrency slot back once the response is sent or the request
is abandoned, whatever happened in between.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import LimitsTicket, context_of
from app.handlers import error_response
from app.principal import Principal
from core.errors import GatewayError, RequestRateLimitError


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


class LimitsGuard:
    """Takes a token, then a concurrency slot, for each image request of an authenticated principal;
    answers 429 when either is exhausted, adds the headers to every answer and gives the slot back
    once the request (or the work it handed on) is over. Requests on other paths, and those without
    a principal (answered 401 by the route), pass untouched."""

    def __init__(self, app: ASGIApp, store: LimitStore, config: LimitConfig, *, paths: frozenset[str]) -> None:
        self.app = app
        self._store = store
        self._config = config
        self._paths = paths
        self._releasing: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope) if scope["type"] == "http" and scope["path"] in self._paths else None
        if context is None or context.principal is None:
            await self.app(scope, receive, send)
            return
        ticket = context.limits = LimitsTicket()

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and ticket.headers:
                message["headers"] = [*message.get("headers", []), *ticket.headers]
            await send(message)

        try:
            await self._admit(context.principal, ticket)
        except GatewayError as exc:  # a 429, or the shared store unavailable (503)
            await error_response(exc)(scope, receive, send_with_limits)
            return
        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            release, hold = ticket.release, ticket.hold
            if release is not None and hold is not None and not hold.done():
                hold.add_done_callback(lambda _: self._later(release))
            elif release is not None:
                await release()

    async def _admit(self, principal: Principal, ticket: LimitsTicket) -> None:
        identity = principal.key_id
        config = self._config
        rpm = config.requests_per_minute if principal.rpm is None else principal.rpm
        burst = config.burst if principal.rpm is None else max(1, principal.rpm)
        if rpm > 0:
            state = await self._store.take(identity, capacity=burst, per_second=rpm / 60)
            ticket.headers = _ratelimit_headers(state)
            if not state.allowed:
                raise RequestRateLimitError(
                    f"Rate limit reached on requests per min (RPM): Limit {rpm}, "
                    f"burst {burst}. Please try again in {duration(state.retry_after_seconds)}.",
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

    def _later(self, release: Callable[[], Awaitable[None]]) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(release())
        self._releasing.add(task)  # a strong reference until it has run
        task.add_done_callback(self._releasing.discard)


def limit_config(*, requests_per_minute: int, burst: int | None, max_concurrent: int) -> LimitConfig:
    """The settings' limits (burst defaults to one minute's worth of requests)."""
    return LimitConfig(
        requests_per_minute=requests_per_minute,
        burst=burst or max(1, requests_per_minute),
        max_concurrent=max_concurrent,
    )
