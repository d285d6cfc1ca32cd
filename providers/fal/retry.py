"""When and how long to retry a request to fal.

Retried: HTTP 429, 502, 503, 504 and connection failures (connect errors, resets, a closed
connection mid-answer), with exponential backoff and ±25 % jitter, waiting at least what
``Retry-After`` asks. fal's ``X-Fal-Retryable`` (or its older name ``X-Fal-Needs-Retry``) overrides
the status: ``false`` stops, ``true`` retries. Never retried, whatever the headers say: a 504 with
``X-Fal-Request-Timeout-Type: user`` (fal's own start deadline ran out, retrying cannot help), a 422
validation error, and a content-policy refusal. Read timeouts are not retried either: the request
may be running upstream, and the caller's deadline is better spent waiting than resubmitting.

Sources: fal-js ``retry.ts`` and the fal reliability docs (fal reference, section 2.4).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from providers.fal.errors import is_content_policy
from providers.retry_after import parse_retry_after

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_RETRY_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try; delays grow from ``base_seconds`` to ``cap_seconds``.

    ``retry_after_cap_seconds`` bounds how long a ``Retry-After`` may make one wait last.
    """

    max_attempts: int
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    retry_after_cap_seconds: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        backoff = min(self.cap_seconds, self.base_seconds * 2.0**attempt) * random.uniform(0.75, 1.25)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, self.retry_after_cap_seconds))


def _header_flag(response: httpx.Response) -> bool | None:
    for name in ("x-fal-retryable", "x-fal-needs-retry"):
        value = response.headers.get(name)
        if value is not None:
            return value.strip().lower() in ("true", "1", "yes")
    return None


def should_retry(response: httpx.Response) -> bool:
    """Whether an error ``response`` is worth sending again (see the module docstring)."""
    status = response.status_code
    if status < 400 or status == 422 or is_content_policy(response):
        return False
    if status == 504 and response.headers.get("x-fal-request-timeout-type", "").lower() == "user":
        return False
    flag = _header_flag(response)
    if flag is not None:
        return flag
    return status in RETRY_STATUSES


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    return parse_retry_after(response.headers.get("retry-after"))


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    policy: RetryPolicy,
    on_retry: Callable[[], None] | None = None,
) -> httpx.Response:
    """The first non-retryable response of ``send()``, or the last one once attempts run out.

    A retryable connection failure on the last attempt propagates as the ``httpx.TransportError``
    it is; the caller maps it. ``on_retry`` is called before each wait (for counting).
    """
    attempt = 0
    while True:
        try:
            response = await send()
        except _RETRY_TRANSPORT_ERRORS:
            if attempt + 1 >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, None)
        else:
            if attempt + 1 >= policy.max_attempts or not should_retry(response):
                return response
            wait = policy.delay(attempt, retry_after_seconds(response))
        if on_retry is not None:
            on_retry()
        attempt += 1
        await asyncio.sleep(wait)
