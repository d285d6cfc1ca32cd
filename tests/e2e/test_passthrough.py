"""The pass-through path (issue 17, item 4), through the real server and the official SDK.

A result already in the format the client asked for, at its size, is handed on as the upstream sent
it: an OpenAI-compatible upstream's ``b64_json`` text and a fal ``data:`` URI's base64 come back
character for character, a downloaded image is base64-encoded once. A conversion still happens when
one is asked for (another format, an exact size), and the pixel cap and the image check still hold:
an oversized or a broken result is a 502.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import httpx
import openai
import orjson
import pytest
from PIL import Image

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.fakes.fal_images import render
from tests.live import LiveGateway


@pytest.fixture(scope="module")
def fal_gateway(
    tmp_path_factory: pytest.TempPathFactory, fal_server: FakeFal, openai_server: FakeOpenAIServer
) -> Iterator[LiveGateway]:
    settings = upstream_settings(
        tmp_path_factory.mktemp("data"),
        fal=fal_server,
        fal_key=FAL_KEY,
        openai_server=openai_server,
        openai_key="sk-upstream",
    )
    with LiveGateway(settings) as live:
        yield live


def _metadata(result: Any) -> dict[str, Any]:
    metadata = (result.model_extra or {})["metadata"]
    assert isinstance(metadata, dict)
    return metadata


def _generate(sdk: openai.OpenAI, **options: Any) -> Any:
    return sdk.images.generate(model="gpt-image-1", prompt="a lighthouse", response_format="b64_json", **options)


def test_b64_json_comes_back_as_the_upstream_sent_it(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    result = _generate(sdk, n=2)
    upstream_text = base64.b64encode(result_png()).decode("ascii")
    assert result.data is not None and [item.b64_json for item in result.data] == [upstream_text] * 2
    assert _metadata(result)["converted"] is False and result.size == "1024x1024"


def test_b64_json_is_not_decoded_and_encoded_again(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    # The last character's unused low bits set: the text decodes to the same PNG, but a decode and an
    # encode would give the canonical text back ("...gg==" where the upstream sent "...gh==").
    canonical = base64.b64encode(result_png()).decode("ascii")
    assert canonical.endswith("gg==")
    sent = canonical[:-4] + "gh=="
    assert base64.b64decode(sent) == result_png()
    fake_openai.app.answer_next(200, orjson.dumps({"created": 1, "data": [{"b64_json": sent}]}))
    result = _generate(sdk)
    assert result.data is not None and result.data[0].b64_json == sent


def test_a_downloaded_result_is_encoded_once_and_unchanged(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.result = "url"
    result = _generate(sdk)
    assert result.data is not None and result.data[0].b64_json is not None
    assert base64.b64decode(result.data[0].b64_json) == result_png()
    assert _metadata(result)["converted"] is False


def test_fal_data_uris_come_back_as_fal_sent_them(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.generate(
        model="hidream-i1-full",
        prompt="a harbour",
        size="96x64",
        output_format="jpeg",
        response_format="b64_json",
        extra_body={"sync_mode": True, "seed": 5},
    )
    assert result.data is not None and result.data[0].b64_json is not None
    assert result.data[0].b64_json == base64.b64encode(render(96, 64, 5, False)).decode("ascii")
    assert _metadata(result)["converted"] is False and fake.cdn_fetches == 0


def test_another_output_format_is_still_converted(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    result = _generate(sdk, output_format="webp")  # the fake upstream answers PNG whatever is asked
    assert result.data is not None and result.data[0].b64_json is not None
    with Image.open(BytesIO(base64.b64decode(result.data[0].b64_json))) as img:
        assert (img.format, img.size) == ("WEBP", (1024, 1024))
    assert _metadata(result)["converted"] is True


def test_an_exact_size_is_still_fitted(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    result = _generate(sdk, size="512x512")
    assert result.data is not None and result.data[0].b64_json is not None
    with Image.open(BytesIO(base64.b64decode(result.data[0].b64_json))) as img:
        assert (img.format, img.size) == ("PNG", (512, 512))
    assert _metadata(result)["resized"] is True


def test_a_hosted_link_serves_the_same_bytes(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    result = sdk.images.generate(model="gpt-image-1", prompt="a lighthouse", response_format="url")
    assert result.data is not None and result.data[0].url is not None
    assert httpx.get(result.data[0].url).content == result_png()


def _answer(fake_openai: FakeOpenAIServer, image: bytes) -> None:
    body = orjson.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(image).decode("ascii")}]})
    fake_openai.app.answer_next(200, body)


def _bad_gateway(sdk: openai.OpenAI) -> dict[str, Any]:
    with pytest.raises(openai.APIStatusError) as caught:
        _generate(sdk)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict)
    return body


def test_a_truncated_or_foreign_b64_result_is_a_502(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    _answer(fake_openai, result_png()[:-100])
    assert _bad_gateway(sdk)["code"] == "upstream_bad_response"
    _answer(fake_openai, b"<html>not an image</html>")
    assert _bad_gateway(sdk)["code"] == "upstream_bad_response"


def test_the_pixel_cap_refuses_an_oversized_b64_result(
    tmp_path_factory: pytest.TempPathFactory, openai_server: FakeOpenAIServer, fake_openai: FakeOpenAIServer
) -> None:
    settings = upstream_settings(
        tmp_path_factory.mktemp("capped"),
        openai_server=openai_server,
        openai_key="sk-upstream",
        max_pixels=1024 * 1024 - 1,
    )
    with (
        LiveGateway(settings) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as capped,
    ):
        body = _bad_gateway(capped)
    assert body["code"] == "upstream_bad_response" and "pixel limit" in body["message"]
