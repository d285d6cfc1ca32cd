"""Where a request becomes a job: ``Prefer: respond-async`` (RFC 7240) and the ``webhook_url`` field.

The image routes call :func:`async_intake` once the request is parsed. It answers None for an
ordinary (synchronous) request and an :class:`AsyncIntake` for one that asked to run as a job: the
request without ``webhook_url`` (a field of the gateway, never sent upstream) and that URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import InvalidRequestError
from normalization.request import ImageRequest

PREFER_HEADER = "prefer"
RESPOND_ASYNC = "respond-async"
WEBHOOK_FIELD = "webhook_url"


def prefers_async(prefer_values: Iterable[str]) -> bool:
    """Whether ``Prefer`` header values ask for ``respond-async`` (``Prefer: respond-async, wait=5``
    and several ``Prefer`` headers both count; names are case-insensitive)."""
    for value in prefer_values:
        for preference in value.split(","):
            name = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if name == RESPOND_ASYNC:
                return True
    return False


@dataclass(frozen=True)
class AsyncIntake:
    """A request that runs as a job: the request itself (without ``webhook_url``) and the webhook URL."""

    request: ImageRequest
    webhook_url: str | None


def async_intake(request: ImageRequest, *, respond_async: bool) -> AsyncIntake | None:
    """The job to make of ``request``, or None when it is to be answered synchronously.

    Raises 400 for ``webhook_url`` without ``Prefer: respond-async`` (a synchronous answer has nobody
    to call back), a ``webhook_url`` that is not a string, or ``stream=true`` with ``respond-async``.
    """
    extra = request.model_extra or {}
    webhook_url = extra.get(WEBHOOK_FIELD)
    if not respond_async:
        if webhook_url is not None:
            raise InvalidRequestError(
                "webhook_url is for async jobs: send the request with the header 'Prefer: respond-async'",
                param=WEBHOOK_FIELD,
                code="invalid_value",
            )
        return None
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise InvalidRequestError("webhook_url must be a URL string", param=WEBHOOK_FIELD, code="invalid_value")
    if request.stream:
        raise InvalidRequestError(
            "stream=true and 'Prefer: respond-async' exclude each other: poll the job or take its webhook",
            param="stream",
            code="invalid_value",
        )
    fields = {name: value for name, value in request.model_dump(exclude_unset=True).items() if name != WEBHOOK_FIELD}
    return AsyncIntake(request=ImageRequest.model_validate(fields), webhook_url=webhook_url)
