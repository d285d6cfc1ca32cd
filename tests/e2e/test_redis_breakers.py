"""The circuit breakers in the machine's Redis: replicas see one breaker per provider.

Two stores on one Redis stand for two replicas. Each test uses its own key prefix.
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from app.redis_breakers import RedisBreakers
from normalization.routing.breaker import BreakerPolicy

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_replicas_share_one_breaker_and_one_trial() -> None:
    async def run() -> None:
        prefix = f"pixelgate-test-{uuid.uuid4().hex}:"
        policy = BreakerPolicy(failures=2, cooldown_seconds=0.3, trial_seconds=30)
        first_redis, second_redis = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
        try:
            first = RedisBreakers(first_redis, prefix=prefix, policy=policy)
            second = RedisBreakers(second_redis, prefix=prefix, policy=policy)
            assert await first.admit("fal") == "go"
            assert await first.record("fal", failed=True) == "closed"
            assert await second.record("fal", failed=True) == "open"  # failures counted across replicas
            assert await first.admit("fal") == "skip" and await second.admit("fal") == "skip"
            state, left = await first.state("fal")
            assert state == "open" and 0 < left <= 0.3
            assert await second.admit("replicate") == "go"
            await asyncio.sleep(0.35)
            assert (await second.state("fal"))[0] == "half_open"
            admissions = await asyncio.gather(first.admit("fal"), second.admit("fal"), first.admit("fal"))
            assert sorted(admissions) == ["skip", "skip", "trial"]  # exactly one trial across replicas
            await first.abandon("fal")  # its request was cancelled: another may try at once
            assert await second.admit("fal") == "trial"
            assert await second.record("fal", failed=False) == "closed"
            assert await first.admit("fal") == "go"
            ttl = await first_redis.pttl(f"{prefix}breaker:fal")
            assert ttl == -2  # closed: nothing left behind
            await first.abandon("fal")
            assert await first_redis.exists(f"{prefix}breaker:fal") == 0  # abandoning creates no key
            await first.record("fal", failed=True)
            assert 0 < await first_redis.pttl(f"{prefix}breaker:fal") <= 3_600_000  # never kept forever
        finally:
            await first_redis.delete(f"{prefix}breaker:fal")
            await first_redis.aclose()
            await second_redis.aclose()

    asyncio.run(run())


def test_an_unreachable_redis_lets_requests_through() -> None:
    async def run() -> None:
        redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        try:
            store = RedisBreakers(redis, prefix="x:", policy=BreakerPolicy())
            assert await store.admit("fal") == "go"
            assert await store.record("fal", failed=True) == "closed"
            assert await store.state("fal") == ("closed", 0.0)
        finally:
            await redis.aclose()

    asyncio.run(run())
