"""When and how long to retry a request to fal: the fal :class:`RetryPolicy`, as data.

Retried: HTTP 429, 502, 503, 504 and connection failures (connect errors, resets, a closed
connection mid-answer), with exponential backoff and ±25 % jitter, waiting at least what
``Retry-After`` asks (at most 30 s of it). fal's ``X-Fal-Retryable`` (or its older name
``X-Fal-Needs-Retry``) overrides the status: ``false`` stops, ``true`` retries. Never retried,
whatever the headers say: a 504 with ``X-Fal-Request-Timeout-Type: user`` (fal's own start deadline
ran out, retrying cannot help), a 422 validation error, and a content-policy refusal. Read timeouts
are not retried either (the toolkit's default).

Sources: fal-js ``retry.ts`` and the fal reliability docs (fal reference, section 2.4).
"""

from __future__ import annotations

import httpx

from providers.fal.errors import is_content_policy
from providers.toolkit.retry import RetryPolicy


def never_retried(response: httpx.Response) -> bool:
    """A 422, a content-policy refusal, or fal's own start deadline: no header makes them retryable."""
    if response.status_code == 422 or is_content_policy(response):
        return True
    return response.status_code == 504 and response.headers.get("x-fal-request-timeout-type", "").lower() == "user"


FAL_RETRY = RetryPolicy(
    base_seconds=0.2,
    cap_seconds=5.0,
    jitter=(0.75, 1.25),
    statuses=frozenset({429, 502, 503, 504}),
    override_headers=("x-fal-retryable", "x-fal-needs-retry"),
    refuse=never_retried,
    hint_cap_seconds=30.0,
    hint_is_floor=True,
    over_cap="wait_cap",
)
"""fal's rules; an adapter sets ``max_attempts`` (and test-sized backoff) with ``dataclasses.replace``."""
