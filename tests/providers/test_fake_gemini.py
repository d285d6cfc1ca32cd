"""The fake Gemini speaks the Gemini API's generateContent: every documented answer shape and scenario.

Raw httpx against the running fake (what an adapter sees), plus the official ``google-genai``
client against it, so adapter tests written against the fake can be trusted.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from PIL import Image

from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fal_images import render_as

KEY = "AIza-fake-test-key"
FLASH = "/models/gemini-2.5-flash-image:generateContent"
PRO = "/models/gemini-3-pro-image-preview:generateContent"
FLASH_31 = "/models/gemini-3.1-flash-image-preview:generateContent"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeGemini) -> FakeGemini:
    server.reset()
    server.max_output_side = 256
    return server


@pytest.fixture
def api(fake: FakeGemini) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers={"x-goog-api-key": KEY}, timeout=20) as client:
        yield client


def prompt(text: str, *images: bytes, config: dict[str, Any] | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode("ascii")}} for image in images
    ]
    parts.append({"text": text})
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if config is not None:
        body["generationConfig"] = config
    return body


def parts_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = body["candidates"][0]["content"]["parts"]
    return parts


def decode(part: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(part["inlineData"]["data"])))
    image.load()
    return image


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == response.status_code
    return error


# -- answers -------------------------------------------------------------------------------------


def test_an_image_comes_back_as_inline_data_after_a_text_part(api: httpx.Client, fake: FakeGemini) -> None:
    response = api.post(FLASH, json=prompt("a lighthouse"))
    assert response.status_code == 200
    body = response.json()
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    assert candidate["content"]["role"] == "model"
    text, image = parts_of(body)
    assert isinstance(text["text"], str) and text["text"]
    assert image["inlineData"]["mimeType"] == "image/png"
    assert decode(image).format == "PNG" and decode(image).size == (256, 256)  # 1:1 with no input
    usage = body["usageMetadata"]
    assert usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 1290}]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert body["modelVersion"] == "gemini-2.5-flash-image" and body["responseId"]
    assert "promptFeedback" not in body
    assert [(r.model, r.api_version, r.key_source, r.status_code) for r in fake.requests] == [
        ("gemini-2.5-flash-image", "v1beta", "header", 200)
    ]


def test_image_only_modality_snake_case_input_and_the_inputs_ratio(fake: FakeGemini) -> None:
    source = base64.b64encode(render_as(300, 200, 1, "png")).decode("ascii")
    body = {
        "contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": source}}, {"text": "blue"}]}],
        "generation_config": {"response_modalities": ["IMAGE"]},
    }
    response = httpx.post(f"{fake.base_url}{FLASH}?key={KEY}", json=body)
    parts = parts_of(response.json())
    assert [list(part) for part in parts] == [["inlineData"]]
    image = decode(parts[0])
    assert abs(image.size[0] / image.size[1] - 1248 / 832) < 0.02  # 3:2, the nearest ratio to 300x200
    assert response.json()["usageMetadata"]["promptTokensDetails"][1] == {"modality": "IMAGE", "tokenCount": 258}
    assert fake.requests[-1].key_source == "query"


@pytest.mark.parametrize(
    ("path", "config", "size", "tokens"),
    [
        (FLASH, {"aspectRatio": "16:9"}, (1344, 768), 1290),
        (FLASH, {"aspectRatio": "16:9", "imageSize": "4K"}, (1344, 768), 1290),  # 2.5 Flash keeps ~1 MP
        (FLASH_31, {"aspectRatio": "16:9", "imageSize": "512"}, (672, 384), 1120),
        (PRO, {"aspectRatio": "21:9"}, (1536, 672), 1120),
    ],
)
def test_image_config_sets_the_ratio_and_the_size(
    api: httpx.Client, fake: FakeGemini, path: str, config: dict[str, str], size: tuple[int, int], tokens: int
) -> None:
    fake.max_output_side = None
    body = api.post(path, json=prompt("x", config={"imageConfig": config})).json()
    assert decode(parts_of(body)[-1]).size == size
    assert body["usageMetadata"]["candidatesTokenCount"] == tokens


def test_pro_at_4k_is_four_times_1k_and_costs_more_tokens(api: httpx.Client) -> None:
    body = api.post(PRO, json=prompt("x", config={"imageConfig": {"aspectRatio": "9:16", "imageSize": "4K"}})).json()
    image = decode(parts_of(body)[-1])
    assert abs(image.size[0] / image.size[1] - 9 / 16) < 0.01
    assert body["usageMetadata"]["candidatesTokenCount"] == 2000


# -- refusals of the request ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            FLASH,
            prompt("x", config={"aspectRatio": "16:9"}),
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"aspectRatio\" at 'generation_config': Cannot find field.",
        ),
        (
            FLASH,
            {**prompt("x"), "size": "1024x1024"},
            "INVALID_ARGUMENT",
            'Invalid JSON payload received. Unknown name "size": Cannot find field.',
        ),
        (
            FLASH,
            prompt("x", config={"imageConfig": {"outputMimeType": "image/jpeg"}}),
            "INVALID_ARGUMENT",
            "Unknown name \"outputMimeType\" at 'generation_config.image_config'",
        ),
        (
            FLASH,
            prompt("x", config={"candidateCount": 2}),
            "INVALID_ARGUMENT",
            "Multiple candidates is not enabled for models/gemini-2.5-flash-image",
        ),
        (FLASH, prompt("x", config={"responseModalities": ["PICTURE"]}), "INVALID_ARGUMENT", '"PICTURE"'),
        (FLASH, prompt("x", config={"responseModalities": ["AUDIO"]}), "INVALID_ARGUMENT", "response modalities"),
        (FLASH, prompt("x", config={"imageConfig": {"aspectRatio": "1:8"}}), "INVALID_ARGUMENT", "1:8"),
        (FLASH_31, prompt("x", config={"imageConfig": {"imageSize": "1k"}}), "INVALID_ARGUMENT", "1k"),
        (FLASH, prompt("x", config={"imageConfig": {"imageSize": "512"}}), "INVALID_ARGUMENT", "512"),
        (FLASH, {"contents": []}, "INVALID_ARGUMENT", "contents is not specified"),
        (FLASH, {"contents": [{"parts": []}]}, "INVALID_ARGUMENT", "contents.parts must not be empty"),
        (
            FLASH,
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@@"}}]}]},
            "INVALID_ARGUMENT",
            "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed",
        ),
        (
            FLASH,
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/gif", "data": "R0lG"}}]}]},
            "INVALID_ARGUMENT",
            "Unsupported MIME type: image/gif",
        ),
        (FLASH, prompt("x", b"not an image"), "INVALID_ARGUMENT", "Unable to process input image"),
        (
            FLASH,
            {"contents": [{"parts": [{"fileData": {"mimeType": "image/png", "fileUri": "files/abc"}}]}]},
            "PERMISSION_DENIED",
            "You do not have permission to access the File files/abc or it may not exist.",
        ),
    ],
)
def test_invalid_requests_get_googles_error_shape(
    api: httpx.Client, path: str, body: dict[str, Any], status: str, message: str
) -> None:
    response = api.post(path, json=body)
    error = error_of(response)
    assert error["status"] == status and message in error["message"]
    assert response.status_code == (403 if status == "PERMISSION_DENIED" else 400)


def test_input_image_count_is_limited_per_model(api: httpx.Client) -> None:
    images = [render_as(16, 16, seed, "png") for seed in range(4)]
    assert api.post(FLASH, json=prompt("x", *images)).status_code == 400
    assert api.post(FLASH, json=prompt("x", *images[:3])).status_code == 200
    assert api.post(PRO, json=prompt("x", *images)).status_code == 200


def test_keys_models_methods_and_json(fake: FakeGemini, api: httpx.Client) -> None:
    missing = httpx.post(f"{fake.base_url}{FLASH}", json=prompt("x"))
    assert missing.status_code == 403 and error_of(missing)["status"] == "PERMISSION_DENIED"
    wrong = httpx.post(f"{fake.base_url}{FLASH}", json=prompt("x"), headers={"x-goog-api-key": "AIza-wrong"})
    error = error_of(wrong)
    assert wrong.status_code == 400 and error["message"] == "API key not valid. Please pass a valid API key."
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    unknown = api.post("/models/gemini-9-image:generateContent", json=prompt("x"))
    assert unknown.status_code == 404 and error_of(unknown)["message"].startswith(
        "models/gemini-9-image is not found for API version v1beta"
    )
    assert api.post("/models/gemini-2.5-flash-image:streamGenerateContent", json=prompt("x")).status_code == 404
    assert api.get(FLASH).status_code == 404
    broken = api.post(FLASH, content=b'{"contents": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and error_of(broken)["message"].startswith("Invalid JSON payload received.")


# -- scenarios: 200 answers without an image -----------------------------------------------------


def test_safety_finish_reasons(api: httpx.Client) -> None:
    safety = api.post(FLASH, json=prompt("[fake:safety]")).json()["candidates"][0]
    assert safety["finishReason"] == "IMAGE_SAFETY"
    assert [list(part) for part in safety["content"]["parts"]] == [["text"]]
    empty = api.post(FLASH, json=prompt("[fake:safety_empty]")).json()["candidates"][0]
    assert empty["finishReason"] == "IMAGE_SAFETY" and "content" not in empty
    for reason in ("NO_IMAGE", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "SAFETY"):
        candidate = api.post(FLASH, json=prompt(f"[fake:finish:{reason}]")).json()["candidates"][0]
        assert candidate["finishReason"] == reason
        assert all("inlineData" not in part for part in candidate["content"]["parts"])


def test_blocked_prompts_have_no_candidates(api: httpx.Client) -> None:
    response = api.post(FLASH, json=prompt("[fake:blocked]"))
    assert response.status_code == 200
    body = response.json()
    assert body["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"} and "candidates" not in body
    other = api.post(FLASH, json=prompt("[fake:blocked:SAFETY]")).json()
    assert other["promptFeedback"]["blockReason"] == "SAFETY"


def test_text_only_answer(api: httpx.Client) -> None:
    candidate = api.post(FLASH, json=prompt("[fake:text_only]")).json()["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert [list(part) for part in candidate["content"]["parts"]] == [["text"]]


# -- scenarios: other 200 answers ----------------------------------------------------------------


def test_thought_parts_come_before_the_final_image(api: httpx.Client, fake: FakeGemini) -> None:
    fake.max_output_side = 512
    body = api.post(PRO, json=prompt("[fake:thought]", config={"responseModalities": ["IMAGE"]})).json()
    parts = parts_of(body)
    assert [part.get("thought", False) for part in parts] == [True, True, False]
    assert "inlineData" in parts[1] and "inlineData" in parts[2] and parts[2]["thoughtSignature"]
    assert decode(parts[1]).size[0] < decode(parts[2]).size[0]
    assert body["usageMetadata"]["thoughtsTokenCount"] == 64


def test_jpeg_truncated_and_not_image(api: httpx.Client) -> None:
    jpeg = parts_of(api.post(FLASH, json=prompt("[fake:jpeg]")).json())[-1]
    assert jpeg["inlineData"]["mimeType"] == "image/jpeg" and decode(jpeg).format == "JPEG"
    for marker in ("truncated", "not_image"):
        part = parts_of(api.post(FLASH, json=prompt(f"[fake:{marker}]")).json())[-1]
        assert part["inlineData"]["mimeType"] == "image/png"
        with pytest.raises(OSError):
            decode(part)


def test_malformed_and_slow_answers(api: httpx.Client) -> None:
    malformed = api.post(FLASH, json=prompt("[fake:malformed]"))
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    started = time.monotonic()
    assert api.post(FLASH, json=prompt("[fake:slow:0.4]")).status_code == 200
    assert time.monotonic() - started >= 0.4


# -- scenarios: errors ---------------------------------------------------------------------------


def test_429_carries_quota_and_retry_info_and_passes_on_a_retry(api: httpx.Client, fake: FakeGemini) -> None:
    body = prompt("[fake:429]")
    first = api.post(FLASH, json=body)
    error = error_of(first)
    assert first.status_code == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    kinds = [detail["@type"].rsplit(".", 1)[-1] for detail in error["details"]]
    assert kinds == ["QuotaFailure", "Help", "RetryInfo"]
    assert error["details"][2]["retryDelay"] == "2s"
    assert "PerMinute" in error["details"][0]["violations"][0]["quotaId"]
    assert api.post(FLASH, json=body).status_code == 200
    custom = error_of(api.post(FLASH, json=prompt("[fake:429:37s]")))
    assert custom["details"][2]["retryDelay"] == "37s" and custom["message"].endswith("Please retry in 37s.")
    daily = api.post(FLASH, json=prompt("[fake:429_daily]"))
    assert [d["@type"].rsplit(".", 1)[-1] for d in error_of(daily)["details"]] == ["QuotaFailure", "Help"]
    assert "PerDay" in error_of(daily)["details"][0]["violations"][0]["quotaId"]
    assert api.post(FLASH, json=prompt("[fake:429_daily]")).status_code == 429
    assert [r.status_code for r in fake.requests] == [429, 200, 429, 429, 429]


@pytest.mark.parametrize(
    ("marker", "code", "status"),
    [("500", 500, "INTERNAL"), ("503", 503, "UNAVAILABLE"), ("504", 504, "DEADLINE_EXCEEDED"), ("429", 429, None)],
)
def test_server_errors_once_and_always(api: httpx.Client, marker: str, code: int, status: str | None) -> None:
    once = prompt(f"[fake:{marker}]")
    first = api.post(FLASH, json=once)
    assert first.status_code == code and error_of(first)["status"] == (status or "RESOURCE_EXHAUSTED")
    if marker == "503":
        assert error_of(first)["message"] == "The model is overloaded. Please try again later."
    assert api.post(FLASH, json=once).status_code == 200
    always = prompt(f"[fake:{marker}_always]")
    assert [api.post(FLASH, json=always).status_code for _ in range(3)] == [code] * 3


def test_connection_reset_and_permission_denied(api: httpx.Client) -> None:
    with pytest.raises(httpx.HTTPError):
        api.post(FLASH, json=prompt("[fake:reset]"))
    assert api.post(FLASH, json=prompt("[fake:reset]")).status_code == 200
    denied = api.post(FLASH, json=prompt("[fake:403]"))
    assert denied.status_code == 403 and error_of(denied)["status"] == "PERMISSION_DENIED"


def test_scenarios_from_next_scenarios_and_per_model(api: httpx.Client, fake: FakeGemini) -> None:
    fake.next_scenarios.extend(["503", "blocked"])
    assert api.post(FLASH, json=prompt("x")).status_code == 503
    assert "promptFeedback" in api.post(FLASH, json=prompt("x")).json()
    assert "candidates" in api.post(FLASH, json=prompt("x")).json()
    fake.model_scenarios["gemini-3-pro-image-preview"] = "safety"
    assert api.post(PRO, json=prompt("x")).json()["candidates"][0]["finishReason"] == "IMAGE_SAFETY"
    assert api.post(FLASH, json=prompt("x")).json()["candidates"][0]["finishReason"] == "STOP"


# -- the official client -------------------------------------------------------------------------


def test_the_official_google_genai_client_reads_the_fake(fake: FakeGemini) -> None:
    client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=fake.root_url))
    config = genai_types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=genai_types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
    )
    answer = client.models.generate_content(model="gemini-3-pro-image-preview", contents="a lighthouse", config=config)
    images = [part.inline_data for part in answer.parts or [] if part.inline_data is not None]
    assert len(images) == 1 and images[0].mime_type == "image/png" and images[0].data
    assert Image.open(io.BytesIO(images[0].data)).size == (256, 146)
    assert answer.usage_metadata is not None and answer.usage_metadata.candidates_token_count == 1120
    sent = fake.requests[-1].body
    assert isinstance(sent, dict)
    assert sent["generationConfig"] == {
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
    }
    refused = client.models.generate_content(model="gemini-2.5-flash-image", contents="[fake:safety]")
    assert refused.candidates and refused.candidates[0].finish_reason == genai_types.FinishReason.IMAGE_SAFETY
    with pytest.raises(genai_errors.ClientError) as throttled:
        client.models.generate_content(model="gemini-2.5-flash-image", contents="[fake:429_always]")
    assert throttled.value.code == 429 and throttled.value.status == "RESOURCE_EXHAUSTED"
    with pytest.raises(genai_errors.ServerError) as overloaded:
        client.models.generate_content(model="gemini-2.5-flash-image", contents="[fake:503_always]")
    assert overloaded.value.code == 503


def test_an_unknown_marker_is_refused_not_taken_as_ok(api: httpx.Client) -> None:
    response = api.post(FLASH, json=prompt("[fake:saftey]"))
    assert response.status_code == 400 and "unknown scenario 'saftey'" in error_of(response)["message"]
