"""When and how long to retry a request to Replicate: three :class:`RetryPolicy` values, as data.

Replicate's own JavaScript client retries 429 on any method and 5xx on GET (the Replicate reference,
section 9); these policies do the same, with one deliberate difference each way:

- **create** (``POST .../predictions``): a 429 (the prediction was not made), and a connection that
  could not be opened (``ConnectError``, ``ConnectTimeout``: the request never left, so no
  prediction can exist). Nothing else: the API has no idempotency key, so a 5xx, a reset or a read
  timeout after the request went out may have made a prediction that a second create would run
  (and bill) twice. Such a prediction is ended by its ``Cancel-After`` deadline.
- **poll** (``GET urls.get``): 429, any 5xx and every connection failure; a GET changes nothing.
- **upload** (``POST /files``): 429, 5xx and connection failures too, unlike a create: a duplicate
  input file costs nothing, is never billed and expires on its own.

The wait is exponential (0.5 s doubling, at most 8 s, ±25 % jitter), or what the 429 asks for when
more: its ``Retry-After`` header or the "resets in ~30s" of its body (whether a 429 carries the
header is unconfirmed, the reference says). An asked wait above 10 s ends the retries at once: the
caller gets ``upstream_rate_limited`` with that ``retry-after``, and a router can try another
provider instead of holding the client.
"""

from __future__ import annotations

import dataclasses
import re

import httpx

from providers.toolkit.retry import CONNECTION_FAILURES, RetryPolicy, retry_after

_RESETS_IN = re.compile(rb"resets in ~?(\d+(?:\.\d+)?)\s*s")


def throttle_hint(response: httpx.Response) -> float | None:
    """The wait a 429 body names: ``"Request was throttled. Your rate limit resets in ~30s."``."""
    if response.status_code != 429:
        return None
    match = _RESETS_IN.search(response.content[:500])
    return float(match.group(1)) if match else None


_BASE = RetryPolicy(
    base_seconds=0.5,
    cap_seconds=8.0,
    jitter=(0.75, 1.25),
    wait_hints=(retry_after, throttle_hint),
    hint_cap_seconds=10.0,
    hint_is_floor=True,
    over_cap="give_up",
)

CREATE_RETRY = dataclasses.replace(
    _BASE, statuses=frozenset({429}), transport_errors=(httpx.ConnectError, httpx.ConnectTimeout)
)
POLL_RETRY = dataclasses.replace(
    _BASE, statuses=frozenset({429}), all_server_errors=True, transport_errors=CONNECTION_FAILURES
)
UPLOAD_RETRY = POLL_RETRY
"""An adapter sets ``max_attempts`` (and test-sized backoff) on each with ``dataclasses.replace``."""
