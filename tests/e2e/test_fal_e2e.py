"""Issue 4 end to end: the openai SDK -> a live pixelgate -> the fake fal server, and back.

The models are the built-in fal catalog entries (``normalization/catalog/fal.yaml``), served by the
real fal adapter over HTTP to the fake. Every fal failure mode is picked per request by a
``[fake:...]`` marker in the prompt.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from pydantic import JsonValue

from tests.conftest import TEST_KEY, make_settings
from tests.fakes.fake_fal import FakeFal, Submission
from tests.images import png_bytes
from tests.live import LiveGateway

FAL_KEY = "e2e-fal-key-id:e2e-fal-secret-9f8e7d"
DEADLINE_SECONDS = 3.0


def _gateway(data_dir: Path, fake: FakeFal, fal_key: str | None) -> LiveGateway:
    settings = make_settings(
        data_dir,
        fal_key=fal_key,
        fal_base_url=fake.base_url,
        fal_storage_url=fake.storage_url,
        providers_yaml={"fal": {"max_retries": 2}},
        request_timeout_seconds=DEADLINE_SECONDS,
    )
    return LiveGateway(settings)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_KEY, latency=0.05) as server:
        yield server


@pytest.fixture(scope="module")
def fal_gateway(fake: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with _gateway(tmp_path_factory.mktemp("fal-data"), fake, FAL_KEY) as live:
        yield live


@pytest.fixture
def sdk(fal_gateway: LiveGateway, fake: FakeFal) -> Iterator[openai.OpenAI]:
    fake.reset()
    with openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
        yield client


def _decoded_size(b64: str | None) -> tuple[int, int]:
    assert b64 is not None
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        return image.size


def _only_submission(fake: FakeFal) -> Submission:
    assert len(fake.submissions) == 1
    return fake.submissions[0]


def test_hidream_e1_1_edit_round_trip(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.edit(
        model="hidream-e1-1",
        image=("in.png", png_bytes(160, 96), "image/png"),
        prompt="make the sky purple",
        response_format="b64_json",
        extra_body={
            "cfg_scale": 5.5,
            "seed": 1234,
            "negative_prompt": "blurry",
            "image_guidance_scale": 1.5,
            "target_image_description": "a purple sky",
            "num_inference_steps": 28,
        },
    )
    assert result.data is not None and len(result.data) == 1
    assert _decoded_size(result.data[0].b64_json) == (160, 96)
    assert result.data[0].revised_prompt == "make the sky purple"
    submission = _only_submission(fake)
    assert submission.endpoint_id == "fal-ai/hidream-e1-1"
    payload = submission.payload
    assert payload["guidance_scale"] == 5.5 and "cfg_scale" not in payload  # renamed
    assert payload["seed"] == 1234 and payload["negative_prompt"] == "blurry"  # passthrough
    assert payload["image_guidance_scale"] == 1.5 and payload["num_inference_steps"] == 28
    assert payload["target_image_description"] == "a purple sky"
    assert payload["prompt"] == "make the sky purple"
    image_url = payload["image_url"]
    assert isinstance(image_url, str) and image_url.startswith("data:image/png;base64,")


def test_hidream_i1_generation_round_trip(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.generate(
        model="hidream-i1-full",
        prompt="a lighthouse at dusk",
        size="256x192",
        n=2,
        response_format="b64_json",
        extra_body={"cfg_scale": 7, "seed": 99, "negative_prompt": "text", "num_inference_steps": 20},
    )
    assert result.data is not None and len(result.data) == 2
    assert [_decoded_size(d.b64_json) for d in result.data] == [(256, 192), (256, 192)]
    payload = _only_submission(fake).payload
    assert payload["guidance_scale"] == 7 and "cfg_scale" not in payload
    assert payload["image_size"] == {"width": 256, "height": 192}
    assert payload["num_images"] == 2
    assert (payload["seed"], payload["negative_prompt"], payload["num_inference_steps"]) == (99, "text", 20)


def test_unknown_parameters_pass_through(sdk: openai.OpenAI, fake: FakeFal) -> None:
    sdk.images.generate(
        model="hidream-i1-full",
        prompt="x",
        size="128x128",
        response_format="b64_json",
        extra_body={"some_new_fal_field": "on"},
    )
    assert _only_submission(fake).payload["some_new_fal_field"] == "on"


def _error(sdk: openai.OpenAI, prompt: str) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="hidream-i1-full", prompt=prompt, size="128x128", response_format="b64_json")
    error = caught.value
    assert FAL_KEY not in error.response.text
    assert all(part not in error.response.text for part in FAL_KEY.split(":"))
    return error


def _body(error: openai.APIStatusError) -> dict[str, JsonValue]:
    body = error.response.json()["error"]
    assert isinstance(body, dict)
    return body


def test_validation_error_names_the_clients_parameter(sdk: openai.OpenAI) -> None:
    error = _error(sdk, "[fake:422:guidance_scale]")
    assert isinstance(error, openai.BadRequestError)
    body = _body(error)
    assert (body["type"], body["param"]) == ("invalid_request_error", "cfg_scale")
    assert body["message"] == "Input should be less than or equal to 20"


def test_validation_error_with_a_string_detail(sdk: openai.OpenAI) -> None:
    error = _error(sdk, "[fake:422_string]")
    assert error.status_code == 400 and _body(error)["param"] is None


@pytest.mark.parametrize("marker", ["[fake:content_policy]", "[fake:content_policy_late]"])
def test_content_policy_is_moderation_blocked(sdk: openai.OpenAI, marker: str) -> None:
    error = _error(sdk, marker)
    assert error.status_code == 400
    assert _body(error)["code"] == "moderation_blocked"


@pytest.mark.parametrize(
    ("marker", "status", "code", "attempts"),
    [
        ("[fake:401]", 502, "upstream_auth_failed", 1),
        ("[fake:404]", 502, "upstream_model_not_found", 1),
        ("[fake:503_always]", 502, "upstream_error", 3),
        ("[fake:502_always]", 502, "upstream_error", 3),
        ("[fake:503_no_retry]", 502, "upstream_error", 1),
        ("[fake:504_user]", 504, "upstream_timeout", 1),
        ("[fake:reset_always]", 502, "upstream_unreachable", 3),
        ("[fake:html]", 502, "upstream_bad_response", 1),
        ("[fake:completed_error]", 502, "upstream_error", 1),
        ("[fake:malformed]", 502, "upstream_bad_response", 1),
        ("[fake:missing_fields]", 502, "upstream_bad_response", 1),
        ("[fake:truncated]", 502, "upstream_bad_response", 1),
        ("[fake:not_image]", 502, "upstream_bad_response", 1),
        ("[fake:private_url]", 502, "upstream_fetch_failed", 1),
    ],
)
def test_upstream_failures(
    sdk: openai.OpenAI, fake: FakeFal, marker: str, status: int, code: str, attempts: int
) -> None:
    error = _error(sdk, marker)
    assert error.status_code == status
    assert _body(error)["code"] == code
    assert len(fake.attempts) == attempts


def test_wrong_fal_key_never_reaches_the_client(sdk: openai.OpenAI) -> None:
    error = _error(sdk, "[fake:echo_auth]")
    assert error.status_code == 400
    assert "[redacted]" in str(_body(error)["message"])


def test_persistent_upstream_rate_limit_is_a_502_passing_retry_after_on(sdk: openai.OpenAI, fake: FakeFal) -> None:
    # 429 is pixelgate's own rate limit (contract); fal still limiting after the retries is an upstream failure.
    error = _error(sdk, "[fake:429_always:0]")
    assert isinstance(error, openai.InternalServerError) and error.status_code == 502
    body = _body(error)
    assert (body["type"], body["code"]) == ("upstream_error", "upstream_rate_limited")
    assert error.response.headers["retry-after"] == "0"
    assert len(fake.attempts) == 3


@pytest.mark.parametrize("marker", ["[fake:429]", "[fake:503]", "[fake:reset]"])
def test_retryable_failures_once_then_success(sdk: openai.OpenAI, fake: FakeFal, marker: str) -> None:
    result = sdk.images.generate(
        model="hidream-i1-full", prompt=f"x {marker}", size="128x128", response_format="b64_json"
    )
    assert result.data is not None and len(result.data) == 1
    assert len(fake.attempts) == 2 and len(fake.submissions) == 1


def test_deadline_cancels_the_fal_job(sdk: openai.OpenAI, fake: FakeFal) -> None:
    started = time.monotonic()
    error = _error(sdk, "[fake:never]")
    assert error.status_code == 504 and _body(error)["code"] == "upstream_timeout"
    assert DEADLINE_SECONDS <= time.monotonic() - started < DEADLINE_SECONDS + 3
    assert fake.cancelled == [_only_submission(fake).request_id]


def test_client_disconnect_cancels_the_fal_job(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    fake.reset()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fal_gateway.api_url}/images/generations",
            json={
                "model": "hidream-i1-full",
                "prompt": "[fake:never]",
                "size": "128x128",
                "response_format": "b64_json",
            },
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=httpx.Timeout(10, read=0.5),
        )
    deadline = time.monotonic() + 2
    while not fake.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cancelled == [_only_submission(fake).request_id]


def test_no_fal_key_is_provider_not_configured(fake: FakeFal, tmp_path: Path) -> None:
    fake.reset()
    with (
        _gateway(tmp_path, fake, None) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.images.generate(model="hidream-i1-full", prompt="x", size="128x128", response_format="b64_json")
    assert caught.value.status_code == 503
    assert _body(caught.value)["code"] == "provider_not_configured"
    assert fake.attempts == []
