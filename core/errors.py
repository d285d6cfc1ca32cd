"""The one error hierarchy of pixelgate, and the one handler that renders it.

Every failure a client can see is a :class:`GatewayError` subclass; each class carries its HTTP status
and the OpenAI error ``type``; an instance adds ``message``, ``param`` (the field as the *client*
spelled it) and ``code``. Modules raise these, never return them. Foreign exceptions (httpx,
Pillow, pydantic) are mapped to them once, at the edge of the module that sees them.

    GatewayError
    ├── InvalidRequestError            400 invalid_request_error
    │   ├── UnsupportedParameterError  400 (strict mode: a standard parameter the model ignores)
    │   └── ModerationBlockedError     400 image_generation_user_error / moderation_blocked
    ├── AuthenticationError            401
    ├── PermissionDeniedError          403 (a hosted image's link expired or was tampered with; a key's
    │                                      model allow-list: model_not_allowed)
    ├── NotFoundError                  404
    │   └── ModelNotFoundError         404 model_not_found
    ├── RequestTimeoutError            408 (the request body arrived too slowly)
    ├── ConflictError                  409 (Idempotency-Key reused with another request)
    ├── PayloadTooLargeError           413
    ├── RequestHeaderTooLargeError     431 (the request line or headers over their limits)
    ├── RateLimitError                 429 (with retry-after)
    │   ├── RequestRateLimitError      429 type ``requests``: our own per-key limits
    │   └── QuotaExceededError         429 insufficient_quota: a managed key's budget is spent
    ├── UpstreamError                  502 (upstream failed after retries, or answered nonsense)
    ├── ServiceUnavailableError        503 (gateway overloaded or draining)
    │   ├── ProviderNotConfiguredError 503 provider_not_configured
    │   └── ImageStoreUnavailableError 503 image_store_unavailable (response_format=url, store cannot write)
    └── UpstreamTimeoutError           504

Whether a client should send the same request again is decided here too, per class
(``retryable``) and, where one class holds both kinds, per code (:data:`RETRY_BY_CODE`). Every error
response says so in ``x-should-retry``, which both official OpenAI SDKs read before their own rule
(retry 408, 409, 429 and every 5xx, twice): a 504 after the gateway waited out its deadline, or a
502 after it retried the upstream itself, would otherwise start two more upstream jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

SHOULD_RETRY_HEADER = "x-should-retry"


class GatewayError(Exception):
    """Base of every client-visible failure.

    ``headers`` are added to the error response (``retry-after`` on 429/503). ``message`` must
    never contain credentials or internal details: it is shown to the client verbatim.
    """

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    """Whether the same request may succeed when sent again (unless :data:`RETRY_BY_CODE` says otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def should_retry(self) -> bool:
        """What ``x-should-retry`` tells the client: the code's entry in :data:`RETRY_BY_CODE`, else the class's."""
        by_code = RETRY_BY_CODE.get(self.code) if self.code is not None else None
        return self.retryable if by_code is None else by_code

    def response_headers(self) -> dict[str, str]:
        """The headers of this error's response: its own (``retry-after``...) and ``x-should-retry``."""
        return {**self.headers, SHOULD_RETRY_HEADER: "true" if self.should_retry else "false"}

    def to_body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedParameterError(InvalidRequestError):
    default_code = "unsupported_parameter"


class ModerationBlockedError(InvalidRequestError):
    error_type = "image_generation_user_error"
    default_code = "moderation_blocked"


class AuthenticationError(GatewayError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status_code = 403
    error_type = "invalid_request_error"
    default_code = "invalid_signature"


class NotFoundError(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class RequestTimeoutError(GatewayError):
    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"
    retryable = True  # the upload stalled; on a second try the network may carry it


class ConflictError(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "idempotency_key_reused"


class PayloadTooLargeError(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RequestHeaderTooLargeError(GatewayError):
    """The request line, a header, the whole head or the number of headers is over its limit."""

    status_code = 431
    error_type = "invalid_request_error"
    default_code = "request_header_too_large"


class RateLimitError(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True  # after retry-after, which the SDKs honour


class RequestRateLimitError(RateLimitError):
    """A per-key limit of this gateway; OpenAI's body for its own RPM limits has ``type: requests``."""

    error_type = "requests"


class QuotaExceededError(RateLimitError):
    """The key's budget cannot cover the request's estimate (with what its requests in flight hold).

    OpenAI answers an exhausted quota with a 429 whose ``type`` and ``code`` are both
    ``insufficient_quota``; the SDKs raise it as a ``RateLimitError``. Waiting does not help (only
    a bigger budget does), so it says ``x-should-retry: false``.
    """

    error_type = "insufficient_quota"
    default_code = "insufficient_quota"
    retryable = False


class UpstreamError(GatewayError):
    """The upstream failed (after retries) or answered something we cannot use."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class ServiceUnavailableError(GatewayError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"
    retryable = True  # overloaded, draining or a shared store briefly away: nothing reached a provider


class ProviderNotConfiguredError(ServiceUnavailableError):
    default_code = "provider_not_configured"
    retryable = False  # the configuration will not change between two tries


class ImageStoreUnavailableError(ServiceUnavailableError):
    """The images were made but the store cannot hold them (disk full, read-only, file too large)."""

    default_code = "image_store_unavailable"
    retryable = False  # a retry repeats the (paid) upstream work and meets the same store


class UpstreamTimeoutError(GatewayError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"


RETRY_BY_CODE: Mapping[str, bool] = MappingProxyType(
    {
        # A 502 is not retried by default: the gateway retried the upstream itself (429, 5xx, dropped
        # connections) before answering, and a failed job may have been billed. A rate limit that
        # outlasted those retries is the exception: no job was made, and the upstream's retry-after
        # is passed on for the SDK to wait out.
        "upstream_rate_limited": True,
        # The model answered but made no image (Gemini's NO_IMAGE, a text-only reply): the same request
        # often succeeds on a second try, and no provider retries it by itself.
        "upstream_no_image": True,
    }
)
"""Codes whose retry advice differs from their class's ``retryable``."""


class ClientGone(Exception):
    """The client disconnected before its answer: its work was cancelled and nothing is sent."""


class ConfigError(ValueError):
    """A configuration pixelgate refuses to start with; ``str()`` is one line naming the key.

    Not a :class:`GatewayError`: no client ever sees it. ``pixelgate serve`` prints it and exits
    non-zero; ``create_app`` raises it. Raised outside pydantic validation only (a ``ValueError``
    raised inside a validator would be wrapped by pydantic).
    """
