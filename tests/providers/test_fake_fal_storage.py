"""The fake fal's storage speaks fal's own upload flows, so fal's Python client can upload to it.

``fal-client`` has its hosts as module constants (``REST_URL``, ``CDN_URL``, ``QUEUE_URL_FORMAT``);
they are pointed at the fake on loopback for each test, so the client's real code paths run: the CDN
v3 token, the single ``POST /files/upload``, the multipart upload, the ``storage/upload/initiate``
fallback, and a queue job that reads the uploaded image.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime

import fal_client
import httpx
import pytest
from fal_client import client as fal_module
from PIL import Image

from tests.fakes.fake_fal import FakeFal
from tests.fakes.fal_images import render_as
from tests.providers.conftest import FAL_TEST_KEY


@pytest.fixture
def fal(fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch) -> Iterator[fal_client.SyncClient]:
    monkeypatch.setattr(fal_module, "REST_URL", fake_fal.storage_url)
    monkeypatch.setattr(fal_module, "CDN_URL", fake_fal.storage_url)
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", f"{fake_fal.base_url}/")
    # The sync client never closes the httpx clients it makes for the CDN, nor its own: kept here to
    # close them, so the test suite's unclosed-socket check stays meaningful.
    made: list[httpx.Client] = []
    make_cdn_client = fal_client.SyncClient._get_cdn_client

    def tracked(self: fal_client.SyncClient) -> httpx.Client:
        made.append(make_cdn_client(self))
        return made[-1]

    monkeypatch.setattr(fal_client.SyncClient, "_get_cdn_client", tracked)
    client = fal_client.SyncClient(key=FAL_TEST_KEY)
    yield client
    if "_client" in vars(client):
        made.append(client._client)
    for http in made:
        http.close()


def test_storage_auth_token_is_a_cdn_token_not_a_queue_submit(fake_fal: FakeFal) -> None:
    url = f"{fake_fal.storage_url}/storage/auth/token?storage_type=fal-cdn-v3"
    response = httpx.post(url, json={}, headers={"Authorization": f"Key {FAL_TEST_KEY}"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "token_type", "base_url", "expires_at"}
    assert body["token_type"] == "Bearer" and body["base_url"] == fake_fal.base_url
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
    assert fake_fal.cdn_tokens == [body["token"]]
    assert fake_fal.attempts == []  # nothing was queued
    assert httpx.post(url, json={}).status_code == 401
    unauthorized = httpx.post(f"{fake_fal.base_url}/files/upload", content=b"x", headers={"Authorization": "Bearer no"})
    assert unauthorized.status_code == 401


def test_fal_client_uploads_through_the_cdn_v3_flow(fal: fal_client.SyncClient, fake_fal: FakeFal) -> None:
    png = render_as(40, 30, 1, "png")
    url = fal.upload(png, "image/png", "input.png")
    assert url.startswith(f"{fake_fal.base_url}/files/") and url.endswith("/input.png")
    assert httpx.get(url).content == png
    assert len(fake_fal.cdn_tokens) == 1
    assert list(fake_fal.uploads.values()) == [png]
    assert fake_fal.attempts == []


def test_fal_client_multipart_upload(
    fal: fal_client.SyncClient, fake_fal: FakeFal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fal_module, "MULTIPART_THRESHOLD", 1000)
    monkeypatch.setattr(fal_module, "MULTIPART_CHUNK_SIZE", 512)
    data = bytes(range(256)) * 12  # 3072 bytes: six parts
    url = fal.upload(data, "application/octet-stream", "big.bin")
    assert httpx.get(url).content == data


def test_fal_client_storage_fallback(fal: fal_client.SyncClient, fake_fal: FakeFal) -> None:
    url = fal.upload(b"plain bytes", "text/plain", "note.txt", repository="fal")
    assert httpx.get(url).content == b"plain bytes"
    assert fake_fal.cdn_tokens == []


def test_fal_client_uploads_then_runs_a_job_on_the_upload(fal: fal_client.SyncClient, fake_fal: FakeFal) -> None:
    image_url = fal.upload_image(Image.open(io.BytesIO(render_as(72, 48, 2, "png"))), format="png")
    handle = fal.submit("fal-ai/hidream-e1-1", arguments={"image_url": image_url, "prompt": "make it blue"})
    result = handle.get()
    assert [(image["width"], image["height"]) for image in result["images"]] == [(72, 48)]
    assert fake_fal.submissions[0].payload["image_url"] == image_url
    assert fake_fal.status_polls >= 1
