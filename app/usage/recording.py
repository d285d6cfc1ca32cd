"""Where image requests meet the ledger: one :class:`LedgerEntry` per edit or generation.

:class:`UsageGuard` is a request guard (:mod:`app.guards`), right inside the one that makes the
:class:`~app.context.RequestContext`, outside every other: a 401, a 429 or a 503 is recorded too. When
the response is done it turns the context (principal, outcome, timings) into a ledger entry; from the
response itself it reads only what the context cannot know: the ``idempotent-replayed`` header and, on
an error, the OpenAI error body's ``code``. Recording is an append to the ledger's buffer; nothing here
waits on the database.
"""

from __future__ import annotations

import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.context import RequestContext, context_of
from app.usage.ledger import Ledger, LedgerEntry

MAX_ERROR_CHUNKS = 4
"""Error bodies are one small JSON message; a few chunks are plenty to find its ``code``."""
REPLAYED_HEADER = b"idempotent-replayed"


class UsageGuard:
    """Records one ledger entry per request on ``paths``; see the module docstring."""

    def __init__(self, app: ASGIApp, ledger: Ledger, *, paths: frozenset[str]) -> None:
        self.app = app
        self.ledger = ledger
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
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

        try:
            await self.app(scope, receive, observe)
        finally:
            error_code = _error_code(b"".join(error_body)) if status >= 400 else None
            self.ledger.record(_entry(context, status, error_code, replay=replay, created=created))


def _entry(
    context: RequestContext, status: int, error_code: str | None, *, replay: bool, created: float
) -> LedgerEntry:
    outcome, timings = context.outcome, context.timings
    return LedgerEntry(
        request_id=context.request_id,
        status=status,
        total_ms=round((time.monotonic() - timings.started) * 1000),
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


def _error_code(body: bytes) -> str | None:
    """``error.code`` of an OpenAI-shaped error body; None for anything else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
