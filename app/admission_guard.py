"""The ASGI guard in front of the image endpoints: a slot from the :class:`~app.admission.AdmissionGate`
before the body is read, freed once the answer starts (see :mod:`app.admission` for the policy).

Also what a request reserves of the intake budget, read from its headers before its body
(:func:`reserved_intake`), and the 503 ``server_overloaded`` a refused request gets unread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission import INTAKE_MIN_BYTES, AdmissionGate, AdmissionLimits, Overloaded, Slot
from app.context import context_of
from app.handlers import error_response
from core.errors import ServiceUnavailableError


class AdmissionGuard:
    """Runs image requests through an :class:`AdmissionGate`; see the module docstring."""

    def __init__(self, app: ASGIApp, gate: AdmissionGate, *, paths: frozenset[str]) -> None:
        self.app = app
        self.gate = gate
        self._paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = context_of(scope) if scope["type"] == "http" and scope["path"] in self._paths else None
        if context is None or context.principal is None:
            # Without a valid key the route answers 401 at once, reading no body: no slot, no
            # queueing behind (or pushing out) the clients that have one.
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        intake_bytes = reserved_intake(scope["headers"], self.gate.limits, path=scope["path"])
        try:
            await self.gate.acquire(intake_bytes)
        except Overloaded:
            await _overloaded(self.gate.limits)(scope, receive, send)
            return
        finally:
            context.timings.queue_wait += time.monotonic() - started
        slot = context.slot = Slot(self.gate, context.timings, intake_bytes)

        async def send_then_free(message: Message) -> None:
            if message["type"] == "http.response.start" and not _event_stream(message):
                slot.close()  # the answer is made: sending it to a slow reader needs no slot
            await send(message)

        try:
            await self.app(scope, receive, send_then_free)
        finally:
            slot.close()


def reserved_intake(headers: Iterable[tuple[bytes, bytes]], limits: AdmissionLimits, *, path: str) -> int:
    """What a request to ``path`` with ``headers`` reserves of the intake budget: its declared body
    length, from :data:`INTAKE_MIN_BYTES` up (a generation's JSON, a form without files: nothing);
    nothing for a length over the route's cap (``limits.body_caps``: refused unread, it must not wait
    for an empty budget, nor hold back the uploads behind it meanwhile);
    ``limits.undeclared_intake_bytes`` for a chunked body."""
    cap = limits.body_caps.get(path)
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            length = int(value) if value.isdigit() else 0
            if length < INTAKE_MIN_BYTES or (cap is not None and length > cap):
                return 0
            return length
        if name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
    return limits.undeclared_intake_bytes if chunked else 0


def _event_stream(start: Message) -> bool:
    """Whether the answer is a ``stream=true`` event stream: it starts before its images are made, so it
    keeps its slot until they are (:mod:`app.api.streaming` closes it then) or the request ends."""
    return any(
        name == b"content-type" and value.startswith(b"text/event-stream") for name, value in start.get("headers", ())
    )


def _overloaded(limits: AdmissionLimits) -> ASGIApp:
    retry_after = max(1, math.ceil(limits.retry_after_seconds))
    return error_response(
        ServiceUnavailableError(
            "the gateway is at capacity; retry after the number of seconds in the retry-after header",
            code="server_overloaded",
            headers={"retry-after": str(retry_after)},
        )
    )
