"""When and how long to retry a request to an OpenAI-compatible upstream: the policy, as data.

The rules of the official SDKs (openai-python ``_should_retry``/``_calculate_retry_timeout``):
``x-should-retry: true|false`` decides; otherwise 408, 409, 429 and every 5xx are retried, and so
are connection failures (connect errors, resets, a write cut off, a connection closed mid-answer).
Never retried, whatever the headers say: a 429 for an exhausted quota (waiting cannot help) and a
content-policy refusal; nor read timeouts (the image may still be rendering upstream; resubmitting
doubles the cost and the caller's deadline is better spent elsewhere). The wait is what
``retry-after-ms`` then ``retry-after`` (seconds or an HTTP date) ask, exactly; when the upstream
asks for longer than 30 s the failure is returned at once instead of holding the client.
"""

from __future__ import annotations

import httpx

from providers.openai.errors import error_object, is_moderation, is_quota
from providers.toolkit.retry import CONNECTION_FAILURES, RetryPolicy, retry_after, retry_after_ms


def never_retried(response: httpx.Response) -> bool:
    """An exhausted quota or a moderation refusal: no wait or header makes them succeed."""
    if response.status_code < 400:
        return False
    error = error_object(response)
    return is_quota(error) or is_moderation(error)


OPENAI_RETRY = RetryPolicy(
    base_seconds=0.5,
    cap_seconds=8.0,
    jitter=(0.75, 1.0),
    statuses=frozenset({408, 409, 429}),
    all_server_errors=True,
    override_headers=("x-should-retry",),
    refuse=never_retried,
    transport_errors=(*CONNECTION_FAILURES, httpx.WriteError),
    wait_hints=(retry_after_ms, retry_after),
    hint_cap_seconds=30.0,
    hint_is_floor=False,
    over_cap="give_up",
)
"""The OpenAI SDKs' rules; an adapter sets ``max_attempts`` (and test-sized backoff) with ``dataclasses.replace``."""
