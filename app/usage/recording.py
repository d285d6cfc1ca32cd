"""Where image requests meet the ledger: one :class:`LedgerEntry` per edit or generation.

:class:`UsageMiddleware` wraps the image endpoints (inside the request-id middleware, outside every
guard, so a 401, a 429 or a 503 is recorded too). It puts a :class:`UsageNote` in the request's
state for the endpoint to fill in (model, provider, images, ...; see :func:`note_result`), watches
the response for its status, its ``idempotent-replayed`` header and, on an error, the OpenAI error
body's ``code``, and records the entry when the response is done. Recording is an append to the
ledger's buffer; nothing here waits on the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.usage.ledger import Ledger, LedgerEntry
from normalization.response import ImagesResponse

USAGE_PATHS = frozenset({"/v1/images/edits", "/v1/images/generations"})
NOTE_KEY = "pixelgate_usage"
MAX_ERROR_CHUNKS = 4
"""Error bodies are one small JSON message; a few chunks are plenty to find its ``code``."""
REPLAYED_HEADER = b"idempotent-replayed"


@dataclass
class UsageNote:
    """What the request path learned, for its ledger row."""

    key_id: str | None = None
    model: str | None = None
    deployments: tuple[str, ...] = ()
    provider: str | None = None
    images: int = 0
    megapixels: float = 0.0
    cost_usd: float = 0.0
    queue_ms: int | None = None
    upstream_ms: int | None = None


def usage_note(scope: Scope) -> UsageNote | None:
    """The request's note (None outside :class:`UsageMiddleware`)."""
    note = scope.get("state", {}).get(NOTE_KEY)
    return note if isinstance(note, UsageNote) else None


def note_model(scope: Scope, model: str | None) -> None:
    if (note := usage_note(scope)) is not None:
        note.model = model


def note_result(scope: Scope, result: ImagesResponse) -> None:
    """Fill the note from a successful answer: provider, deployment, images and megapixels."""
    note = usage_note(scope)
    if note is None:
        return
    meta = result.metadata
    note.provider = meta.provider
    note.deployments = (f"{meta.provider}:{meta.upstream_model}",)
    note.images = len(result.data)
    note.megapixels = note.images * _megapixels(result.size)


def _megapixels(size: str) -> float:
    width, _, height = size.partition("x")
    return int(width) * int(height) / 1e6 if width.isdigit() and height.isdigit() else 0.0


class UsageMiddleware:
    """Records one ledger entry per image request; see the module docstring."""

    def __init__(self, app: ASGIApp, ledger: Ledger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in USAGE_PATHS:
            await self.app(scope, receive, send)
            return
        created = time.time()
        started = time.perf_counter()
        note = UsageNote()
        scope.setdefault("state", {})[NOTE_KEY] = note
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
            self.ledger.record(
                LedgerEntry(
                    request_id=str(scope["state"].get("request_id", "")),
                    status=status,
                    total_ms=round((time.perf_counter() - started) * 1000),
                    key_id=note.key_id,
                    model=note.model,
                    deployments=note.deployments,
                    provider=note.provider,
                    error_code=_error_code(b"".join(error_body)) if status >= 400 else None,
                    images=note.images,
                    megapixels=note.megapixels,
                    cost_usd=note.cost_usd,
                    queue_ms=note.queue_ms,
                    upstream_ms=note.upstream_ms,
                    replay=replay,
                    created=created,
                )
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
