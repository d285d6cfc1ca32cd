"""``Idempotency-Key``: a retried image request is answered once, without a second upstream call.

The SDKs retry on timeouts and 5xx, and an image costs money. With the header, a request is
identified by (who sent it, the key) and fingerprinted by what it asks for: the endpoint, the
``dry_run`` and strict switches and the *parsed* body (form fields and the digests of the image
parts, or the JSON object with sorted keys), never the raw bytes, since a retried multipart upload
gets a new boundary. Then:

- same key, same fingerprint, answer stored: the stored answer, with ``idempotent-replayed: true``;
- same key, same fingerprint, first request still running: wait for it and share its answer;
- same key, another fingerprint (stored or running): 409 ``idempotency_key_reused``, sent with
  ``x-should-retry: false`` because the SDKs would otherwise retry a 409.

What is stored: the answers a retry would get again, i.e. 2xx and 4xx except 408/409/429. Not
stored: 5xx, 429, 408 and a request that ended without an answer (cancelled), so a retry runs
afresh. The work of a request with a key is not tied to its connection: when the client gives up
(a read timeout, then its retry), the work runs on, within the request deadline, and the retry
picks up its answer instead of paying for a second image. Answers with hosted links are kept no
longer than the links live.

"Who sent it" is the request's principal (``key_id``: a digest of the API key, or the client's
address when no keys are configured).
Stored answers live behind :class:`IdempotencyStore` (:class:`MemoryIdempotencyStore`, bounded
in entries and bytes, oldest evicted first); the waiting for a running first request is within
this process (pixelgate runs one worker by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import JsonValue

from app.context import RequestContext
from app.forms import ParsedForm
from app.handlers import ChunksResponse, error_response
from core.errors import ConflictError, GatewayError, InvalidRequestError, ServiceUnavailableError

log = logging.getLogger("pixelgate")

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255
_NOT_STORED = frozenset({408, 409, 429})
# Framing and per-request headers are the new response's own; every other header (retry-after,
# x-should-retry, x-pixelgate-warnings...) belongs to the answer and is sent again with it.
_DROPPED_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date", "server", "x-request-id"})


@dataclass(frozen=True)
class StoredResponse:
    """An answer as it can be sent again: status, the headers that belong to it, body."""

    fingerprint: str
    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expires_at: float

    @property
    def size(self) -> int:
        return len(self.body) + 256

    def render(self, *, replayed: bool) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.body, status_code=self.status_code, headers=headers)


class IdempotencyStore(Protocol):
    """Where stored answers live, by scoped key. Implementations drop entries once expired."""

    async def get(self, key: str) -> StoredResponse | None: ...

    async def put(self, key: str, response: StoredResponse) -> None: ...


class MemoryIdempotencyStore:
    """:class:`IdempotencyStore` in this process, at most ``max_entries`` answers and ``max_bytes``
    of bodies; the oldest go first. An answer larger than ``max_bytes`` is not stored."""

    def __init__(self, *, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> StoredResponse | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            self._drop(key)
            return None
        return entry

    async def put(self, key: str, response: StoredResponse) -> None:
        self._drop(key)
        if response.size > self.max_bytes:
            return
        self._entries[key] = response
        self._bytes += response.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size


@dataclass
class _Running:
    fingerprint: str
    task: asyncio.Task[StoredResponse]


Work = Callable[[], Awaitable[Response]]
Material = Callable[[], bytes]
"""What the request asks for, computed only when it carries an Idempotency-Key (hashing every upload
on every request would cost milliseconds per MiB for nothing)."""


def form_material(form: ParsedForm) -> bytes:
    """What a multipart edit asks for: its fields, then a digest per image part and the mask."""
    digests = [hashlib.sha256(data).hexdigest() for _, data in form.images]
    mask = hashlib.sha256(form.mask[1]).hexdigest() if form.mask else None
    return orjson.dumps({"fields": form.fields, "images": digests, "mask": mask}, option=orjson.OPT_SORT_KEYS)


def json_material(body: dict[str, JsonValue]) -> bytes:
    """What a JSON (or urlencoded) request asks for: its object with sorted keys."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _retrieve(task: asyncio.Task[StoredResponse]) -> None:
    """Mark a failure as seen: when every waiter has left, nobody else reads it."""
    if not task.cancelled():
        task.exception()


class Idempotency:
    """Runs image requests at most once per (sender, ``Idempotency-Key``); see the module docstring."""

    def __init__(self, store: IdempotencyStore, *, ttl_seconds: float, link_ttl_seconds: float) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._link_ttl = link_ttl_seconds
        self._running: dict[str, _Running] = {}

    async def serve(self, request: Request, context: RequestContext, material: Material, work: Work) -> Response:
        """``work()``'s answer, or the stored/shared answer of an earlier request with the same key.

        Only for requests with a principal (the image routes require one)."""
        key = request.headers.get(HEADER)
        if key is None:
            return await work()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
            raise InvalidRequestError(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                param=HEADER,
                code="invalid_idempotency_key",
            )
        if context.principal is None:
            raise RuntimeError("idempotency needs an authenticated request")
        scoped = context.principal.key_id + "\n" + key
        # Off the event loop: the material hashes every uploaded image (up to hundreds of MiB).
        fingerprint = self._fingerprint(request, await asyncio.to_thread(material))
        stored = await self._store.get(scoped)
        if stored is not None:
            self._check(stored.fingerprint, fingerprint)
            return stored.render(replayed=True)
        running = self._running.get(scoped)
        leader = running is None
        if running is None:
            task = asyncio.create_task(self._lead(scoped, fingerprint, work))
            task.add_done_callback(_retrieve)
            if context.limits is not None:
                context.limits.hold_until(task)
            running = self._running[scoped] = _Running(fingerprint, task)
        self._check(running.fingerprint, fingerprint)
        # Waiting does not tie the work to this connection: a client that leaves stops waiting only.
        # A duplicate holds no admission slot while it waits: the leader needs one to finish.
        async with contextlib.nullcontext() if leader else context.without_slot():
            await asyncio.wait({running.task})
        if running.task.cancelled():
            raise ServiceUnavailableError(
                "the gateway is shutting down; retry the request", headers={"retry-after": "1"}
            )
        return running.task.result().render(replayed=not leader)

    async def aclose(self) -> None:
        """Cancel work still running for requests whose clients have gone (shutdown)."""
        tasks = [running.task for running in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _lead(self, scoped: str, fingerprint: str, work: Work) -> StoredResponse:
        try:
            try:
                response = await work()
            except GatewayError as exc:
                response = error_response(exc)
            stored = self._snapshot(fingerprint, response)
            if stored.status_code < 500 and stored.status_code not in _NOT_STORED:
                try:
                    await self._store.put(scoped, stored)
                except GatewayError as exc:
                    # The work is done (and paid for): its answer goes out; only a later replay is lost.
                    log.warning("idempotency: could not keep the answer for a key: %s", exc.message)
            return stored
        finally:
            self._running.pop(scoped, None)

    def _snapshot(self, fingerprint: str, response: Response) -> StoredResponse:
        body = b"".join(response.chunks) if isinstance(response, ChunksResponse) else bytes(response.body)
        ttl = self._ttl
        if b'"url":"' in body:  # hosted links: a replay must not hand out expired links
            ttl = min(ttl, self._link_ttl)
        headers = tuple((name, value) for name, value in response.headers.items() if name not in _DROPPED_HEADERS)
        return StoredResponse(fingerprint, response.status_code, headers, body, time.time() + ttl)

    @staticmethod
    def _fingerprint(request: Request, material: bytes) -> str:
        digest = hashlib.sha256()
        query = sorted(request.query_params.multi_items())
        strict = request.headers.get("x-pixelgate-strict", "")
        digest.update(orjson.dumps([request.method, request.url.path, query, strict]))
        digest.update(material)
        return digest.hexdigest()

    @staticmethod
    def _check(first: str, this: str) -> None:
        if first != this:
            raise ConflictError(
                "This Idempotency-Key was already used with a different request; use a new key for a new request.",
                param=HEADER,
                code="idempotency_key_reused",
            )
