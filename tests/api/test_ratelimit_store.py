"""The in-memory token bucket's arithmetic and bounds, on a clock the test moves."""

from __future__ import annotations

import pytest

from app.ratelimit import MemoryLimitStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    clock = Clock()
    store = MemoryLimitStore(clock=clock)
    first = await store.take("k", capacity=2, per_second=1.0)
    second = await store.take("k", capacity=2, per_second=1.0)
    assert (first.allowed, first.remaining, second.allowed, second.remaining) == (True, 1, True, 0)
    assert second.reset_seconds == pytest.approx(2.0)
    refused = await store.take("k", capacity=2, per_second=1.0)
    assert not refused.allowed and refused.retry_after_seconds == pytest.approx(1.0)
    clock.now += 0.5
    assert (await store.take("k", capacity=2, per_second=1.0)).retry_after_seconds == pytest.approx(0.5)
    clock.now += 0.5
    assert (await store.take("k", capacity=2, per_second=1.0)).allowed
    clock.now += 3600
    full = await store.take("k", capacity=2, per_second=1.0)
    assert full.allowed and full.remaining == 1  # refilled to capacity, not beyond


async def test_identities_are_independent_and_bounded() -> None:
    clock = Clock()
    store = MemoryLimitStore(max_identities=2, clock=clock)
    await store.take("a", capacity=1, per_second=0.001)
    assert not (await store.take("a", capacity=1, per_second=0.001)).allowed
    assert (await store.take("b", capacity=1, per_second=0.001)).allowed
    await store.take("c", capacity=1, per_second=0.001)  # evicts "a", the least recently used
    assert (await store.take("a", capacity=1, per_second=0.001)).allowed


async def test_in_flight_slots_count_up_to_the_limit_and_come_back() -> None:
    store = MemoryLimitStore()
    first = await store.enter("k", limit=2)
    second = await store.enter("k", limit=2)
    assert first is not None and second is not None
    assert await store.enter("k", limit=2) is None
    await store.leave("k", first)
    assert await store.enter("k", limit=2) is not None
