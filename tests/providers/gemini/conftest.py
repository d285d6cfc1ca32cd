"""Fixtures for the Gemini adapter tests: the fake Gemini, adapters on a real httpx client, calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from pydantic import JsonValue

from core.image_workers import ImageWorkers
from core.images import InputImage
from providers.base import AdapterContext, UpstreamCall
from providers.gemini import GeminiAdapter, GeminiSettings
from tests.fakes.fake_gemini import FakeGemini
from tests.images import png_bytes

KEY = "AIza-adapter-test-key-0123456789"
FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image-preview"

AdapterMaker = Callable[..., GeminiAdapter]


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(gemini_server: FakeGemini) -> FakeGemini:
    gemini_server.reset()
    gemini_server.latency = 0.0
    gemini_server.max_output_side = 64
    return gemini_server


@pytest.fixture
async def gemini_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


def build(base_url: str, client: httpx.AsyncClient, *, key: str | None = KEY, **values: JsonValue) -> GeminiAdapter:
    settings = GeminiSettings.model_validate({"api_key": key, "base_url": base_url, "max_retries": 3, **values})
    adapter = GeminiAdapter(settings, AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1)))
    adapter.backoff_base_seconds = 0.01
    adapter.backoff_cap_seconds = 0.05
    return adapter


@pytest.fixture
def make_adapter(fake: FakeGemini, gemini_client: httpx.AsyncClient) -> AdapterMaker:
    def make(**values: JsonValue) -> GeminiAdapter:
        key = values.pop("key", KEY)
        assert key is None or isinstance(key, str)
        return build(fake.base_url, gemini_client, key=key, **values)

    return make


def image(width: int = 48, height: int = 32) -> InputImage:
    return InputImage(data=png_bytes(width, height), media_type="image/png", width=width, height=height)


def generate_call(
    prompt: str = "a lighthouse", extra: dict[str, JsonValue] | None = None, upstream: str = FLASH
) -> UpstreamCall:
    return UpstreamCall(
        model_id="nano-banana",
        provider="gemini",
        upstream=upstream,
        mode="generate",
        payload={"prompt": prompt, "responseModalities": ["IMAGE"], **(extra or {})},
    )


def edit_call(
    prompt: str = "make it blue", *images: InputImage, extra: dict[str, JsonValue] | None = None, upstream: str = FLASH
) -> UpstreamCall:
    return UpstreamCall(
        model_id="nano-banana",
        provider="gemini",
        upstream=upstream,
        mode="edit",
        payload={"prompt": prompt, "responseModalities": ["IMAGE"], **(extra or {})},
        images=images or (image(),),
        image_field="inlineData",
        image_kind="list",
    )
