"""The S3 image store against a real S3 server (SeaweedFS on loopback): in process, then behind a live gateway.

In process: objects under the prefix, streamed back whole, expiry from the object's metadata, the
sweep (only expired images: not the probe, not another application's keys), health, and failures
(wrong credentials, nothing listening) as :class:`StoreError` whose text names no endpoint, bucket
or key. Live: a ``url`` answer's link is served from the bucket; a store that refuses writes is a
503 ``image_store_unavailable`` (never a 200 whose link is dead) and ``/readyz`` says why.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.errors import NotFoundError
from normalization.hosting import StoreError
from normalization.hosting.s3 import PROBE_KEY, S3Connection, S3Location, S3Store
from tests.conftest import TEST_KEY, make_settings
from tests.images import png_bytes
from tests.live import LiveGateway, free_port
from tests.scaleout.seaweed import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3

TTL = 3600
HEADERS = {"Authorization": f"Bearer {TEST_KEY}"}


def connection(seaweed: SeaweedS3, *, secret: str = SECRET_KEY, endpoint: str | None = None) -> S3Connection:
    return S3Connection(
        endpoint_url=endpoint or seaweed.endpoint_url,
        access_key_id=ACCESS_KEY,
        secret_access_key=secret,
        region=REGION,
        connect_timeout_seconds=2,
        max_attempts=1,
    )


@pytest.fixture
async def store(seaweed: SeaweedS3, s3_prefix: str) -> AsyncIterator[S3Store]:
    opened = S3Store(S3Location(seaweed.bucket, s3_prefix), connection(seaweed), TTL)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.aclose()


async def read_all(store: S3Store, name: str, now: float | None = None) -> bytes:
    found = await store.get(name, now)
    return b"".join([chunk async for chunk in found.chunks])


def test_the_url_names_a_bucket_and_a_prefix() -> None:
    assert S3Location.parse("s3://images") == S3Location("images", "")
    assert S3Location.parse("s3://images/pixelgate/results/") == S3Location("images", "pixelgate/results/")
    for bad in ("s3:///prefix", "http://bucket/x", "s3://bucket/x?region=eu"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            S3Location.parse(bad)


async def test_put_then_get_streams_the_object_back(store: S3Store, seaweed: SeaweedS3, s3_prefix: str) -> None:
    data = png_bytes(64, 64) + os.urandom(600_000)  # more than one chunk of the stream
    before = time.time()
    stored = await store.put(data, "image/png")
    assert seaweed.keys(s3_prefix) == [s3_prefix + stored.name]
    assert before + TTL - 1 <= stored.expires_at <= time.time() + TTL + 1
    found = await store.get(stored.name)
    assert (found.image.size, found.image.media_type, found.image.etag) == (len(data), "image/png", stored.etag)
    assert found.image.expires_at == pytest.approx(stored.expires_at, abs=0.001)
    chunks = [chunk async for chunk in found.chunks]
    assert len(chunks) > 1 and b"".join(chunks) == data


async def test_unknown_invalid_and_expired_names_are_not_found(store: S3Store) -> None:
    stored = await store.put(b"\x89PNG small", "image/png")
    assert await read_all(store, stored.name, now=stored.expires_at - 1) == b"\x89PNG small"
    for name, now in (
        (stored.name, stored.expires_at),  # expired, even before any sweep
        ("A" * 32 + ".png", None),
        ("../" + stored.name, None),
        (PROBE_KEY, None),
    ):
        with pytest.raises(NotFoundError):
            await store.get(name, now)


async def test_the_sweep_deletes_expired_images_only(store: S3Store, seaweed: SeaweedS3, s3_prefix: str) -> None:
    old = await store.put(b"old", "image/webp")
    foreign = s3_prefix + "someone-elses-object.txt"
    seaweed.client().put_object(Bucket=seaweed.bucket, Key=foreign, Body=b"keep me")
    assert await store.sweep(time.time()) == 0
    assert await store.sweep(time.time() + TTL + 5) == 1
    assert sorted(seaweed.keys(s3_prefix)) == [foreign]
    with pytest.raises(NotFoundError):
        await store.get(old.name)
    await store.delete(old.name)  # deleting what is gone is no error


async def test_health_writes_and_removes_its_probe(store: S3Store, seaweed: SeaweedS3, s3_prefix: str) -> None:
    health = await store.health()
    assert health.writable and health.problem is None
    assert seaweed.keys(s3_prefix) == []


async def test_refused_credentials_are_a_store_error_naming_the_code_only(seaweed: SeaweedS3, s3_prefix: str) -> None:
    bad = S3Store(S3Location(seaweed.bucket, s3_prefix), connection(seaweed, secret="wrong-secret-key-x"), TTL)
    await bad.open()
    try:
        with pytest.raises(StoreError) as caught:
            await bad.put(b"x", "image/png")
        health = await bad.health()
    finally:
        await bad.aclose()
    message = str(caught.value)
    assert message.startswith("the object store refused to write (")
    assert health.writable is False and health.problem == message
    for secret in (seaweed.bucket, "127.0.0.1", s3_prefix, "wrong-secret", ACCESS_KEY):
        assert secret not in message


async def test_an_unreachable_store_is_a_store_error(seaweed: SeaweedS3, s3_prefix: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    store = S3Store(S3Location(seaweed.bucket, s3_prefix), connection(seaweed, endpoint=nowhere), TTL)
    await store.open()
    try:
        with pytest.raises(StoreError, match=r"^the object store could not be reached to write$"):
            await store.put(b"x", "image/png")
        with pytest.raises(StoreError):
            await store.get("A" * 32 + ".png")
        assert (await store.health()).writable is False
    finally:
        await store.aclose()


def _gateway(tmp_path: Path, seaweed: SeaweedS3, prefix: str, secret: str = SECRET_KEY) -> LiveGateway:
    settings = make_settings(
        tmp_path,
        store_url=f"s3://{seaweed.bucket}/{prefix}",
        s3={"endpoint_url": seaweed.endpoint_url, "access_key_id": ACCESS_KEY, "secret_access_key": secret},
    )
    return LiveGateway(settings)


def _generate(gateway: LiveGateway, **fields: object) -> httpx.Response:
    body = {"model": "sandbox-generate", "prompt": "a lighthouse", "size": "64x64", **fields}
    return httpx.post(f"{gateway.api_url}/images/generations", json=body, headers=HEADERS, timeout=30)


def test_a_live_gateway_hosts_results_in_the_bucket(tmp_path: Path, seaweed: SeaweedS3, s3_prefix: str) -> None:
    with _gateway(tmp_path, seaweed, s3_prefix) as gateway:
        answer = _generate(gateway, response_format="url")
        assert answer.status_code == 200, answer.text
        link = answer.json()["data"][0]["url"]
        image = httpx.get(link, timeout=10)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG") and int(image.headers["content-length"]) == len(image.content)
        etag = image.headers["etag"]
        assert httpx.get(link, headers={"If-None-Match": etag}, timeout=10).status_code == 304
        assert len(seaweed.keys(s3_prefix)) == 1
        assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())
        ready = httpx.get(f"{gateway.base_url}/readyz", timeout=10).json()
        assert ready["checks"]["image_store"] is True


def test_a_store_refusing_writes_is_a_503_and_not_ready(tmp_path: Path, seaweed: SeaweedS3, s3_prefix: str) -> None:
    with _gateway(tmp_path, seaweed, s3_prefix, secret="wrong-secret-key-x") as gateway:
        refused = _generate(gateway, response_format="url")
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "image_store_unavailable"
        assert "the object store refused to write" in error["message"]
        assert refused.headers["x-should-retry"] == "false"
        fallback = httpx.post(
            f"{gateway.api_url}/images/generations",
            json={"model": "sandbox-generate", "prompt": "x", "size": "64x64", "response_format": "url"},
            headers={**HEADERS, "x-pixelgate-url-fallback": "b64_json"},
            timeout=30,
        )
        assert fallback.status_code == 200 and fallback.json()["data"][0]["b64_json"]
        ready = httpx.get(f"{gateway.base_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["image_store"] is False
        assert ready.json()["image_store_problem"].startswith("the object store refused to write")
    assert seaweed.keys(s3_prefix) == []
