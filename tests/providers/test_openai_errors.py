"""The openai adapter's error mapping and retries, against scripted failures of the fake upstream."""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from core.errors import (
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from tests.fakes.fake_openai import FakeOpenAIServer
from tests.providers.openai_calls import API_KEY, edit_call, generate_call, png_input, run_call, settings


def test_bad_request_keeps_the_upstream_param_without_brackets(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(
        400,
        message="Invalid file 'image[0]': unsupported mimetype ('application/octet-stream').",
        code="unsupported_file_mimetype",
        param="image[0]",
    )
    with pytest.raises(InvalidRequestError) as failure:
        run_call(settings(fake_openai.base_url), edit_call({"prompt": "x"}, (png_input(), png_input())))
    error = failure.value
    assert (error.status_code, error.param, error.code) == (400, "image", "unsupported_file_mimetype")
    assert "unsupported mimetype" in error.message
    assert len(fake_openai.app.requests) == 1


@pytest.mark.parametrize(
    ("error_type", "code"),
    [("image_generation_user_error", "moderation_blocked"), ("invalid_request_error", "content_policy_violation")],
)
def test_content_policy_is_moderation_blocked_and_not_retried(
    fake_openai: FakeOpenAIServer, error_type: str, code: str
) -> None:
    fake_openai.app.fail_next(
        400, message="Your request was rejected by the safety system.", error_type=error_type, code=code
    )
    with pytest.raises(ModerationBlockedError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert failure.value.code == "moderation_blocked"
    assert failure.value.status_code == 400
    assert len(fake_openai.app.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_never_echo_the_key(fake_openai: FakeOpenAIServer, status: int) -> None:
    fake_openai.app.fail_next(status, message=f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    error = failure.value
    assert (error.status_code, error.code) == (502, "upstream_auth_failed")
    assert error.message == "upstream rejected the gateway's credentials"
    assert API_KEY not in str(error.to_body())
    assert len(fake_openai.app.requests) == 1


def test_validation_messages_are_scrubbed_of_the_key(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(400, message=f"bad size for key {API_KEY}", param="size", code="invalid_value")
    with pytest.raises(InvalidRequestError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert API_KEY not in failure.value.message
    assert failure.value.param == "size"


def test_429_is_retried_after_retry_after_ms(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(429, error_type="requests", code="rate_limit_exceeded", headers={"retry-after-ms": "300"})
    started = time.monotonic()
    result = run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert time.monotonic() - started >= 0.3
    assert len(result.images) == 1
    assert len(fake_openai.app.requests) == 2


def test_429_after_retries_is_a_502_passing_retry_after_on(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(429, code="rate_limit_exceeded", headers={"retry-after": "0"}, times=3)
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url, max_retries=2), generate_call({"prompt": "x"}))
    error = failure.value
    assert (error.status_code, error.code, error.headers) == (502, "upstream_rate_limited", {"retry-after": "0"})
    assert len(fake_openai.app.requests) == 3


def test_exhausted_quota_is_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(429, error_type="insufficient_quota", code="insufficient_quota", times=3)
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert failure.value.code == "upstream_quota_exhausted"
    assert len(fake_openai.app.requests) == 1


def test_retry_after_beyond_the_cap_fails_at_once(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(503, error_type="server_error", headers={"retry-after": "3600"})
    started = time.monotonic()
    with pytest.raises(UpstreamError):
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert time.monotonic() - started < 2
    assert len(fake_openai.app.requests) == 1


def test_500_once_is_retried_and_the_multipart_body_resent(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(500, error_type="server_error")
    source = png_input()
    result = run_call(settings(fake_openai.base_url), edit_call({"prompt": "x"}, (source,)))
    assert len(result.images) == 1
    first, second = fake_openai.app.requests
    assert first.form() == second.form()
    assert second.form().files[0].data == source.data


def test_x_should_retry_false_is_honored(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(500, error_type="server_error", headers={"x-should-retry": "false"})
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert failure.value.message == "the upstream failed: HTTP 500"
    assert len(fake_openai.app.requests) == 1


def test_persistent_5xx_is_a_502_after_max_retries(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(502, error_type="server_error", times=5)
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url, max_retries=3), generate_call({"prompt": "x"}))
    assert failure.value.status_code == 502
    assert len(fake_openai.app.requests) == 4


def test_gateway_timeout_upstream_is_504(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(504, error_type="server_error", times=2)
    with pytest.raises(UpstreamTimeoutError):
        run_call(settings(fake_openai.base_url, max_retries=1), generate_call({"prompt": "x"}))
    assert len(fake_openai.app.requests) == 2


def test_read_timeout_is_504_and_not_resubmitted(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.fail_next(500, delay_seconds=1.0)
    with pytest.raises(UpstreamTimeoutError) as failure:
        run_call(settings(fake_openai.base_url, read_timeout_seconds=0.2), generate_call({"prompt": "x"}))
    assert failure.value.status_code == 504
    assert len(fake_openai.app.requests) == 1


def test_unreachable_upstream_is_502_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(f"http://127.0.0.1:{port}/v1", max_retries=1), generate_call({"prompt": "x"}))
    assert failure.value.code == "upstream_unreachable"


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b'{"created": 1, "data": []}',
        b'{"created": 1, "data": [{"b64_json": "%%%not-base64"}]}',
        b'{"created": 1, "data": [{"b64_json": "aGVsbG8gd29ybGQ="}]}',
        b'{"created": 1, "data": [{"revised_prompt": "no image"}]}',
    ],
)
def test_unusable_success_bodies_are_bad_responses(fake_openai: FakeOpenAIServer, body: bytes) -> None:
    fake_openai.app.answer_next(200, body)
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}))
    assert failure.value.code == "upstream_bad_response"


def test_unknown_model_upstream_is_502_naming_it(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.app.answer_next(404, orjson.dumps({"error": {"message": "The model does not exist"}}))
    with pytest.raises(UpstreamError) as failure:
        run_call(settings(fake_openai.base_url), generate_call({"prompt": "x"}, upstream="gpt-image-9"))
    assert failure.value.code == "upstream_model_not_found"
    assert "gpt-image-9" in failure.value.message
