"""One retry loop for every adapter; each provider's rules are data (a :class:`RetryPolicy`).

A policy says which answers are worth sending again (statuses, a header that overrides the status,
refusals no header can override), which connection failures are, how long to back off, and how to
treat the wait an upstream asks for (``Retry-After``, ``retry-after-ms``, or a hint in the body):
wait at least that long, or exactly that long; and past ``hint_cap_seconds``, wait the cap or give
up at once rather than hold the client.

Read timeouts are in no default transport list: the request may be running upstream, and the
caller's deadline is better spent waiting than resubmitting (and paying twice).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx

WaitHint = Callable[[httpx.Response], float | None]
"""Reads the wait (seconds) an answer asks for; None when it asks for none."""

CONNECTION_FAILURES: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.RemoteProtocolError,
)
"""Failures where the request cannot have been processed, or the connection broke mid-answer."""

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date, RFC 9110 10.2.3); never negative.

    None when the value is absent or unreadable.
    """
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header of ``response`` in seconds."""
    return parse_retry_after(response.headers.get("retry-after"))


def retry_after_ms(response: httpx.Response) -> float | None:
    """The ``retry-after-ms`` header (OpenAI's SDKs read it first) in seconds."""
    millis = response.headers.get("retry-after-ms")
    if millis is None:
        return None
    try:
        return max(0.0, float(millis) / 1000.0)
    except ValueError:
        return None


def _never(response: httpx.Response) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry one provider's requests.

    ``max_attempts`` counts the first try. After failed attempt ``k`` (0-based) the backoff is
    ``min(cap_seconds, base_seconds * 2**k)`` times a random factor within ``jitter``.

    A response is retried when its status is at least 400, ``refuse`` does not veto it, and then:
    the first of ``override_headers`` present with a true/false value (``true``, ``1``, ``yes`` /
    ``false``, ``0``, ``no``) decides; without one, a status in ``statuses`` (or any 5xx with
    ``all_server_errors``) is retried.

    The wait is the backoff unless a ``wait_hints`` reader finds an asked wait (the first that
    does): with ``hint_is_floor`` the wait is ``max(backoff, asked)``, otherwise exactly ``asked``.
    An asked wait above ``hint_cap_seconds`` is cut to the cap (``over_cap="wait_cap"``) or ends
    the retries at once, returning that answer (``over_cap="give_up"``).
    """

    max_attempts: int = 1
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    jitter: tuple[float, float] = (0.75, 1.25)
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    all_server_errors: bool = False
    override_headers: tuple[str, ...] = ()
    refuse: Callable[[httpx.Response], bool] = _never
    transport_errors: tuple[type[httpx.TransportError], ...] = CONNECTION_FAILURES
    wait_hints: tuple[WaitHint, ...] = (retry_after,)
    hint_cap_seconds: float = 30.0
    hint_is_floor: bool = True
    over_cap: Literal["wait_cap", "give_up"] = "wait_cap"

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based) when nothing asks otherwise."""
        low, high = self.jitter
        return min(self.cap_seconds, self.base_seconds * 2.0**attempt) * random.uniform(low, high)

    def retryable(self, response: httpx.Response) -> bool:
        """Whether ``response`` is worth sending again (see the class docstring)."""
        status = response.status_code
        if status < 400 or self.refuse(response):
            return False
        for name in self.override_headers:
            flag = response.headers.get(name, "").strip().lower()
            if flag in _TRUE:
                return True
            if flag in _FALSE:
                return False
        return status in self.statuses or (self.all_server_errors and status >= 500)

    def asked_wait(self, response: httpx.Response) -> float | None:
        """The wait ``response`` asks for (the first hint that reads one), or None."""
        for hint in self.wait_hints:
            asked = hint(response)
            if asked is not None:
                return asked
        return None

    def wait_after(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying ``response`` (failed attempt ``attempt``); None: give up."""
        backoff = self.backoff(attempt)
        asked = self.asked_wait(response)
        if asked is None:
            return backoff
        if asked > self.hint_cap_seconds:
            if self.over_cap == "give_up":
                return None
            asked = self.hint_cap_seconds
        return max(backoff, asked) if self.hint_is_floor else asked


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    policy: RetryPolicy,
    on_retry: Callable[[], None] | None = None,
) -> httpx.Response:
    """The first answer of ``send()`` not worth retrying, or the last one once attempts run out.

    A connection failure of ``policy.transport_errors`` on the last attempt propagates as the
    ``httpx.TransportError`` it is (other ``httpx`` errors at once); the caller maps it.
    ``on_retry`` is called before each wait (for counting).
    """
    attempt = 0
    while True:
        try:
            response = await send()
        except policy.transport_errors:
            if attempt + 1 >= policy.max_attempts:
                raise
            wait = policy.backoff(attempt)
        else:
            if attempt + 1 >= policy.max_attempts or not policy.retryable(response):
                return response
            asked = policy.wait_after(attempt, response)
            if asked is None:
                return response
            wait = asked
        if on_retry is not None:
            on_retry()
        attempt += 1
        await asyncio.sleep(wait)
