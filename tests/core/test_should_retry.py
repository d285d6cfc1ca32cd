"""The retry advice of every error class and of the codes that differ from their class (``x-should-retry``)."""

from __future__ import annotations

import pytest

from core.errors import (
    AuthenticationError,
    ConflictError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    ModerationBlockedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProviderNotConfiguredError,
    RateLimitError,
    RequestHeaderTooLargeError,
    RequestRateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)

TABLE: list[tuple[GatewayError, bool]] = [
    (InvalidRequestError("bad"), False),
    (ModerationBlockedError("refused"), False),
    (AuthenticationError("who"), False),
    (PermissionDeniedError("expired"), False),
    (ModelNotFoundError("no"), False),
    (RequestTimeoutError("slow upload"), True),
    (ConflictError("reused key"), False),
    (PayloadTooLargeError("big"), False),
    (RequestHeaderTooLargeError("big head"), False),
    (RequestRateLimitError("ours", headers={"retry-after": "1"}), True),
    (RateLimitError("a limit"), True),
    (UpstreamError("after our retries"), False),
    (UpstreamError("bad answer", code="upstream_bad_response"), False),
    (UpstreamError("unreachable", code="upstream_unreachable"), False),
    (UpstreamError("job failed", code="upstream_job_failed"), False),
    (UpstreamError("quota", code="upstream_quota_exhausted"), False),
    (UpstreamError("creds", code="upstream_auth_failed"), False),
    (UpstreamError("limited", code="upstream_rate_limited", headers={"retry-after": "3"}), True),
    (ServiceUnavailableError("overloaded", code="server_overloaded"), True),
    (ServiceUnavailableError("draining", code="shutting_down"), True),
    (ServiceUnavailableError("redis away", code="state_unavailable"), True),
    (ProviderNotConfiguredError("no key"), False),
    (UpstreamTimeoutError("deadline"), False),
    (GatewayError("a bug"), False),
]


@pytest.mark.parametrize(("error", "retry"), TABLE, ids=lambda value: getattr(value, "code", None) or str(value))
def test_each_error_says_whether_to_retry(error: GatewayError, retry: bool) -> None:
    assert error.should_retry is retry
    headers = error.response_headers()
    assert headers["x-should-retry"] == ("true" if retry else "false")
    assert {name: value for name, value in headers.items() if name != "x-should-retry"} == error.headers


def test_a_raiser_cannot_contradict_the_table_through_headers() -> None:
    error = ConflictError("reused", headers={"x-should-retry": "true"})
    assert error.response_headers()["x-should-retry"] == "false"
