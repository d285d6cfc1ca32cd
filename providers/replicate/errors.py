"""The one place where Replicate's answers and httpx's exceptions become :mod:`core.errors`.

Replicate reports an API failure as ``application/problem+json`` (``{title?, detail, status,
invalid_fields?}``, the Replicate reference section 7.1) and a model failure as a prediction whose
``status`` is ``failed`` with an ``error`` string (section 7.3). Mapping, once retries are over:

======================================  ==============================================================
Replicate answer                        gateway error
======================================  ==============================================================
422 with ``invalid_fields``             ``InvalidRequestError``, ``param`` = the *upstream* field
                                        (``input.seed`` -> ``seed``; ``input`` + "prompt is required"
                                        -> ``prompt``), message = Replicate's description
422 "Invalid version or not permitted"  ``UpstreamError`` ``upstream_model_not_found`` (the
                                        catalog's version is gone, not the client's fault)
other 400, 422                          ``InvalidRequestError``
401, 403                                ``UpstreamError`` ``upstream_auth_failed``
402 (billing, credit)                   ``UpstreamError`` ``upstream_quota_exhausted``
404 on create                           ``UpstreamError`` ``upstream_model_not_found``
413 on upload                           ``InvalidRequestError`` ``image_too_large``
429 (after retries)                     ``UpstreamError`` ``upstream_rate_limited`` (502: 429 is
                                        pixelgate's own limit), ``retry-after`` passed on
504 (after retries)                     ``UpstreamTimeoutError``
other status (after retries)            ``UpstreamError`` naming the status
2xx that is not the expected object     ``UpstreamError`` ``upstream_bad_response``
prediction ``failed``, sensitive        ``ModerationBlockedError`` (400 ``moderation_blocked``):
content (E005, "flagged as sensitive",  Replicate's own text
"NSFW content")
prediction ``failed``, other            ``UpstreamError`` ``upstream_job_failed`` (with its E-code)
prediction ``canceled``/``aborted``     ``UpstreamTimeoutError`` when its ``Cancel-After`` deadline
not by pixelgate                        passed, ``upstream_job_failed`` otherwise
``succeeded`` without output            ``UpstreamError`` ``upstream_no_image``
connection failure, timeout             ``upstream_unreachable`` (502), ``UpstreamTimeoutError`` (504)
======================================  ==============================================================

Only validation and moderation messages quote Replicate (what the user must act on), cut to a
bounded length and scrubbed of the token; other messages never include a response body. The exact
moderation text of BFL's kontext models and whether ``E005`` is an official code are unconfirmed
(the reference, section 12): any of the three markers counts.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

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

Phase = Literal["create", "poll", "upload"]
WHO = "Replicate"

ModelT = TypeVar("ModelT", bound=BaseModel)

_SENSITIVE = re.compile(r"\(E005\)|flagged as sensitive|NSFW content", re.IGNORECASE)
_ERROR_CODE = re.compile(r"\bE\d{3,4}\b")
_REQUIRED = re.compile(r"^(\S+) is required$")
_ADDITIONAL = re.compile(r"^Additional property (\S+) is not allowed$")


class _InvalidField(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = ""
    field: str = ""
    description: str = ""


class _Problem(BaseModel):
    """RFC 7807 problem details as Replicate sends them; every field optional (some bodies carry only ``detail``)."""

    model_config = ConfigDict(extra="ignore")

    title: str | None = None
    detail: str | None = None
    invalid_fields: list[_InvalidField] = []


def _problem(response: httpx.Response) -> _Problem:
    try:
        return _Problem.model_validate_json(response.content)
    except ValidationError:
        return _Problem()


def bad_response(what: str) -> UpstreamError:
    """Replicate answered something its protocol does not allow (not JSON, fields missing...)."""
    return failures.bad_response(WHO, what)


def parse_model(response: httpx.Response, model: type[ModelT], what: str) -> ModelT:
    """``response``'s JSON body validated as ``model``; ``upstream_bad_response`` otherwise."""
    return failures.parse_model(response, model, who=WHO, what=what)


def upstream_param(item: _InvalidField) -> str | None:
    """The input field an ``invalid_fields`` item names, as the catalog spells it.

    ``input.seed`` and ``input.image_input.0`` name ``seed`` and ``image_input``; an item located at
    ``input`` or the root names its field in the description ("prompt is required", "Additional
    property foo is not allowed").
    """
    path = item.field.split(".")
    if len(path) >= 2 and path[0] == "input":
        return path[1]
    for pattern in (_REQUIRED, _ADDITIONAL):
        match = pattern.match(item.description.strip())
        if match is not None and match.group(1) not in ("input", "version"):
            return match.group(1)
    return None


def error_from_response(response: httpx.Response, *, phase: Phase, upstream: str, secret: str | None) -> GatewayError:
    """The gateway error for a non-2xx Replicate ``response`` received in ``phase`` (retries are over)."""
    status = response.status_code
    problem = _problem(response)
    if status == 422 and problem.invalid_fields:
        first = problem.invalid_fields[0]
        message = first.description or problem.detail or "invalid value"
        return InvalidRequestError(scrub(message, secret), param=upstream_param(first), code="invalid_value")
    if status == 422 and (problem.title or "").lower().startswith("invalid version"):
        return UpstreamError(
            f"Replicate does not know the version of '{upstream}' (or the gateway's account may not use it)",
            code="upstream_model_not_found",
        )
    if status == 413 and phase == "upload":
        return InvalidRequestError("an input image is too large for Replicate's Files API", code="image_too_large")
    if status in (400, 422):
        return InvalidRequestError(
            scrub(problem.detail or f"Replicate rejected the request (HTTP {status})", secret), code="invalid_value"
        )
    if status in (401, 403):
        return UpstreamError("Replicate rejected the gateway's API token", code="upstream_auth_failed")
    if status == 402:
        return UpstreamError(
            f"Replicate refused to bill the gateway's account ({problem.title or 'payment required'})",
            code="upstream_quota_exhausted",
        )
    if status == 404 and phase == "create":
        return UpstreamError(
            f"Replicate does not know the model '{upstream}' (a community model needs 'owner/name:version')",
            code="upstream_model_not_found",
        )
    if status == 429:
        return UpstreamError(
            "Replicate is rate limiting the gateway", code="upstream_rate_limited", headers=passed_retry_after(response)
        )
    if status == 504:
        return UpstreamTimeoutError(f"Replicate timed out during {phase}")
    if 200 <= status < 300:
        return bad_response(f"{phase} response")
    return UpstreamError(f"Replicate failed during {phase}: HTTP {status}")


def error_from_transport(exc: httpx.HTTPError, *, phase: Phase) -> GatewayError:
    """The gateway error for a connection failure or timeout that outlasted the retries."""
    return failures.transport_failure(exc, who=WHO, during=phase)


def error_from_failed(error: str | None, secret: str | None) -> GatewayError:
    """The gateway error for a prediction that ended ``failed`` with ``error``."""
    text = error or ""
    if _SENSITIVE.search(text):
        return ModerationBlockedError(scrub(text, secret))
    code = _ERROR_CODE.search(text)
    suffix = f" ({code.group(0)})" if code else ""
    return UpstreamError(f"the Replicate prediction failed{suffix}", code="upstream_job_failed")


def error_from_ended(status: str, *, had_deadline: bool) -> GatewayError:
    """The gateway error for a prediction ``canceled`` or ``aborted`` by someone other than pixelgate."""
    if had_deadline:
        # Cancel-After is the request deadline: past it the gateway has given up on the call anyway.
        return UpstreamTimeoutError(f"the Replicate prediction passed its deadline ({status})")
    return UpstreamError(f"the Replicate prediction was {status} upstream", code="upstream_job_failed")


def no_output(data_removed: bool) -> UpstreamError:
    """A ``succeeded`` prediction without an image to read."""
    why = "its output was already removed" if data_removed else "it has no output"
    return UpstreamError(f"the Replicate prediction succeeded but {why}", code="upstream_no_image")
