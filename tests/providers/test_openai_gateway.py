"""The openai provider through the whole gateway: the official SDK -> pixelgate -> the fake upstream."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.providers.openai_calls import API_KEY


@pytest.fixture(scope="module")
def gateway(openai_server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    settings = make_settings(
        tmp_path_factory.mktemp("data"), providers={"openai": {"base_url": openai_server.base_url, "api_key": API_KEY}}
    )
    with LiveGateway(settings) as live:
        yield live


@pytest.fixture
def client(gateway: LiveGateway, fake_openai: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=60)


def test_multi_image_edit_reaches_the_upstream_as_the_sdk_would_send_it(
    client: openai.OpenAI, fake_openai: FakeOpenAIServer
) -> None:
    first, second = png_bytes(64, 64), png_bytes(64, 64, color=(9, 9, 9))
    result = client.images.edit(
        model="gpt-image-1",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        prompt="put them together",
        n=2,
        quality="high",
        response_format="b64_json",
    )
    [request] = fake_openai.app.requests
    form = request.form()
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert [(f.name, f.data) for f in form.files] == [("image[]", first), ("image[]", second)]
    assert form.field("model") == "gpt-image-1"
    assert form.field("n") == "2"
    assert form.field("quality") == "high"
    assert form.field("response_format") is None
    assert result.data is not None and len(result.data) == 2
    assert base64.b64decode(result.data[0].b64_json or "") == result_png()


def test_dall_e_3_fans_out_n_and_asks_for_b64(client: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.revised_prompt = "a detailed fox"
    result = client.images.generate(model="dall-e-3", prompt="fox", n=2, style="natural", response_format="b64_json")
    bodies = [r.json() for r in fake_openai.app.requests]
    assert len(bodies) == 2
    for body in bodies:
        assert body["model"] == "dall-e-3"
        assert body["response_format"] == "b64_json"
        assert body["style"] == "natural"
        assert body.get("n", 1) == 1
    assert result.data is not None
    assert [d.revised_prompt for d in result.data] == ["a detailed fox", "a detailed fox"]


def test_upstream_param_errors_reach_the_client_by_its_name(
    client: openai.OpenAI, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.app.fail_next(
        400, message="Invalid file 'image[0]'", code="unsupported_file_mimetype", param="image[0]"
    )
    with pytest.raises(openai.BadRequestError) as failure:
        client.images.edit(model="gpt-image-1", image=("a.png", png_bytes(), "image/png"), prompt="x")
    assert failure.value.param == "image"
    assert failure.value.code == "unsupported_file_mimetype"


def test_moderation_and_credentials_failures(client: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(400, error_type="image_generation_user_error", code="moderation_blocked")
    with pytest.raises(openai.BadRequestError) as blocked:
        client.images.generate(model="gpt-image-1", prompt="x")
    assert blocked.value.code == "moderation_blocked"

    fake_openai.app.fail_next(401, message=f"Incorrect API key provided: {API_KEY}", code="invalid_api_key")
    with pytest.raises(openai.InternalServerError) as rejected:
        client.images.generate(model="gpt-image-1", prompt="x")
    assert rejected.value.status_code == 502
    assert API_KEY not in rejected.value.response.text


def test_a_second_openai_compatible_provider_from_yaml(
    openai_server: FakeOpenAIServer, fake_openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        providers={"local": {"kind": "openai", "base_url": openai_server.base_url}},
        models=[
            {
                "id": "local-image",
                "provider": "local",
                "upstream": "my-diffusion",
                "modes": ["generate"],
                "count": {"field": "n", "max": 4},
            }
        ],
    )
    with LiveGateway(settings) as live:
        local = openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60)
        result = local.images.generate(model="local-image", prompt="x", n=3, response_format="b64_json")
    [request] = fake_openai.app.requests
    # The openai kind's catalog defaults make output_format native: png, the format the client gets, is asked for.
    assert request.json() == {"model": "my-diffusion", "prompt": "x", "n": 3, "output_format": "png"}
    assert "authorization" not in request.headers
    assert result.data is not None and len(result.data) == 3
