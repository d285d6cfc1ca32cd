"""The Gemini adapter against the fake Gemini, through a real httpx client: the request and the answer.

The body the fake received is checked field by field (where each payload field lands), and the
answer's image is read whatever the parts around it (text, thought drafts, JPEG).
"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import pytest
from PIL import Image
from pydantic import JsonValue

from core.errors import ProviderNotConfiguredError
from tests.fakes.fake_gemini import FakeGemini
from tests.providers.gemini.conftest import (
    FLASH,
    KEY,
    PRO,
    AdapterMaker,
    edit_call,
    generate_call,
    image,
)


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as opened:
        return opened.size


def _body(fake: FakeGemini, index: int = -1) -> dict[str, Any]:
    body = fake.requests[index].body
    assert isinstance(body, dict)
    return body


async def test_a_generation_sends_the_prompt_and_nests_the_image_config(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    result = await make_adapter().run(generate_call("a lighthouse", {"aspectRatio": "16:9"}))
    [request] = fake.requests
    assert (request.model, request.api_version, request.key_source, request.status_code) == (
        FLASH,
        "v1beta",
        "header",
        200,
    )
    assert _body(fake) == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
    }
    [generated] = result.images
    assert generated.data.startswith(b"\x89PNG") and _size(generated.data) == (64, 37)  # 1344x768, scaled down
    assert generated.seed is None and generated.revised_prompt is None
    assert result.upstream_request_id


async def test_an_edit_sends_each_image_as_inline_data_before_the_text(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    first, second = image(48, 32), image(30, 40)
    result = await make_adapter().run(edit_call("blend them", first, second))
    contents = _body(fake)["contents"]
    assert isinstance(contents, list)
    parts = contents[0]["parts"]
    assert [list(part) for part in parts] == [["inlineData"], ["inlineData"], ["text"]]
    assert [base64.b64decode(part["inlineData"]["data"]) for part in parts[:2]] == [first.data, second.data]
    assert [part["inlineData"]["mimeType"] for part in parts[:2]] == ["image/png", "image/png"]
    assert parts[2] == {"text": "blend them"}
    width, height = _size(result.images[0].data)
    assert abs(width / height - 3 / 2) < 0.05  # no ratio asked: Gemini follows the first input's


async def test_an_image_size_goes_under_image_config_for_the_models_that_take_it(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    await make_adapter().run(generate_call("x", {"aspectRatio": "1:1", "imageSize": "2K"}, upstream=PRO))
    config = _body(fake)["generationConfig"]
    assert config == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "1:1", "imageSize": "2K"}}


async def test_fields_are_placed_by_their_camel_case_name_and_keep_their_spelling(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    payload: dict[str, JsonValue] = {
        "aspect_ratio": "3:4",
        "seed": 5,
        "temperature": 0.4,
        "safetySettings": [{"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "threshold": "BLOCK_ONLY_HIGH"}],
    }
    result = await make_adapter().run(generate_call("x", payload))
    body = _body(fake)
    assert body["safetySettings"] == payload["safetySettings"]
    assert body["generationConfig"] == {
        "responseModalities": ["IMAGE"],
        "seed": 5,
        "temperature": 0.4,
        "imageConfig": {"aspect_ratio": "3:4"},
    }
    width, height = _size(result.images[0].data)
    assert abs(width / height - 864 / 1184) < 0.05


async def test_response_modalities_default_to_image_only(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    call = generate_call("x")
    await make_adapter().run(call.model_copy(update={"payload": {"prompt": "x"}}))
    config = _body(fake)["generationConfig"]
    assert config == {"responseModalities": ["IMAGE"]}


async def test_text_and_image_modalities_still_give_the_image(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("x", {"responseModalities": ["TEXT", "IMAGE"]}))
    assert len(result.images) == 1 and result.images[0].data.startswith(b"\x89PNG")


async def test_thought_drafts_are_dropped_and_the_final_image_kept(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    fake.max_output_side = 512  # the draft is a quarter of the final image's size
    result = await make_adapter().run(generate_call("[fake:thought]"))
    [generated] = result.images
    assert _size(generated.data) == (512, 512)


async def test_a_jpeg_answer_is_read(make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("[fake:jpeg]"))
    assert result.images[0].data.startswith(b"\xff\xd8\xff")


async def test_a_models_prefix_in_the_upstream_is_accepted(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    await make_adapter().run(generate_call("x", upstream=f"models/{FLASH}"))
    assert fake.requests[0].model == FLASH


async def test_without_a_key_nothing_is_sent(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    with pytest.raises(ProviderNotConfiguredError) as caught:
        await make_adapter(key=None).run(generate_call())
    assert "GEMINI_API_KEY" in caught.value.message and fake.requests == []


async def test_parallel_calls_each_make_one_image(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    adapter = make_adapter()
    results = await asyncio.gather(*(adapter.run(generate_call(f"p{i}")) for i in range(3)))
    assert [len(r.images) for r in results] == [1, 1, 1]
    assert len({r.upstream_request_id for r in results}) == 3
    assert all(r.key_source == "header" for r in fake.requests) and KEY not in str(_body(fake))
