"""When and how long to retry a request to an OpenAI-compatible upstream.

The rules of the official SDKs (openai-python ``_should_retry``/``_calculate_retry_timeout``):
``x-should-retry: true|false`` decides first; otherwise 408, 409, 429 and every 5xx are retried,
and so are connection failures (connect errors, resets, a connection closed mid-answer). Never
retried: a 429 for an exhausted quota (waiting cannot help), a content-policy refusal, and read
timeouts (the image may still be rendering upstream; resubmitting doubles the cost and the
caller's deadline is better spent elsewhere). The wait honors ``retry-after-ms`` then
``retry-after`` (seconds or an HTTP date); when the upstream asks for longer than
``retry_after_cap_seconds`` the failure is returned at once instead of holding the client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from providers.openai.errors import error_object, is_moderation, is_quota
from providers.retry_after import parse_retry_after

RETRY_STATUSES = frozenset({408, 409, 429})
RETRY_TRANSPORT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; backoff grows from ``base_seconds`` to ``cap_seconds``."""

    max_attempts: int
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    retry_after_cap_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based) when the upstream names none."""
        return min(self.cap_seconds, self.base_seconds * 2.0**attempt) * random.uniform(0.75, 1.0)


def should_retry(response: httpx.Response) -> bool:
    """Whether an error ``response`` is worth sending again (see the module docstring)."""
    status = response.status_code
    if status < 400:
        return False
    flag = str(response.headers.get("x-should-retry", "")).strip().lower()
    if flag in ("true", "false"):
        return flag == "true"
    if status == 429 or status >= 500 or status in RETRY_STATUSES:
        error = error_object(response)
        return not (is_quota(error) or is_moderation(error))
    return False


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait the upstream asked for: ``retry-after-ms``, else ``retry-after``; None when absent."""
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(response.headers.get("retry-after"))


async def send_with_retry(send: Callable[[], Awaitable[httpx.Response]], policy: RetryPolicy) -> httpx.Response:
    """The first non-retryable response of ``send()``, or the last one once retries are over.

    A retryable connection failure on the last attempt propagates as the ``httpx.TransportError``
    it is; the caller maps it.
    """
    attempt = 0
    while True:
        try:
            response = await send()
        except RETRY_TRANSPORT_ERRORS:
            if attempt + 1 >= policy.max_attempts:
                raise
            wait = policy.backoff(attempt)
        else:
            if attempt + 1 >= policy.max_attempts or not should_retry(response):
                return response
            asked = retry_after_seconds(response)
            if asked is not None and asked > policy.retry_after_cap_seconds:
                return response
            wait = asked if asked is not None else policy.backoff(attempt)
        attempt += 1
        await asyncio.sleep(wait)
