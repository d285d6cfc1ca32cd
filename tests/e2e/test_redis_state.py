"""Issue 7, shared state: two pixelgate processes (two live servers) on one Redis (127.0.0.1:6379).

They share the token buckets, the in-flight counts and the stored Idempotency-Key answers. Each
test uses its own key prefix, so parallel runs and other users of the Redis do not meet.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway
from tests.polling import wait_until

REDIS_URL = "redis://127.0.0.1:6379/0"
FAL_KEY = "redis-fal-key:secret"
HEADERS = {"Authorization": f"Bearer {TEST_KEY}"}


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
    with FakeFal(api_key=FAL_KEY, latency=0.05) as server:
        yield server


@contextlib.contextmanager
def two_gateways(tmp_path: Path, prefix: str, fake: FakeFal, **overrides: object) -> Iterator[tuple[str, str]]:
    """Two servers, as two worker processes would be: the same settings, separate memory."""
    servers = [
        LiveGateway(
            make_settings(
                tmp_path / name,
                state_url=REDIS_URL,
                state_prefix=prefix,
                providers={"fal": {"api_key": FAL_KEY, "base_url": fake.base_url, "storage_url": fake.storage_url}},
                **overrides,
            )
        )
        for name in ("one", "two")
    ]
    with servers[0] as one, servers[1] as two:
        yield one.api_url, two.api_url


def _generate(api_url: str, prompt: str = "x", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": "hidream-i1-full", "prompt": prompt, "size": "64x64", "response_format": "b64_json"}
    return httpx.post(f"{api_url}/images/generations", json=body, headers={**HEADERS, **(headers or {})}, timeout=30)


def test_the_bucket_is_shared(tmp_path: Path, prefix: str, fake: FakeFal) -> None:
    with two_gateways(tmp_path, prefix, fake, rate_limit_rpm=1, rate_limit_burst=2) as (one, two):
        assert _generate(one).headers["x-ratelimit-remaining-requests"] == "1"
        assert _generate(two).headers["x-ratelimit-remaining-requests"] == "0"
        refused = _generate(one)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "requests"
    assert int(refused.headers["retry-after"]) >= 59


def test_an_answer_stored_by_one_process_is_replayed_by_the_other(tmp_path: Path, prefix: str, fake: FakeFal) -> None:
    key = {"Idempotency-Key": f"redis-{uuid.uuid4()}"}
    with two_gateways(tmp_path, prefix, fake) as (one, two):
        first = _generate(one, headers=key)
        again = _generate(two, headers=key)
        other = _generate(two, "another prompt", headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(fake.submissions) == 1


def test_the_concurrency_cap_is_shared_and_slots_come_back(tmp_path: Path, prefix: str, fake: FakeFal) -> None:
    fake.latency = 3.0
    with two_gateways(tmp_path, prefix, fake, max_concurrent_per_key=1) as (one, two):
        slow = threading.Thread(target=_generate, args=(one, "slow"))
        slow.start()
        # Once fal has the submission, the slow request holds the key's only slot (for 3 s more).
        wait_until(lambda: len(fake.submissions) == 1, "the slow request reached fal")
        refused = _generate(two, "meanwhile")
        slow.join(timeout=30)
        fake.latency = 0.05
        after = _generate(two, "after")
    assert refused.status_code == 429
    assert after.status_code == 200


def test_an_unknown_state_url_is_a_configuration_error(tmp_path: Path) -> None:
    from app.main import create_app

    with pytest.raises(ValueError, match="unknown scheme 'memcached'"):
        create_app(make_settings(tmp_path, state_url="memcached://127.0.0.1:11211"))


def test_an_unreachable_redis_is_a_503_not_a_500(tmp_path: Path, fake: FakeFal) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = make_settings(tmp_path, state_url=f"redis://127.0.0.1:{closed_port}/0")
    with LiveGateway(settings) as live:
        response = _generate(live.api_url)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "state_unavailable"
    assert response.headers["retry-after"] == "1"
