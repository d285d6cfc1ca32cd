"""Narrow unit tests of the fal adapter's pieces over httpx.MockTransport."""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import io
import json
import time

import httpx
import pytest
from PIL import Image
from pydantic import JsonValue

from core.errors import InvalidRequestError, ModerationBlockedError, UpstreamError
from core.image_workers import ImageWorkers
from providers.base import AdapterContext
from providers.fal import FalAdapter, FalSettings
from providers.fal.errors import error_from_response
from providers.fal.retry import FAL_RETRY
from providers.registry import build_adapters
from providers.toolkit.retry import retry_after
from tests.providers.conftest import FAL_TEST_KEY, edit_call, fast_adapter, generate_call

BASE = "https://queue.example.test"
STORAGE = "https://rest.example.test"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, format="JPEG")
    return out.getvalue()


def _data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


class FalStub:
    """fal as a function: answers submit/status/result, records every request."""

    def __init__(self, output: dict[str, JsonValue], job_base: str = f"{BASE}/fal-ai/app/requests/r1") -> None:
        self.output = output
        self.job_base = job_base
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if request.method == "POST" and request.url.path.endswith("/storage/upload/initiate"):
            return httpx.Response(
                200,
                json={"upload_url": "https://upload.example.test/put/1", "file_url": "https://v3.fal.media/f/1.png"},
            )
        if request.method == "PUT" and url.startswith("https://upload.example.test/"):
            return httpx.Response(200)
        if request.method == "POST":
            job = self.job_base
            return httpx.Response(
                200,
                json={
                    "request_id": "r1",
                    "status_url": f"{job}/status",
                    "response_url": job,
                    "cancel_url": f"{job}/cancel",
                },
            )
        if request.url.path.endswith("/status/stream"):
            event = b'data: {"status": "COMPLETED", "request_id": "r1"}\n\n'
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=event)
        if url.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(200, json=self.output)


def _adapter(stub: FalStub, threshold: int = 4 * 1024 * 1024) -> tuple[httpx.AsyncClient, FalSettings]:
    settings = FalSettings(api_key=FAL_TEST_KEY, base_url=BASE, storage_url=STORAGE, upload_threshold_bytes=threshold)
    return httpx.AsyncClient(transport=httpx.MockTransport(stub)), settings


async def test_submit_url_auth_header_and_followed_urls() -> None:
    stub = FalStub({"images": [{"url": _data_uri(_jpeg())}], "seed": 5, "prompt": "p"})
    client, settings = _adapter(stub)
    async with client:
        result = await fast_adapter(settings, client).run(edit_call())
    submit, status, fetched = stub.requests
    assert str(submit.url) == f"{BASE}/fal-ai/hidream-e1-1"
    assert submit.headers["authorization"] == f"Key {FAL_TEST_KEY}"
    assert json.loads(submit.content)["prompt"] == "make it blue"
    # The returned URLs drop the sub-path; they are used as given, never rebuilt from the endpoint id
    # (the status stream is the status URL plus /stream, as fal-js builds it).
    assert str(status.url) == f"{BASE}/fal-ai/app/requests/r1/status/stream?logs=0"
    assert status.headers["accept"] == "text/event-stream"
    assert status.headers["authorization"] == f"Key {FAL_TEST_KEY}"
    assert str(fetched.url) == f"{BASE}/fal-ai/app/requests/r1"
    assert result.images[0].seed == 5 and result.upstream_request_id == "r1"


async def test_job_urls_on_another_host_are_refused_and_get_no_key() -> None:
    stub = FalStub({}, job_base="https://evil.example.test/fal-ai/app/requests/r1")
    client, settings = _adapter(stub)
    async with client:
        with pytest.raises(UpstreamError) as caught:
            await fast_adapter(settings, client).run(generate_call())
    assert caught.value.code == "upstream_bad_response"
    assert [r.url.host for r in stub.requests] == ["queue.example.test"]


async def test_storage_upload_flow() -> None:
    stub = FalStub({"images": [{"url": _data_uri(_jpeg())}]})
    client, settings = _adapter(stub, threshold=0)
    async with client:
        await fast_adapter(settings, client).run(edit_call())
    initiate, put, submit = stub.requests[:3]
    assert str(initiate.url) == f"{STORAGE}/storage/upload/initiate?storage_type=fal-cdn-v3"
    assert initiate.headers["authorization"] == f"Key {FAL_TEST_KEY}"
    assert json.loads(initiate.content) == {"content_type": "image/png", "file_name": "image-0.png"}
    assert put.method == "PUT" and "authorization" not in put.headers
    assert put.headers["content-type"] == "image/png"
    assert json.loads(submit.content)["image_url"] == "https://v3.fal.media/f/1.png"


async def test_per_image_seeds_and_single_image_result_field() -> None:
    data = _data_uri(_jpeg())
    stub = FalStub(
        {"images": [{"url": data, "seed": 10}, {"url": data}], "seeds": [10, 11], "has_nsfw_concepts": [False, True]}
    )
    client, settings = _adapter(stub)
    async with client:
        result = await fast_adapter(settings, client).run(generate_call())
    assert [(i.seed, i.nsfw) for i in result.images] == [(10, False), (11, True)]

    single = FalStub({"image": {"url": data}, "seed": 3})
    client, settings = _adapter(single)
    call = generate_call().model_copy(update={"result_field": "image"})
    async with client:
        result = await fast_adapter(settings, client).run(call)
    assert [(i.seed, i.revised_prompt) for i in result.images] == [(3, None)]


async def test_registry_builds_a_fal_adapter() -> None:
    settings = FalSettings(base_url=BASE)
    async with httpx.AsyncClient() as client:
        adapters = build_adapters(
            {"fal": settings}, AdapterContext(client=client, image_workers=ImageWorkers(max_workers=1))
        )
    assert isinstance(adapters["fal"], FalAdapter)


def _response(status: int, body: JsonValue = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "retry"),
    [
        (_response(429), True),
        (_response(502), True),
        (_response(503), True),
        (_response(504), True),
        (_response(500), False),
        (_response(400), False),
        (_response(500, headers={"x-fal-needs-retry": "true"}), True),
        (_response(503, headers={"x-fal-retryable": "false"}), False),
        (_response(504, headers={"x-fal-request-timeout-type": "user"}), False),
        (_response(422, headers={"x-fal-retryable": "true"}), False),
        (_response(503, {"detail": "x", "error_type": "content_policy_violation"}, {"x-fal-retryable": "true"}), False),
    ],
)
def test_should_retry(response: httpx.Response, retry: bool) -> None:
    assert FAL_RETRY.retryable(response) is retry


def test_retry_after_forms_and_backoff_bounds() -> None:
    assert retry_after(_response(429, headers={"retry-after": "3"})) == 3.0
    date = email.utils.formatdate(time.time() + 10, usegmt=True)
    parsed = retry_after(_response(429, headers={"retry-after": date}))
    assert parsed is not None and 8 <= parsed <= 10
    assert retry_after(_response(429, headers={"retry-after": "soon"})) is None
    policy = dataclasses.replace(FAL_RETRY, max_attempts=5, base_seconds=0.2, cap_seconds=1.0, hint_cap_seconds=2.0)
    assert 0.15 <= policy.backoff(0) <= 0.25
    assert 0.75 <= policy.backoff(10) <= 1.25
    assert policy.wait_after(0, _response(429, headers={"retry-after": "60"})) == 2.0


def test_error_mapping_of_shapes_not_seen_through_the_fake() -> None:
    forbidden = error_from_response(_response(403), phase="status", endpoint_id="e", secret="k")
    assert isinstance(forbidden, UpstreamError) and forbidden.code == "upstream_auth_failed"
    missing = error_from_response(_response(404), phase="result", endpoint_id="e", secret="k")
    assert type(missing) is UpstreamError and missing.code == "upstream_error"
    too_big = error_from_response(
        _response(422, {"detail": [{"loc": ["body", "image_url"], "msg": "too large", "type": "image_too_large"}]}),
        phase="submit",
        endpoint_id="e",
        secret="k",
    )
    assert isinstance(too_big, InvalidRequestError)
    assert (too_big.param, too_big.code) == ("image_url", "image_too_large")
    flat_policy = error_from_response(
        _response(400, {"detail": "flagged"}, {"x-fal-error-type": "content_policy_violation"}),
        phase="submit",
        endpoint_id="e",
        secret="k",
    )
    assert isinstance(flat_policy, ModerationBlockedError)
    infra = error_from_response(
        _response(500, {"detail": "boom at 10.0.0.7", "error_type": "runner_server_error"}),
        phase="submit",
        endpoint_id="e",
        secret="k",
    )
    assert infra.message == "fal failed during submit: HTTP 500 (runner_server_error)"
