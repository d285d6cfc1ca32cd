"""Gemini end to end: the openai SDK -> a live pixelgate with a minimal YAML model entry -> the fake Gemini.

The entry names only ``id``, ``provider``, ``upstream`` and ``modes``; the gemini kind supplies the rest
(inline images, the aspect-ratio enum, one image per call). The client's ``size``, ``aspect_ratio`` and
``n`` arrive as ``imageConfig`` and parallel calls; refusals and answers without an image come back
as the SDK's errors.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from PIL import Image

from app.settings import Settings
from tests.conftest import TEST_KEY
from tests.fakes.fake_gemini import FakeGemini
from tests.images import png_bytes
from tests.live import LiveGateway

KEY = "AIza-e2e-key-0123456789"
MODEL = "gemini-2.5-flash-image"
CONFIG = f"""
api_keys: [{TEST_KEY}]
models:
  - {{id: banana-g, provider: gemini, upstream: {MODEL}, modes: [edit, generate]}}
"""


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def live(gemini_server: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    folder = tmp_path_factory.mktemp("gemini-e2e")
    config = folder / "pixelgate.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PIXELGATE_CONFIG", str(config))
        env.setenv("PIXELGATE_DATA_DIR", str(folder / "data"))
        env.setenv("GEMINI_API_KEY", KEY)
        env.setenv("PIXELGATE_GEMINI_BASE_URL", gemini_server.base_url)
        settings = Settings.load()
    with LiveGateway(settings) as gateway:
        yield gateway


@pytest.fixture
def fake(gemini_server: FakeGemini) -> FakeGemini:
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def sdk(live: LiveGateway, fake: FakeGemini) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client:
        yield client


def _size(b64: str | None) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(b64 or ""))) as opened:
        return opened.size


def _config(fake: FakeGemini, index: int = 0) -> Any:
    body = fake.requests[index].body
    assert isinstance(body, dict)
    return body["generationConfig"]


def test_a_generation_fans_n_out_and_sends_the_ratio_in_image_config(sdk: openai.OpenAI, fake: FakeGemini) -> None:
    result = sdk.images.generate(
        model="banana-g", prompt="a lighthouse", n=2, response_format="b64_json", extra_body={"aspect_ratio": "16:9"}
    )
    assert result.data is not None and [_size(item.b64_json) for item in result.data] == [(1344, 768)] * 2
    assert len(fake.requests) == 2 and {r.key_source for r in fake.requests} == {"header"}
    for index in range(2):
        assert _config(fake, index) == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}
    assert result.size == "1344x768"
    metadata = (result.model_extra or {})["metadata"]
    assert (metadata["provider"], metadata["upstream_model"], metadata["upstream_calls"]) == ("gemini", MODEL, 2)


def test_an_exact_size_asks_the_nearest_ratio_and_is_fitted(sdk: openai.OpenAI, fake: FakeGemini) -> None:
    result = sdk.images.generate(model="banana-g", prompt="a lighthouse", size="1536x1024", response_format="b64_json")
    assert _config(fake)["imageConfig"] == {"aspectRatio": "3:2"}
    assert result.data is not None and _size(result.data[0].b64_json) == (1536, 1024)


def test_an_edit_sends_every_image_inline_and_keeps_the_inputs_ratio(sdk: openai.OpenAI, fake: FakeGemini) -> None:
    first, second = png_bytes(96, 64), png_bytes(40, 40, (200, 10, 10))
    fake.max_output_side = 300
    result = sdk.images.edit(
        model="banana-g",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        prompt="put the red square on the blue one",
        response_format="b64_json",
    )
    body: Any = fake.requests[0].body
    parts = body["contents"][0]["parts"]
    assert [base64.b64decode(p["inlineData"]["data"]) for p in parts[:2]] == [first, second]
    assert parts[2] == {"text": "put the red square on the blue one"}
    assert "imageConfig" not in body["generationConfig"]  # no size asked: Gemini follows the input
    assert result.data is not None
    width, height = _size(result.data[0].b64_json)
    assert abs(width / height - 3 / 2) < 0.05


def test_the_minimal_entry_shows_the_gemini_defaults(sdk: openai.OpenAI) -> None:
    parameters = (sdk.models.retrieve("banana-g").model_extra or {})["parameters"]
    assert parameters["image"]["upstream"] == "inlineData" and parameters["image"]["max_items"] == 3
    assert parameters["size"]["upstream"] == "aspectRatio"


def test_a_refusal_is_a_400_moderation_blocked(sdk: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="banana-g", prompt="[fake:safety] something", response_format="b64_json")
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "moderation_blocked"
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_an_answer_without_an_image_is_a_502_never_an_empty_200(sdk: openai.OpenAI, fake: FakeGemini) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="banana-g", prompt="[fake:text_only] describe a cat", response_format="b64_json")
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "upstream_no_image"
    assert caught.value.response.headers["x-should-retry"] == "true"
    assert len(fake.requests) == 1
