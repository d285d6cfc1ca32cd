"""The pipeline in process, with a fake adapter registered through the provider registry.

The fake makes real PNGs (Pillow) and records its calls; the gateway around it is the one the app
builds (plan, fan-out, exact size, output format, response format, hosting), minus HTTP.
"""

from __future__ import annotations

import asyncio
import errno
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from core.errors import (
    ImageStoreUnavailableError,
    InvalidRequestError,
    ProviderNotConfiguredError,
    UpstreamTimeoutError,
)
from core.image_workers import ImageWorkers
from core.images import ImageMediaType
from core.provider_settings import ProviderSettings
from normalization.catalog import Catalog, Model, ModelEntry
from normalization.hosting import DirectoryStore, ImageHost, LinkSigner, StoredImage
from normalization.pipeline import Gateway, GatewayConfig
from normalization.request import ImageRequest
from normalization.response import ImagesResponse
from providers.base import AdapterContext, GeneratedImage, ImageAdapter, ProviderResult, ResultLimits, UpstreamCall
from providers.kind import ProviderKind
from providers.registry import build_adapters, register, unregister

KIND = "test-fake"


class FakeAdapter(ImageAdapter):
    """Answers each call with ``expected_images`` solid PNGs of 40x20 (what the call's payload says
    otherwise); ``fail`` makes it raise, ``delay`` makes it slow."""

    def __init__(self) -> None:
        self.calls: list[UpstreamCall] = []
        self.fail: Exception | None = None
        self.delay = 0.0

    async def run(self, call: UpstreamCall) -> ProviderResult:
        self.calls.append(call)
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        count = call.payload.get("num_images", 1)
        assert isinstance(count, int)
        return ProviderResult(images=tuple(GeneratedImage(data=_png(40, 20), seed=i) for i in range(count)))


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


ENTRY = ModelEntry.model_validate(
    {
        "id": "fake-model",
        "provider": "fakes",
        "upstream": "fake/v1",
        "modes": ["generate"],
        "count": {"field": "num_images", "max": 2},
        "output_format": {"values": ["png"], "default": "png"},
        "params": {"steps": {"type": "integer", "upstream": "num_steps", "minimum": 1, "maximum": 9}},
    }
)


class FullStore(DirectoryStore):
    full = False

    async def put(self, data: bytes, media_type: ImageMediaType) -> StoredImage:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await super().put(data, media_type)


@dataclass
class Served:
    gateway: Gateway
    adapter: FakeAdapter
    store: FullStore

    async def answer(self, *, fallback: bool = False, **fields: Any) -> ImagesResponse:
        request = ImageRequest.model_validate({"model": "fake-model", "prompt": "a cat", **fields})
        plan = self.gateway.plan(request, "generate", None, strict=False, url_fallback=fallback)
        return await self.gateway.execute(plan, base_url="http://gw")


@pytest.fixture
def registered() -> Iterator[FakeAdapter]:
    adapter = FakeAdapter()
    register(ProviderKind(name=KIND, settings_model=ProviderSettings, adapter=lambda settings, context: adapter))
    try:
        yield adapter
    finally:
        unregister(KIND)


@pytest.fixture
async def served(registered: FakeAdapter, tmp_path: Path) -> AsyncIterator[Served]:
    workers = ImageWorkers(max_workers=2)
    store = FullStore(tmp_path / "images", ttl_seconds=60)
    async with httpx.AsyncClient() as client:
        adapters = build_adapters(
            {"fakes": ProviderSettings(kind=KIND)},
            AdapterContext(client=client, image_workers=workers, limits=ResultLimits(max_pixels=10**7)),
        )
        assert adapters["fakes"] is registered
        gateway = Gateway(
            catalog=Catalog([Model.model_validate(ENTRY.model_dump())]),
            adapters=adapters,
            workers=workers,
            host=ImageHost(store, LinkSigner(b"s" * 32)),
            config=GatewayConfig(request_timeout_seconds=0.5, max_fanout_per_request=4, max_pixels=10**7),
            global_slots=asyncio.Semaphore(8),
        )
        try:
            yield Served(gateway, registered, store)
        finally:
            workers.close()


async def test_n_fans_out_and_every_stage_runs_in_order(served: Served) -> None:
    answer = await served.answer(n=3, size="64x64", output_format="webp", response_format="b64_json", steps="4")
    assert [call.payload["num_images"] for call in served.adapter.calls] == [2, 1]
    assert all(call.payload["num_steps"] == 4 for call in served.adapter.calls)
    assert len(answer.data) == 3 and answer.size == "64x64" and answer.output_format == "webp"
    for item in answer.data:
        assert item.image is not None
        with Image.open(io.BytesIO(item.image.data)) as img:
            assert (img.format, img.size) == ("WEBP", (64, 64))
    assert answer.metadata.upstream_calls == 2
    assert answer.metadata.resized and answer.metadata.converted
    assert answer.metadata.parameters["n"].behavior == "emulated"


async def test_url_answers_are_hosted(served: Served) -> None:
    answer = await served.answer()
    url = answer.data[0].url
    assert url is not None and url.startswith("http://gw/v1/images/")
    assert len(list(served.store.root.iterdir())) == 1
    assert answer.data[0].image is None and answer.size == "40x20"


async def test_a_full_store_is_a_503_after_the_upstream_work(served: Served) -> None:
    served.store.full = True
    with pytest.raises(ImageStoreUnavailableError):
        await served.answer(n=2)
    assert len(served.adapter.calls) == 1


async def test_a_full_store_with_the_fallback_allowed_answers_inline_with_a_warning(served: Served) -> None:
    served.store.full = True
    answer = await served.answer(n=2, fallback=True)
    assert all(item.image is not None and item.url is None for item in answer.data)
    assert any("returned inline as b64_json" in warning for warning in answer.metadata.warnings)


async def test_upstream_field_names_in_errors_become_the_clients(served: Served) -> None:
    served.adapter.fail = InvalidRequestError("bad count", param="num_images")
    with pytest.raises(InvalidRequestError) as caught:
        await served.answer(n=2)
    assert caught.value.param == "n"


async def test_the_deadline_is_a_504(served: Served) -> None:
    served.adapter.delay = 5.0
    with pytest.raises(UpstreamTimeoutError):
        await served.answer()


async def test_a_provider_without_an_adapter_is_a_503(registered: FakeAdapter, tmp_path: Path) -> None:
    workers = ImageWorkers(max_workers=1)
    try:
        gateway = Gateway(
            catalog=Catalog([Model.model_validate(ENTRY.model_dump())]),
            adapters={},
            workers=workers,
            host=ImageHost(DirectoryStore(tmp_path, 60), LinkSigner(b"s" * 32)),
            config=GatewayConfig(request_timeout_seconds=1, max_fanout_per_request=1, max_pixels=10**6),
            global_slots=asyncio.Semaphore(1),
        )
        plan = gateway.plan(ImageRequest(model="fake-model", prompt="p"), "generate", None, strict=False)
        with pytest.raises(ProviderNotConfiguredError):
            await gateway.execute(plan, base_url="http://gw")
    finally:
        workers.close()
