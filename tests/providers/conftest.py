"""Fixtures for adapter tests: the fake fal server, a real httpx client, adapters built on it.

The fake OpenAI server (``openai_server``, ``fake_openai``) is in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from pydantic import JsonValue

from core.image_workers import ImageWorkers
from core.images import InputImage
from providers.base import AdapterContext, UpstreamCall
from providers.fal import FalAdapter, FalSettings
from tests.fakes.fake_fal import FakeFal
from tests.images import png_bytes

FAL_TEST_KEY = "fal-key-id:fal-key-secret-0123456789"

AdapterMaker = Callable[..., FalAdapter]


@pytest.fixture
def fake_fal() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_TEST_KEY, latency=0.05) as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


def fast_adapter(settings: FalSettings, client: httpx.AsyncClient) -> FalAdapter:
    """An adapter with test-sized backoff (real code paths, shorter waits)."""
    adapter = FalAdapter(settings, AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1)))
    adapter.backoff_base_seconds = 0.01
    adapter.backoff_cap_seconds = 0.05
    return adapter


@pytest.fixture
def make_adapter(fake_fal: FakeFal, http_client: httpx.AsyncClient) -> AdapterMaker:
    def make(
        *,
        api_key: str | None = FAL_TEST_KEY,
        max_retries: int = 3,
        upload_threshold_bytes: int = 4 * 1024 * 1024,
        status_stream: bool = True,
    ) -> FalAdapter:
        settings = FalSettings(
            api_key=api_key,
            base_url=fake_fal.base_url,
            storage_url=fake_fal.storage_url,
            max_retries=max_retries,
            upload_threshold_bytes=upload_threshold_bytes,
            status_stream=status_stream,
            connect_timeout_seconds=2.0,
            read_timeout_seconds=10.0,
        )
        return fast_adapter(settings, http_client)

    return make


def input_image(width: int = 96, height: int = 64) -> InputImage:
    return InputImage(data=png_bytes(width, height), media_type="image/png", width=width, height=height)


def edit_call(prompt: str = "make it blue", extra: dict[str, JsonValue] | None = None) -> UpstreamCall:
    return UpstreamCall(
        model_id="hidream-e1-1",
        provider="fal",
        upstream="fal-ai/hidream-e1-1",
        mode="edit",
        payload={"prompt": prompt, **(extra or {})},
        images=(input_image(),),
        image_field="image_url",
    )


def generate_call(prompt: str = "a lighthouse", extra: dict[str, JsonValue] | None = None) -> UpstreamCall:
    return UpstreamCall(
        model_id="hidream-i1-full",
        provider="fal",
        upstream="fal-ai/hidream-i1-full",
        mode="generate",
        payload={"prompt": prompt, "image_size": {"width": 128, "height": 96}, **(extra or {})},
    )
