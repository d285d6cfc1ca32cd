"""The fal adapter against the fake fal server, through a real httpx client: the happy paths."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from PIL import Image

from core.errors import ProviderNotConfiguredError
from providers.base import UpstreamCall
from tests.fakes.fake_fal import FakeFal
from tests.providers.conftest import AdapterMaker, edit_call, generate_call, input_image
from tests.providers.room_tracker import RoomTracker


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_edit_round_trip_keeps_input_size_and_carries_metadata(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    result = await make_adapter().run(edit_call("make it blue", {"seed": 42, "guidance_scale": 4.5}))
    assert len(result.images) == 1
    image = result.images[0]
    assert image.data.startswith(b"\xff\xd8\xff")
    assert _size(image.data) == (96, 64)
    assert (image.seed, image.revised_prompt, image.nsfw) == (42, "make it blue", False)
    [submission] = fake_fal.submissions
    assert result.upstream_request_id == submission.request_id
    assert submission.endpoint_id == "fal-ai/hidream-e1-1"
    assert submission.payload["guidance_scale"] == 4.5
    image_url = submission.payload["image_url"]
    assert isinstance(image_url, str) and image_url.startswith("data:image/png;base64,")
    assert fake_fal.cancelled == []


async def test_generation_has_the_requested_size_and_png_when_asked(make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("a lighthouse", {"output_format": "png"}))
    assert result.images[0].data.startswith(b"\x89PNG")
    assert _size(result.images[0].data) == (128, 96)


async def test_several_images_only_the_first_gets_the_batch_seed(make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("x", {"num_images": 3, "seed": 7}))
    assert [img.seed for img in result.images] == [7, None, None]
    assert [img.nsfw for img in result.images] == [False, False, False]


async def test_sync_mode_data_uris_are_decoded(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("x", {"sync_mode": True}))
    assert _size(result.images[0].data) == (128, 96)


async def test_list_image_field_and_mask_are_placed_as_urls(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    call = UpstreamCall(
        model_id="kontext-multi",
        provider="fal",
        upstream="fal-ai/flux-pro/kontext/multi",
        mode="edit",
        payload={"prompt": "merge"},
        images=(input_image(40, 30), input_image(50, 20)),
        image_field="image_urls",
        image_kind="list",
        mask=input_image(40, 30),
        mask_field="mask_url",
    )
    result = await make_adapter().run(call)
    # The fake answers on owner/app only (sub-path dropped, as fal does): following its URLs works.
    assert _size(result.images[0].data) == (40, 30)
    payload = fake_fal.submissions[0].payload
    urls = payload["image_urls"]
    assert isinstance(urls, list) and len(urls) == 2
    assert all(isinstance(u, str) and u.startswith("data:image/png;base64,") for u in urls)
    assert isinstance(payload["mask_url"], str) and payload["mask_url"].startswith("data:image/png")


async def test_large_inputs_go_through_fal_storage(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    call = edit_call()
    result = await make_adapter(upload_threshold_bytes=10).run(call)
    image_url = fake_fal.submissions[0].payload["image_url"]
    assert isinstance(image_url, str) and image_url.startswith(f"{fake_fal.storage_url}/files/")
    assert list(fake_fal.uploads.values()) == [call.images[0].data]
    assert _size(result.images[0].data) == (96, 64)


async def test_no_api_key_fails_before_any_request(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    with pytest.raises(ProviderNotConfiguredError) as caught:
        await make_adapter(api_key=None).run(edit_call())
    assert caught.value.code == "provider_not_configured"
    assert fake_fal.attempts == []


async def test_polling_adds_little_latency(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    fake_fal.latency = 0.0
    started = time.monotonic()
    await make_adapter(status_stream=False).run(generate_call())
    assert time.monotonic() - started < 0.5
    assert fake_fal.status_polls == 1


async def test_slow_job_is_polled_with_backoff(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    started = time.monotonic()
    await make_adapter(status_stream=False).run(generate_call("[fake:slow:1.2]"))
    elapsed = time.monotonic() - started
    assert 1.2 <= elapsed < 2.6
    # 20 ms doubling to a 1 s cap: about 7 polls for 1.2 s, not one per 20 ms.
    assert 3 <= fake_fal.status_polls <= 9


async def test_parallel_calls_share_the_client(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    adapter = make_adapter()
    results = await asyncio.gather(*(adapter.run(generate_call(f"p{i}", {"seed": i})) for i in range(4)))
    assert [r.images[0].seed for r in results] == [0, 1, 2, 3]
    assert len({s.request_id for s in fake_fal.submissions}) == 4


async def test_a_finished_result_waits_at_fal_until_the_gateway_has_room(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    tracker = RoomTracker(lambda: fake_fal.cdn_fetches)
    result = await make_adapter().run_tracked(generate_call(), tracker)
    assert len(result.images) == 1
    assert tracker.noted == 0 and fake_fal.cdn_fetches == 1  # asked first, then downloaded
