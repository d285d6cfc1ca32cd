"""The offline sandbox adapter, in process: its Pillow work goes through the shared bounded pool,
inputs are checked against the pixel cap before any decode, and a corrupt input is the client's 400.

Issue 12 item 2: eight concurrent edits of a 7.8 KB 8000x8000 1-bit PNG took the server from 1.5
to 8.2 GiB because each decoded in a thread of its own. Memory is proportional to the images
decoded at once, so the guarantee is that no more run than the pool has workers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest

from core.errors import InvalidRequestError
from core.image_workers import ImageWorkers
from core.images import InputImage, probe_input
from core.provider_settings import ProviderSettings
from providers.base import AdapterContext, ResultLimits, UpstreamCall
from providers.sandbox import SandboxAdapter
from tests.images import bilevel_png, png_bytes

T = TypeVar("T")


class CountingWorkers(ImageWorkers):
    """The real pool, counting the jobs it runs and how many ran at once."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self.jobs = 0
        self.most = 0
        self._running = 0
        self._lock = threading.Lock()

    async def run(self, job: Callable[[], T]) -> T:
        def counted() -> T:
            with self._lock:
                self.jobs += 1
                self._running += 1
                self.most = max(self.most, self._running)
            try:
                return job()
            finally:
                with self._lock:
                    self._running -= 1

        return await super().run(counted)


@pytest.fixture
def workers() -> Iterator[CountingWorkers]:
    pool = CountingWorkers(max_workers=2)
    try:
        yield pool
    finally:
        pool.close()


def _sandbox(workers: ImageWorkers, max_pixels: int) -> SandboxAdapter:
    # The sandbox makes no HTTP request: the client is never opened.
    context = AdapterContext(
        client=httpx.AsyncClient(), image_workers=workers, limits=ResultLimits(max_pixels=max_pixels)
    )
    return SandboxAdapter(ProviderSettings(kind="sandbox"), context)


def edit_call(image: InputImage, mask: InputImage | None = None, count: int = 1) -> UpstreamCall:
    return UpstreamCall(
        model_id="sandbox-edit",
        provider="sandbox",
        upstream="sandbox/edit",
        mode="edit",
        payload={"prompt": "night", "num_images": count, "seed": 1},
        images=(image,),
        image_field="image",
        mask=mask,
        mask_field="mask" if mask is not None else None,
        expected_images=count,
    )


def unchecked(data: bytes) -> InputImage:
    """An input as an adapter may receive it, whatever checks ran before (width/height unused here)."""
    return InputImage(data=data, media_type="image/png", width=1, height=1)


async def test_every_image_is_drawn_in_the_shared_pool_never_more_at_once_than_its_workers(
    workers: CountingWorkers,
) -> None:
    adapter = _sandbox(workers, 64_000_000)
    source = probe_input(png_bytes(600, 400), param="image", max_pixels=64_000_000)
    results = await asyncio.gather(*(adapter.run(edit_call(source, count=2)) for _ in range(6)))
    assert sum(len(result.images) for result in results) == 12
    assert workers.jobs == 12
    assert workers.most <= workers.max_workers == 2


async def test_generations_are_drawn_in_the_pool_too(workers: CountingWorkers) -> None:
    adapter = _sandbox(workers, 64_000_000)
    call = UpstreamCall(
        model_id="sandbox-generate",
        provider="sandbox",
        upstream="sandbox/generate",
        mode="generate",
        payload={"prompt": "p", "num_images": 3, "width": 64, "height": 48},
        expected_images=3,
    )
    result = await adapter.run(call)
    assert len(result.images) == 3 and workers.jobs == 3


async def test_an_input_over_the_pixel_cap_is_refused_before_it_is_decoded(
    workers: CountingWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decode(*_: object) -> None:
        raise AssertionError("an over-cap image was decoded")

    monkeypatch.setattr("providers.sandbox.adapter.decode", no_decode)
    adapter = _sandbox(workers, 63_000_000)
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.run(edit_call(unchecked(bilevel_png(8000, 8000))))
    assert (caught.value.param, caught.value.code) == ("image", "image_too_large")


def _truncated() -> bytes:
    whole = png_bytes(300, 200)
    return whole[: len(whole) // 2]


def _corrupt() -> bytes:
    whole = bytearray(png_bytes(300, 200))
    whole[60:120] = b"\xff" * 60  # inside the IDAT chunk: the header still reads
    return bytes(whole)


@pytest.mark.parametrize("damaged", [_truncated(), _corrupt()], ids=["truncated", "corrupt"])
async def test_a_damaged_image_is_a_400_naming_it(workers: CountingWorkers, damaged: bytes) -> None:
    adapter = _sandbox(workers, 64_000_000)
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.run(edit_call(unchecked(damaged)))
    assert (caught.value.param, caught.value.code) == ("image", "invalid_image")


async def test_a_damaged_mask_is_a_400_naming_the_mask(workers: CountingWorkers) -> None:
    adapter = _sandbox(workers, 64_000_000)
    source = probe_input(png_bytes(300, 200), param="image", max_pixels=64_000_000)
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.run(edit_call(source, mask=unchecked(_truncated())))
    assert (caught.value.param, caught.value.code) == ("mask", "invalid_image")


async def test_a_generation_over_the_pixel_cap_is_refused(workers: CountingWorkers) -> None:
    adapter = _sandbox(workers, 1_000_000)
    call = UpstreamCall(
        model_id="sandbox-generate",
        provider="sandbox",
        upstream="sandbox/generate",
        mode="generate",
        payload={"prompt": "p", "width": 4096, "height": 4096},
    )
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.run(call)
    assert caught.value.param == "width" and workers.jobs == 1
