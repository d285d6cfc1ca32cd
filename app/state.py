"""Where limits and idempotency state live: this process (default) or Redis (``PIXELGATE_STATE_URL``).

A backend is chosen by the URL's scheme from :data:`BACKENDS`; an unknown scheme is a
configuration error at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.idempotency_state import IdempotencyStore, Leases, LocalLeases, MemoryIdempotencyStore
from app.ratelimit import LimitStore, MemoryLimitStore
from app.redis_breakers import RedisBreakers
from app.redis_state import RedisIdempotencyStore, RedisLeases, RedisLimitStore
from app.settings import Settings
from core.errors import ConfigError
from normalization.routing.breaker import BreakerPolicy, BreakerStore, MemoryBreakers

SLOT_MARGIN_SECONDS = 60.0
"""An in-flight slot in Redis counts for at most the request deadline plus this (a dead process)."""


@dataclass
class StateBackend:
    limits: LimitStore
    idempotency: IdempotencyStore
    leases: Leases
    breakers: BreakerStore
    redis: Redis | None = None

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The circuit breakers' thresholds; a trial may take as long as a request may."""
    return BreakerPolicy(
        failures=settings.breaker_failures,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        trial_seconds=settings.request_timeout_seconds,
    )


def _memory(settings: Settings) -> StateBackend:
    return StateBackend(
        limits=MemoryLimitStore(),
        idempotency=MemoryIdempotencyStore(
            max_entries=settings.idempotency_max_entries, max_bytes=settings.idempotency_max_bytes
        ),
        leases=LocalLeases(),
        breakers=MemoryBreakers(breaker_policy(settings)),
    )


def _redis(settings: Settings) -> StateBackend:
    assert settings.state_url is not None
    redis = Redis.from_url(settings.state_url)
    return StateBackend(
        limits=RedisLimitStore(
            redis,
            prefix=settings.state_prefix,
            # A request's whole life: queued for admission, its upload, its upstream work, then margin.
            slot_max_age_seconds=settings.queue_timeout_seconds
            + settings.upload_timeout_seconds
            + settings.request_timeout_seconds
            + SLOT_MARGIN_SECONDS,
        ),
        idempotency=RedisIdempotencyStore(
            redis, prefix=settings.state_prefix, max_answer_bytes=settings.idempotency_max_bytes
        ),
        leases=RedisLeases(redis, prefix=settings.state_prefix),
        breakers=RedisBreakers(redis, prefix=settings.state_prefix, policy=breaker_policy(settings)),
        redis=redis,
    )


BACKENDS: dict[str, Callable[[Settings], StateBackend]] = {"memory": _memory, "redis": _redis, "rediss": _redis}


def build_state(settings: Settings) -> StateBackend:
    """The backend ``settings.state_url`` names (none: this process). Raises ``ConfigError`` if unknown."""
    scheme = settings.state_url.partition("://")[0] if settings.state_url else "memory"
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"invalid configuration: state_url (PIXELGATE_STATE_URL): unknown scheme '{scheme}' (known: redis, rediss)"
        )
    return backend(settings)
