"""When and how long to retry a ``generateContent`` call: the Gemini :class:`RetryPolicy`, as data.

Retried: 408, 429, 500, 502, 503, 504 (Google's own SDK, ``google-genai``, retries exactly these when
retries are on) and every connection failure (a call leaves no state upstream to recover). Never
retried: a 429 of a per-day quota (``QuotaFailure`` with a ``...PerDay...`` quota id: nothing
changes before it resets). The wait is exponential (1 s doubling, at most 8 s, ±25 % jitter), or the
429's ``RetryInfo.retryDelay`` (else ``Retry-After``) when that is longer; a delay above 10 s ends
the retries at once (Google's per-minute delays are often 30-60 s), so the caller gets
``upstream_rate_limited`` with that ``retry-after`` and a router can try another provider instead.

Sources: the Gemini reference, section 7 (google-genai ``_api_client.py`` retry options; the
gemini-cli 429 bodies); genai itself does not read ``RetryInfo``.
"""

from __future__ import annotations

import httpx

from providers.gemini.errors import google_error
from providers.toolkit.retry import CONNECTION_FAILURES, RetryPolicy, retry_after


def retry_info_delay(response: httpx.Response) -> float | None:
    """The ``RetryInfo.retryDelay`` of a 429, in seconds."""
    return google_error(response).retry_delay if response.status_code == 429 else None


def daily_quota(response: httpx.Response) -> bool:
    return response.status_code == 429 and google_error(response).daily_quota


GEMINI_RETRY = RetryPolicy(
    base_seconds=1.0,
    cap_seconds=8.0,
    jitter=(0.75, 1.25),
    statuses=frozenset({408, 429, 500, 502, 503, 504}),
    refuse=daily_quota,
    transport_errors=CONNECTION_FAILURES,
    wait_hints=(retry_info_delay, retry_after),
    hint_cap_seconds=10.0,
    hint_is_floor=True,
    over_cap="give_up",
)
"""An adapter sets ``max_attempts`` (and test-sized backoff) with ``dataclasses.replace``."""
