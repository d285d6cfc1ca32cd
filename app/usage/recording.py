"""Where requests meet the ledger and the observers: one :class:`~app.observe.RequestRecord` per request.

:class:`UsageGuard` is a request guard (:mod:`app.guards`), right inside the one that makes the
:class:`~app.context.RequestContext`, outside every other: a 401, a 429 or a 503 is seen too. When
the response is done it turns the context (principal, outcome, timings) into a record; from the
response itself it reads only what the context cannot know: the ``idempotent-replayed`` header and,
on an error, the OpenAI error body's ``code`` (a stream's error event puts its status and code in the
context, :attr:`~app.context.Outcome.stream_error`). An edit or a generation becomes a ledger entry;
every request goes to the observers (the metrics, the request log). Recording is an append to the
ledger's buffer; nothing here waits on the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import RequestContext, context_of
from app.observe import RequestObserver, RequestRecord
from app.usage.ledger import Ledger, LedgerEntry

MAX_ERROR_CHUNKS = 4
"""Error bodies are one small JSON message; a few chunks are plenty to find its ``code``."""
REPLAYED_HEADER = b"idempotent-replayed"


class UsageGuard:
    """Records one ledger entry per request on ``paths`` and tells ``observers`` about every request;
    see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        ledger: Ledger,
        *,
        paths: frozenset[str],
        observers: Sequence[RequestObserver] = (),
    ) -> None:
        self.app = app
        self.ledger = ledger
        self.paths = paths
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        image_request = scope["path"] in self.paths
        if not image_request and not self.observers:
            await self.app(scope, receive, send)
            return
        context = context_of(scope)
        created = time.time()
        status = 500  # what the server answers for a request that ends without a response
        replay = False
        error_body: list[bytes] = []

        async def observe(message: Message) -> None:
            nonlocal status, replay
            if message["type"] == "http.response.start":
                status = message["status"]
                replay = any(name == REPLAYED_HEADER and value == b"true" for name, value in message.get("headers", ()))
            elif message["type"] == "http.response.body" and status >= 400 and len(error_body) < MAX_ERROR_CHUNKS:
                error_body.append(message.get("body", b""))
            await send(message)

        for observer in self.observers:
            observer.request_started(image_request)
        try:
            await self.app(scope, receive, observe)
        finally:
            error_code = _error_code(b"".join(error_body)) if status >= 400 else None
            if context.outcome.stream_error is not None:  # the 200 of a stream that ended in an error event
                status, error_code = context.outcome.stream_error
            record = _record(scope, context, status, error_code, replay=replay, created=created, image=image_request)
            if image_request:
                self.ledger.record(_entry(record))
            for observer in self.observers:
                observer.request_finished(record)


def _record(
    scope: Scope,
    context: RequestContext,
    status: int,
    error_code: str | None,
    *,
    replay: bool,
    created: float,
    image: bool,
) -> RequestRecord:
    outcome, timings = context.outcome, context.timings
    return RequestRecord(
        request_id=context.request_id,
        method=scope.get("method", ""),
        path=scope.get("path", ""),
        status=status,
        total_ms=round((time.monotonic() - timings.started) * 1000),
        image_request=image,
        key_id=context.principal.key_id if context.principal is not None else None,
        model=outcome.model,
        deployments=outcome.deployments,
        provider=outcome.provider if outcome.images else None,
        error_code=error_code,
        images=outcome.images,
        megapixels=outcome.megapixels,
        cost_usd=float(outcome.cost_usd or 0),
        queue_ms=round(timings.queue_wait * 1000),
        upstream_ms=round(timings.upstream * 1000),
        replay=replay,
        created=created,
    )


def _entry(record: RequestRecord) -> LedgerEntry:
    return LedgerEntry(
        request_id=record.request_id,
        status=record.status,
        total_ms=record.total_ms,
        key_id=record.key_id,
        model=record.model,
        deployments=record.deployments,
        provider=record.provider,
        error_code=record.error_code,
        images=record.images,
        megapixels=record.megapixels,
        cost_usd=record.cost_usd,
        queue_ms=record.queue_ms,
        upstream_ms=record.upstream_ms,
        replay=record.replay,
        created=record.created,
    )


def _error_code(body: bytes) -> str | None:
    """``error.code`` of an OpenAI-shaped error body; None for anything else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
