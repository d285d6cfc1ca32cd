"""The Replicate adapter against the fake Replicate, through a real httpx client: the protocol paths.

Both create routes, ``Prefer: wait`` answers that are terminal, still ``starting`` or ``processing``
with output, polling to a terminal status, inputs as data URIs or through the Files API, outputs as
one URL, a list or ``data:`` URIs, and what the result carries (seed, prediction id).
"""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
from PIL import Image

from core.errors import GatewayError, ProviderNotConfiguredError
from providers.base import UpstreamCall
from tests.fakes.fake_replicate import FakeReplicate
from tests.providers.replicate.conftest import (
    HIDREAM,
    KONTEXT,
    SCHNELL,
    AdapterMaker,
    hidream_edit,
    image,
    kontext_edit,
    schnell_generate,
)
from tests.providers.room_tracker import RoomTracker


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as opened:
        return opened.size


def _created(seen: list[httpx.Response]) -> dict[str, object]:
    """The prediction the create answered (the first 201 the adapter received)."""
    body = next(r for r in seen if r.request.method == "POST" and r.status_code == 201).json()
    assert isinstance(body, dict)
    return body


async def test_an_official_model_is_created_on_the_models_route_and_read(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    result = await make_adapter().run(kontext_edit("make it blue", {"seed": 42}))
    [attempt] = fake.attempts
    assert (attempt.route, attempt.model) == ("models", KONTEXT)
    assert attempt.headers["prefer"] == "wait=5"
    assert "cancel-after" not in attempt.headers  # no request deadline given to this adapter
    assert isinstance(attempt.body, dict) and set(attempt.body) == {"input"}
    sent = attempt.input
    assert sent["prompt"] == "make it blue" and sent["seed"] == 42 and sent["output_format"] == "png"
    input_image = sent["input_image"]
    assert isinstance(input_image, str)
    assert base64.b64decode(input_image.removeprefix("data:image/png;base64,")) == kontext_edit().images[0].data
    [generated] = result.images
    assert generated.data.startswith(b"\x89PNG") and _size(generated.data) == (48, 32)
    assert generated.seed == 42  # the seed the prediction's input reports
    assert result.upstream_request_id == attempt.prediction_id
    assert fake.polls == [] and fake.cancels == []  # the waited create was already terminal


async def test_a_community_model_goes_to_the_version_route_with_its_version(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    call = hidream_edit(fake)
    result = await make_adapter().run(call)
    [attempt] = fake.attempts
    assert (attempt.route, attempt.model) == ("predictions", HIDREAM)
    assert isinstance(attempt.body, dict) and attempt.body["version"] == call.upstream
    assert isinstance(attempt.input["image"], str) and attempt.input["image"].startswith("data:image/png;base64,")
    assert result.images[0].seed == 11 and result.upstream_request_id == attempt.prediction_id


async def test_a_bare_version_id_goes_to_the_version_route(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    version = fake.versions()[HIDREAM]
    await make_adapter().run(hidream_edit(fake, upstream=version))
    [attempt] = fake.attempts
    assert attempt.route == "predictions" and isinstance(attempt.body, dict) and attempt.body["version"] == version


async def test_a_list_output_gives_every_image_and_the_seed_to_the_first(make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(schnell_generate("a fox", {"num_outputs": 3, "seed": 7}))
    assert len(result.images) == 3
    assert [img.seed for img in result.images] == [7, None, None]
    width, height = _size(result.images[0].data)
    assert abs(width / height - 16 / 9) < 0.1
    assert len({img.data for img in result.images}) == 3


async def test_a_random_seed_is_not_reported(make_adapter: AdapterMaker, fake: FakeReplicate) -> None:
    call = hidream_edit(fake)
    unseeded = call.model_copy(update={"payload": {"prompt": "x", "seed": -1}})
    result = await make_adapter().run(unseeded)
    assert result.images[0].seed is None  # HiDream's -1 means "random", not a seed that reproduces


async def test_a_waited_create_still_starting_is_polled_to_the_end(
    fake: FakeReplicate, make_adapter: AdapterMaker, seen: list[httpx.Response]
) -> None:
    # Starting for 1.2 s, the create waits 1 s: it answers "starting", the adapter polls urls.get.
    result = await make_adapter(wait_seconds=1).run(kontext_edit("[fake:slow:2.4]"))
    created = _created(seen)
    assert created["status"] == "starting" and created["output"] is None
    assert fake.attempts[0].headers["prefer"] == "wait=1"
    assert len(fake.polls) >= 2 and set(fake.polls) == {created["id"]}
    assert len(result.images) == 1 and result.upstream_request_id == created["id"]


async def test_processing_with_output_is_polled_until_terminal(
    fake: FakeReplicate, make_adapter: AdapterMaker, seen: list[httpx.Response]
) -> None:
    result = await make_adapter(wait_seconds=2).run(kontext_edit("[fake:sync_processing:0.5]"))
    created = _created(seen)
    assert created["status"] == "processing" and isinstance(created["output"], str)
    polled = [r.json()["status"] for r in seen if r.request.method == "GET" and "/predictions/" in r.request.url.path]
    assert polled[-1] == "succeeded" and "processing" in polled[:-1]
    assert len(result.images) == 1


async def test_without_prefer_the_prediction_is_polled_from_the_start(
    fake: FakeReplicate, make_adapter: AdapterMaker, seen: list[httpx.Response]
) -> None:
    await make_adapter(wait_seconds=0).run(kontext_edit())
    assert "prefer" not in fake.attempts[0].headers
    assert _created(seen)["status"] == "starting" and fake.polls


async def test_the_request_deadline_is_sent_as_cancel_after(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    await make_adapter(deadline=299.2).run(kontext_edit())
    assert fake.attempts[0].headers["cancel-after"] == "300s"


async def test_a_short_deadline_is_raised_to_replicates_minimum(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    await make_adapter(deadline=1).run(kontext_edit())
    assert fake.attempts[0].headers["cancel-after"] == "5s"


async def test_a_large_input_goes_through_the_files_api_and_is_deleted_after(
    fake: FakeReplicate, make_adapter: AdapterMaker, seen: list[httpx.Response]
) -> None:
    result = await make_adapter(upload_threshold_bytes=100).run(kontext_edit())
    [upload] = [r for r in seen if r.request.url.path == "/v1/files"]
    assert upload.status_code == 201
    stored = upload.json()
    assert stored["size"] == len(kontext_edit().images[0].data) and stored["content_type"] == "image/png"
    assert fake.attempts[0].input["input_image"] == stored["urls"]["get"]
    assert _size(result.images[0].data) == (48, 32)  # the model read the uploaded file
    assert fake.files == {}  # deleted once the prediction was over
    [deleted] = [r for r in seen if r.request.method == "DELETE"]
    assert deleted.status_code == 204 and deleted.request.url.path == f"/v1/files/{stored['id']}"


async def test_small_inputs_stay_data_uris_at_replicates_threshold(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    size = len(kontext_edit().images[0].data)
    await make_adapter(upload_threshold_bytes=size).run(kontext_edit())
    assert fake.files == {} and str(fake.attempts[0].input["input_image"]).startswith("data:")


async def test_a_list_image_field_and_a_mask_are_placed_as_urls(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    fake.strict_input = False  # nano-banana has no mask field; the placement is what is checked here
    call = UpstreamCall(
        model_id="nano-banana",
        provider="replicate",
        upstream="google/nano-banana",
        mode="edit",
        payload={"prompt": "merge them"},
        images=(image(40, 30), image(30, 40)),
        image_field="image_input",
        image_kind="list",
        mask=image(40, 30),
        mask_field="mask",
    )
    result = await make_adapter(upload_threshold_bytes=10_000).run(call)
    sent = fake.attempts[0].input
    images = sent["image_input"]
    assert isinstance(images, list) and len(images) == 2
    assert all(isinstance(url, str) and url.startswith("data:image/png") for url in images)
    assert isinstance(sent["mask"], str) and sent["mask"].startswith("data:image/png")
    assert len(result.images) == 1


async def test_data_uri_outputs_are_decoded(make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(kontext_edit("[fake:data_url]"))
    assert _size(result.images[0].data) == (48, 32)


async def test_without_a_token_nothing_is_sent(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    with pytest.raises(ProviderNotConfiguredError) as caught:
        await make_adapter(token=None).run(kontext_edit())
    assert caught.value.code == "provider_not_configured" and "REPLICATE_API_TOKEN" in caught.value.message
    assert fake.attempts == []


@pytest.mark.parametrize("upstream", ["flux-kontext-pro", "a/b/c", "owner/name:", "owner/name:not a version"])
async def test_an_upstream_that_names_no_route_is_a_catalog_error(
    fake: FakeReplicate, make_adapter: AdapterMaker, upstream: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        await make_adapter().run(kontext_edit().model_copy(update={"upstream": upstream}))
    assert caught.value.status_code == 500 and upstream in caught.value.message
    assert fake.attempts == []


async def test_several_calls_share_the_client(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    adapter = make_adapter()
    results = await asyncio.gather(*(adapter.run(schnell_generate(f"p{i}", {"seed": i})) for i in range(4)))
    assert [r.images[0].seed for r in results] == [0, 1, 2, 3]
    assert len({r.upstream_request_id for r in results}) == 4
    assert {a.model for a in fake.attempts} == {SCHNELL}


async def test_outputs_wait_at_replicate_until_the_gateway_has_room(
    fake: FakeReplicate, make_adapter: AdapterMaker, seen: list[httpx.Response]
) -> None:
    tracker = RoomTracker(lambda: len(seen))  # how many responses the adapter had received then
    result = await make_adapter().run_tracked(kontext_edit(), tracker)
    assert tracker.noted is not None
    before, after = seen[: tracker.noted], seen[tracker.noted :]
    assert before[-1].json()["status"] == "succeeded"  # asked once the prediction was done...
    assert [r.content for r in after] == [result.images[0].data]  # ...and before its output was fetched
