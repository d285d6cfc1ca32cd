"""Every fal failure mode against the fake server: the client-visible error, retries, cancels, no key leak."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tests.fakes.fake_fal import FakeFal
from tests.providers.conftest import FAL_TEST_KEY, AdapterMaker, edit_call, generate_call


async def _fails(make_adapter: AdapterMaker, prompt: str, max_retries: int = 3) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await make_adapter(max_retries=max_retries).run(generate_call(prompt))
    _assert_no_key(caught.value)
    return caught.value


def _assert_no_key(error: GatewayError) -> None:
    text = f"{error.message} {error.args} {error.headers} {error.param} {error.code}"
    for part in (FAL_TEST_KEY, *FAL_TEST_KEY.split(":")):
        assert part not in text


def _statuses(fake: FakeFal) -> list[int]:
    return [a.status_code for a in fake.attempts]


async def test_422_detail_list_names_the_upstream_field(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:422:num_inference_steps]")
    assert type(error) is InvalidRequestError
    assert (error.param, error.code) == ("num_inference_steps", "invalid_value")
    assert error.message == "Input should be less than or equal to 20"
    assert _statuses(fake_fal) == [422]


async def test_422_detail_string_has_no_param(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:422_string]")
    assert type(error) is InvalidRequestError
    assert error.param is None and error.message == "Unprocessable input"


async def test_content_policy_is_moderation_blocked_and_not_retried(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, "[fake:content_policy]")
    assert isinstance(error, ModerationBlockedError)
    assert (error.status_code, error.code) == (400, "moderation_blocked")
    assert _statuses(fake_fal) == [422]


async def test_content_policy_reported_by_a_completed_job(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:content_policy_late]")
    assert isinstance(error, ModerationBlockedError)
    assert fake_fal.cancelled == []


async def test_completed_with_error_is_an_upstream_error(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:completed_error]")
    assert type(error) is UpstreamError
    assert "runner_server_error" in error.message
    assert "CUDA" not in error.message  # fal's internal detail stays upstream


async def test_wrong_key_is_an_upstream_auth_error_without_the_key(
    fake_fal: FakeFal, make_adapter: AdapterMaker
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await make_adapter(api_key="wrong-key-abcdef").run(edit_call())
    assert caught.value.message == "upstream rejected the gateway's fal credentials"
    assert caught.value.code == "upstream_auth_failed"
    assert "wrong-key-abcdef" not in caught.value.message
    assert _statuses(fake_fal) == [401]


async def test_unknown_endpoint_404(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:404]")
    assert type(error) is UpstreamError
    assert error.code == "upstream_model_not_found"
    assert "fal-ai/hidream-i1-full" in error.message and "unknown upstream" in error.message


async def test_429_is_retried_after_retry_after(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    started = time.monotonic()
    result = await make_adapter().run(generate_call("[fake:429]"))
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 honored over the 10 ms backoff
    assert result.images
    assert _statuses(fake_fal) == [429, 200]


async def test_429_that_persists_is_an_upstream_failure(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    # Our 429 means pixelgate's own rate limit; fal limiting the gateway is an upstream failure.
    error = await _fails(make_adapter, "[fake:429_always:0]", max_retries=2)
    assert type(error) is UpstreamError
    assert (error.status_code, error.code, error.headers) == (502, "upstream_rate_limited", {"retry-after": "0"})
    assert _statuses(fake_fal) == [429, 429, 429]


async def test_503_once_then_fine(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("[fake:503]"))
    assert len(result.images) == 1
    assert _statuses(fake_fal) == [503, 200]


@pytest.mark.parametrize("kind", ["502_always", "503_always"])
async def test_5xx_retried_up_to_max_then_upstream_error(
    fake_fal: FakeFal, make_adapter: AdapterMaker, kind: str
) -> None:
    error = await _fails(make_adapter, f"[fake:{kind}]", max_retries=2)
    assert type(error) is UpstreamError
    assert len(fake_fal.attempts) == 3


async def test_504_retried_then_timeout_error(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:504_always]", max_retries=1)
    assert isinstance(error, UpstreamTimeoutError)
    assert _statuses(fake_fal) == [504, 504]


async def test_user_start_timeout_504_is_not_retried(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:504_user]")
    assert isinstance(error, UpstreamTimeoutError)
    assert _statuses(fake_fal) == [504]


async def test_retryable_false_header_stops_retries(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:503_no_retry]")
    assert type(error) is UpstreamError
    assert _statuses(fake_fal) == [503]


async def test_next_scenarios_script_each_submit_request(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    fake_fal.next_scenarios = ["503", "502", "429:0"]
    result = await make_adapter(max_retries=3).run(generate_call())
    assert result.images
    assert _statuses(fake_fal) == [503, 502, 429, 200]


async def test_connection_reset_is_retried(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(generate_call("[fake:reset]"))
    assert result.images
    assert len(fake_fal.attempts) == 2 and len(fake_fal.submissions) == 1


async def test_connection_reset_every_time(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:reset_always]", max_retries=1)
    assert type(error) is UpstreamError
    assert error.code == "upstream_unreachable"
    assert len(fake_fal.attempts) == 2


@pytest.mark.parametrize("kind", ["html", "malformed", "missing_fields", "result_html"])
async def test_unusable_answers_are_upstream_errors(fake_fal: FakeFal, make_adapter: AdapterMaker, kind: str) -> None:
    error = await _fails(make_adapter, f"[fake:{kind}]")
    assert type(error) is UpstreamError
    assert error.code == "upstream_bad_response"
    assert len(fake_fal.attempts) == 1


@pytest.mark.parametrize("kind", ["truncated", "not_image"])
async def test_bad_result_images_are_upstream_errors(fake_fal: FakeFal, make_adapter: AdapterMaker, kind: str) -> None:
    error = await _fails(make_adapter, f"[fake:{kind}]")
    assert type(error) is UpstreamError
    assert error.code == "upstream_bad_response"


async def test_result_url_on_a_metadata_address_is_refused(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:private_url]")
    assert type(error) is UpstreamError
    assert error.code == "upstream_fetch_failed"


async def test_fal_text_quoting_the_key_is_scrubbed(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, "[fake:echo_auth]")
    assert type(error) is InvalidRequestError
    assert "[redacted]" in error.message


async def test_cancellation_cancels_the_fal_job(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    task = asyncio.create_task(make_adapter().run(generate_call("[fake:never]")))
    while not fake_fal.submissions:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_fal.cancelled == [fake_fal.submissions[0].request_id]


async def test_deadline_on_a_job_that_never_finishes_cancels_it(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await make_adapter().run(generate_call("[fake:never]"))
    assert time.monotonic() - started < 2.0
    assert fake_fal.cancelled == [fake_fal.submissions[0].request_id]
    assert fake_fal.status_streams == 1  # followed through one status stream until the deadline


async def test_endpoint_scenario_applies_to_that_endpoint_only(fake_fal: FakeFal, make_adapter: AdapterMaker) -> None:
    fake_fal.endpoint_scenarios["fal-ai/hidream-e1-1"] = "422:prompt"
    adapter = make_adapter()
    assert (await adapter.run(generate_call())).images
    with pytest.raises(InvalidRequestError) as caught:
        await adapter.run(edit_call())
    assert caught.value.param == "prompt"
