"""The one place where fal's answers and httpx's exceptions become :mod:`core.errors`.

fal reports failures in three shapes (see the fal reference, section 2.4):

- model/validation errors, usually 422: ``{"detail": [{"loc": [...], "msg", "type", ...}]}``,
  or ``{"detail": "<string>"}``;
- infrastructure errors: ``{"detail": "<string>", "error_type": "<type>"}``, also in the
  ``X-Fal-Error-Type`` header;
- a COMPLETED job status carrying ``error`` and ``error_type``.

Mapping (the client-visible contract):

=====================================  ===============================================================
fal answer                             gateway error
=====================================  ===============================================================
any ``content_policy_violation``       ``ModerationBlockedError`` (400 ``moderation_blocked``)
422 ``detail`` list                    ``InvalidRequestError``, ``param`` = the *upstream* field
                                       (``loc[-1]``), message = fal's ``msg``
400/422 ``detail`` string              ``InvalidRequestError``, ``param`` None
401, 403                               ``UpstreamError`` ``upstream_auth_failed``
404 on submit                          ``UpstreamError`` ``upstream_model_not_found``
429 (after retries)                    ``UpstreamError`` ``upstream_rate_limited`` (502: the contract
                                       keeps 429 for pixelgate's own limits); fal's ``retry-after``
                                       is passed on
504 (after retries, or a user          ``UpstreamTimeoutError``
start-timeout)
other status (after retries)           ``UpstreamError`` naming the status and fal's error type
not JSON / wrong shape                 ``UpstreamError`` ``upstream_bad_response``
connection failure (after retries)     ``UpstreamError`` ``upstream_unreachable``
=====================================  ===============================================================

Messages quote fal's own text only for validation errors (what the user must fix), cut to a
bounded length and scrubbed of the API key; never a response body otherwise.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from core.errors import (
    GatewayError,
    InvalidRequestError,
    ModerationBlockedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from providers.toolkit import failures
from providers.toolkit.failures import passed_retry_after, scrub

Phase = Literal["submit", "status", "result", "cancel", "storage"]

CONTENT_POLICY = "content_policy_violation"
WHO = "fal"

ModelT = TypeVar("ModelT", bound=BaseModel)


class _DetailItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    loc: list[str | int] = []
    msg: str = ""
    type: str = ""


class _ErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    detail: list[_DetailItem] | str | None = None
    error_type: str | None = None


def bad_response(what: str) -> UpstreamError:
    """fal answered something the protocol does not allow (not JSON, missing fields...)."""
    return failures.bad_response(WHO, what)


def parse_model(response: httpx.Response, model: type[ModelT], what: str) -> ModelT:
    """``response``'s JSON body validated as ``model``; ``upstream_bad_response`` otherwise."""
    return failures.parse_model(response, model, who=WHO, what=what)


def parse_object(response: httpx.Response, what: str) -> dict[str, JsonValue]:
    """``response``'s body as a JSON object; ``upstream_bad_response`` when it is anything else."""
    return failures.parse_object(response, who=WHO, what=what)


def _error_body(response: httpx.Response) -> _ErrorBody:
    try:
        return _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return _ErrorBody()


def error_type_of(response: httpx.Response) -> str | None:
    """fal's error type from the ``X-Fal-Error-Type`` header or the body, if any."""
    return response.headers.get("x-fal-error-type") or _error_body(response).error_type


def is_content_policy(response: httpx.Response) -> bool:
    body = _error_body(response)
    if CONTENT_POLICY in (body.error_type, response.headers.get("x-fal-error-type")):
        return True
    return isinstance(body.detail, list) and any(item.type == CONTENT_POLICY for item in body.detail)


def error_from_response(
    response: httpx.Response, *, phase: Phase, endpoint_id: str, secret: str | None
) -> GatewayError:
    """The gateway error for a non-2xx fal ``response`` received in ``phase`` (retries are over)."""
    status = response.status_code
    body = _error_body(response)
    error_type = response.headers.get("x-fal-error-type") or body.error_type
    if is_content_policy(response):
        message = "the upstream model refused the request under its content policy"
        if isinstance(body.detail, list):
            message = next((i.msg for i in body.detail if i.type == CONTENT_POLICY and i.msg), message)
        return ModerationBlockedError(scrub(message, secret))
    if status in (400, 422) and isinstance(body.detail, list) and body.detail:
        first = body.detail[0]
        field = first.loc[-1] if first.loc else None
        param = field if isinstance(field, str) and field != "body" else None
        code = "image_too_large" if first.type == "image_too_large" else "invalid_value"
        return InvalidRequestError(scrub(first.msg or "invalid value", secret), param=param, code=code)
    if status in (400, 422) and isinstance(body.detail, str) and body.detail:
        return InvalidRequestError(scrub(body.detail, secret), code="invalid_value")
    if status in (401, 403):
        return UpstreamError("upstream rejected the gateway's fal credentials", code="upstream_auth_failed")
    if status == 404 and phase == "submit":
        return UpstreamError(
            f"the fal endpoint '{endpoint_id}' is unknown upstream (it may have been renamed or delisted)",
            code="upstream_model_not_found",
        )
    suffix = f" ({error_type})" if error_type else ""
    if status == 429:
        return UpstreamError(
            f"fal is rate limiting the gateway{suffix}",
            code="upstream_rate_limited",
            headers=passed_retry_after(response),
        )
    if status == 504:
        return UpstreamTimeoutError(f"fal timed out during {phase}{suffix}")
    if 200 <= status < 300:
        return bad_response(f"{phase} response")
    return UpstreamError(f"fal failed during {phase}: HTTP {status}{suffix}")


def error_from_job(error: str | None, error_type: str | None, secret: str | None) -> GatewayError:
    """The gateway error for a COMPLETED status that carries ``error``/``error_type``, with fal's own
    text attached for the log (an exception note, scrubbed)."""
    if error_type == CONTENT_POLICY:
        mapped: GatewayError = ModerationBlockedError(scrub(error or "the upstream model refused the request", secret))
    else:
        suffix = f" ({error_type})" if error_type else ""
        mapped = UpstreamError(f"the fal job failed{suffix}", code="upstream_job_failed")
    mapped.add_note(f"fal job error {error_type or '-'}: {scrub(' '.join((error or '').split()), secret) or '-'}")
    return mapped


def error_from_transport(exc: httpx.HTTPError, *, phase: Phase) -> GatewayError:
    """The gateway error for a connection failure that outlasted the retries."""
    return failures.transport_failure(exc, who=WHO, during=phase)
