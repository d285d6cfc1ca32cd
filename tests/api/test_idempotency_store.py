"""The in-memory idempotency store stays within its bounds: entries, bytes, lifetime."""

from __future__ import annotations

from app.idempotency_state import MemoryIdempotencyStore, StoredResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _answer(size: int, expires_at: float = 2000.0) -> StoredResponse:
    return StoredResponse("fp", 200, (("content-type", "application/json"),), b"x" * size, expires_at)


async def test_oldest_entries_go_first_beyond_max_entries() -> None:
    store = MemoryIdempotencyStore(max_entries=2, max_bytes=10**6, clock=Clock())
    for key in ("a", "b", "c"):
        await store.put(key, _answer(10))
    assert await store.get("a") is None
    assert await store.get("b") is not None and await store.get("c") is not None
    assert len(store) == 2


async def test_bytes_stay_under_max_bytes() -> None:
    store = MemoryIdempotencyStore(max_entries=100, max_bytes=3000, clock=Clock())
    for key in "abcdefgh":
        await store.put(key, _answer(1000))
        assert store.bytes_used <= 3000
    assert len(store) == 2
    assert await store.get("h") is not None


async def test_an_answer_larger_than_the_budget_is_not_stored() -> None:
    store = MemoryIdempotencyStore(max_entries=100, max_bytes=3000, clock=Clock())
    await store.put("small", _answer(10))
    await store.put("huge", _answer(5000))
    assert await store.get("huge") is None
    assert await store.get("small") is not None


async def test_expired_entries_are_dropped() -> None:
    clock = Clock()
    store = MemoryIdempotencyStore(max_entries=10, max_bytes=10**6, clock=clock)
    await store.put("k", _answer(10, expires_at=1010.0))
    assert await store.get("k") is not None
    clock.now = 1010.0
    assert await store.get("k") is None
    assert len(store) == 0 and store.bytes_used == 0


async def test_replacing_a_key_does_not_leak_bytes() -> None:
    store = MemoryIdempotencyStore(max_entries=10, max_bytes=10**6, clock=Clock())
    await store.put("k", _answer(100))
    used = store.bytes_used
    await store.put("k", _answer(100))
    assert store.bytes_used == used and len(store) == 1
