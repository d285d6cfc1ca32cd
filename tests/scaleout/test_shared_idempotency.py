"""A running Idempotency-Key request is awaited across replicas: two live gateways on one Redis.

The second replica finds the first's lease and waits for its stored answer (one upstream job, at the
fake fal); a different request with the key while the first runs is a 409 at once; a first request
that ends without an answer to keep (a failed job) lets the waiting duplicate run afresh. The lease
primitives are checked on their own against the real Redis, expiry included (a replica that died).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from app.redis_state import RedisLeases
from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
FAL_KEY = "scaleout-fal-key:secret"
HEADERS = {"Authorization": f"Bearer {TEST_KEY}"}
SLOW_JOB_SECONDS = 6


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"pixelgate-test-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    with contextlib.closing(client):
        keys = list(client.scan_iter(match=f"{name}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def fake() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_KEY, latency=1.0) as server:
        yield server


@pytest.fixture
def replicas(tmp_path: Path, prefix: str, fake: FakeFal) -> Iterator[tuple[str, str]]:
    servers = [
        LiveGateway(
            make_settings(
                tmp_path / name,
                state_url=REDIS_URL,
                state_prefix=prefix,
                providers={"fal": {"api_key": FAL_KEY, "base_url": fake.base_url, "storage_url": fake.storage_url}},
            )
        )
        for name in ("one", "two")
    ]
    with servers[0] as one, servers[1] as two:
        yield one.api_url, two.api_url


def _generate(api_url: str, key: str, prompt: str = "a harbour at dawn") -> httpx.Response:
    body = {"model": "hidream-i1-full", "prompt": prompt, "size": "64x64", "response_format": "b64_json"}
    return httpx.post(
        f"{api_url}/images/generations", json=body, headers={**HEADERS, "Idempotency-Key": key}, timeout=60
    )


def _in_background(
    api_url: str, key: str, prompt: str = "a harbour at dawn"
) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(_generate(api_url, key, prompt)))
    thread.start()
    return thread, answers


def test_a_duplicate_on_another_replica_waits_for_the_first_answer(replicas: tuple[str, str], fake: FakeFal) -> None:
    one, two = replicas
    thread, first = _in_background(one, "order-1")
    wait_until(lambda: len(fake.submissions) == 1, "the first request's job reached the fake fal")
    second = _generate(two, "order-1")
    thread.join(timeout=60)
    assert first[0].status_code == 200 and second.status_code == 200, second.text
    assert second.json()["data"] == first[0].json()["data"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first[0].headers
    assert len(fake.submissions) == 1
    # And once stored, a third try on either replica is a replay without a job.
    assert _generate(one, "order-1").headers["idempotent-replayed"] == "true"
    assert len(fake.submissions) == 1


def test_another_request_with_a_key_running_elsewhere_is_a_409(replicas: tuple[str, str], fake: FakeFal) -> None:
    one, two = replicas
    thread, first = _in_background(one, "order-2", prompt=f"a harbour [fake:slow:{SLOW_JOB_SECONDS}]")
    wait_until(lambda: len(fake.submissions) == 1, "the first request's job reached the fake fal")
    other = _generate(two, "order-2", prompt="something else entirely")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # Answered while the first still ran: a 409 that waited for the first's stored answer would look
    # the same, but come after it (a clock's bound instead failed on a loaded host).
    assert thread.is_alive() and not first
    thread.join(timeout=60)
    assert first[0].status_code == 200 and len(fake.submissions) == 1


def test_a_first_request_without_an_answer_to_keep_lets_the_duplicate_run(
    replicas: tuple[str, str], fake: FakeFal
) -> None:
    one, two = replicas
    fake.next_scenarios.append("completed_error")  # the first job fails after its latency: a 502, not kept
    thread, first = _in_background(one, "order-3")
    wait_until(lambda: len(fake.submissions) == 1, "the first request's job reached the fake fal")
    second = _generate(two, "order-3")
    thread.join(timeout=60)
    assert first[0].status_code == 502
    assert second.status_code == 200 and "idempotent-replayed" not in second.headers
    assert len(fake.submissions) == 2


async def test_lease_primitives_on_redis(prefix: str) -> None:
    client = AsyncRedis.from_url(REDIS_URL)
    try:
        leases = RedisLeases(client, prefix=prefix)
        mine = await leases.claim("k", "fp-a", ttl_seconds=0.4)
        assert mine.token is not None and mine.token.startswith("fp-a ")
        theirs = await leases.claim("k", "fp-b", ttl_seconds=5)
        assert (theirs.token, theirs.holder) == (None, "fp-a")
        assert await leases.holder("k") == "fp-a"
        assert await leases.renew("k", mine.token, ttl_seconds=0.4)
        assert not await leases.renew("k", "fp-a someone-else", ttl_seconds=5)
        await leases.release("k", "fp-a someone-else")  # not the holder: nothing happens
        assert await leases.holder("k") == "fp-a"
        await asyncio.sleep(0.6)  # not renewed, as by a replica that died
        assert await leases.holder("k") is None
        again = await leases.claim("k", "fp-b", ttl_seconds=5)
        assert again.token is not None
        assert not await leases.renew("k", mine.token, ttl_seconds=5)  # the old holder lost it
        await leases.release("k", again.token)
        assert await leases.holder("k") is None
    finally:
        await client.aclose()
