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
    ├── PermissionDeniedError          403 (a hosted image's link expired or was tampered with)
    ├── NotFoundError                  404
    │   └── ModelNotFoundError         404 model_not_found
    ├── RequestTimeoutError            408 (the request body arrived too slowly)
    ├── ConflictError                  409 (Idempotency-Key reused with another request)
    ├── PayloadTooLargeError           413
    ├── RateLimitError                 429 (with retry-after)
    │   └── RequestRateLimitError      429 type ``requests``: our own per-key limits
    ├── UpstreamError                  502 (upstream failed after retries, or answered nonsense)
    ├── ServiceUnavailableError        503 (gateway overloaded or draining)
    │   └── ProviderNotConfiguredError 503 provider_not_configured
    └── UpstreamTimeoutError           504
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class GatewayError(Exception):
    """Base of every client-visible failure.

    ``headers`` are added to the error response (``retry-after`` on 429/503). ``message`` must
    never contain credentials or internal details: it is shown to the client verbatim.
    """

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

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


class ConflictError(GatewayError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "idempotency_key_reused"


class PayloadTooLargeError(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimitError(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class RequestRateLimitError(RateLimitError):
    """A per-key limit of this gateway; OpenAI's body for its own RPM limits has ``type: requests``."""

    error_type = "requests"


class UpstreamError(GatewayError):
    """The upstream failed (after retries) or answered something we cannot use."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class ServiceUnavailableError(GatewayError):
    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class ProviderNotConfiguredError(ServiceUnavailableError):
    default_code = "provider_not_configured"


class UpstreamTimeoutError(GatewayError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"


class ClientGone(Exception):
    """The client disconnected before its answer: its work was cancelled and nothing is sent."""


class ConfigError(ValueError):
    """A configuration pixelgate refuses to start with; ``str()`` is one line naming the key.

    Not a :class:`GatewayError`: no client ever sees it. ``pixelgate serve`` prints it and exits
    non-zero; ``create_app`` raises it. Raised outside pydantic validation only (a ``ValueError``
    raised inside a validator would be wrapped by pydantic).
    """
