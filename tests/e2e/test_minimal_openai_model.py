"""The contract's minimal model entry works end to end: ``{id, provider: openai, upstream, modes}``.

Configured as a user would (a YAML file and the openai kind's variables), served to the official
openai SDK, sent to a fake OpenAI-compatible upstream in the OpenAI request shape the ``openai``
kind supplies. Also: the gateway's pixel and byte caps reach the adapter from settings.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.settings import Settings
from tests.conftest import TEST_KEY, make_settings, upstream_settings
from tests.fakes.fake_openai import FakeOpenAIServer, result_png
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.providers.openai_calls import API_KEY

MINIMAL = "models:\n  - {id: x, provider: openai, upstream: some-model, modes: [edit]}\n"


@pytest.fixture
def sdk(fake_openai: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[openai.OpenAI]:
    config = tmp_path / "pixelgate.yaml"
    config.write_text(f"api_keys: [{TEST_KEY}]\n{MINIMAL}", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(config))
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("PIXELGATE_OPENAI_BASE_URL", fake_openai.base_url)
    with (
        LiveGateway(Settings.load()) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client,
    ):
        yield client


def test_the_minimal_entry_edits_with_two_images_and_a_mask(sdk: openai.OpenAI, fake_openai: FakeOpenAIServer) -> None:
    first, second, mask = png_bytes(64, 64), png_bytes(64, 64, (200, 10, 10)), png_bytes(64, 64, (0, 0, 0))
    result = sdk.images.edit(
        model="x",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("m.png", mask, "image/png"),
        prompt="blend them",
        n=2,
        size="1536x1024",
        output_format="webp",
        response_format="b64_json",
    )
    [request] = fake_openai.app.requests
    assert request.path == "/v1/images/edits"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    form = request.form()
    assert [(part.name, part.data) for part in form.files] == [("image[]", first), ("image[]", second), ("mask", mask)]
    fields = dict(form.fields)
    assert (fields["model"], fields["prompt"], fields["n"], fields["size"]) == (
        "some-model",
        "blend them",
        "2",
        "1536x1024",
    )
    assert fields["output_format"] == "webp"
    assert result.data is not None and len(result.data) == 2


def test_the_minimal_entry_shows_the_openai_parameter_table(sdk: openai.OpenAI) -> None:
    model = sdk.models.retrieve("x")
    parameters = (model.model_extra or {})["parameters"]
    assert parameters["image"]["upstream"] == "image" and parameters["image"]["max_items"] == 16
    assert parameters["n"]["upstream"] == "n"
    assert parameters["size"]["upstream"] == "size"


@pytest.mark.parametrize(
    ("limit", "value"), [("max_pixels", 1024 * 1024 - 1), ("max_result_bytes", len(result_png()) - 1)]
)
def test_the_result_caps_reach_the_adapter_from_settings(
    fake_openai: FakeOpenAIServer, tmp_path: Path, limit: str, value: int
) -> None:
    # The fake answers a 1024x1024 PNG: one pixel or one byte over the gateway's cap is refused.
    openai_provider = {"base_url": fake_openai.base_url, "api_key": API_KEY}
    settings = make_settings(tmp_path, providers={"openai": openai_provider}, **{limit: value})
    with (
        LiveGateway(settings) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        client.images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert refused.value.status_code == 502
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "upstream_bad_response"


def test_within_the_caps_the_result_passes_untouched(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    settings = upstream_settings(
        tmp_path,
        openai_server=fake_openai,
        openai_key=API_KEY,
        max_pixels=1024 * 1024,
        max_result_bytes=len(result_png()),
    )
    with (
        LiveGateway(settings) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client,
    ):
        result = client.images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert result.data is not None and base64.b64decode(result.data[0].b64_json or "") == result_png()
