"""Every Gemini failure mode against the fake: refusals and answers without an image (HTTP 200), Google's
error shape, what is retried and how long it waits, no key leak."""

from __future__ import annotations

import httpx
import pytest

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from providers.base import UpstreamCall
from tests.fakes.fake_gemini import REFUSAL, FakeGemini
from tests.providers.gemini.conftest import KEY, AdapterMaker, build, edit_call, generate_call, image


async def _fails(make_adapter: AdapterMaker, call: UpstreamCall, **values: int) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await make_adapter(**values).run(call)
    error = caught.value
    assert KEY not in f"{error.message} {error.args} {error.headers} {error.param}"
    return error


def _statuses(fake: FakeGemini) -> list[int]:
    return [request.status_code for request in fake.requests]


async def test_an_image_safety_finish_is_moderation_blocked_with_the_models_refusal(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, generate_call("[fake:safety]"))
    assert isinstance(error, ModerationBlockedError)
    assert (error.status_code, error.code, error.message) == (400, "moderation_blocked", REFUSAL)
    assert _statuses(fake) == [200]  # a refusal is not retried


@pytest.mark.parametrize(
    "marker",
    ["safety_empty", "finish:PROHIBITED_CONTENT", "finish:IMAGE_PROHIBITED_CONTENT", "finish:IMAGE_RECITATION"],
)
async def test_policy_finish_reasons_are_moderation_blocked(make_adapter: AdapterMaker, marker: str) -> None:
    error = await _fails(make_adapter, generate_call(f"[fake:{marker}]"))
    assert isinstance(error, ModerationBlockedError) and error.code == "moderation_blocked"


async def test_a_refusal_without_text_names_the_reason(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:safety_empty]"))
    assert "IMAGE_SAFETY" in error.message


@pytest.mark.parametrize(("marker", "reason"), [("blocked", "PROHIBITED_CONTENT"), ("blocked:SAFETY", "SAFETY")])
async def test_a_blocked_prompt_is_moderation_blocked(make_adapter: AdapterMaker, marker: str, reason: str) -> None:
    error = await _fails(make_adapter, generate_call(f"[fake:{marker}]"))
    assert isinstance(error, ModerationBlockedError) and reason in error.message


@pytest.mark.parametrize(
    ("marker", "reason"),
    [("finish:NO_IMAGE", "NO_IMAGE"), ("finish:IMAGE_OTHER", "IMAGE_OTHER"), ("text_only", "STOP")],
)
async def test_an_answer_without_an_image_is_upstream_no_image(
    fake: FakeGemini, make_adapter: AdapterMaker, marker: str, reason: str
) -> None:
    error = await _fails(make_adapter, generate_call(f"[fake:{marker}]"))
    assert type(error) is UpstreamError
    assert (error.status_code, error.code) == (502, "upstream_no_image") and reason in error.message
    assert error.should_retry and _statuses(fake) == [200]


@pytest.mark.parametrize("marker", ["truncated", "not_image", "malformed"])
async def test_unusable_answers_are_upstream_bad_response(make_adapter: AdapterMaker, marker: str) -> None:
    error = await _fails(make_adapter, generate_call(f"[fake:{marker}]"))
    assert (error.status_code, error.code) == (502, "upstream_bad_response")


async def test_a_429_waits_for_its_retry_delay_then_succeeds(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("[fake:429:1s]"))
    assert _statuses(fake) == [429, 200] and result.images
    assert fake.requests[1].at - fake.requests[0].at >= 0.95  # RetryInfo said 1 s; the backoff alone is 10 ms


async def test_a_lasting_429_is_upstream_rate_limited_with_the_retry_delay(
    fake: FakeGemini, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, generate_call("[fake:429_always:0.2s]"), max_retries=2)
    assert (error.status_code, error.code) == (502, "upstream_rate_limited")
    assert error.headers == {"retry-after": "1"} and error.should_retry
    assert _statuses(fake) == [429, 429, 429]


async def test_a_429_asking_for_a_long_wait_gives_up_at_once(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:429_always:37s]"))
    assert error.code == "upstream_rate_limited" and error.headers == {"retry-after": "37"}
    assert _statuses(fake) == [429]


async def test_a_daily_quota_is_not_retried(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:429_daily]"))
    assert (error.status_code, error.code) == (502, "upstream_quota_exhausted") and not error.should_retry
    assert _statuses(fake) == [429]


@pytest.mark.parametrize(("marker", "status"), [("500", 500), ("503", 503), ("504", 504), ("reset", 200)])
async def test_transient_failures_are_retried(
    fake: FakeGemini, make_adapter: AdapterMaker, marker: str, status: int
) -> None:
    result = await make_adapter().run(generate_call(f"[fake:{marker}]"))
    assert len(result.images) == 1 and len(fake.requests) == 2
    assert _statuses(fake)[-1] == 200


async def test_a_lasting_503_is_an_upstream_error(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:503_always]"), max_retries=1)
    assert type(error) is UpstreamError and "503" in error.message and "UNAVAILABLE" in error.message
    assert _statuses(fake) == [503, 503]


async def test_a_lasting_504_is_a_timeout(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:504_always]"), max_retries=1)
    assert isinstance(error, UpstreamTimeoutError)


async def test_an_invalid_key_is_upstream_auth_failed(fake: FakeGemini, gemini_client: httpx.AsyncClient) -> None:
    adapter = build(fake.base_url, gemini_client, key="AIza-wrong-key-000000")
    with pytest.raises(UpstreamError) as caught:
        await adapter.run(generate_call())
    assert caught.value.code == "upstream_auth_failed" and "AIza" not in caught.value.message
    assert _statuses(fake) == [400]  # Google's status for a bad key; not retried


async def test_a_permission_denied_is_upstream_auth_failed(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("[fake:403]"))
    assert error.code == "upstream_auth_failed"


async def test_an_unknown_model_is_upstream_model_not_found(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call(upstream="gemini-0-no-such-image"))
    assert (error.status_code, error.code) == (502, "upstream_model_not_found")


async def test_an_unsupported_ratio_is_a_400_on_the_upstream_field(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("x", {"aspectRatio": "7:1"}))
    assert type(error) is InvalidRequestError and error.param == "aspectRatio" and "7:1" in error.message


async def test_an_unknown_field_is_a_400_naming_it(fake: FakeGemini, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("x", {"guidance_scale": 3}))
    assert isinstance(error, InvalidRequestError) and error.param == "guidance_scale"
    assert _statuses(fake) == [400]


async def test_too_many_input_images_is_a_400_on_the_images(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, edit_call("x", image(), image(), image(), image()))
    assert isinstance(error, InvalidRequestError) and error.param == "inlineData"


async def test_several_candidates_are_refused_by_gemini(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, generate_call("x", {"candidateCount": 2}))
    assert isinstance(error, InvalidRequestError) and "Multiple candidates" in error.message
