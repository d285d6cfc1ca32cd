"""Replicate end to end: the openai SDK -> a live pixelgate configured by YAML and the kind's variables -> the
fake Replicate.

Models configured as a user would: the minimal entry (the kind's defaults), an official model with its
own fields, a community model on the version route, a generation model with native ``n``. The client's
parameters arrive in Replicate's shape, failures come back as the SDK's errors, and a client that
leaves gets its prediction cancelled.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import openai
import pytest
from PIL import Image

from app.settings import Settings
from tests.conftest import TEST_KEY
from tests.fakes.fake_replicate import FakeReplicate
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

TOKEN = "r8_e2e_token_0123456789abcdef"
HIDREAM = "prunaai/hidream-e1.1"
KONTEXT_RATIOS = '["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21", "2:1", "1:2"]'
SCHNELL_RATIOS = '["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]'


def _config(version: str) -> str:
    return f"""
api_keys: [{TEST_KEY}]
providers:
  replicate: {{wait_seconds: 1, max_retries: 2}}
models:
  - {{id: qwen-edit-r, provider: replicate, upstream: qwen/qwen-image-edit, modes: [edit]}}
  - id: kontext-r
    provider: replicate
    upstream: black-forest-labs/flux-kontext-pro
    modes: [edit]
    images: {{field: input_image, kind: single}}
    size: {{kind: aspect_ratio, field: aspect_ratio, values: {KONTEXT_RATIOS}}}
    output_format: {{field: output_format, values: [png], default: png}}
    params:
      seed: {{type: integer}}
      safety_tolerance: {{type: integer, minimum: 0, maximum: 6}}
  - id: hidream-r
    provider: replicate
    upstream: "{HIDREAM}:{version}"
    modes: [edit]
    params:
      seed: {{type: integer}}
      cfg_scale: {{behavior: renamed, upstream: guidance_scale, type: number}}
  - id: schnell-r
    provider: replicate
    upstream: black-forest-labs/flux-schnell
    modes: [generate]
    count: {{field: num_outputs, max: 4}}
    size: {{kind: aspect_ratio, field: aspect_ratio, values: {SCHNELL_RATIOS}}}
    params:
      seed: {{type: integer}}
"""


@pytest.fixture(scope="module")
def replicate_server() -> Iterator[FakeReplicate]:
    with FakeReplicate(token=TOKEN, latency=0.05) as fake:
        yield fake


@pytest.fixture(scope="module")
def live(replicate_server: FakeReplicate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    folder = tmp_path_factory.mktemp("replicate-e2e")
    config = folder / "pixelgate.yaml"
    config.write_text(_config(replicate_server.versions()[HIDREAM]), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PIXELGATE_CONFIG", str(config))
        env.setenv("PIXELGATE_DATA_DIR", str(folder / "data"))
        env.setenv("REPLICATE_API_TOKEN", TOKEN)
        env.setenv("PIXELGATE_REPLICATE_BASE_URL", replicate_server.base_url)
        settings = Settings.load()
    with LiveGateway(settings) as gateway:
        yield gateway


@pytest.fixture
def fake(replicate_server: FakeReplicate) -> FakeReplicate:
    replicate_server.reset()
    replicate_server.max_output_side = 96
    return replicate_server


@pytest.fixture
def sdk(live: LiveGateway, fake: FakeReplicate) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client:
        yield client


def _size(b64: str | None) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(b64 or ""))) as opened:
        return opened.size


def test_the_minimal_entry_edits_with_n_fanned_out_into_predictions(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    source = png_bytes(80, 60)
    result = sdk.images.edit(
        model="qwen-edit-r",
        image=("in.png", source, "image/png"),
        prompt="make it blue",
        n=2,
        response_format="b64_json",
    )
    assert result.data is not None and len(result.data) == 2
    assert [_size(item.b64_json) for item in result.data] == [(80, 60), (80, 60)]
    assert len(fake.creates) == 2 and {a.route for a in fake.creates} == {"models"}
    for attempt in fake.creates:
        assert attempt.model == "qwen/qwen-image-edit"
        assert attempt.input["prompt"] == "make it blue"
        image = attempt.input["image"]
        assert isinstance(image, str) and base64.b64decode(image.split(",", 1)[1]) == source
        assert attempt.headers["cancel-after"] == "300s" and attempt.headers["prefer"] == "wait=1"
    metadata = (result.model_extra or {})["metadata"]
    assert (metadata["provider"], metadata["upstream_model"]) == ("replicate", "qwen/qwen-image-edit")


def test_the_minimal_entry_shows_the_replicate_defaults(sdk: openai.OpenAI) -> None:
    parameters = (sdk.models.retrieve("qwen-edit-r").model_extra or {})["parameters"]
    assert parameters["image"]["upstream"] == "image"
    assert parameters["n"]["behavior"] == "emulated"


def test_an_official_model_gets_its_own_field_names(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    result = sdk.images.edit(
        model="kontext-r",
        image=("in.png", png_bytes(64, 64), "image/png"),
        prompt="a watercolor",
        response_format="b64_json",
        output_format="png",
        extra_body={"aspect_ratio": "16:9", "seed": 7, "safety_tolerance": 2},
    )
    [attempt] = fake.creates
    sent = attempt.input
    assert (sent["aspect_ratio"], sent["seed"], sent["safety_tolerance"]) == ("16:9", 7, 2)
    assert sent["output_format"] == "png"
    assert isinstance(sent["input_image"], str) and sent["input_image"].startswith("data:image/png;base64,")
    assert result.data is not None and result.data[0].model_extra is not None
    assert result.data[0].model_extra.get("seed") == 7
    width, height = _size(result.data[0].b64_json)
    assert abs(width / height - 16 / 9) < 0.05


def test_a_community_model_is_served_on_the_version_route(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    sdk.images.edit(
        model="hidream-r",
        image=("in.png", png_bytes(64, 48), "image/png"),
        prompt="add snow",
        response_format="b64_json",
        extra_body={"cfg_scale": 3.5},
    )
    [attempt] = fake.creates
    assert attempt.route == "predictions" and attempt.model == HIDREAM
    assert attempt.input["guidance_scale"] == 3.5 and "cfg_scale" not in attempt.input


def test_native_n_is_one_prediction_with_several_outputs(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    result = sdk.images.generate(
        model="schnell-r", prompt="a red fox", n=3, response_format="b64_json", extra_body={"aspect_ratio": "16:9"}
    )
    assert result.data is not None and len(result.data) == 3
    [attempt] = fake.creates
    assert (attempt.input["num_outputs"], attempt.input["aspect_ratio"]) == (3, "16:9")


def test_a_sensitive_prediction_is_a_400_moderation_blocked(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="schnell-r", prompt="[fake:sensitive] something", response_format="b64_json")
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "moderation_blocked" and "E005" in body["message"]
    assert len(fake.attempts) == 1


def test_a_replicate_validation_error_names_the_clients_parameter(sdk: openai.OpenAI, fake: FakeReplicate) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="hidream-r",
            image=("in.png", png_bytes(32, 32), "image/png"),
            prompt="[fake:422:guidance_scale]",
            extra_body={"cfg_scale": 2},
        )
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "cfg_scale"  # Replicate said input.guidance_scale


def test_a_client_that_leaves_gets_its_prediction_cancelled(live: LiveGateway, fake: FakeReplicate) -> None:
    with (
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=1.0) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        impatient.images.generate(model="schnell-r", prompt="[fake:never] a slow fox", response_format="b64_json")
    started = time.monotonic()
    wait_until(lambda: bool(fake.cancels), "Replicate records the cancel", timeout=15)
    assert fake.cancels == [fake.creates[0].prediction_id]
    assert time.monotonic() - started < 10
