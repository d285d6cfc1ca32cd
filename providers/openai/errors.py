"""The one place where an OpenAI-compatible upstream's answers and httpx's exceptions become errors.

OpenAI reports failures as ``{"error": {"message", "type", "param", "code"}}`` (the same shape
pixelgate answers with). Mapping, applied once retries are over:

=========================================  =========================================================
upstream answer                            gateway error
=========================================  =========================================================
``code`` ``moderation_blocked`` or         ``ModerationBlockedError`` (400 ``moderation_blocked``)
``content_policy_violation``, or ``type``
``image_generation_user_error`` with a
moderation code
400, 413, 415, 422                         ``InvalidRequestError``; ``param`` = the *upstream* field
                                           (``image[0]`` becomes ``image``; the engine maps it back
                                           to the client's name), ``code`` = the upstream's code
401, 403                                   ``UpstreamError`` ``upstream_auth_failed``
404                                        ``UpstreamError`` ``upstream_model_not_found``
408, 504                                   ``UpstreamTimeoutError``
429                                        ``UpstreamError`` ``upstream_rate_limited`` (502: the
                                           contract keeps 429 for pixelgate's own limits), or
                                           ``upstream_quota_exhausted`` for ``insufficient_quota``;
                                           the upstream's ``retry-after`` is passed on
other status                               ``UpstreamError`` naming the status
2xx that is not an images response         ``UpstreamError`` ``upstream_bad_response``
an ``error`` event in an image stream      by its error object alone (:func:`error_from_event`):
(after the 200)                            moderation, quota and rate-limit codes as above;
                                           ``type`` ``invalid_request_error`` or
                                           ``image_generation_user_error``: ``InvalidRequestError``;
                                           else ``UpstreamError`` (502 ``upstream_error``)
timeout                                    ``UpstreamTimeoutError``
connection failure                         ``UpstreamError`` ``upstream_unreachable``
=========================================  =========================================================

Only validation and moderation messages quote the upstream (what the user must fix), cut to a
bounded length and scrubbed of the API key; other messages never include a response body.
"""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from providers.toolkit import failures
from providers.toolkit.failures import passed_retry_after, scrub

MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
WHO = "the upstream"
_BRACKETS = re.compile(r"\[[^\]]*\]$")


class ErrorObject(BaseModel):
    """The ``error`` member of an OpenAI error body; every field optional (upstreams vary)."""

    model_config = ConfigDict(extra="ignore")

    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class _ErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    error: ErrorObject | str | None = None


def error_object(response: httpx.Response) -> ErrorObject:
    """The upstream's error object, or an empty one when the body is not OpenAI-shaped."""
    try:
        body = _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return ErrorObject()
    if isinstance(body.error, str):
        return ErrorObject(message=body.error)
    return body.error or ErrorObject()


def _code(error: ErrorObject) -> str | None:
    return None if error.code is None else str(error.code)


def is_moderation(error: ErrorObject) -> bool:
    return _code(error) in MODERATION_CODES


def is_quota(error: ErrorObject) -> bool:
    return _code(error) in QUOTA_CODES or error.type in QUOTA_CODES


def upstream_param(param: str | None) -> str | None:
    """The upstream field without an array suffix: ``image[0]`` and ``image[]`` name ``image``."""
    if not param:
        return None
    return _BRACKETS.sub("", param) or None


def bad_response(what: str) -> UpstreamError:
    """The upstream answered 2xx with something that is not a usable images response."""
    return failures.bad_response(WHO, what)


def error_from_response(response: httpx.Response, *, upstream_model: str, secret: str | None) -> GatewayError:
    """The gateway error for a non-2xx ``response`` (retries are over)."""
    status = response.status_code
    error = error_object(response)
    if is_moderation(error):
        message = error.message or "the upstream model refused the request under its content policy"
        return ModerationBlockedError(scrub(message, secret))
    if status in (400, 413, 415, 422):
        return InvalidRequestError(
            scrub(error.message or f"the upstream rejected the request (HTTP {status})", secret),
            param=upstream_param(error.param),
            code=_code(error) or "invalid_value",
        )
    if status in (401, 403):
        return UpstreamError("upstream rejected the gateway's credentials", code="upstream_auth_failed")
    if status == 404:
        return UpstreamError(
            f"the upstream does not know the model '{upstream_model}' or its images endpoint",
            code="upstream_model_not_found",
        )
    if status in (408, 504):
        return UpstreamTimeoutError(f"the upstream timed out (HTTP {status})")
    if status == 429:
        if is_quota(error):
            return UpstreamError("the upstream account is out of quota", code="upstream_quota_exhausted")
        return UpstreamError(
            "the upstream is rate limiting the gateway",
            code="upstream_rate_limited",
            headers=passed_retry_after(response),
        )
    if 200 <= status < 300:
        return bad_response("response")
    return UpstreamError(f"the upstream failed: HTTP {status}")


def error_from_transport(exc: httpx.HTTPError) -> GatewayError:
    """The gateway error for a connection failure or timeout that outlasted the retries."""
    return failures.transport_failure(exc, who=WHO)


USER_ERROR_TYPES = frozenset({"invalid_request_error", "image_generation_user_error"})
"""Error ``type`` values that blame the request (OpenAI's validation and image user errors)."""


def error_from_event(error: ErrorObject, *, secret: str | None) -> GatewayError:
    """The gateway error for an ``error`` event of an image stream: the status was 200 by then, so
    the error object alone decides, by the same rules as :func:`error_from_response` (moderation,
    quota, rate limit, the request's fault, else a 502). The upstream's own words reach the log as
    a note, never the client unless it must act on them."""
    code = _code(error)
    if is_moderation(error):
        mapped: GatewayError = ModerationBlockedError(
            scrub(error.message or "the upstream model refused the request under its content policy", secret)
        )
    elif is_quota(error):
        mapped = UpstreamError("the upstream account is out of quota", code="upstream_quota_exhausted")
    elif code == "rate_limit_exceeded":
        mapped = UpstreamError("the upstream is rate limiting the gateway", code="upstream_rate_limited")
    elif error.type in USER_ERROR_TYPES:
        mapped = InvalidRequestError(
            scrub(error.message or "the upstream rejected the request", secret),
            param=upstream_param(error.param),
            code=code or "invalid_value",
        )
    else:
        mapped = UpstreamError("the upstream failed while streaming its images")
    mapped.add_note(scrub(f"upstream error event: type={error.type} code={code} message={error.message}", secret))
    return mapped
