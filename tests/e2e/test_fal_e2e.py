"""Issue 4 end to end: the openai SDK -> a live pixelgate -> the fake fal server, and back.

The models are the built-in fal catalog entries (``normalization/catalog/fal.yaml``), served by the
real fal adapter over HTTP to the fake. Every fal failure mode is picked per request by a
``[fake:...]`` marker in the prompt.
"""

from __future__ import annotations

import base64
import io
import random
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image
from pydantic import JsonValue

from tests.conftest import TEST_KEY, upstream_settings
from tests.e2e.conftest import FAL_KEY
from tests.fakes.fake_fal import FakeFal, Submission
from tests.images import png_bytes
from tests.live import LiveGateway
from tests.polling import wait_until

DEADLINE_SECONDS = 3.0


def _gateway(data_dir: Path, fake: FakeFal, fal_key: str | None) -> LiveGateway:
    settings = upstream_settings(
        data_dir, fal=fake, fal_key=fal_key, max_retries=2, request_timeout_seconds=DEADLINE_SECONDS
    )
    return LiveGateway(settings)


@pytest.fixture(scope="module")
def fal_gateway(fal_server: FakeFal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    with _gateway(tmp_path_factory.mktemp("fal-data"), fal_server, FAL_KEY) as live:
        yield live


def _decoded_size(b64: str | None) -> tuple[int, int]:
    assert b64 is not None
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        return image.size


def _only_submission(fake: FakeFal) -> Submission:
    assert len(fake.submissions) == 1
    return fake.submissions[0]


def test_hidream_e1_1_edit_round_trip(sdk: openai.OpenAI, fake: FakeFal) -> None:
    source = png_bytes(160, 96)
    result = sdk.images.edit(
        model="hidream-e1-1",
        image=("in.png", source, "image/png"),
        prompt="make the sky purple",
        response_format="b64_json",
        extra_body={
            "cfg_scale": 5.5,
            "seed": 1234,
            "negative_prompt": "blurry",
            "image_guidance_scale": 1.5,
            "target_image_description": "a purple sky",
            "num_inference_steps": 28,
            "enable_safety_checker": False,
        },
    )
    assert result.data is not None and len(result.data) == 1
    assert _decoded_size(result.data[0].b64_json) == (160, 96)
    assert result.data[0].revised_prompt == "make the sky purple"
    assert (result.data[0].model_extra or {})["seed"] == 1234  # fal's returned seed
    submission = _only_submission(fake)
    assert submission.endpoint_id == "fal-ai/hidream-e1-1"
    payload = submission.payload
    assert payload["guidance_scale"] == 5.5 and "cfg_scale" not in payload  # renamed
    assert "image" not in payload  # renamed to image_url
    assert payload["seed"] == 1234 and payload["negative_prompt"] == "blurry"  # passthrough, typed from form text
    assert payload["image_guidance_scale"] == 1.5 and payload["num_inference_steps"] == 28
    assert payload["target_image_description"] == "a purple sky"
    assert payload["enable_safety_checker"] is False
    assert payload["prompt"] == "make the sky purple"
    image_url = payload["image_url"]
    assert isinstance(image_url, str) and image_url.startswith("data:image/png;base64,")  # small: inline
    assert base64.b64decode(image_url.split(",", 1)[1]) == source
    assert fake.cdn_fetches == 1  # the result was downloaded from fal's CDN, not sent inline
    metadata = (result.model_extra or {})["metadata"]
    assert metadata["provider"] == "fal" and metadata["upstream_model"] == "fal-ai/hidream-e1-1"
    assert metadata["nsfw"] == [False]
    handled = {name: (row["behavior"], row["upstream"]) for name, row in metadata["parameters"].items()}
    assert handled["cfg_scale"] == ("renamed", "guidance_scale")
    assert handled["image"] == ("renamed", "image_url")
    for name in ("seed", "negative_prompt", "image_guidance_scale", "num_inference_steps", "target_image_description"):
        assert handled[name] == ("passthrough", name)


def test_hidream_i1_generation_round_trip(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.generate(
        model="hidream-i1-full",
        prompt="a lighthouse at dusk",
        size="256x192",
        n=2,
        response_format="b64_json",
        # No seed: with one, every image would be a call of its own (see test_emulation_fal.py).
        extra_body={"cfg_scale": 7, "negative_prompt": "text", "num_inference_steps": 20},
    )
    assert result.data is not None and len(result.data) == 2
    assert [_decoded_size(d.b64_json) for d in result.data] == [(256, 192), (256, 192)]
    payload = _only_submission(fake).payload
    assert payload["guidance_scale"] == 7 and "cfg_scale" not in payload  # renamed
    assert payload["image_size"] == {"width": 256, "height": 192} and "size" not in payload  # converted
    assert payload["num_images"] == 2 and "n" not in payload  # converted
    assert (payload["negative_prompt"], payload["num_inference_steps"]) == ("text", 20) and "seed" not in payload
    assert "response_format" not in payload  # emulated
    seeds = [(d.model_extra or {}).get("seed") for d in result.data]
    assert isinstance(seeds[0], int) and seeds[1] is None  # fal's seed is the batch's: the first image's
    assert [d.revised_prompt for d in result.data] == ["a lighthouse at dusk"] * 2
    metadata = (result.model_extra or {})["metadata"]
    handled = {name: (row["behavior"], row["upstream"]) for name, row in metadata["parameters"].items()}
    assert handled["cfg_scale"] == ("renamed", "guidance_scale")
    assert handled["size"] == ("converted", "image_size") and handled["n"] == ("converted", "num_images")
    assert handled["negative_prompt"] == ("passthrough", "negative_prompt")


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


def test_validation_error_names_the_clients_parameter(sdk: openai.OpenAI, fake: FakeFal) -> None:
    error = _error(sdk, "[fake:422:guidance_scale]")
    assert len(fake.attempts) == 1  # a validation error is never retried
    assert isinstance(error, openai.BadRequestError)
    body = _body(error)
    assert (body["type"], body["param"]) == ("invalid_request_error", "cfg_scale")
    assert body["message"] == "Input should be less than or equal to 20"


@pytest.mark.parametrize(
    ("upstream_field", "client_param"),
    [("num_images", "n"), ("image_size", "size"), ("num_inference_steps", "num_inference_steps"), ("loras", "loras")],
)
def test_validation_error_param_is_translated_back(sdk: openai.OpenAI, upstream_field: str, client_param: str) -> None:
    error = _error(sdk, f"[fake:422:{upstream_field}]")
    assert error.status_code == 400 and _body(error)["param"] == client_param


def test_validation_error_on_the_image_names_image(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(
            model="hidream-e1-1", image=("in.png", png_bytes(64, 48), "image/png"), prompt="[fake:422:image_url]"
        )
    assert _body(caught.value)["param"] == "image"


def test_validation_error_with_a_string_detail(sdk: openai.OpenAI) -> None:
    error = _error(sdk, "[fake:422_string]")
    assert error.status_code == 400 and _body(error)["param"] is None


@pytest.mark.parametrize("marker", ["[fake:content_policy]", "[fake:content_policy_late]"])
def test_content_policy_is_moderation_blocked(sdk: openai.OpenAI, fake: FakeFal, marker: str) -> None:
    error = _error(sdk, marker)
    assert error.status_code == 400
    assert _body(error)["code"] == "moderation_blocked"
    assert len(fake.attempts) == 1  # a refusal is never retried


@pytest.mark.parametrize("marker", ["[fake:401]", "[fake:403]"])
def test_fal_refusing_our_credentials_is_a_502_that_says_so(sdk: openai.OpenAI, fake: FakeFal, marker: str) -> None:
    error = _error(sdk, marker)  # also checks that no part of the key is in the answer
    assert isinstance(error, openai.InternalServerError) and error.status_code == 502
    body = _body(error)
    assert (body["type"], body["code"]) == ("upstream_error", "upstream_auth_failed")
    assert body["message"] == "upstream rejected the gateway's fal credentials"
    assert len(fake.attempts) == 1  # not retried


def test_a_wrong_fal_key_is_a_502_without_the_key(fake: FakeFal, tmp_path: Path) -> None:
    wrong = "wrong-key-id:wrong-secret-5a4b3c"
    with (
        _gateway(tmp_path, fake, wrong) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.images.generate(model="hidream-i1-full", prompt="x", size="128x128", response_format="b64_json")
    assert caught.value.status_code == 502
    assert _body(caught.value)["message"] == "upstream rejected the gateway's fal credentials"
    assert all(part not in caught.value.response.text for part in (wrong, *wrong.split(":")))


@pytest.mark.parametrize(
    ("marker", "status", "code", "attempts"),
    [
        ("[fake:401]", 502, "upstream_auth_failed", 1),
        ("[fake:403]", 502, "upstream_auth_failed", 1),
        ("[fake:404]", 502, "upstream_model_not_found", 1),
        ("[fake:503_always]", 502, "upstream_error", 3),
        ("[fake:502_always]", 502, "upstream_error", 3),
        ("[fake:503_no_retry]", 502, "upstream_error", 1),
        ("[fake:504_user]", 504, "upstream_timeout", 1),
        ("[fake:504_always]", 504, "upstream_timeout", 3),
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
    # The job never ends: only the deadline answers. The upper bound is loose for a loaded machine, yet
    # well below the SDK's own 30 s timeout, which a gateway that does not enforce it would run into.
    assert DEADLINE_SECONDS <= time.monotonic() - started < DEADLINE_SECONDS + 15
    assert fake.cancelled == [_only_submission(fake).request_id]


def test_client_disconnect_cancels_the_fal_job(fal_gateway: LiveGateway, fake: FakeFal) -> None:
    with (
        openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=0.5) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        # The SDK gives up after 0.5 s and closes the connection; the job would never finish.
        impatient.images.generate(
            model="hidream-i1-full", prompt="[fake:never]", size="128x128", response_format="b64_json"
        )
    wait_until(lambda: bool(fake.cancelled), "pixelgate cancelled the fal job of the client that left")
    assert fake.cancelled == [_only_submission(fake).request_id]


def test_no_fal_key_is_provider_not_configured(fake: FakeFal, tmp_path: Path) -> None:
    with (
        _gateway(tmp_path, fake, None) as live,
        openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.images.generate(model="hidream-i1-full", prompt="x", size="128x128", response_format="b64_json")
    assert caught.value.status_code == 503
    assert _body(caught.value)["code"] == "provider_not_configured"
    assert fake.attempts == []


def test_large_input_goes_through_fal_storage(sdk: openai.OpenAI, fake: FakeFal) -> None:
    # Above the default 4 MiB threshold: initiate, PUT, then the file_url in the payload.
    noise = Image.frombytes("RGB", (1300, 1100), random.Random(4).randbytes(1300 * 1100 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=0)
    big = out.getvalue()
    assert len(big) > 4 * 1024 * 1024
    result = sdk.images.edit(
        model="hidream-e1-1", image=("big.png", big, "image/png"), prompt="sharpen", response_format="b64_json"
    )
    assert result.data is not None and _decoded_size(result.data[0].b64_json) == (1300, 1100)
    image_url = _only_submission(fake).payload["image_url"]
    assert isinstance(image_url, str) and image_url.startswith(f"{fake.storage_url}/files/")
    assert list(fake.uploads.values()) == [big]


def test_sync_mode_results_arrive_as_data_uris(sdk: openai.OpenAI, fake: FakeFal) -> None:
    result = sdk.images.generate(
        model="hidream-i1-full",
        prompt="a harbour",
        size="96x64",
        n=2,
        response_format="b64_json",
        extra_body={"sync_mode": True},
    )
    assert result.data is not None and [_decoded_size(d.b64_json) for d in result.data] == [(96, 64)] * 2
    assert _only_submission(fake).payload["sync_mode"] is True
    assert fake.cdn_fetches == 0  # decoded from the data: URIs, nothing downloaded


def test_seed_revised_prompt_and_nsfw_flags_are_carried(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(
        model="hidream-i1-fast",
        prompt="a beach [fake:nsfw]",
        size="96x64",
        response_format="b64_json",
        extra_body={"seed": 77},
    )
    assert result.data is not None
    [image] = result.data
    assert (image.model_extra or {})["seed"] == 77
    assert image.revised_prompt == "a beach [fake:nsfw]"
    assert (result.model_extra or {})["metadata"]["nsfw"] == [True]
