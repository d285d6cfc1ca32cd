"""Every Replicate failure mode against the fake: the client-visible error, what is retried, no token leak.

Creates are retried only where no prediction can exist (a 429, a connection never opened); polls on
429, 5xx and dropped connections. Failed predictions map by their text (moderation or not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from providers.base import ProviderResult, UpstreamCall
from tests.fakes.fake_replicate import FakeReplicate
from tests.providers.replicate.conftest import (
    TOKEN,
    AdapterMaker,
    build,
    hidream_edit,
    kontext_edit,
    schnell_generate,
)


async def _fails(make_adapter: AdapterMaker, call: UpstreamCall, **values: int) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await make_adapter(**values).run(call)
    error = caught.value
    assert TOKEN not in f"{error.message} {error.args} {error.headers} {error.param}"
    return error


def _statuses(fake: FakeReplicate) -> list[int]:
    return [attempt.status_code for attempt in fake.attempts]


async def test_a_422_names_the_input_field_and_is_not_retried(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:422:seed]"))
    assert type(error) is InvalidRequestError
    assert (error.status_code, error.param, error.code) == (400, "seed", "invalid_value")
    assert error.message == "Invalid type. Expected: integer, given: string"
    assert _statuses(fake) == [422]


async def test_a_schema_violation_quotes_replicates_description(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, kontext_edit("x", {"output_format": "webp"}))
    assert isinstance(error, InvalidRequestError) and error.param == "output_format"
    assert error.message == 'output_format must be one of the following: "jpg", "png"'


async def test_a_missing_required_field_is_named(make_adapter: AdapterMaker) -> None:
    call = kontext_edit().model_copy(update={"payload": {"output_format": "png"}})
    error = await _fails(make_adapter, call)
    assert isinstance(error, InvalidRequestError) and error.param == "prompt"


async def test_an_unknown_input_field_is_named(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit("x", {"guidance_scale": 3}))
    assert isinstance(error, InvalidRequestError) and error.param == "guidance_scale"


async def test_an_unknown_version_is_a_model_gone_not_a_client_fault(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, hidream_edit(fake, upstream="prunaai/hidream-e1.1:" + "0" * 64))
    assert type(error) is UpstreamError and error.code == "upstream_model_not_found"


@pytest.mark.parametrize(
    ("upstream", "marker"),
    [
        ("black-forest-labs/no-such-model", ""),
        ("prunaai/hidream-e1.1", ""),
        ("black-forest-labs/flux-kontext-pro", "[fake:404]"),
    ],
)
async def test_a_404_on_create_is_upstream_model_not_found(
    fake: FakeReplicate, make_adapter: AdapterMaker, upstream: str, marker: str
) -> None:
    # The second case is a community model on the official route, as Replicate answers it.
    error = await _fails(make_adapter, kontext_edit(marker or "x").model_copy(update={"upstream": upstream}))
    assert (error.status_code, error.code) == (502, "upstream_model_not_found")
    assert _statuses(fake) == [404]


async def test_a_wrong_token_is_upstream_auth_failed(
    fake: FakeReplicate, recording_client: httpx.AsyncClient, seen: list[httpx.Response]
) -> None:
    adapter = build(fake.base_url, recording_client, token="r8_wrong_token_abcdef")
    with pytest.raises(UpstreamError) as caught:
        await adapter.run(kontext_edit())
    assert caught.value.code == "upstream_auth_failed" and "r8_wrong" not in caught.value.message
    assert [r.status_code for r in seen] == [401]
    assert seen[0].request.headers["authorization"] == "Bearer r8_wrong_token_abcdef"


async def test_insufficient_credit_is_upstream_quota_exhausted(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:402]"))
    assert (error.status_code, error.code) == (502, "upstream_quota_exhausted")
    assert "Insufficient credit" in error.message and "replicate.com" not in error.message


async def test_a_429_on_create_is_retried(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    result = await make_adapter().run(kontext_edit("[fake:429:0]"))
    assert _statuses(fake) == [429, 201] and len(result.images) == 1


async def test_a_lasting_429_is_upstream_rate_limited_with_its_retry_after(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:429_always:0]"), max_retries=2)
    assert (error.status_code, error.code) == (502, "upstream_rate_limited")
    assert error.headers["retry-after"] == "0" and error.should_retry
    assert _statuses(fake) == [429, 429, 429]


async def test_a_429_asking_for_a_long_wait_is_not_waited_for(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:429_always:30]"))
    assert error.code == "upstream_rate_limited" and error.headers["retry-after"] == "30"
    assert _statuses(fake) == [429]  # 30 s is past the 10 s cap: a router can try another provider now


async def test_the_throttle_text_is_a_wait_hint_when_there_is_no_retry_after(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    # "Your rate limit resets in ~1s." without a Retry-After header: waited for, then retried.
    result = await make_adapter().run(kontext_edit("[fake:429:none]"))
    assert _statuses(fake) == [429, 201] and result.images
    assert fake.attempts[1].at - fake.attempts[0].at >= 0.9


@pytest.mark.parametrize(("marker", "status"), [("500", 500), ("502", 502), ("503", 503)])
async def test_a_5xx_on_create_is_not_retried(
    fake: FakeReplicate, make_adapter: AdapterMaker, marker: str, status: int
) -> None:
    # The create may have made a prediction: a second create could run (and bill) it twice.
    error = await _fails(make_adapter, kontext_edit(f"[fake:{marker}]"))
    assert type(error) is UpstreamError and error.code == "upstream_error" and str(status) in error.message
    assert _statuses(fake) == [status]


async def test_a_504_on_create_is_a_timeout_and_not_retried(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:504]"))
    assert isinstance(error, UpstreamTimeoutError) and _statuses(fake) == [504]


async def test_a_connection_dropped_during_the_create_is_not_retried(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:reset]"))
    assert error.code == "upstream_unreachable" and len(fake.attempts) == 1


class _RefuseFirstConnection(httpx.AsyncBaseTransport):
    """A network where the first connection attempt is refused (nothing was sent), then all is well."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused == 0:
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def refusing_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=_RefuseFirstConnection()) as client:
        yield client


async def test_a_create_that_never_connected_is_retried(
    fake: FakeReplicate, refusing_client: httpx.AsyncClient
) -> None:
    result = await build(fake.base_url, refusing_client).run(kontext_edit())
    assert len(result.images) == 1 and _statuses(fake) == [201]


async def test_failing_polls_are_retried(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    result = await make_adapter(wait_seconds=0).run(kontext_edit("[fake:poll_503:2]"))
    assert len(result.images) == 1 and len(fake.polls) >= 3


async def test_polls_failing_past_the_retries_cancel_the_prediction(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:poll_500:100]"), wait_seconds=0, max_retries=2)
    assert error.code == "upstream_error" and "500" in error.message
    assert fake.cancels == [fake.attempts[0].prediction_id]


@pytest.mark.parametrize("marker", ["sensitive", "nsfw"])
async def test_a_prediction_failed_for_sensitive_content_is_moderation_blocked(
    fake: FakeReplicate, make_adapter: AdapterMaker, marker: str
) -> None:
    error = await _fails(make_adapter, schnell_generate(f"[fake:{marker}]"))
    assert isinstance(error, ModerationBlockedError)
    assert (error.status_code, error.code) == (400, "moderation_blocked")
    assert ("(E005)" if marker == "sensitive" else "NSFW content") in error.message
    assert fake.cancels == [] and len(fake.attempts) == 1


async def test_another_failed_prediction_is_upstream_job_failed_with_its_code_only(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    error = await _fails(make_adapter, kontext_edit("[fake:failed]"))
    assert (error.status_code, error.code) == (502, "upstream_job_failed")
    assert "(E1001)" in error.message and "CUDA" not in error.message
    assert not error.should_retry


async def test_a_failure_text_quoting_the_token_is_scrubbed(make_adapter: AdapterMaker) -> None:
    error = await _fails(make_adapter, kontext_edit(f"[fake:failed:NSFW content near {TOKEN}]"))
    assert isinstance(error, ModerationBlockedError) and "[redacted]" in error.message


@pytest.mark.parametrize(("marker", "why"), [("no_output", "has no output"), ("expired", "already removed")])
async def test_a_success_without_images_is_upstream_no_image(make_adapter: AdapterMaker, marker: str, why: str) -> None:
    error = await _fails(make_adapter, schnell_generate(f"[fake:{marker}]"))
    assert (error.status_code, error.code) == (502, "upstream_no_image") and why in error.message
    assert error.should_retry


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("output_404", "upstream_fetch_failed"),
        ("truncated", "upstream_bad_response"),
        ("not_image", "upstream_bad_response"),
    ],
)
async def test_unusable_outputs_are_502s(make_adapter: AdapterMaker, marker: str, code: str) -> None:
    error = await _fails(make_adapter, kontext_edit(f"[fake:{marker}]"))
    assert (error.status_code, error.code) == (502, code)


async def test_fewer_outputs_than_asked_are_handed_on_as_they_are(make_adapter: AdapterMaker) -> None:
    # flux drops NSFW images one by one; the pipeline, which knows how many it asked for, decides.
    result = await make_adapter().run(schnell_generate("[fake:fewer_outputs]", {"num_outputs": 3}))
    assert len(result.images) == 2


async def test_a_prediction_past_its_cancel_after_is_a_timeout(fake: FakeReplicate, make_adapter: AdapterMaker) -> None:
    fake.min_cancel_after_seconds = 1
    adapter = make_adapter(wait_seconds=0, deadline=1)
    adapter.min_cancel_after_seconds = 1
    error = await _fails_with(adapter.run(kontext_edit("[fake:never]")))
    assert isinstance(error, UpstreamTimeoutError) and "canceled" in error.message
    assert fake.attempts[0].headers["cancel-after"] == "1s"


async def test_a_prediction_aborted_before_it_started_is_a_timeout(
    fake: FakeReplicate, make_adapter: AdapterMaker
) -> None:
    fake.min_cancel_after_seconds = 1
    adapter = make_adapter(wait_seconds=0, deadline=1)
    adapter.min_cancel_after_seconds = 1
    error = await _fails_with(adapter.run(kontext_edit("[fake:slow:10]")))
    assert isinstance(error, UpstreamTimeoutError) and "aborted" in error.message


async def _fails_with(job: Awaitable[ProviderResult]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await job
    return caught.value
