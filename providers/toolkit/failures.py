"""Failures every adapter meets, mapped the same way: what a client may be told, and how.

Messages quote an upstream's own text only where the user must act on it (a validation or
moderation message), cut to a bounded length and scrubbed of the credential; a response body is
never quoted otherwise. ``who`` names the upstream in messages (``"fal"``, ``"the upstream"``).
"""

from __future__ import annotations

from typing import TypeVar

import httpx
from pydantic import BaseModel, JsonValue, ValidationError

from core.errors import GatewayError, UpstreamError, UpstreamTimeoutError

MAX_QUOTED = 300
"""Longest upstream text passed on to a client."""
CAUSE_BYTES = 4096
"""How much of an error body is read to describe the cause in the log."""

ModelT = TypeVar("ModelT", bound=BaseModel)


def scrub(text: str, secret: str | None) -> str:
    """``text`` cut to :data:`MAX_QUOTED` characters, with ``secret`` removed.

    A secret made of parts (fal's ``key_id:key_secret``) has each part of 4 characters or more
    removed too, so an upstream echoing half the key does not leak it.
    """
    if secret:
        for part in sorted({secret, *secret.split(":")}, key=len, reverse=True):
            if len(part) >= 4:
                text = text.replace(part, "[redacted]")
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def upstream_cause(response: httpx.Response, secret: str | None) -> str:
    """What the upstream answered, on one line, for the operator's log: the status and the body's text
    (scrubbed of ``secret`` and cut to :data:`MAX_QUOTED` characters)."""
    text = " ".join(response.content[:CAUSE_BYTES].decode("utf-8", "replace").split())
    return f"HTTP {response.status_code}: {scrub(text, secret) if text else '(empty body)'}"


def with_cause(error: GatewayError, response: httpx.Response, secret: str | None) -> GatewayError:
    """``error`` with :func:`upstream_cause` attached as an exception note: logged with the failure
    (:mod:`normalization.metering`), never sent to the client, whose message stays ``error.message``."""
    error.add_note(upstream_cause(response, secret))
    return error


def bad_response(who: str, what: str) -> UpstreamError:
    """The upstream answered something its protocol does not allow (not JSON, fields missing...)."""
    return UpstreamError(f"{who} answered an unusable {what}", code="upstream_bad_response")


def parse_model(response: httpx.Response, model: type[ModelT], *, who: str, what: str) -> ModelT:
    """``response``'s JSON body validated as ``model``; ``upstream_bad_response`` otherwise."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise bad_response(who, what) from exc


def parse_object(response: httpx.Response, *, who: str, what: str) -> dict[str, JsonValue]:
    """``response``'s body as a JSON object; ``upstream_bad_response`` when it is anything else."""
    try:
        value = response.json()
    except ValueError as exc:
        raise bad_response(who, what) from exc
    if not isinstance(value, dict):
        raise bad_response(who, what)
    return value


def transport_failure(exc: httpx.HTTPError, *, who: str, during: str | None = None) -> GatewayError:
    """The error for a connection failure or timeout that outlasted the retries.

    A timeout is an ``UpstreamTimeoutError`` (504); anything else ``upstream_unreachable`` (502)
    naming the exception class only (its text may hold a URL with credentials).
    """
    phase = f" during {during}" if during else ""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"{who} did not answer in time{phase}")
    return UpstreamError(f"cannot reach {who}{phase} ({type(exc).__name__})", code="upstream_unreachable")


def passed_retry_after(response: httpx.Response) -> dict[str, str] | None:
    """The upstream's ``retry-after`` as headers to pass on to the client, when it is whole seconds."""
    value = response.headers.get("retry-after", "").strip()
    return {"retry-after": value} if value.isdigit() else None
