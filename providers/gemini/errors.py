"""The one place where the Gemini API's answers and httpx's exceptions become :mod:`core.errors`.

Google reports failures as ``{"error": {"code", "message", "status", "details": [...]}}`` (the Gemini
reference, section 7); safety refusals and answers without an image come as HTTP 200 and are read in
:mod:`.results`, which raises the errors made here. Mapping, once retries are over:

=======================================  ===============================================================
Gemini answer                            gateway error
=======================================  ===============================================================
400 with ``ErrorInfo`` ``API_KEY_INVALID``  ``UpstreamError`` ``upstream_auth_failed`` (Google says 400,
                                         not 401, for a bad key)
400 ``INVALID_ARGUMENT``, 413            ``InvalidRequestError``; ``param`` = the *upstream* field the
                                         message names (``Unknown name "seed"``, ``... at
                                         'generation_config.image_config.aspect_ratio'``; an input
                                         image problem names ``inlineData``)
other 400 (``FAILED_PRECONDITION``:      ``UpstreamError``: the gateway's account, not the request
billing, region)
401, 403                                 ``UpstreamError`` ``upstream_auth_failed``
404                                      ``UpstreamError`` ``upstream_model_not_found``
429 per-day quota                        ``UpstreamError`` ``upstream_quota_exhausted`` (never retried)
429 (after retries)                      ``UpstreamError`` ``upstream_rate_limited`` (502: 429 is
                                         pixelgate's own limit), ``retry-after`` from ``RetryInfo``
408, 504 (after retries)                 ``UpstreamTimeoutError``
other status (after retries)             ``UpstreamError`` naming the status
200 that is not a response object        ``UpstreamError`` ``upstream_bad_response``
prompt blocked, or finish reason of a    ``ModerationBlockedError`` (400 ``moderation_blocked``)
policy (``IMAGE_SAFETY``...)
an answer without an image               ``UpstreamError`` ``upstream_no_image``
connection failure, timeout              ``upstream_unreachable`` (502), ``UpstreamTimeoutError`` (504)
=======================================  ===============================================================

Only validation and moderation messages quote Google (what the user must act on), cut to a bounded
length and scrubbed of the key; other messages never include a response body.
"""

from __future__ import annotations

import math
import re

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import GatewayError, InvalidRequestError, ModerationBlockedError, UpstreamError, UpstreamTimeoutError
from providers.toolkit import failures
from providers.toolkit.failures import passed_retry_after, scrub

WHO = "Gemini"
IMAGE_PARAM = "inlineData"
"""The upstream name of the input images (the gemini kind's catalog default for ``image``)."""

_UNKNOWN_NAME = re.compile(r'Unknown name "([^"]+)"')
_AT_PATH = re.compile(r"at '([^']+)'")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class _Violation(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    quota_id: str | None = Field(default=None, alias="quotaId")


class _Detail(BaseModel):
    """One ``details`` entry; only the kinds pixelgate reads (ErrorInfo, RetryInfo, QuotaFailure)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: str = Field(default="", alias="@type")
    reason: str | None = None
    retry_delay: str | None = Field(default=None, alias="retryDelay")
    violations: list[_Violation] = []


class GoogleError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[_Detail] = []

    @property
    def api_key_invalid(self) -> bool:
        return any(detail.reason == "API_KEY_INVALID" for detail in self.details)

    @property
    def daily_quota(self) -> bool:
        """A per-day quota ran out: no retry helps before it resets."""
        return any("PerDay" in (v.quota_id or "") for detail in self.details for v in detail.violations)

    @property
    def retry_delay(self) -> float | None:
        """``RetryInfo.retryDelay`` in seconds (a protobuf Duration in JSON: ``"37s"``, ``"10.67s"``)."""
        for detail in self.details:
            match = _DURATION.match(detail.retry_delay or "")
            if match is not None:
                return float(match.group(1))
        return None


class _ErrorBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    error: GoogleError | None = None


def google_error(response: httpx.Response) -> GoogleError:
    """The error object of ``response``, or an empty one when the body is not Google-shaped."""
    try:
        body = _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return GoogleError()
    return body.error or GoogleError()


def bad_response(what: str) -> UpstreamError:
    """Gemini answered 200 with something that is not a usable response."""
    return failures.bad_response(WHO, what)


def upstream_param(message: str) -> str | None:
    """The request field a 400 names, as the payload spells it in camelCase (the catalog's names)."""
    if (unknown := _UNKNOWN_NAME.search(message)) is not None:
        return unknown.group(1)
    lowered = message.lower()
    if "inline_data" in lowered or "inlinedata" in lowered or "input image" in lowered:
        return IMAGE_PARAM
    if (path := _AT_PATH.search(message)) is not None:
        last = re.sub(r"\[\d+\]$", "", path.group(1).split(".")[-1])
        head, *rest = last.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)
    # Google's texts for a bad aspectRatio or imageSize value are unconfirmed (the reference, section
    # 11); these two phrases are the likeliest.
    if "aspect ratio" in lowered:
        return "aspectRatio"
    if "image size" in lowered:
        return "imageSize"
    return None


def error_from_response(response: httpx.Response, *, upstream: str, secret: str | None) -> GatewayError:
    """The gateway error for a non-2xx Gemini ``response`` (retries are over)."""
    status = response.status_code
    error = google_error(response)
    if error.api_key_invalid or status in (401, 403):
        return UpstreamError("Gemini rejected the gateway's API key", code="upstream_auth_failed")
    if status == 413 or (status == 400 and error.status in (None, "INVALID_ARGUMENT")):
        message = error.message or f"Gemini rejected the request (HTTP {status})"
        code = "image_too_large" if status == 413 else "invalid_value"
        return InvalidRequestError(scrub(message, secret), param=upstream_param(message), code=code)
    if status == 400:
        return UpstreamError(f"Gemini refused the gateway's account ({error.status})")
    if status == 404:
        return UpstreamError(
            f"Gemini does not know the model '{upstream}' (or it does not support generateContent)",
            code="upstream_model_not_found",
        )
    if status == 429 and error.daily_quota:
        return UpstreamError("the gateway's Gemini quota for today is used up", code="upstream_quota_exhausted")
    if status == 429:
        delay = error.retry_delay
        headers = {"retry-after": str(math.ceil(delay))} if delay is not None else passed_retry_after(response)
        return UpstreamError("Gemini is rate limiting the gateway", code="upstream_rate_limited", headers=headers)
    if status in (408, 504):
        return UpstreamTimeoutError(f"Gemini timed out (HTTP {status})")
    if 200 <= status < 300:
        return bad_response("response")
    return UpstreamError(f"Gemini failed: HTTP {status}{f' ({error.status})' if error.status else ''}")


def error_from_transport(exc: httpx.HTTPError) -> GatewayError:
    """The gateway error for a connection failure or timeout that outlasted the retries."""
    return failures.transport_failure(exc, who=WHO)


def refused(reason: str, text: str | None, secret: str | None) -> ModerationBlockedError:
    """A blocked prompt or a finish reason of a content policy; ``text`` is the model's own refusal."""
    message = text or f"Gemini refused the request under its content policy ({reason})"
    return ModerationBlockedError(scrub(message, secret))


def no_image(reason: str | None) -> UpstreamError:
    """An answer that carries no image (``NO_IMAGE``, a text-only ``STOP``, no candidate)."""
    why = f" (finishReason {reason})" if reason else ""
    return UpstreamError(f"Gemini answered without an image{why}", code="upstream_no_image")
