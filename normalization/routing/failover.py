"""When a failed upstream attempt moves on to the next deployment: the routing contract as data.

Another provider may succeed where one failed after its own retries, timed out, was unreachable,
was still rate-limiting, is not configured, or no longer has the model: those failures fail over.
A client fault (any 400) would fail the same everywhere, and a content-policy refusal must never be
routed around (``moderation_blocked`` is a 400): those end the request at once.
"""

from __future__ import annotations

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ProviderNotConfiguredError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)

FAILS_OVER: tuple[type[GatewayError], ...] = (UpstreamError, UpstreamTimeoutError, ServiceUnavailableError)
"""502 (failed after retries, rate limited, no image, model gone, bad answer), 504, 503 (unavailable or
not configured)."""


def fails_over(error: GatewayError) -> bool:
    """Whether the next deployment should be tried after ``error``."""
    if isinstance(error, InvalidRequestError):
        return False
    return isinstance(error, FAILS_OVER)


def counts_against_provider(error: GatewayError) -> bool:
    """Whether ``error`` is a sign of the provider's ill health (what the circuit breaker counts).

    A provider with no credentials is not failing: it is skipped without being tried, and its
    breaker is left alone.
    """
    return fails_over(error) and not isinstance(error, ProviderNotConfiguredError)
